-- describe: keep a message's IMAP ENVELOPE and BODYSTRUCTURE beside its
-- bytes (computed by an IMAP listing that found none: messages stored by
-- the inbound MX and the reporter get them on first listing).
-- ARGV: prefix, user, folder, uid, envelope, bodystructure
-- Returns { 1 }
local mid = folder_id(ARGV[2], ARGV[3])
if not mid then
	return fail('ENOENT', 'no such folder')
end
local blob = redis.call('HGET', key('m', mid, ARGV[4]), 'blob')
if not blob then
	return fail('ENOENT', 'no such message')
end
redis.call('HSET', key('e', blob), 'env', ARGV[5], 'bs', ARGV[6])
return { 1 }
