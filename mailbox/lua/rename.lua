-- rename: RFC 3501 6.3.5.  A folder keeps its mailbox id, UIDs and
-- UIDVALIDITY under the new name, and so do the folders below it
-- ("old/x" becomes "new/x").  Renaming INBOX moves its messages into a
-- new folder of that name and leaves INBOX empty (its folders below are
-- not renamed, as the RFC says).  Subscriptions follow a rename: the
-- folder's and every subscribed name below it ("old/x", whether or not
-- that folder exists) take the new name; renaming INBOX leaves them all.
-- ARGV: prefix, user, old name, new name, now (ms)
-- Returns { mailbox id of the new name }
local user, old, new, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local mid = folder_id(user, old)
if not mid then
	return fail('ENOENT', 'no such folder')
end
if new == 'INBOX' or folder_id(user, new) then
	return fail('EEXIST', 'target exists')
end
if old == new then
	return fail('EEXIST', 'target exists')
end
local uk = key('u', user)
if old == 'INBOX' then
	local dst = create_folder(user, new, now)
	announce(user, 'create ' .. dst .. ' ' .. new)
	local uids = {}
	for _, u in ipairs(redis.call('ZRANGE', key('x', mid), 0, -1)) do
		uids[#uids + 1] = tonumber(u)
	end
	local added = {}
	for _, uid in ipairs(uids) do
		local m = redis.call('HMGET', key('m', mid, uid), 'flags', 'date', 'size', 'blob')
		local nu = add_message(user, dst, m[1], tonumber(m[2]), tonumber(m[3]), m[4])
		redis.call('HINCRBY', key('rc'), m[4], 1)
		added[#added + 1] = nu
	end
	if #added > 0 then
		announce(user, 'append ' .. dst .. ' ' .. redis.call('HGET', key('b', dst), 'modseq') ..
			' ' .. uid_set(added) .. ' ' .. new)
	end
	expunge(user, mid, uids, now)
	return { dst }
end
-- Children first checked, then moved, so a clash changes nothing.
local moves = { { old, new, mid } }
local all = redis.call('HGETALL', uk)
local pfx = old .. '/'
for i = 1, #all, 2 do
	local n = all[i]
	if string.sub(n, 1, #pfx) == pfx then
		local nn = new .. '/' .. string.sub(n, #pfx + 1)
		if folder_id(user, nn) then
			return fail('EEXIST', 'target exists')
		end
		moves[#moves + 1] = { n, nn, tonumber(all[i + 1]) }
	end
end
for _, mv in ipairs(moves) do
	redis.call('HDEL', uk, mv[1])
	redis.call('HSET', uk, mv[2], mv[3])
	redis.call('HSET', key('b', mv[3]), 'name', mv[2])
	announce(user, 'rename ' .. mv[3] .. ' ' .. mv[2])
end
-- All old names out before any new one in: "a" renamed to "a/old" must
-- not drop a subscription "a/old" it has just moved "a" to.
local sk = key('s', user)
local subs = {}
for _, s in ipairs(redis.call('SMEMBERS', sk)) do
	if s == old or string.sub(s, 1, #pfx) == pfx then
		subs[#subs + 1] = s
		redis.call('SREM', sk, s)
	end
end
for _, s in ipairs(subs) do
	redis.call('SADD', sk, new .. string.sub(s, #old + 1))
end
return { mid }
