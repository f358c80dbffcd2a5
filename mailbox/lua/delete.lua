-- delete: drop a folder and its messages (RFC 3501 6.3.4); INBOX cannot
-- be deleted.  The folder's raw bytes lose a reference each; its
-- UIDVALIDITY is never given again, so a folder created later under the
-- same name is new to every client.  Folders below it stay.
-- ARGV: prefix, user, name
-- Returns { mailbox id }
local user, name = ARGV[2], ARGV[3]
if name == 'INBOX' then
	return fail('EPERM', 'INBOX cannot be deleted')
end
local mid = folder_id(user, name)
if not mid then
	return fail('ENOENT', 'no such folder')
end
for _, u in ipairs(redis.call('ZRANGE', key('x', mid), 0, -1)) do
	local mk = key('m', mid, u)
	local blob = redis.call('HGET', mk, 'blob')
	redis.call('DEL', mk)
	redis.call('ZREM', key('o', user), member(mid, tonumber(u)))
	if blob then
		blob_unref(blob)
	end
end
redis.call('DEL', key('x', mid), key('v', mid), key('vt', mid), key('b', mid))
redis.call('HDEL', key('u', user), name)
announce(user, 'delete ' .. mid .. ' ' .. name)
return { mid }
