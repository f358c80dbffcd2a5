-- subscribe: a user's IMAP subscriptions (RFC 3501 6.3.6 SUBSCRIBE,
-- 6.3.7 UNSUBSCRIBE, 6.3.9 LSUB), a set of folder names that need not
-- exist: a name may be subscribed before its folder is made, and stays
-- subscribed when the folder is deleted.
-- ARGV: prefix, user, op ('on', 'off' or 'list'); for 'on' and 'off'
-- also the folder's stored name and the most names a user may hold.
-- Returns, for 'on' and 'off', { 1 } when the set changed and { 0 } when
-- it already was so (both are idempotent), or ENOSPC when 'on' would take
-- the user past the limit; for 'list', { name, exists (1/0) }... in no
-- order (the C side sorts).
local user, op = ARGV[2], ARGV[3]
local sk = key('s', user)
if op == 'list' then
	local out = {}
	for _, n in ipairs(redis.call('SMEMBERS', sk)) do
		out[#out + 1] = n
		out[#out + 1] = redis.call('HEXISTS', key('u', user), n)
	end
	return out
end
local name, max = ARGV[4], tonumber(ARGV[5])
if op == 'off' then
	return { redis.call('SREM', sk, name) }
end
if redis.call('SISMEMBER', sk, name) == 1 then
	return { 0 }
end
if redis.call('SCARD', sk) >= max then
	return fail('ENOSPC', 'too many subscriptions')
end
return { redis.call('SADD', sk, name) }
