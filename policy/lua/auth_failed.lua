-- auth_failed.lua - count one AUTH failure of an address; lock it out at
-- the limit (see policy/policy.c).
--
-- KEYS[1]: the lock key "P lock:IP"
-- ARGV[1]: the failure counter base "P af:IP:"
-- ARGV[2]: limit, ARGV[3]: window_ms, ARGV[4]: lock-out ms
--
-- Returns {state, ms, failures}: state 0 = counted, not locked;
-- 1 = already locked (ms left); 2 = this failure locked it (ms = lock-out).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
	return {1, ttl, 0}
end
local w = tonumber(ARGV[3])
local slot = math.floor(now / w)
local k = ARGV[1] .. string.format('%d', slot)
local pk = ARGV[1] .. string.format('%d', slot - 1)
local cur = redis.call('INCR', k)
redis.call('PEXPIRE', k, 2 * w + 60000)
local prev = tonumber(redis.call('GET', pk) or '0')
local est = cur + prev * (1 - (now - slot * w) / w)
if est >= tonumber(ARGV[2]) then
	local lock = tonumber(ARGV[4])
	local n = math.floor(est + 0.5)
	redis.call('SET', KEYS[1], string.format('%d %d', now + lock, n), 'PX', lock)
	redis.call('DEL', k, pk)
	return {2, lock, n}
end
return {0, 0, math.floor(est)}
