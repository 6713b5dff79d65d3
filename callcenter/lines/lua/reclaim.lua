-- Frees lines of instances whose heartbeat expired, never the caller's own (ARGV[3] in ACQUIRE,
-- ARGV[2] in RECONCILE, passed as `me`): a lapse of our own heartbeat must not free our calls.
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local owner = cjson.decode(held[i + 1]).i
  if owner ~= me then
    local exp = tonumber(redis.call('HGET', KEYS[2], owner) or '0')
    if exp < now then redis.call('HDEL', KEYS[1], held[i]) end
  end
end
