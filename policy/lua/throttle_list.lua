-- throttle_list.lua - every throttle entry, after forgetting those whose
-- suspension ended more than backoff_max_ms ago.
-- KEYS[1]: "P throttle"; ARGV[1]: backoff_max_ms
-- Returns a flat list group, entry, ...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
	local u = tonumber(string.match(all[i + 1], '^(%d+)') or '0')
	if now - u > max then
		redis.call('HDEL', KEYS[1], all[i])
	else
		out[#out + 1] = all[i]
		out[#out + 1] = all[i + 1]
	end
end
return out
