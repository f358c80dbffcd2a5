-- rate.lua - a user's sending rates (see policy/policy.c for the layout).
--
-- KEYS[1], KEYS[2]: the global and the sender domain's suppression hash
-- (read by 'peek' only).
-- ARGV[1]: 'peek' (policy_rcpt: suppression, then the limits, nothing
--          counted), 'commit' (check every limit, count when all pass),
--          'count' (count without checking: policy_count, for a message
--          already queued) or 'uncommit' (take a commit back)
-- ARGV[2]: key base "P rl:u:NAME:"
-- ARGV[3], ARGV[4]: messages and recipients the check adds
-- ARGV[5]: the recipient to look up ('peek'; '' for none)
-- ARGV[6], ARGV[7]: how many message limits, then recipient limits, follow
-- ARGV[8..]: limit, window_ms pairs
--
-- Returns {'ok'}, {'sup', entry}, or {kind, i, retry_ms} for the first
-- limit (1-based over all of them) that would be exceeded; retry_ms is
-- -1 when the increment alone exceeds the limit.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

if op == 'peek' and ARGV[5] ~= '' then
	local e = redis.call('HGET', KEYS[1], ARGV[5])
	if not e and KEYS[2] ~= KEYS[1] then
		e = redis.call('HGET', KEYS[2], ARGV[5])
	end
	if e then
		return {'sup', e}
	end
end

local base = ARGV[2]
local nm = tonumber(ARGV[6])
local n = nm + tonumber(ARGV[7])
local inc = {m = tonumber(ARGV[3]), r = tonumber(ARGV[4])}

if op == 'uncommit' then
	local done = {}
	for i = 1, n do
		local kind = i <= nm and 'm' or 'r'
		local w = tonumber(ARGV[7 + 2 * i])
		local k = base .. kind .. ':' .. string.format('%d', w) .. ':'
		if not done[k] and inc[kind] > 0 then
			done[k] = true
			local slot = math.floor(now / w)
			local left = inc[kind]
			for _, s in ipairs({slot, slot - 1}) do
				local sk = k .. string.format('%d', s)
				local c = tonumber(redis.call('GET', sk) or '0')
				local d = math.min(c, left)
				if d > 0 then
					redis.call('DECRBY', sk, d)
					left = left - d
				end
			end
		end
	end
	return {'ok'}
end

for i = 1, (op == 'count' and 0 or n) do
	local kind = i <= nm and 'm' or 'r'
	local limit = tonumber(ARGV[6 + 2 * i])
	local w = tonumber(ARGV[7 + 2 * i])
	local add = inc[kind]
	if add > 0 then
		local k = base .. kind .. ':' .. string.format('%d', w) .. ':'
		local slot = math.floor(now / w)
		local cur = tonumber(redis.call('GET', k .. string.format('%d', slot)) or '0')
		local prev = tonumber(redis.call('GET', k .. string.format('%d', slot - 1)) or '0')
		local f = (now - slot * w) / w
		if cur + prev * (1 - f) + add > limit then
			local room = limit - add
			local wait = -1
			if room >= 0 then
				if cur <= room then
					-- prev decays through this slot
					wait = ((1 - (room - cur) / prev) - f) * w
				else
					-- cur becomes prev at the next slot and decays there
					wait = (slot + 1) * w - now + (1 - room / cur) * w
				end
				wait = math.max(1, math.ceil(wait))
			end
			return {kind, i, wait}
		end
	end
end

if op == 'commit' or op == 'count' then
	local done = {}
	for i = 1, n do
		local kind = i <= nm and 'm' or 'r'
		local w = tonumber(ARGV[7 + 2 * i])
		local k = base .. kind .. ':' .. string.format('%d', w) .. ':'
		if not done[k] and inc[kind] > 0 then
			done[k] = true
			local sk = k .. string.format('%d', math.floor(now / w))
			-- A new slot gets its expiry; later increments keep it.
			if redis.call('INCRBY', sk, inc[kind]) == inc[kind] then
				redis.call('PEXPIRE', sk, 2 * w + 60000)
			end
		end
	end
end
return {'ok'}
