-- lock: a user's maildrop lock (POP3, RFC 1939 8: one session at a time
-- per maildrop, across every kurierd node).  The lock is a string holding
-- the session's token, with a time to live so that a node that died does
-- not hold it for ever.
-- ARGV: prefix, user, op ('take', 'refresh' or 'release'), token, ttl (ms)
-- Returns { 1 } when the session holds (take, refresh) or held (release)
-- the lock, { 0 } when a release found it gone; EBUSY when another
-- session holds it (take; refresh, when it had expired and another
-- session took it).  A refresh that finds it expired and free takes it.
local user, op, token, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local k = key('lock', user)
local holder = redis.call('GET', k)
if op == 'release' then
	if holder == token then
		redis.call('DEL', k)
		return { 1 }
	end
	return { 0 }
end
if holder and holder ~= token then
	return fail('EBUSY', 'maildrop in use')
end
redis.call('SET', k, token, 'PX', ttl)
return { 1 }
