-- sup_filter.lua - for each address in ARGV, its suppression entry under
-- KEYS[1] (global) or KEYS[2] (the sender domain), or false.
local out = {}
for i = 1, #ARGV do
	local e = redis.call('HGET', KEYS[1], ARGV[i])
	if not e and KEYS[2] ~= KEYS[1] then
		e = redis.call('HGET', KEYS[2], ARGV[i])
	end
	out[i] = e or false
end
return out
