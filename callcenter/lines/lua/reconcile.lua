-- KEYS: lines, instances. ARGV: node, instance, keep ids (JSON), adopt ids (JSON).
-- Drops this instance's lines whose calls are gone (not in keep); takes over the adopted calls'
-- lines (a restarted instance adopting its predecessor's calls). Other instances' lines are
-- left alone: they are freed by their owner, or reclaimed when its heartbeat expires.
--#include now
local me = ARGV[2]
--#include reclaim
local keep = {}
for _, id in ipairs(cjson.decode(ARGV[3])) do keep[id] = true end
local adopt = cjson.decode(ARGV[4])
for _, id in ipairs(adopt) do keep[id] = true end
local held = redis.call('HGETALL', KEYS[1])
local dropped = 0
for i = 1, #held, 2 do
  local entry = cjson.decode(held[i + 1])
  if entry.i == me and not keep[held[i]] then
    redis.call('HDEL', KEYS[1], held[i]); dropped = dropped + 1
  end
end
for _, id in ipairs(adopt) do
  redis.call('HSET', KEYS[1], id, cjson.encode({i = me, n = ARGV[1], t = now}))
end
return {dropped, redis.call('HLEN', KEYS[1])}
