-- KEYS: nodes. Returns {now, node, expiry, node, expiry, ...} (Redis's clock, ms).
--#include now
local out = {now}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do out[#out + 1] = all[i]; out[#out + 1] = tonumber(all[i + 1]) end
return out
