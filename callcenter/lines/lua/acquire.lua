-- KEYS: lines, instances. ARGV: call_id, limit, instance, node, shift, tenant, ttl_ms
-- (the shift and limit in force are published by the heartbeat, not on every call)
--#include now
local me = ARGV[3]
redis.call('HSET', KEYS[2], me, now + tonumber(ARGV[7]))
--#include reclaim
local limit = tonumber(ARGV[2])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {1, redis.call('HLEN', KEYS[1])} end
local used = redis.call('HLEN', KEYS[1])
if used >= limit then return {0, used} end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({i = ARGV[3], n = ARGV[4], t = now}))
used = used + 1
redis.call('PUBLISH', 'hotline:events', cjson.encode(
  {type = 'pool', tenant = ARGV[6], in_use = used, limit = limit, shift = ARGV[5]}))
return {1, used}
