-- KEYS: lines. ARGV: call_id, tenant
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local used = redis.call('HLEN', KEYS[1])
if removed == 1 then
  redis.call('PUBLISH', 'hotline:events', cjson.encode(
    {type = 'pool', tenant = ARGV[2], in_use = used}))
end
return {removed, used}
