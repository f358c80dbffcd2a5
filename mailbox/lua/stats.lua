-- stats: users, messages and bytes, in all and per user (bytes count each
-- message's size, a copy included; the raw bytes are stored once).
-- ARGV: prefix
-- Returns { users, messages, bytes, { user, folders, messages, bytes }... }
local users = redis.call('SMEMBERS', key('users'))
table.sort(users)
local tm, tb, per = 0, 0, {}
for _, user in ipairs(users) do
	local all = redis.call('HGETALL', key('u', user))
	local m, b = 0, 0
	for i = 2, #all, 2 do
		local c = redis.call('HMGET', key('b', all[i]), 'exists', 'bytes')
		m = m + (tonumber(c[1]) or 0)
		b = b + (tonumber(c[2]) or 0)
	end
	per[#per + 1] = { user, #all / 2, m, b }
	tm, tb = tm + m, tb + b
end
return { #users, tm, tb, per }
