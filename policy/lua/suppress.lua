-- suppress.lua - add or replace a suppression entry.
-- KEYS[1]: "P sup:SCOPE", KEYS[2]: "P sup:scopes"
-- ARGV: scope, address, reason name, text
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[2], string.format('%s %d %s', ARGV[3], now, ARGV[4]))
redis.call('SADD', KEYS[2], ARGV[1])
return now
