-- copy: copy (or move) the messages of UID ranges to another folder of
-- the same user, in UID order, with new UIDs there (RFC 4315 COPYUID);
-- the raw bytes are shared (their reference count raised).  A move
-- expunges the originals in the same script (RFC 6851).  Limits are
-- enforced after.
-- ARGV: prefix, user, from, to, move (0/1), now (ms), retention (ms),
-- max messages, lo, hi...
-- Returns { uidvalidity of to, { from uid, to uid }..., modseq of the
-- expunge in from (0 when none), expunged {folder, uid, reason}... }
local user, from, to, move = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local now, retention, max = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local src = folder_id(user, from)
local dst = folder_id(user, to)
if not src then
	return fail('ENOENT', 'no such folder')
end
if not dst then
	return fail('ENOENT', 'no such target folder')
end
local uids = uids_in(src, 9)
local pairs_out, added = {}, {}
if src ~= dst or not move then
	for _, uid in ipairs(uids) do
		local m = redis.call('HMGET', key('m', src, uid), 'flags', 'date', 'size', 'blob')
		-- RFC 3501 6.4.7: the copy keeps its flags (\Recent is not stored).
		local nu = add_message(user, dst, m[1], tonumber(m[2]), tonumber(m[3]), m[4])
		if not nu then
			return fail('ENOSPC', 'UIDs exhausted')
		end
		redis.call('HINCRBY', key('rc'), m[4], 1)
		pairs_out[#pairs_out + 1] = { uid, nu }
		added[#added + 1] = nu
	end
end
if #added > 0 then
	announce(user, 'append ' .. dst .. ' ' .. redis.call('HGET', key('b', dst), 'modseq') ..
		' ' .. uid_set(added) .. ' ' .. to)
end
local xmodseq = 0
if move and src ~= dst then
	xmodseq = expunge(user, src, uids, now) or 0
end
local out = { tonumber(redis.call('HGET', key('b', dst), 'uidvalidity')), pairs_out, xmodseq }
enforce(user, now, retention, max, nil, out)
return out
