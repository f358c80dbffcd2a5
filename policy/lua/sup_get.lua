-- sup_get.lua - suppression entries: of one address (check) or all (list).
-- KEYS[1]: "P sup:scopes"
-- ARGV[1]: "P sup:", ARGV[2]: scope ('' = every scope),
-- ARGV[3]: address ('' = every address: a listing)
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
	local k = ARGV[1] .. s
	if ARGV[3] ~= '' then
		local e = redis.call('HGET', k, ARGV[3])
		if e then
			out[#out + 1] = s
			out[#out + 1] = ARGV[3]
			out[#out + 1] = e
		end
	else
		local all = redis.call('HGETALL', k)
		for i = 1, #all, 2 do
			out[#out + 1] = s
			out[#out + 1] = all[i]
			out[#out + 1] = all[i + 1]
		end
	end
end
return out
