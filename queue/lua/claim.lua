-- claim: return expired leases to their queues, then lease up to MAX due
-- jobs (one job = one message x one recipient domain).
-- ARGV: prefix, now, lease_ms, max, per-destination cap (0 = none), retention_ms
-- Returns { now, { reaped "ID/DOMAIN"... }, { ID, DOMAIN, STREAM, TOKEN, env, head, body, job state }... }
--
-- Order: transactional ("t") before broadcast ("b").  Within a stream the
-- destinations that have due work are served in rotation: each gets a
-- share of the batch, then moves behind every destination that was due
-- before it, so one flooded destination cannot starve the others.
local P, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local leases, ltok, infl = P .. 'leases', P .. 'lease', P .. 'inflight'

local function inflight_add(dom, n)
	local v = redis.call('HINCRBY', infl, dom, n)
	if v <= 0 then
		redis.call('HDEL', infl, dom)
		return 0
	end
	return v
end

-- Put a destination at its earliest due time, but not before now.
local function reschedule(st, dom)
	local head = redis.call('ZRANGE', P .. 'q:' .. st .. ':' .. dom, 0, 0, 'WITHSCORES')
	if #head == 0 then
		redis.call('ZREM', P .. 'd:' .. st, dom)
	else
		local sc = tonumber(head[2])
		if sc < now then sc = now end
		redis.call('ZADD', P .. 'd:' .. st, sc, dom)
	end
end

-- Finished messages expire by TTL; drop their ids from the done set too.
redis.call('ZREMRANGEBYSCORE', P .. 'done', '-inf', now - tonumber(ARGV[6]))

local reaped = {}
for _, job in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 200)) do
	local slash = string.find(job, '/', 1, true)
	redis.call('ZREM', leases, job)
	redis.call('HDEL', ltok, job)
	if slash then
		local id, dom = string.sub(job, 1, slash - 1), string.sub(job, slash + 1)
		inflight_add(dom, -1)
		local st = redis.call('HGET', P .. 'm:' .. id, 'stream')
		if st then
			redis.call('ZADD', P .. 'q:' .. st .. ':' .. dom, now, id)
			redis.call('ZADD', P .. 'd:' .. st, 'LT', now, dom)
		end
	end
	reaped[#reaped + 1] = job
end

local out = { now, reaped }
local got = 0
for _, st in ipairs({ 't', 'b' }) do
	if got >= max then break end
	local dkey = P .. 'd:' .. st
	local dests = redis.call('ZRANGEBYSCORE', dkey, '-inf', now, 'LIMIT', 0, 64)
	local share = math.max(1, math.ceil((max - got) / math.max(1, #dests)))
	for _, dom in ipairs(dests) do
		if got >= max then break end
		local qkey = P .. 'q:' .. st .. ':' .. dom
		local take = math.min(share, max - got)
		if cap > 0 then
			take = math.min(take, cap - tonumber(redis.call('HGET', infl, dom) or '0'))
		end
		if take > 0 then
			local ids = redis.call('ZRANGEBYSCORE', qkey, '-inf', now, 'LIMIT', 0, take)
			if #ids > 0 then
				-- One ZREM, INCRBY, ZADD and HSET for the batch, not one per job.
				redis.call('ZREM', qkey, unpack(ids))
				local tok = redis.call('INCRBY', P .. 'seq', #ids) - #ids
				local zl, hl = {}, {}
				for _, id in ipairs(ids) do
					local m = redis.call('HMGET', P .. 'm:' .. id, 'env', 'head', 'body', 'j:' .. dom, 'sig')
					tok = tok + 1
					-- A message deleted meanwhile leaves only its queue entry.
					if m[1] then
						local job = id .. '/' .. dom
						zl[#zl + 1] = now + lease
						zl[#zl + 1] = job
						hl[#hl + 1] = job
						hl[#hl + 1] = tok
						out[#out + 1] = { id, dom, st, tok, m[1], m[2] or '', m[3] or '', m[4] or '', m[5] or '' }
					end
				end
				if #zl > 0 then
					redis.call('ZADD', leases, unpack(zl))
					redis.call('HSET', ltok, unpack(hl))
					inflight_add(dom, #hl / 2)
					got = got + #hl / 2
				end
			end
		end
		reschedule(st, dom)
	end
end
return out
