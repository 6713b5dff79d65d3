-- ARGV[4] call JSON (enqueued_at may be absent: now); then, to look for an operator at once
-- (offer_next in the same script), ARGV[5] ring ms, ARGV[6] retry ms, ARGV[7] offering instance.
-- Returns 1 added, 0 already queued; with ARGV[7], {1|0} or {1|0, call JSON, extension} of the
-- offer made (it may be for another, older call).
local c = cjson.decode(ARGV[4])
local by = ARGV[7]
local added = 0
if redis.call('HEXISTS', KEYS[2], c.call_id) == 0 then
  if c.enqueued_at == nil then c.enqueued_at = now end
  put_call(c)
  redis.call('ZADD', KEYS[1], string.format('%.0f', c.priority * 10000000000000 + c.enqueued_at),
             c.call_id)
  -- offered_by: the instance that looks for an operator for it (its driver need not)
  queue_event('enqueued', c, {caller = c.caller or '', offered_by = by})
  added = 1
end
if by == nil then return added end
housekeep()
local offer = offer_one(tonumber(ARGV[5]), tonumber(ARGV[6]), by)
if not offer then return {added} end
return {added, offer[1], offer[2]}
