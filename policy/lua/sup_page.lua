-- sup_page.lua - one page of the suppression list (policy_sup_page).
-- KEYS[1]: "P sup:scopes"
-- ARGV[1]: "P sup:", ARGV[2]: scope ('' = every scope, in sorted order),
-- ARGV[3]: cursor ('' = from the start, else "SCOPE|HSCAN-CURSOR"),
-- ARGV[4]: entries wanted (>= 1; HSCAN may give a few more)
-- Returns the next cursor ("0" when done), then scope, address, entry, ...
-- A scope that vanished since the cursor was made is skipped: the walk
-- goes on at the next scope after it in sorted order.
local want = tonumber(ARGV[4])
local scopes
if ARGV[2] == '' then
	scopes = redis.call('SMEMBERS', KEYS[1])
	table.sort(scopes)
else
	scopes = {ARGV[2]}
end
local i, cur = 1, '0'
if ARGV[3] ~= '' then
	local s, c = string.match(ARGV[3], '^(.*)|(%d+)$')
	if s == nil or (ARGV[2] ~= '' and s ~= ARGV[2]) then
		return redis.error_reply('ERR bad suppression cursor')
	end
	i = #scopes + 1
	for j, x in ipairs(scopes) do
		if x >= s then
			i = j
			break
		end
	end
	if scopes[i] == s then
		cur = c
	end
end
local out = {'0'}
local n = 0
while i <= #scopes and n < want do
	local r = redis.call('HSCAN', ARGV[1] .. scopes[i], cur, 'COUNT', want - n)
	local kv = r[2]
	cur = r[1]
	for j = 1, #kv, 2 do
		out[#out + 1] = scopes[i]
		out[#out + 1] = kv[j]
		out[#out + 1] = kv[j + 1]
	end
	n = n + #kv / 2
	if cur == '0' then
		i = i + 1
	end
end
if i <= #scopes then
	out[1] = scopes[i] .. '|' .. cur
end
return out
