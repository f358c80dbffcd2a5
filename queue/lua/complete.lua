-- complete: record the outcome of one claimed job.
-- ARGV: prefix, now, id, domain, token, job state, due (0 = every
-- recipient of the domain is final), retention_ms, events_max, keep
-- body (1: the sender asked for RET=FULL, so the body stays when the
-- message is done, until the reporter has made its reports),
-- nstats, nstats pairs (counter, increment), then events, each 7 fields:
-- rcpt, state, attempts, reply, orcpt, notify, mta (the remote host that
-- gave the reply, "name[address]", or "")
-- Returns 1, or 2 when this was the message's last job; ESTALE when the
-- lease was lost (expired and re-claimed, or the message was deleted).
local P, now = ARGV[1], tonumber(ARGV[2])
local id, dom, token = ARGV[3], ARGV[4], ARGV[5]
local due, retention, evmax = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local job = id .. '/' .. dom
if redis.call('HGET', P .. 'lease', job) ~= token then
	return redis.error_reply('ESTALE lease lost')
end
redis.call('HDEL', P .. 'lease', job)
redis.call('ZREM', P .. 'leases', job)
-- A destination held back by its cap needs no wake-up here: claim left it
-- in the rotation at "now", so the next claim sees the free slot.
if redis.call('HINCRBY', P .. 'inflight', dom, -1) <= 0 then
	redis.call('HDEL', P .. 'inflight', dom)
end

local mkey = P .. 'm:' .. id
local st = redis.call('HGET', mkey, 'stream')
if not st then
	return redis.error_reply('ESTALE message deleted')
end
redis.call('HSET', mkey, 'j:' .. dom, ARGV[6])
local result = 1
if due > 0 then
	redis.call('ZADD', P .. 'q:' .. st .. ':' .. dom, due, id)
	redis.call('ZADD', P .. 'd:' .. st, 'LT', due, dom)
elseif redis.call('HINCRBY', mkey, 'pending', -1) <= 0 then
	redis.call('HSET', mkey, 'state', 'done', 'done', now)
	if ARGV[10] == '1' then
		redis.call('HDEL', mkey, 'sig')
	else
		redis.call('HDEL', mkey, 'body', 'sig')
	end
	redis.call('ZREM', P .. 'active', id)
	redis.call('ZADD', P .. 'done', now, id)
	redis.call('PEXPIRE', mkey, retention)
	result = 2
end
-- (The done set is trimmed to retention by claims and stats.)

local nstats = tonumber(ARGV[11])
local i = 12
for _ = 1, nstats do
	redis.call('HINCRBY', P .. 'stats', ARGV[i], ARGV[i + 1])
	i = i + 2
end
while i + 6 <= #ARGV do
	redis.call('XADD', P .. 'events', 'MAXLEN', '~', evmax, '*',
		'id', id, 'domain', dom, 'rcpt', ARGV[i], 'state', ARGV[i + 1],
		'attempts', ARGV[i + 2], 'reply', ARGV[i + 3], 'orcpt', ARGV[i + 4],
		'notify', ARGV[i + 5], 'mta', ARGV[i + 6], 'stream', st)
	i = i + 7
end
return result
