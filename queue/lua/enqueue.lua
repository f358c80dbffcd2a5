-- enqueue: store one message and make a job due now for each recipient domain.
-- KEYS[1] m:ID  KEYS[2] active  KEYS[3] d:STREAM  KEYS[4] stats
-- KEYS[5..4+N] q:STREAM:DOMAIN for the N domains
-- ARGV: id, now, stream, env, head, body, N, then N pairs (domain, job state), nrcpt
if redis.call('EXISTS', KEYS[1]) == 1 then
	return redis.error_reply('EEXIST message id exists')
end
local id, now, n = ARGV[1], ARGV[2], tonumber(ARGV[7])
local doms = {}
redis.call('HSET', KEYS[1], 'env', ARGV[4], 'head', ARGV[5], 'body', ARGV[6],
	'stream', ARGV[3], 'pending', n, 'state', 'active', 'arrival', now)
for i = 1, n do
	local dom, job = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
	doms[i] = dom
	redis.call('HSET', KEYS[1], 'j:' .. dom, job)
	redis.call('ZADD', KEYS[4 + i], now, id)
	redis.call('ZADD', KEYS[3], 'LT', now, dom)
end
redis.call('HSET', KEYS[1], 'doms', table.concat(doms, ' '))
redis.call('ZADD', KEYS[2], now, id)
redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
redis.call('HINCRBY', KEYS[4], 'recipients', ARGV[8 + 2 * n])
return 1
