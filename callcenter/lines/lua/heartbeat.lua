-- KEYS: instances. ARGV: instance, ttl_ms. Returns 1 when our previous beat had lapsed.
--#include now
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now - 3600000 then redis.call('HDEL', KEYS[1], all[i]) end
end
if before < now then return 1 end
return 0
