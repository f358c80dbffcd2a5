-- fetch: one message, its metadata and its raw bytes.
-- ARGV: prefix, user, folder, uid
-- Returns { uidvalidity, uid, modseq, date, size, flags, data }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local m = redis.call('HMGET', key('m', mid, ARGV[4]), 'modseq', 'date', 'size', 'flags', 'blob')
if not m[1] then
	return fail('ENOENT', 'no such message')
end
local data = redis.call('GET', key('r', m[5])) or ''
return { tonumber(redis.call('HGET', key('b', mid), 'uidvalidity')), tonumber(ARGV[4]),
	tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), m[4], data }
