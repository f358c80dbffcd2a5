-- throttle_hit.lua - a destination group throttled us: suspend it.
-- KEYS[1]: "P throttle"
-- ARGV: group, reply, backoff_min_ms, backoff_max_ms
-- Entry "until_ms level reply".  Returns {until_ms, level}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local min = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local level = 1
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
	local u, l = string.match(v, '^(%d+) (%d+)')
	if u and now - tonumber(u) <= max then
		level = tonumber(l) + 1
	end
end
local d = min
for _ = 2, level do
	if d >= max then
		break
	end
	d = d * 2
end
if d > max then
	d = max
end
local untl = now + d
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d %d %s', untl, level, ARGV[2]))
return {untl, level}
