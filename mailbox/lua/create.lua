-- create: a new folder (RFC 3501 CREATE); the user's INBOX is made too
-- when missing.
-- ARGV: prefix, user, name, now (ms)
-- Returns { mailbox id, uidvalidity }, or EEXIST.
local user, name, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local had = folder_id(user, name)
inbox(user, now)
if had then
	return fail('EEXIST', 'folder exists')
end
local mid = folder_id(user, name) or create_folder(user, name, now)
if name ~= 'INBOX' then
	announce(user, 'create ' .. mid .. ' ' .. name)
end
return { mid, tonumber(redis.call('HGET', key('b', mid), 'uidvalidity')) }
