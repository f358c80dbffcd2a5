-- dropbody: drop the body a RET=FULL message kept after it was done.
-- ARGV: prefix, id
-- Returns 1 when a body was dropped, 0 otherwise (still queued: its
-- workers need it).
local mkey = ARGV[1] .. 'm:' .. ARGV[2]
if redis.call('HGET', mkey, 'state') ~= 'done' then
	return 0
end
return redis.call('HDEL', mkey, 'body')
