-- bounce_list.lua - the bounce logs of some users (policy_bounce_list).
-- KEYS[1]: "P bl:users"
-- ARGV: prefix, since ms, max per user, user ("" = every user of KEYS[1])
-- Returns { user, { entry, ms, entry, ms, ... } } per user, newest first.
local users
if ARGV[4] ~= '' then
	users = { ARGV[4] }
else
	users = redis.call('SMEMBERS', KEYS[1])
	table.sort(users)
end
local out = {}
for _, u in ipairs(users) do
	local k = ARGV[1] .. 'bl:' .. u
	local e = redis.call('ZREVRANGEBYSCORE', k, '+inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
	if #e > 0 then
		out[#out + 1] = { u, e }
	elseif redis.call('EXISTS', k) == 0 and ARGV[4] == '' then
		redis.call('SREM', KEYS[1], u)
	end
end
return out
