-- Every script: KEYS = waiting, calls, agents, handled; ARGV[1] = now ms ('' = Redis TIME),
-- ARGV[2] = tenant, ARGV[3] = offer key prefix. The helpers mirror callcenter.queue.agent.
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local tenant = ARGV[2]
local offer_prefix = ARGV[3]
local N = cjson.null
local function nz(x) if x == nil then return N end return x end

local function split(s)
  local r = {}
  if s == nil or s == '' then return r end
  for part in string.gmatch(s, '[^,]+') do r[#r + 1] = part end
  return r
end
local function has(s, x)
  for _, y in ipairs(split(s)) do if y == x then return true end end
  return false
end
local function append(s, x)
  if s == nil or s == '' then return x end
  return s .. ',' .. x
end

local function get_agent(ext)
  local raw = redis.call('HGET', KEYS[3], ext)
  if not raw then return nil end
  return cjson.decode(raw)
end
local function get_call(id)
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then return nil end
  return cjson.decode(raw)
end
local function put_call(c) redis.call('HSET', KEYS[2], c.call_id, cjson.encode(c)) end

local function agent_event(a, cause)
  redis.call('PUBLISH', 'hotline:events', cjson.encode({
    type = 'agent', tenant = tenant, cause = cause, at_ms = now,
    extension = a.extension, name = a.name or '', state = a.status, reason = nz(a.reason),
    pending = nz(a.pending), pending_reason = nz(a.pending_reason),
    reachable = a.reachable == true, since_ms = a.since, idle_since_ms = nz(a.idle_since),
    call_id = nz(a.call_id), wrap_up_until_ms = nz(a.wrap_up_until),
    last_call_end_ms = nz(a.last_call_end)}))
end
local function put_agent(a, cause)
  a.v = (a.v or 0) + 1
  redis.call('HSET', KEYS[3], a.extension, cjson.encode(a))
  agent_event(a, cause)
end
local function queue_event(ev, c, extra)
  local msg = {type = 'queue', tenant = tenant, event = ev, at_ms = now, call_id = c.call_id,
               priority = c.priority, urgent = c.priority < 5,
               queued = redis.call('ZCARD', KEYS[1])}
  if extra then for k, v in pairs(extra) do msg[k] = v end end
  redis.call('PUBLISH', 'hotline:events', cjson.encode(msg))
end

-- agents._after_call: pending requests first; fresh = a call was handled (idle restarts)
local function after_call(a, fresh, auto_pause)
  local pend, preason = a.pending, a.pending_reason
  a.since = now; a.call_id = nil; a.wrap_up_until = nil; a.reason = nil
  a.pending = nil; a.pending_reason = nil
  if pend == 'logout' then a.status = 'logged_out'; a.idle_since = nil
  elseif pend == 'pause' then a.status = 'paused'; a.reason = preason; a.idle_since = nil
  elseif auto_pause then a.status = 'paused'; a.reason = 'no_answer'; a.idle_since = nil
  else
    a.status = 'available'
    if fresh or a.idle_since == nil then a.idle_since = now end
  end
end

local function clear_offer(c)
  redis.call('DEL', offer_prefix .. c.call_id)
  c.ringing = nil; c.offered_at = nil; c.offer_expires_at = nil
end

-- acd.housekeep: end due wrap-ups, take back lost offers. Returns the changed extensions.
local function housekeep()
  local changed = {}
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    local a = cjson.decode(all[i + 1])
    if a.status == 'wrap_up' and a.wrap_up_until and a.wrap_up_until <= now then
      after_call(a, true, false); put_agent(a, 'wrap_up_done')
      changed[#changed + 1] = a.extension
    end
  end
  local calls = redis.call('HGETALL', KEYS[2])
  for i = 1, #calls, 2 do
    local c = cjson.decode(calls[i + 1])
    if c.ringing then
      local lost = (c.offer_expires_at and c.offer_expires_at <= now)
        or redis.call('EXISTS', offer_prefix .. c.call_id) == 0
      if lost then
        local a = get_agent(c.ringing)
        if a and a.status == 'ringing' and a.call_id == c.call_id then
          after_call(a, false, false); put_agent(a, 'offer_lost')
          changed[#changed + 1] = a.extension
        end
        local ext = c.ringing
        clear_offer(c); put_call(c)
        queue_event('offer_lost', c, {extension = ext})
      end
    end
  end
  return changed
end

-- dequeue one call (abandon / removal), releasing the agent its offer rings
local function drop_call(c, reason)
  redis.call('ZREM', KEYS[1], c.call_id)
  redis.call('HDEL', KEYS[2], c.call_id)
  if c.ringing then
    local a = get_agent(c.ringing)
    if a and a.status == 'ringing' and a.call_id == c.call_id then
      after_call(a, false, false); put_agent(a, 'call_gone')
    end
    redis.call('DEL', offer_prefix .. c.call_id)
  end
  queue_event('dequeued', c, {reason = reason, extension = nz(c.ringing)})
end

-- acd.offer_next's pick, after housekeep(): the first waiting call that can be offered, to the
-- longest-idle free agent (ring_ms: ring timeout + margin; by: the offering instance).
-- Returns {call JSON, extension} of the offer made, or false.
local function offer_one(ring_ms, retry_ms, by)
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
          {extension = pick.extension, instance = by, expires_ms = now + ring_ms}),
          'PX', ring_ms)
        pick.status = 'ringing'; pick.since = now; pick.call_id = c.call_id
        put_agent(pick, 'offer')
        queue_event('offered', c, {extension = pick.extension, instance = c.instance or '',
                                   node = c.node or '', offered_by = by})
        return {cjson.encode(c), pick.extension}
      end
    end
  end
  return false
end
