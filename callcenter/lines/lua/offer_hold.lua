-- KEYS: offers. ARGV: call_id, slots, ttl_ms
-- One of the tenant's pool-full offer slots (a sorted set: call id -> expiry, Redis's clock).
-- Entries past their expiry are dropped first, so a slot of a crashed instance frees itself.
--#include now
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
