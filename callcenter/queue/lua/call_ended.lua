-- ARGV[4] extension, ARGV[5] call_id, ARGV[6] wrap-up ms, ARGV[7] handle history length.
-- Returns the agent JSON, or false (not on that call).
local a = get_agent(ARGV[4])
if not a or a.status ~= 'on_call' or a.call_id ~= ARGV[5] then return false end
local wrap = tonumber(ARGV[6])
redis.call('LPUSH', KEYS[4], math.max(now - a.since, 0) + wrap)
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[7]) - 1)
a.last_call_end = now
if wrap > 0 then
  a.status = 'wrap_up'; a.since = now; a.wrap_up_until = now + wrap
else
  after_call(a, true, false)
end
put_agent(a, 'call_ended')
return cjson.encode(a)
