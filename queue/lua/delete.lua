-- delete: remove a message and every job of it.  ARGV: prefix, id
-- Returns 1, or 0 when there is no such message.
local P, id = ARGV[1], ARGV[2]
local mkey = P .. 'm:' .. id
local m = redis.call('HMGET', mkey, 'stream', 'doms')
local found = redis.call('EXISTS', mkey) == 1
if m[1] then
	for dom in string.gmatch(m[2] or '', '%S+') do
		redis.call('ZREM', P .. 'q:' .. m[1] .. ':' .. dom, id)
		local job = id .. '/' .. dom
		if redis.call('HDEL', P .. 'lease', job) == 1 then
			redis.call('ZREM', P .. 'leases', job)
			if redis.call('HINCRBY', P .. 'inflight', dom, -1) <= 0 then
				redis.call('HDEL', P .. 'inflight', dom)
			end
		end
	end
end
local z = redis.call('ZREM', P .. 'active', id) + redis.call('ZREM', P .. 'done', id)
	+ redis.call('ZREM', P .. 'corrupt', id)
redis.call('DEL', mkey)
if found or z > 0 then
	redis.call('HINCRBY', P .. 'stats', 'deleted', 1)
	return 1
end
return 0
