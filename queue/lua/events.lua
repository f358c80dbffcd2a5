-- events: hand outcome events to one consumer of a consumer group.
-- ARGV: prefix, group, consumer, max, claim_idle_ms, start id (for a
-- group made now: events after it)
-- Returns { claimed entries, new entries }, each entry { id, { field,
-- value, ... } } as XREADGROUP gives them.  Entries pending on any
-- consumer for longer than claim_idle_ms come first (XAUTOCLAIM): their
-- consumer died or lost Redis.
local key = ARGV[1] .. 'events'
local group, consumer = ARGV[2], ARGV[3]
local max, idle = tonumber(ARGV[4]), tonumber(ARGV[5])
local made = redis.pcall('XGROUP', 'CREATE', key, group, ARGV[6], 'MKSTREAM')
if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP', 1, true) then
	return redis.error_reply(made.err)
end
local claimed = redis.call('XAUTOCLAIM', key, group, consumer, idle, '0-0', 'COUNT', max)[2]
local fresh = {}
if #claimed < max then
	local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max - #claimed,
		'STREAMS', key, '>')
	if r and r[1] then
		fresh = r[1][2]
	end
end
return { claimed, fresh }
