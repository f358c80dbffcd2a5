-- list: the messages of a folder in UID order, without their bytes.
-- ARGV: prefix, user, folder, changed since (MODSEQ, 0 = all), lo, hi...
-- (UID ranges, inclusive)
-- Returns { uidvalidity, highestmodseq, { uid, modseq, date, size, flags }... }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local since = tonumber(ARGV[4])
local b = redis.call('HMGET', key('b', mid), 'uidvalidity', 'modseq')
local out = { tonumber(b[1]), tonumber(b[2]) }
for _, uid in ipairs(uids_in(mid, 5)) do
	local m = redis.call('HMGET', key('m', mid, uid), 'modseq', 'date', 'size', 'flags')
	local ms = tonumber(m[1])
	if ms > since then
		out[#out + 1] = { uid, ms, tonumber(m[2]), tonumber(m[3]), m[4] }
	end
end
return out
