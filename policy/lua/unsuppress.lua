-- unsuppress.lua - remove a suppression entry; 1 if it was there, else 0.
-- KEYS[1]: "P sup:SCOPE", KEYS[2]: "P sup:scopes"; ARGV: scope, address
local n = redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
	redis.call('SREM', KEYS[2], ARGV[1])
end
return n
