-- KEYS: nodes, call state, claim. ARGV: claimer instance, claim ms.
-- A call of a node whose beat lapsed is closed by one surviving instance only: the first to
-- SET the claim (NX; it expires, so a claimer that dies too leaves the call to another).
-- Returns {'claimed', state JSON}, or {why}: gone | ended | alive | taken.
--#include now
local raw = redis.call('GET', KEYS[2])
if not raw then return {'gone'} end
local state = cjson.decode(raw)
if state.phase == 'ended' then return {'ended'} end
local expiry = tonumber(redis.call('HGET', KEYS[1], state.node) or '-1')
if expiry < 0 or expiry >= now then return {'alive'} end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return {'taken'}
end
return {'claimed', raw}
