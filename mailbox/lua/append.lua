-- append: store one message in a user's folder (INBOX is created when
-- missing), assign its UID, raise MODSEQ, announce it, then enforce the
-- user's limits.
-- ARGV: prefix, user, folder, data, flags, internal date (ms), now (ms),
-- dedup key ("" for none), retention (ms, 0 = none), max messages (0 = none),
-- the message's IMAP ENVELOPE and BODYSTRUCTURE ("" when not computed)
-- Returns { uidvalidity, uid, duplicate (0/1), expunged {folder, uid, reason}... }
local user, folder, data, flags = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local date, now = tonumber(ARGV[6]), tonumber(ARGV[7])
local dedup, retention, max = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])

local dk
if dedup ~= '' then
	dk = key('dd', user, redis.sha1hex(dedup))
	local prev = redis.call('GET', dk)
	if prev then
		local uv, uid = string.match(prev, '^(%d+) (%d+)$')
		return { tonumber(uv), tonumber(uid), 1 }
	end
end

local mid
if folder == 'INBOX' then
	mid = inbox(user, now)
else
	mid = folder_id(user, folder)
	if not mid then
		return fail('ENOENT', 'no such folder')
	end
end

local blob = redis.call('INCR', key('blob'))
local uid, modseq = add_message(user, mid, flags, date, #data, blob)
if not uid then
	return fail('ENOSPC', 'UIDs exhausted')
end
redis.call('SET', key('r', blob), data)
redis.call('HSET', key('rc'), blob, 1)
if ARGV[11] ~= '' then
	redis.call('HSET', key('e', blob), 'env', ARGV[11], 'bs', ARGV[12])
end
local uv = tonumber(redis.call('HGET', key('b', mid), 'uidvalidity'))
if dk then
	if retention > 0 then
		redis.call('SET', dk, uv .. ' ' .. uid, 'PX', retention)
	else
		redis.call('SET', dk, uv .. ' ' .. uid)
	end
end
announce(user, 'append ' .. mid .. ' ' .. modseq .. ' ' .. uid .. ' ' .. folder)

local out = { uv, uid, 0 }
enforce(user, now, retention, max, member(mid, uid), out)
return out
