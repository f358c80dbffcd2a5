-- bounce: a return (an asynchronous bounce received after the delivery)
-- says one recipient bounced: its job state record is replaced by one
-- with that recipient bounced, read and changed by the caller, but only
-- if the record is still the one that was read (compare and set: the C
-- side holds the one record decoder).
-- ARGV: prefix, now, id, domain, the job state as read, the new job
-- state, finishes (1 when the recipient was the job's last pending
-- one, so the job is now final), retention_ms, events_max, then the
-- event: rcpt, attempts, reply, orcpt, notify, mta.
-- Returns 1 (marked), 2 (marked, and it was the message's last job),
-- 0 (the record changed since it was read: read again), -1 (the job is
-- leased by a worker now: its completion would overwrite the change),
-- -2 (the message is gone).
local P, now = ARGV[1], tonumber(ARGV[2])
local id, dom = ARGV[3], ARGV[4]
local finishes, retention, evmax = ARGV[7] == '1', tonumber(ARGV[8]), tonumber(ARGV[9])
local mkey = P .. 'm:' .. id
local st = redis.call('HGET', mkey, 'stream')
if not st then
	return -2
end
if redis.call('HEXISTS', P .. 'lease', id .. '/' .. dom) == 1 then
	return -1
end
if redis.call('HGET', mkey, 'j:' .. dom) ~= ARGV[5] then
	return 0
end
redis.call('HSET', mkey, 'j:' .. dom, ARGV[6])
local result = 1
if finishes then
	-- As complete does for a job whose last recipient became final.
	redis.call('ZREM', P .. 'q:' .. st .. ':' .. dom, id)
	if redis.call('HINCRBY', mkey, 'pending', -1) <= 0 then
		redis.call('HSET', mkey, 'state', 'done', 'done', now)
		redis.call('HDEL', mkey, 'body', 'sig')
		redis.call('ZREM', P .. 'active', id)
		redis.call('ZADD', P .. 'done', now, id)
		redis.call('PEXPIRE', mkey, retention)
		result = 2
	end
end
redis.call('HINCRBY', P .. 'stats', 'bounced', 1)
redis.call('XADD', P .. 'events', 'MAXLEN', '~', evmax, '*',
	'id', id, 'domain', dom, 'rcpt', ARGV[10], 'state', 'bounced',
	'attempts', ARGV[11], 'reply', ARGV[12], 'orcpt', ARGV[13],
	'notify', ARGV[14], 'mta', ARGV[15], 'stream', st, 'returned', '1')
return result
