-- ARGV[4] ring ms (timeout + margin), ARGV[5] retry ms, ARGV[6] offering instance.
-- Returns {call JSON, extension} of the offer made, or false.
housekeep()
local cands = {}
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local a = cjson.decode(all[i + 1])
  if a.status == 'available' and a.reachable == true then cands[#cands + 1] = a end
end
if #cands == 0 then return false end
local function idle(a) return a.idle_since or a.since end
table.sort(cands, function(x, y)
  local ix, iy = idle(x), idle(y)
  if ix ~= iy then return ix < iy end
  if #x.extension ~= #y.extension then return #x.extension < #y.extension end
  return x.extension < y.extension  -- digits only (config): strcoll orders them as bytes
end)
local ring_ms, retry_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local c = get_call(id)
  if c and not c.ringing then
    local pick = nil
    for _, a in ipairs(cands) do
      if not has(c.declined, a.extension) then pick = a; break end
    end
    if pick == nil and (c.declined_at == nil or now >= c.declined_at + retry_ms) then
      pick = cands[1]
    end
    if pick then
      if has(c.declined, pick.extension) then c.declined = nil end  -- a new cycle
      c.ringing = pick.extension
      c.offered_to = append(c.offered_to, pick.extension)
      c.offered_at = now
      c.offer_expires_at = now + ring_ms
      put_call(c)
      redis.call('SET', offer_prefix .. c.call_id, cjson.encode(
        {extension = pick.extension, instance = ARGV[6], expires_ms = now + ring_ms}),
        'PX', ring_ms)
      pick.status = 'ringing'; pick.since = now; pick.call_id = c.call_id
      put_agent(pick, 'offer')
      queue_event('offered', c, {extension = pick.extension, instance = c.instance or '',
                                 node = c.node or '', offered_by = ARGV[6]})
      return {cjson.encode(c), pick.extension}
    end
  end
end
return false
