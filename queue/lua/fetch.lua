-- fetch: what `queue show` and `queue list` print, without message bodies.
-- ARGV: prefix, id...
-- Returns per id: { id, exists, env, stream, state, done, why, head bytes,
-- body bytes, { domain, job state, due or false, lease expiry or false }... }
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
	local id = ARGV[i]
	local mkey = P .. 'm:' .. id
	if redis.call('EXISTS', mkey) == 0 then
		out[#out + 1] = { id, 0 }
	else
		local m = redis.call('HMGET', mkey, 'env', 'stream', 'state', 'done', 'why', 'doms')
		local jobs = {}
		for dom in string.gmatch(m[6] or '', '%S+') do
			local job = id .. '/' .. dom
			jobs[#jobs + 1] = { dom, redis.call('HGET', mkey, 'j:' .. dom) or '',
				redis.call('ZSCORE', P .. 'q:' .. (m[2] or '?') .. ':' .. dom, id) or false,
				redis.call('ZSCORE', P .. 'leases', job) or false }
		end
		out[#out + 1] = { id, 1, m[1] or '', m[2] or '', m[3] or '', m[4] or '', m[5] or '',
			redis.call('HSTRLEN', mkey, 'head'), redis.call('HSTRLEN', mkey, 'body'), jobs }
	end
end
return out
