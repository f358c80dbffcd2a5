-- enqueue: store one message and make a job due now for each recipient domain.
-- KEYS[1] m:ID  KEYS[2] active  KEYS[3] d:STREAM  KEYS[4] stats
-- KEYS[5..4+N] q:STREAM:DOMAIN for the N domains
-- ARGV: id, now, stream, env, head, body, N, then N pairs (domain, job state), nrcpt
-- One HSET writes the whole record: this script runs once per accepted
-- message, and every command in it is also a command in the AOF.
if redis.call('EXISTS', KEYS[1]) == 1 then
	return redis.error_reply('EEXIST message id exists')
end
local id, now, n = ARGV[1], ARGV[2], tonumber(ARGV[7])
local doms = {}
local f = { 'HSET', KEYS[1], 'env', ARGV[4], 'head', ARGV[5], 'body', ARGV[6],
	'stream', ARGV[3], 'pending', n, 'state', 'active' }
for i = 1, n do
	local dom = ARGV[6 + 2 * i]
	doms[i] = dom
	f[#f + 1] = 'j:' .. dom
	f[#f + 1] = ARGV[7 + 2 * i]
end
f[#f + 1] = 'doms'
f[#f + 1] = table.concat(doms, ' ')
-- unpack() has a stack limit; messages with thousands of domains are
-- written in slices.
if #f <= 4000 then
	redis.call(unpack(f))
else
	for i = 3, #f, 2000 do
		local last = math.min(i + 1999, #f)
		redis.call('HSET', KEYS[1], unpack(f, i, last))
	end
end
for i = 1, n do
	redis.call('ZADD', KEYS[4 + i], now, id)
	redis.call('ZADD', KEYS[3], 'LT', now, doms[i])
end
redis.call('ZADD', KEYS[2], now, id)
redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
redis.call('HINCRBY', KEYS[4], 'recipients', ARGV[8 + 2 * n])
return 1
