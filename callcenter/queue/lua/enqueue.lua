-- ARGV[4] call JSON (enqueued_at may be absent: now). Returns 1 added, 0 already queued.
local c = cjson.decode(ARGV[4])
if redis.call('HEXISTS', KEYS[2], c.call_id) == 1 then return 0 end
if c.enqueued_at == nil then c.enqueued_at = now end
put_call(c)
redis.call('ZADD', KEYS[1], string.format('%.0f', c.priority * 10000000000000 + c.enqueued_at),
           c.call_id)
queue_event('enqueued', c, {caller = c.caller or ''})
return 1
