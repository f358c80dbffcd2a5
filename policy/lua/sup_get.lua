-- sup_get.lua - the suppression entries of one address (policy_sup_check).
-- KEYS[1]: "P sup:scopes"
-- ARGV[1]: "P sup:", ARGV[2]: scope ('' = every scope),
-- ARGV[3]: address
-- ARGV[4]: '1' to add the global scope "*" to a named one (check)
-- Returns a flat list scope, address, entry, ...
local scopes
if ARGV[2] == '' then
	scopes = redis.call('SMEMBERS', KEYS[1])
elseif ARGV[4] == '1' and ARGV[2] ~= '*' then
	scopes = {'*', ARGV[2]}
else
	scopes = {ARGV[2]}
end
local out = {}
for _, s in ipairs(scopes) do
	local e = redis.call('HGET', ARGV[1] .. s, ARGV[3])
	if e then
		out[#out + 1] = s
		out[#out + 1] = ARGV[3]
		out[#out + 1] = e
	end
end
return out
