-- ARGV[4] call_id, ARGV[5] extension. Returns the call JSON, or false (offer gone).
local c, a = get_call(ARGV[4]), get_agent(ARGV[5])
if not c or not a or c.ringing ~= ARGV[5] or a.status ~= 'ringing' or a.call_id ~= ARGV[4] then
  return false
end
redis.call('ZREM', KEYS[1], c.call_id)
redis.call('HDEL', KEYS[2], c.call_id)
redis.call('DEL', offer_prefix .. c.call_id)
a.status = 'on_call'; a.since = now; a.idle_since = nil
put_agent(a, 'answered')
queue_event('answered', c, {extension = a.extension, wait_ms = now - c.enqueued_at})
return cjson.encode(c)
