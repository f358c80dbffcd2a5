-- lib: what every mailbox script starts with (the build prepends this file
-- to each of them, so each still runs as one atomic script).
-- ARGV[1] is always the key prefix P; key names are in mailbox/README.md.
local P = ARGV[1]
-- Longest flag list of a message, in bytes (MBOX_FLAGS_MAX in store.h).
local FLAGS_MAX = 1024

local function key(...)
	return P .. 'mbx:' .. table.concat({ ... }, ':')
end

local function fail(code, text)
	return redis.error_reply(code .. ' ' .. text)
end

-- The member of a message in the user's age index: fixed width, so that
-- messages with the same internal date sort by mailbox and UID.
local function member(mid, uid)
	return string.format('%010d:%010d', mid, uid)
end

local function split_member(m)
	local a, b = string.match(m, '^(%d+):(%d+)$')
	return tonumber(a), tonumber(b)
end

local function has_flag(flags, f)
	local lf = string.lower(f)
	for w in string.gmatch(flags, '%S+') do
		if string.lower(w) == lf then
			return true
		end
	end
	return false
end

local function seen(flags)
	return has_flag(flags, '\\Seen')
end

-- UIDVALIDITY: one counter for every mailbox, never below the time in
-- seconds, so a mailbox deleted and created again (or a store rebuilt
-- after losing Redis) never gets a value a client saw before.
local function new_uidvalidity(now_ms)
	local v = redis.call('INCR', key('uv'))
	local t = math.floor(now_ms / 1000)
	if v < t then
		redis.call('SET', key('uv'), t)
		v = t
	end
	return v
end

local function folder_id(user, name)
	local mid = redis.call('HGET', key('u', user), name)
	if mid then
		return tonumber(mid)
	end
	return nil
end

local function create_folder(user, name, now_ms)
	local mid = redis.call('INCR', key('mid'))
	redis.call('HSET', key('b', mid), 'user', user, 'name', name,
		'uidvalidity', new_uidvalidity(now_ms), 'uidnext', 1, 'modseq', 1,
		'exists', 0, 'unseen', 0, 'bytes', 0, 'vfloor', 0)
	redis.call('HSET', key('u', user), name, mid)
	redis.call('SADD', key('users'), user)
	return mid
end

local function inbox(user, now_ms)
	return folder_id(user, 'INBOX') or create_folder(user, 'INBOX', now_ms)
end

local function announce(user, text)
	redis.call('PUBLISH', P .. 'mbx:' .. user, text)
end

-- A UID set as IMAP writes it: "3,5:9".
local function uid_set(uids)
	local out, i = {}, 1
	while i <= #uids do
		local j = i
		while j < #uids and uids[j + 1] == uids[j] + 1 do
			j = j + 1
		end
		if j == i then
			out[#out + 1] = tostring(uids[i])
		else
			out[#out + 1] = uids[i] .. ':' .. uids[j]
		end
		i = j + 1
	end
	return table.concat(out, ',')
end

local function next_modseq(mid)
	return redis.call('HINCRBY', key('b', mid), 'modseq', 1)
end

-- Add a message to mailbox mid; the blob's reference is the caller's.
local function add_message(user, mid, flags, date, size, blob)
	local b = key('b', mid)
	local uid = tonumber(redis.call('HGET', b, 'uidnext'))
	-- The last UID leaves UIDNEXT a 32-bit number (RFC 3501 2.3.1.1).
	if uid >= 4294967295 then
		return nil
	end
	local modseq = next_modseq(mid)
	redis.call('HSET', b, 'uidnext', uid + 1)
	redis.call('HSET', key('m', mid, uid), 'flags', flags, 'date', date,
		'size', size, 'modseq', modseq, 'blob', blob)
	redis.call('ZADD', key('x', mid), uid, uid)
	redis.call('ZADD', key('o', user), date, member(mid, uid))
	redis.call('HINCRBY', b, 'exists', 1)
	redis.call('HINCRBY', b, 'bytes', size)
	if not seen(flags) then
		redis.call('HINCRBY', b, 'unseen', 1)
	end
	return uid, modseq
end

local function blob_unref(blob)
	if redis.call('HINCRBY', key('rc'), blob, -1) <= 0 then
		redis.call('HDEL', key('rc'), blob)
		redis.call('DEL', key('r', blob), key('e', blob))
	end
end

-- Expunge uids (ascending) of mid, all under one new MODSEQ; remembered
-- in the vanished sets for QRESYNC.  Returns the modseq.
local function expunge(user, mid, uids, now_ms)
	if #uids == 0 then
		return nil
	end
	local b = key('b', mid)
	local modseq = next_modseq(mid)
	for _, uid in ipairs(uids) do
		local mk = key('m', mid, uid)
		local m = redis.call('HMGET', mk, 'flags', 'size', 'blob')
		redis.call('DEL', mk)
		redis.call('ZREM', key('x', mid), uid)
		redis.call('ZREM', key('o', user), member(mid, uid))
		redis.call('ZADD', key('v', mid), modseq, uid)
		redis.call('ZADD', key('vt', mid), now_ms, uid)
		redis.call('HINCRBY', b, 'exists', -1)
		redis.call('HINCRBY', b, 'bytes', -(tonumber(m[2]) or 0))
		if not seen(m[1] or '') then
			redis.call('HINCRBY', b, 'unseen', -1)
		end
		if m[3] then
			blob_unref(m[3])
		end
	end
	announce(user, 'expunge ' .. mid .. ' ' .. modseq .. ' ' .. uid_set(uids) .. ' ' ..
		redis.call('HGET', b, 'name'))
	return modseq
end

-- Forget expunged UIDs older than the retention; vfloor remembers the
-- highest MODSEQ forgotten, below which a resync cannot be told apart.
local function trim_vanished(mid, now_ms, retention)
	if retention <= 0 then
		return
	end
	local old = redis.call('ZRANGEBYSCORE', key('vt', mid), '-inf', '(' .. (now_ms - retention))
	if #old == 0 then
		return
	end
	local floor = tonumber(redis.call('HGET', key('b', mid), 'vfloor')) or 0
	for _, uid in ipairs(old) do
		local ms = tonumber(redis.call('ZSCORE', key('v', mid), uid)) or 0
		if ms > floor then
			floor = ms
		end
		redis.call('ZREM', key('v', mid), uid)
		redis.call('ZREM', key('vt', mid), uid)
	end
	redis.call('HSET', key('b', mid), 'vfloor', floor)
end

-- Expunge what the user's limits leave no room for: messages whose
-- internal date is older than retention (keep excepted: the one being
-- appended), then the oldest past max.  Appends {folder, uid, reason}
-- triples to out.
local function enforce(user, now_ms, retention, max, keep, out)
	local ok = key('o', user)
	local doomed, order = {}, {}
	local function doom(m, reason)
		if m == keep or doomed[m] then
			return false
		end
		doomed[m] = reason
		order[#order + 1] = m
		return true
	end
	if retention > 0 then
		for _, m in ipairs(redis.call('ZRANGEBYSCORE', ok, '-inf', '(' .. (now_ms - retention))) do
			doom(m, 'retention')
		end
	end
	if max > 0 then
		local over = redis.call('ZCARD', ok) - #order - max
		local i = 0
		while over > 0 do
			local r = redis.call('ZRANGE', ok, i, i + over + 1)
			if #r == 0 then
				break
			end
			for _, m in ipairs(r) do
				if over > 0 and doom(m, 'max_messages') then
					over = over - 1
				end
			end
			i = i + #r
		end
	end
	local by_mid, mids = {}, {}
	for _, m in ipairs(order) do
		local mid, uid = split_member(m)
		if not by_mid[mid] then
			by_mid[mid] = {}
			mids[#mids + 1] = mid
		end
		table.insert(by_mid[mid], uid)
	end
	for _, mid in ipairs(mids) do
		local uids = by_mid[mid]
		table.sort(uids)
		local name = redis.call('HGET', key('b', mid), 'name') or ''
		for _, uid in ipairs(uids) do
			out[#out + 1] = name
			out[#out + 1] = uid
			out[#out + 1] = doomed[member(mid, uid)]
		end
		expunge(user, mid, uids, now_ms)
		trim_vanished(mid, now_ms, retention)
	end
end

-- The UIDs of mid within the ranges ARGV[first..] (lo, hi pairs), ascending.
local function uids_in(mid, first)
	local uids, seen_uid = {}, {}
	for i = first, #ARGV, 2 do
		for _, u in ipairs(redis.call('ZRANGEBYSCORE', key('x', mid), ARGV[i], ARGV[i + 1])) do
			local n = tonumber(u)
			if not seen_uid[n] then
				seen_uid[n] = true
				uids[#uids + 1] = n
			end
		end
	end
	table.sort(uids)
	return uids
end

