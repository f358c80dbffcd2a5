-- flags: set, add or remove flags on the messages of UID ranges, with
-- CONDSTORE's UNCHANGEDSINCE (RFC 7162 3.1.3).  Every message changed
-- gets one new MODSEQ.
-- ARGV: prefix, user, folder, op (set/add/remove), flags, unchanged since
-- (0 = no condition), lo, hi...
-- Returns { highestmodseq, { uid, modseq, flags }... (every message in the
-- ranges that passed the condition), { uid... } (those that failed it) }
local user, folder, op, given = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local since = tonumber(ARGV[6])
local mid = folder_id(user, folder)
if not mid then
	return fail('ENOENT', 'no such folder')
end

local function apply(old)
	local out = {}
	if op == 'set' then
		for w in string.gmatch(given, '%S+') do
			if not has_flag(table.concat(out, ' '), w) then
				out[#out + 1] = w
			end
		end
		return table.concat(out, ' ')
	end
	for w in string.gmatch(old, '%S+') do
		if op ~= 'remove' or not has_flag(given, w) then
			out[#out + 1] = w
		end
	end
	if op == 'add' then
		for w in string.gmatch(given, '%S+') do
			if not has_flag(table.concat(out, ' '), w) then
				out[#out + 1] = w
			end
		end
	end
	return table.concat(out, ' ')
end

-- First every message's new flags, so that a list grown past the limit
-- changes nothing at all.
local b = key('b', mid)
local plan = {}
for _, uid in ipairs(uids_in(mid, 7)) do
	local m = redis.call('HMGET', key('m', mid, uid), 'flags', 'modseq')
	local old, ms = m[1] or '', tonumber(m[2])
	local new = apply(old)
	if #new > FLAGS_MAX then
		return fail('EINVAL', 'too many flags')
	end
	plan[#plan + 1] = { uid, old, ms, new }
end

local modseq
local done, failed, changed = {}, {}, {}
for _, p in ipairs(plan) do
	local uid, old, ms, new = p[1], p[2], p[3], p[4]
	local mk = key('m', mid, uid)
	if since > 0 and ms > since then
		failed[#failed + 1] = uid
	else
		if new ~= old then
			modseq = modseq or next_modseq(mid)
			ms = modseq
			redis.call('HSET', mk, 'flags', new, 'modseq', ms)
			if seen(old) and not seen(new) then
				redis.call('HINCRBY', b, 'unseen', 1)
			elseif not seen(old) and seen(new) then
				redis.call('HINCRBY', b, 'unseen', -1)
			end
			changed[#changed + 1] = uid
		end
		done[#done + 1] = { uid, ms, new }
	end
end
if #changed > 0 then
	announce(user, 'flags ' .. mid .. ' ' .. modseq .. ' ' .. uid_set(changed) .. ' ' .. folder)
end
return { tonumber(redis.call('HGET', b, 'modseq')), done, failed }
