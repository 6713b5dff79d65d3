-- KEYS: instances, nodes. ARGV: instance, ttl_ms, node. Returns 1 when our previous beat had
-- lapsed. The node's own beat (nodes: node -> expiry) lives as long as any of its instances
-- beats: a node whose beat lapsed lost every app instance (lost_calls.lua closes its calls).
--#include now
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local expiry = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], expiry)
if tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0') < expiry then
  redis.call('HSET', KEYS[2], ARGV[3], expiry)
end
for _, key in ipairs(KEYS) do
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < now - 3600000 then redis.call('HDEL', key, all[i]) end
  end
end
if before < now then return 1 end
return 0
