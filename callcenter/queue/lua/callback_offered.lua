-- ARGV[4] call_id. Returns the new count, or -1 when the call is not queued.
local c = get_call(ARGV[4])
if not c then return -1 end
c.callback_offers = (c.callback_offers or 0) + 1
put_call(c)
queue_event('callback_offered', c, {callback_offers = c.callback_offers})
return c.callback_offers
