-- KEYS: lines. ARGV: node, instance, ids (JSON). After our own heartbeat lapsed (or Redis lost
-- its data) the lines of our calls in progress are written back, so they count again.
--#include now
local added = 0
for _, id in ipairs(cjson.decode(ARGV[3])) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    redis.call('HSET', KEYS[1], id, cjson.encode({i = ARGV[2], n = ARGV[1], t = now}))
    added = added + 1
  end
end
return added
