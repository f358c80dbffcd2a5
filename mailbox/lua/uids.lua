-- uids: a folder's UIDs alone, for a session that selects it (IMAP keeps
-- only these per message), and its first message without \\Seen.
-- ARGV: prefix, user, folder, sizes ('1': each UID followed by its size)
-- Returns { uidvalidity, highestmodseq, first unseen UID (0: none), uid
-- [, size]... }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local b = redis.call('HMGET', key('b', mid), 'uidvalidity', 'modseq', 'exists', 'unseen')
local uids = redis.call('ZRANGE', key('x', mid), 0, -1)
local out = { tonumber(b[1]), tonumber(b[2]), 0 }
-- The folder counts its unseen messages: look for the first only if there is one.
if tonumber(b[4] or 0) > 0 then
	for _, u in ipairs(uids) do
		if not seen(redis.call('HGET', key('m', mid, u), 'flags') or '') then
			out[3] = tonumber(u)
			break
		end
	end
end
local sizes = ARGV[4] == '1'
for _, u in ipairs(uids) do
	out[#out + 1] = tonumber(u)
	if sizes then
		out[#out + 1] = tonumber(redis.call('HGET', key('m', mid, u), 'size'))
	end
end
return out
