-- status: one folder's counters.
-- ARGV: prefix, user, folder
-- Returns { mailbox id, uidvalidity, uidnext, highestmodseq, exists, unseen, bytes, vfloor }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local b = redis.call('HMGET', key('b', mid), 'uidvalidity', 'uidnext', 'modseq', 'exists',
	'unseen', 'bytes', 'vfloor')
return { mid, tonumber(b[1]), tonumber(b[2]), tonumber(b[3]), tonumber(b[4]),
	tonumber(b[5]), tonumber(b[6]), tonumber(b[7]) }
