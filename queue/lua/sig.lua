-- sig: keep a message's DKIM signature headers with it, so that every
-- later job and attempt of the message sends the same signatures and
-- none signs again.  Only a lease holder writes, and only the first
-- writer wins (two jobs of one message may sign at the same time).
-- ARGV: prefix, "ID/DOMAIN", token, id, signatures
-- Returns 1 when stored, 0 when the message already had them.
local P = ARGV[1]
if redis.call('HGET', P .. 'lease', ARGV[2]) ~= ARGV[3] then
	return redis.error_reply('ESTALE lease lost')
end
return redis.call('HSETNX', P .. 'm:' .. ARGV[4], 'sig', ARGV[5])
