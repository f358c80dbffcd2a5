-- folders: a user's folders with their counters, INBOX first.
-- ARGV: prefix, user, now (ms), create INBOX when missing (0/1)
-- Returns { { name, mailbox id, uidvalidity, uidnext, highestmodseq, exists,
-- unseen, bytes }... }, or ENOENT for a user without any.
local user, now = ARGV[2], tonumber(ARGV[3])
if ARGV[4] == '1' then
	inbox(user, now)
end
local all = redis.call('HGETALL', key('u', user))
if #all == 0 then
	return fail('ENOENT', 'no such user')
end
local names = {}
for i = 1, #all, 2 do
	names[#names + 1] = all[i]
end
table.sort(names, function(a, b)
	if a == 'INBOX' then return b ~= 'INBOX' end
	if b == 'INBOX' then return false end
	return a < b
end)
local idx = {}
for i = 1, #all, 2 do
	idx[all[i]] = tonumber(all[i + 1])
end
local out = {}
for _, name in ipairs(names) do
	local mid = idx[name]
	local b = redis.call('HMGET', key('b', mid), 'uidvalidity', 'uidnext', 'modseq', 'exists',
		'unseen', 'bytes')
	out[#out + 1] = { name, mid, tonumber(b[1]), tonumber(b[2]), tonumber(b[3]),
		tonumber(b[4]), tonumber(b[5]), tonumber(b[6]) }
end
return out
