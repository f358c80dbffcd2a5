-- stats: queue sizes, counters, and work per destination.
-- ARGV: prefix, now, retention_ms
-- Returns { active, done, corrupt, leased, { counter, value... },
--           { stream, domain, due, later, inflight }... }
local P, now = ARGV[1], tonumber(ARGV[2])
-- Finished messages expire by TTL; drop their ids from the done set too.
redis.call('ZREMRANGEBYSCORE', P .. 'done', '-inf', now - tonumber(ARGV[3]))
local out = { redis.call('ZCARD', P .. 'active'), redis.call('ZCARD', P .. 'done'),
	redis.call('ZCARD', P .. 'corrupt'), redis.call('ZCARD', P .. 'leases'),
	redis.call('HGETALL', P .. 'stats') }
local infl = {}
local kv = redis.call('HGETALL', P .. 'inflight')
for i = 1, #kv, 2 do infl[kv[i]] = kv[i + 1] end
local seen = {}
for _, st in ipairs({ 't', 'b' }) do
	for _, dom in ipairs(redis.call('ZRANGE', P .. 'd:' .. st, 0, -1)) do
		local qkey = P .. 'q:' .. st .. ':' .. dom
		out[#out + 1] = { st, dom, redis.call('ZCOUNT', qkey, '-inf', now),
			redis.call('ZCOUNT', qkey, '(' .. now, '+inf'), tonumber(infl[dom] or '0') }
		seen[dom] = true
	end
end
-- Destinations with work in flight and nothing queued.
for dom, n in pairs(infl) do
	if not seen[dom] then out[#out + 1] = { '-', dom, 0, 0, tonumber(n) } end
end
return out
