-- trim: enforce [mailbox] retention and max_messages for one user, and
-- forget the user's expunged UIDs older than the retention.  mbox_trim
-- runs it for every user in P mbx:users (one script each, so none holds
-- Redis for long); append enforces the same limits for its user.
-- ARGV: prefix, now (ms), retention (ms), max messages, user
-- Returns { user, folder, uid, reason }... for each message expunged.
local now, retention, max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local users = { ARGV[5] }
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
