-- msgread: what a delivery report needs of a message.
-- ARGV: prefix, id, with body (1|0)
-- Returns false when the message is gone, else { env, head, state, body
-- or false }.
local mkey = ARGV[1] .. 'm:' .. ARGV[2]
local m = redis.call('HMGET', mkey, 'env', 'head', 'state')
if not m[1] then
	return false
end
local body = false
if ARGV[3] == '1' then
	body = redis.call('HGET', mkey, 'body')
end
return { m[1], m[2] or '', m[3] or '', body }
