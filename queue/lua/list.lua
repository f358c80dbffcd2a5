-- list: a page of message ids.  ARGV: prefix, set (active|done|corrupt), offset, count
-- Returns { total, id... } in arrival (or completion) order.
local key = ARGV[1] .. ARGV[2]
local off, n = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = { redis.call('ZCARD', key) }
for _, id in ipairs(redis.call('ZRANGE', key, off, off + n - 1)) do
	out[#out + 1] = id
end
return out
