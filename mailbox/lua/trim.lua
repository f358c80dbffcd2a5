-- trim: enforce [mailbox] retention and max_messages over every user (or
-- one), and forget expunged UIDs older than the retention.  The mailbox
-- role runs it periodically; append enforces the same limits for the
-- user it appends to.
-- ARGV: prefix, now (ms), retention (ms), max messages, user ("" = all)
-- Returns { user, folder, uid, reason }... for each message expunged.
local now, retention, max, only = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local users
if only ~= '' then
	users = { only }
else
	users = redis.call('SMEMBERS', key('users'))
end
local out = {}
for _, user in ipairs(users) do
	local got = {}
	enforce(user, now, retention, max, nil, got)
	for i = 1, #got, 3 do
		out[#out + 1] = user
		out[#out + 1] = got[i]
		out[#out + 1] = got[i + 1]
		out[#out + 1] = got[i + 2]
	end
	local all = redis.call('HGETALL', key('u', user))
	for i = 2, #all, 2 do
		trim_vanished(tonumber(all[i]), now, retention)
	end
end
return out
