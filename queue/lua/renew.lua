-- renew: extend a lease that is still ours.
-- ARGV: prefix, "ID/DOMAIN", token, new expiry (ms)
if redis.call('HGET', ARGV[1] .. 'lease', ARGV[2]) ~= ARGV[3] then
	return redis.error_reply('ESTALE lease lost')
end
redis.call('ZADD', ARGV[1] .. 'leases', 'XX', ARGV[4], ARGV[2])
return 1
