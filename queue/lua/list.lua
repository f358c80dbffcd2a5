-- list: a page of message ids after a cursor, oldest first.
-- ARGV: prefix, set (active|done|corrupt), cursor score ('' = from the
-- start), cursor id, count, now, retention_ms
-- Returns { total, id, score, id, score... }.  Paging by (score, id)
-- rather than by offset: ids that leave the set between pages (delivered,
-- deleted) do not make the next page skip others.
local P, set = ARGV[1], ARGV[2]
local key = P .. set
local s, c, n = ARGV[3], ARGV[4], tonumber(ARGV[5])
if set == 'done' then
	redis.call('ZREMRANGEBYSCORE', key, '-inf', tonumber(ARGV[6]) - tonumber(ARGV[7]))
end
local out = { redis.call('ZCARD', key) }
local min = s == '' and '-inf' or s
local cs = s == '' and 0 or tonumber(s)
local off, got = 0, 0
while got < n do
	local batch = redis.call('ZRANGEBYSCORE', key, min, '+inf', 'WITHSCORES', 'LIMIT', off, 500)
	if #batch == 0 then break end
	for i = 1, #batch, 2 do
		if s == '' or tonumber(batch[i + 1]) > cs or batch[i] > c then
			out[#out + 1] = batch[i]
			out[#out + 1] = batch[i + 1]
			got = got + 1
			if got == n then break end
		end
	end
	off = off + #batch / 2
end
return out
