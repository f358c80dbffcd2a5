-- list: the messages of a folder in UID order, without their bytes.
-- ARGV: prefix, user, folder, changed since (MODSEQ, 0 = all), head bytes
-- (0 = none; -1 = the IMAP ENVELOPE and BODYSTRUCTURE stored at append),
-- lo, hi... (UID ranges, inclusive)
-- Returns { uidvalidity, highestmodseq, { uid, modseq, date, size, flags
-- [, the first head bytes of the message | , envelope, bodystructure] }... }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local since, head = tonumber(ARGV[4]), tonumber(ARGV[5])
local b = redis.call('HMGET', key('b', mid), 'uidvalidity', 'modseq')
local out = { tonumber(b[1]), tonumber(b[2]) }
for _, uid in ipairs(uids_in(mid, 6)) do
	local m = redis.call('HMGET', key('m', mid, uid), 'modseq', 'date', 'size', 'flags', 'blob')
	local ms = tonumber(m[1])
	if ms > since then
		local e = { uid, ms, tonumber(m[2]), tonumber(m[3]), m[4] }
		if head > 0 then
			e[6] = redis.call('GETRANGE', key('r', m[5]), 0, head - 1)
		elseif head < 0 then
			local c = redis.call('HMGET', key('e', m[5]), 'env', 'bs')
			e[6] = c[1] or ''
			e[7] = c[2] or ''
		end
		out[#out + 1] = e
	end
end
return out
