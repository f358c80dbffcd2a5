-- expunge: remove the messages flagged \Deleted (RFC 3501 EXPUNGE), or
-- only those of them within UID ranges (RFC 4315 UID EXPUNGE); with
-- force, every message in the ranges whatever its flags.
-- ARGV: prefix, user, folder, force (0/1), now (ms), retention (ms), lo, hi...
-- Returns { modseq (0 when nothing went), uid... }
local user, folder, force = ARGV[2], ARGV[3], ARGV[4] == '1'
local now, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local mid = folder_id(user, folder)
if not mid then
	return fail('ENOENT', 'no such folder')
end
local doomed = {}
for _, uid in ipairs(uids_in(mid, 7)) do
	if force or has_flag(redis.call('HGET', key('m', mid, uid), 'flags') or '', '\\Deleted') then
		doomed[#doomed + 1] = uid
	end
end
local modseq = expunge(user, mid, doomed, now) or 0
trim_vanished(mid, now, retention)
local out = { modseq }
for _, uid in ipairs(doomed) do
	out[#out + 1] = uid
end
return out
