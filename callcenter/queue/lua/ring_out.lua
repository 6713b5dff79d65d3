-- ARGV[4] call_id, ARGV[5] extension, ARGV[6] mode: 'no_answer' (rang out / declined; auto-pause
-- per ARGV[7] '1'/'0') or 'unreachable' (the phone vanished: not a decline, marks unreachable).
-- Returns the agent JSON, or false (offer gone).
local c, a = get_call(ARGV[4]), get_agent(ARGV[5])
if not c or not a or c.ringing ~= ARGV[5] or a.status ~= 'ringing' or a.call_id ~= ARGV[4] then
  return false
end
clear_offer(c)
if ARGV[6] == 'no_answer' then
  if not has(c.declined, a.extension) then c.declined = append(c.declined, a.extension) end
  c.declined_at = now
  after_call(a, false, ARGV[7] == '1')
else
  a.reachable = false
  after_call(a, false, false)
end
put_call(c)
put_agent(a, ARGV[6])
queue_event('returned', c, {extension = a.extension, reason = ARGV[6]})
return cjson.encode(a)
