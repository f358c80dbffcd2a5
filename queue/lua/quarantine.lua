-- quarantine: take a message whose stored record cannot be read out of
-- every queue, keep it for inspection under "corrupt", give up the lease.
-- ARGV: prefix, now, id, domain, token, reason
local P, now, id, dom, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job = id .. '/' .. dom
if redis.call('HGET', P .. 'lease', job) ~= token then
	return redis.error_reply('ESTALE lease lost')
end
redis.call('HDEL', P .. 'lease', job)
redis.call('ZREM', P .. 'leases', job)
if redis.call('HINCRBY', P .. 'inflight', dom, -1) <= 0 then
	redis.call('HDEL', P .. 'inflight', dom)
end
local mkey = P .. 'm:' .. id
local m = redis.call('HMGET', mkey, 'stream', 'doms')
if m[1] and m[2] then
	for d in string.gmatch(m[2], '%S+') do
		redis.call('ZREM', P .. 'q:' .. m[1] .. ':' .. d, id)
	end
end
if redis.call('EXISTS', mkey) == 1 then
	redis.call('HSET', mkey, 'state', 'corrupt', 'why', ARGV[6])
end
redis.call('ZREM', P .. 'active', id)
redis.call('ZADD', P .. 'corrupt', now, id)
redis.call('HINCRBY', P .. 'stats', 'corrupt', 1)
return 1
