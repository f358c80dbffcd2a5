-- return.lua - act once on one classified return (policy_return).
-- KEYS[1]: "P rk:KEY" (the return was seen), KEYS[2]: "P bl:USER" (the
-- user's bounce log), KEYS[3]: "P bl:users", KEYS[4]: "P sup:SCOPE",
-- KEYS[5]: "P sup:scopes", KEYS[6]: "P sb:SCOPE ADDR" (soft bounces)
-- ARGV: user, scope ("" = none), address, class, reason, status, queue
-- id, text, action (hard | complaint | soft | ""), retention ms, log
-- entries max, soft limit (0 = off), soft window ms, key
-- Returns { seen (1: nothing done), soft count, suppression reason or "" }.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local scope, addr, action = ARGV[2], ARGV[3], ARGV[9]
local retention, logmax = tonumber(ARGV[10]), tonumber(ARGV[11])
local limit, window = tonumber(ARGV[12]), tonumber(ARGV[13])
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', retention) then
	return { 1, 0, '' }
end
-- The log: one member per return, class reason status qid addr scope.
local entry = table.concat({ ARGV[4], ARGV[5], ARGV[6], ARGV[7], addr, scope, ARGV[14] }, '\t')
redis.call('ZADD', KEYS[2], now, entry)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - retention)
if redis.call('ZCARD', KEYS[2]) > logmax then
	redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(logmax + 1))
end
redis.call('PEXPIRE', KEYS[2], retention)
redis.call('SADD', KEYS[3], ARGV[1])

local sup, count = '', 0
if scope ~= '' then
	if action == 'soft' then
		redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window)
		redis.call('ZADD', KEYS[6], now, ARGV[14])
		redis.call('PEXPIRE', KEYS[6], window)
		count = redis.call('ZCARD', KEYS[6])
		if limit > 0 and count >= limit and redis.call('HEXISTS', KEYS[4], addr) == 0 then
			sup = 'soft-bounce-limit'
		end
	elseif action == 'hard' then
		sup = 'hard-bounce'
	elseif action == 'complaint' then
		sup = 'complaint'
	end
end
if sup ~= '' then
	redis.call('HSET', KEYS[4], addr, string.format('%s %d %s', sup, now, ARGV[8]))
	redis.call('SADD', KEYS[5], scope)
end
return { 0, count, sup }
