-- retry: make queued jobs due now (score 0).  ARGV: prefix, now, id ('' = every message)
-- Returns the number of jobs made due; -1 when the id is not queued.
local P, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local count = 0
if id ~= '' then
	local m = redis.call('HMGET', P .. 'm:' .. id, 'stream', 'doms', 'state')
	if not m[1] or m[3] ~= 'active' then return -1 end
	for dom in string.gmatch(m[2] or '', '%S+') do
		local qkey = P .. 'q:' .. m[1] .. ':' .. dom
		if redis.call('ZSCORE', qkey, id) then
			-- Score 0, as for every message below: due now, first in line.
			redis.call('ZADD', qkey, 'XX', 0, id)
			redis.call('ZADD', P .. 'd:' .. m[1], 'LT', 0, dom)
			count = count + 1
		end
	end
	return count
end
for _, st in ipairs({ 't', 'b' }) do
	local dkey = P .. 'd:' .. st
	for _, dom in ipairs(redis.call('ZRANGE', dkey, 0, -1)) do
		local qkey = P .. 'q:' .. st .. ':' .. dom
		local n = redis.call('ZCARD', qkey)
		if n > 0 then
			-- Every score to 0: due now, in arrival order (ids sort by time).
			redis.call('ZUNIONSTORE', qkey, 1, qkey, 'WEIGHTS', 0)
			redis.call('ZADD', dkey, 0, dom)
			count = count + n
		end
	end
end
return count
