-- vanished: the UIDs expunged from a folder after a MODSEQ, within UID
-- ranges (QRESYNC's VANISHED (EARLIER), RFC 7162 3.2.5.1).
-- ARGV: prefix, user, folder, since (MODSEQ), lo, hi...
-- Returns { vfloor, uid... } ascending; below vfloor the list may be
-- incomplete (expunges older than the retention are forgotten).
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local since = tonumber(ARGV[4])
local vk = key('v', mid)
local uids = {}
for i = 5, #ARGV, 2 do
	local lo, hi = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
	for _, u in ipairs(redis.call('ZRANGEBYSCORE', vk, '(' .. since, '+inf')) do
		local n = tonumber(u)
		if n >= lo and n <= hi then
			uids[n] = true
		end
	end
end
local out = { tonumber(redis.call('HGET', key('b', mid), 'vfloor')) or 0 }
local sorted = {}
for n in pairs(uids) do
	sorted[#sorted + 1] = n
end
table.sort(sorted)
for _, n in ipairs(sorted) do
	out[#out + 1] = n
end
return out
