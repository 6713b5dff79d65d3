"""The operators' queue (ACD) in Redis: the rules of ``callcenter.domain.acd``, atomic in Lua.

Keys, per tenant (the ``{tenant}`` braces are a Redis Cluster hash tag: one slot per tenant, so
every script touches a single slot):
  hotline:acd:{tenant}:waiting         zset  call_id, score priority * 1e13 + enqueued ms
                                              (ringing calls stay in it: no-answer keeps the place)
  hotline:acd:{tenant}:calls           hash  call_id -> call JSON (see _call_to_json)
  hotline:acd:{tenant}:agents          hash  extension -> agent JSON (see _agent_to_json)
  hotline:acd:{tenant}:offer:{call_id} string JSON {extension, instance, expires_ms}, PX ring
                                              timeout + margin: an offer whose instance died
                                              expires and the next offer_next takes it back
  hotline:acd:{tenant}:handled         list  handle times (ms) of the last calls, newest first
  hotline:events                       pub/sub: {"type": "queue"|"agent", "tenant", ...}
The JSON shapes (snapshot and events) are documented in docs/live-state.md.

Every operation that touches a call and an agent together (offer, answer, no-answer, hang-up,
wrap-up, abandon) is one Lua script, so two app instances never double-offer a call or an agent.
An agent's own events (log in/out, pause, reachability) run the pure ``agents.step`` in Python
and are written back with a compare-and-set on the agent's version ``v`` (retried on conflict).

Time: every script takes "now" (ms) from ARGV[1]; empty means Redis's own clock (``TIME``), one
clock for all instances. Tests inject a clock to make time in state and idle order exact.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from callcenter.domain import acd
from callcenter.domain import agents as ag
from callcenter.domain.acd import QueueConflict, QueueEntry, TenantQueue, from_ms, to_ms
from callcenter.domain.agent_config import Operator, QueuePolicy

log = logging.getLogger(__name__)

EVENTS = "hotline:events"
CAS_RETRIES = 20


def _prefix(tenant: str) -> str:
    return f"hotline:acd:{{{tenant}}}:"


def waiting_key(tenant: str) -> str:
    return _prefix(tenant) + "waiting"


def calls_key(tenant: str) -> str:
    return _prefix(tenant) + "calls"


def agents_key(tenant: str) -> str:
    return _prefix(tenant) + "agents"


def handled_key(tenant: str) -> str:
    return _prefix(tenant) + "handled"


def offer_key(tenant: str, call_id: str) -> str:
    return _prefix(tenant) + "offer:" + call_id


def _keys(tenant: str) -> list[str]:
    return [waiting_key(tenant), calls_key(tenant), agents_key(tenant), handled_key(tenant)]


# ---- Lua ------------------------------------------------------------------------------------
# Every script: KEYS = waiting, calls, agents, handled; ARGV[1] = now ms ('' = Redis TIME),
# ARGV[2] = tenant, ARGV[3] = offer key prefix. The helpers mirror callcenter.domain.agents.
_LIB = """
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
"""

# ARGV[4] call JSON (enqueued_at may be absent: now). Returns 1 added, 0 already queued.
ENQUEUE = _LIB + """
local c = cjson.decode(ARGV[4])
if redis.call('HEXISTS', KEYS[2], c.call_id) == 1 then return 0 end
if c.enqueued_at == nil then c.enqueued_at = now end
put_call(c)
redis.call('ZADD', KEYS[1], string.format('%.0f', c.priority * 10000000000000 + c.enqueued_at),
           c.call_id)
queue_event('enqueued', c, {caller = c.caller or ''})
return 1
"""

# ARGV[4] call_id, ARGV[5] reason. Returns the call JSON, or false when it was not queued.
DEQUEUE = _LIB + """
local c = get_call(ARGV[4])
if not c then return false end
drop_call(c, ARGV[5])
return cjson.encode(c)
"""

HOUSEKEEP = _LIB + """
return housekeep()
"""

# ARGV[4] ring ms (timeout + margin), ARGV[5] retry ms, ARGV[6] offering instance.
# Returns {call JSON, extension} of the offer made, or false.
OFFER_NEXT = _LIB + """
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
"""

# ARGV[4] call_id, ARGV[5] extension. Returns the call JSON, or false (offer gone).
ANSWERED = _LIB + """
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
"""

# ARGV[4] call_id, ARGV[5] extension, ARGV[6] mode: 'no_answer' (rang out / declined; auto-pause
# per ARGV[7] '1'/'0') or 'unreachable' (the phone vanished: not a decline, marks unreachable).
# Returns the agent JSON, or false (offer gone).
RING_OUT = _LIB + """
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
"""

# ARGV[4] extension, ARGV[5] call_id, ARGV[6] wrap-up ms, ARGV[7] handle history length.
# Returns the agent JSON, or false (not on that call).
CALL_ENDED = _LIB + """
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
"""

# ARGV[4] extension. Returns 1 (wrap-up ended), 0 (not in wrap-up: a late timer), -1 unknown.
WRAP_UP_DONE = _LIB + """
local a = get_agent(ARGV[4])
if not a then return -1 end
if a.status ~= 'wrap_up' then return 0 end
after_call(a, true, false)
put_agent(a, 'wrap_up_done')
return 1
"""

# ARGV[4] extension, ARGV[5] expected version, ARGV[6] new agent JSON, ARGV[7] cause.
# Compare-and-set of one agent (events decided by agents.step in Python). Returns 1 or 0.
SET_AGENT = _LIB + """
local cur = get_agent(ARGV[4])
if not cur or tostring(cur.v or 0) ~= ARGV[5] then return 0 end
local a = cjson.decode(ARGV[6])
a.v = cur.v or 0
put_agent(a, ARGV[7])
return 1
"""

# ARGV[4] JSON [[extension, name], ...]: configured operators. New ones logged out; names
# updated; unconfigured ones dropped once logged out. Returns the number of changes.
SYNC_AGENTS = _LIB + """
local wanted, order = {}, {}
for _, pair in ipairs(cjson.decode(ARGV[4])) do
  wanted[pair[1]] = pair[2]; order[#order + 1] = pair[1]
end
local changes = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local a = cjson.decode(all[i + 1])
  if wanted[a.extension] == nil and a.status == 'logged_out' then
    redis.call('HDEL', KEYS[3], a.extension)
    redis.call('PUBLISH', 'hotline:events', cjson.encode(
      {type = 'agent', tenant = tenant, cause = 'removed', at_ms = now, extension = a.extension}))
    changes = changes + 1
  end
end
for _, ext in ipairs(order) do
  local a = get_agent(ext)
  if not a then
    put_agent({extension = ext, name = wanted[ext], status = 'logged_out', since = now,
               reachable = false, v = -1}, 'configured')
    changes = changes + 1
  elseif a.name ~= wanted[ext] then
    a.name = wanted[ext]; put_agent(a, 'configured'); changes = changes + 1
  end
end
return changes
"""

# ARGV[4] call_id. Returns the new count, or -1 when the call is not queued.
CALLBACK_OFFERED = _LIB + """
local c = get_call(ARGV[4])
if not c then return -1 end
c.callback_offers = (c.callback_offers or 0) + 1
put_call(c)
queue_event('callback_offered', c, {callback_offers = c.callback_offers})
return c.callback_offers
"""

# ARGV[4] instance, ARGV[5] keep ids JSON, ARGV[6] adopt ids JSON. This instance's calls not in
# keep (their channels are gone) are dropped; adopted calls (another instance died) become ours.
RECONCILE = _LIB + """
local keep, adopt = {}, {}
for _, id in ipairs(cjson.decode(ARGV[5])) do keep[id] = true end
for _, id in ipairs(cjson.decode(ARGV[6])) do adopt[id] = true end
local dropped, adopted = 0, 0
local calls = redis.call('HGETALL', KEYS[2])
for i = 1, #calls, 2 do
  local c = cjson.decode(calls[i + 1])
  if adopt[c.call_id] then
    c.instance = ARGV[4]; put_call(c); adopted = adopted + 1
  elseif c.instance == ARGV[4] and not keep[c.call_id] then
    drop_call(c, 'gone'); dropped = dropped + 1
  end
end
return {dropped, adopted}
"""


# ---- JSON <-> domain ------------------------------------------------------------------------
def _ms(t: dt.datetime | None) -> int | None:
    return None if t is None else to_ms(t)


def _dt(v: Any) -> dt.datetime | None:
    return None if v is None else from_ms(int(v))


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Lua's cjson reads JSON null as a truthy sentinel: absent keys stand for None."""
    return {k: v for k, v in d.items() if v is not None}


def _agent_to_json(a: ag.AgentState) -> dict[str, Any]:
    return _compact({
        "extension": a.extension, "name": a.name, "status": a.status.value,
        "since": to_ms(a.since), "reachable": a.reachable, "reason": a.reason,
        "pending": a.pending, "pending_reason": a.pending_reason, "call_id": a.call_id,
        "idle_since": _ms(a.idle_since), "wrap_up_until": _ms(a.wrap_up_until),
        "last_call_end": _ms(a.last_call_end),
    })


def _agent_from_json(d: Mapping[str, Any]) -> tuple[ag.AgentState, int]:
    since = _dt(d["since"])
    assert since is not None
    state = ag.AgentState(
        extension=str(d["extension"]), status=ag.AgentStatus(d["status"]), since=since,
        name=str(d.get("name", "")), reachable=bool(d.get("reachable", False)),
        reason=d.get("reason"), pending=d.get("pending"), pending_reason=d.get("pending_reason"),
        call_id=d.get("call_id"), idle_since=_dt(d.get("idle_since")),
        wrap_up_until=_dt(d.get("wrap_up_until")), last_call_end=_dt(d.get("last_call_end")),
    )
    return state, int(d.get("v", 0))


def _call_to_json(e: QueueEntry, *, with_time: bool = True) -> dict[str, Any]:
    return _compact({
        "call_id": e.call_id, "priority": e.priority,
        "enqueued_at": to_ms(e.enqueued_at) if with_time else None,
        "caller": e.caller, "node": e.node, "instance": e.instance,
        "offered_to": ",".join(e.offered_to) or None, "declined": ",".join(e.declined) or None,
        "declined_at": _ms(e.declined_at), "ringing": e.ringing, "offered_at": _ms(e.offered_at),
        "offer_expires_at": _ms(e.offer_expires_at), "callback_offers": e.callback_offers,
    })


def _split(v: Any) -> tuple[str, ...]:
    return tuple(x for x in str(v).split(",") if x) if v else ()


def _call_from_json(tenant: str, d: Mapping[str, Any]) -> QueueEntry:
    enqueued = _dt(d["enqueued_at"])
    assert enqueued is not None
    return QueueEntry(
        call_id=str(d["call_id"]), tenant=tenant, enqueued_at=enqueued,
        priority=int(d.get("priority", acd.NORMAL)), caller=str(d.get("caller", "")),
        node=str(d.get("node", "")), instance=str(d.get("instance", "")),
        offered_to=_split(d.get("offered_to")), declined=_split(d.get("declined")),
        declined_at=_dt(d.get("declined_at")), ringing=d.get("ringing"),
        offered_at=_dt(d.get("offered_at")), offer_expires_at=_dt(d.get("offer_expires_at")),
        callback_offers=int(d.get("callback_offers", 0)),
    )


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class Offered:
    """An offer made by ``offer_next``: ring ``extension`` for ``entry`` (owned by
    ``entry.instance`` on ``entry.node``)."""

    call_id: str
    extension: str
    entry: QueueEntry


class AcdQueue:
    """Every tenant's operator queue, shared by all app instances through one Redis."""

    def __init__(self, redis: aioredis.Redis, instance: str, node: str,
                 policies: Mapping[str, QueuePolicy] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.redis = redis
        self.instance = instance
        self.node = node
        self._policies: dict[str, QueuePolicy] = dict(policies or {})
        self._clock = clock
        self._enqueue = redis.register_script(ENQUEUE)
        self._dequeue = redis.register_script(DEQUEUE)
        self._housekeep = redis.register_script(HOUSEKEEP)
        self._offer_next = redis.register_script(OFFER_NEXT)
        self._answered = redis.register_script(ANSWERED)
        self._ring_out = redis.register_script(RING_OUT)
        self._call_ended = redis.register_script(CALL_ENDED)
        self._wrap_up_done = redis.register_script(WRAP_UP_DONE)
        self._set_agent = redis.register_script(SET_AGENT)
        self._sync = redis.register_script(SYNC_AGENTS)
        self._callback = redis.register_script(CALLBACK_OFFERED)
        self._reconcile = redis.register_script(RECONCILE)

    # ---- configuration ---------------------------------------------------------------------
    def policy(self, tenant: str) -> QueuePolicy:
        """The tenant's queue policy (the defaults until ``set_policy``)."""
        return self._policies.get(tenant) or QueuePolicy()

    def set_policy(self, tenant: str, policy: QueuePolicy) -> None:
        """Use this policy from now on (start and config reload)."""
        self._policies[tenant] = policy

    async def sync_operators(self, tenant: str, operators: Iterable[Operator]) -> int:
        """Make the tenant's agents the configured operators; returns how many changed."""
        pairs = [[o.extension, o.name] for o in operators]
        return int(await self._run(self._sync, tenant, json.dumps(pairs, ensure_ascii=False)))

    # ---- calls ------------------------------------------------------------------------------
    async def enqueue(self, tenant: str, call_id: str, *, caller: str = "", urgent: bool = False,
                      priority: int | None = None,
                      enqueued_at: dt.datetime | None = None) -> bool:
        """Queue a call (now, or at ``enqueued_at`` for an adopted call keeping its place);
        False when it is already queued."""
        prio = acd.priority_of(urgent) if priority is None else priority
        entry = QueueEntry(call_id, tenant, enqueued_at or acd.EPOCH, prio, caller, self.node,
                           self.instance)
        data = _call_to_json(entry, with_time=enqueued_at is not None)
        return bool(await self._run(self._enqueue, tenant, json.dumps(data, ensure_ascii=False)))

    async def dequeue(self, tenant: str, call_id: str,
                      reason: str = "abandoned") -> QueueEntry | None:
        """Take a call out (caller hung up, callback chosen): its ringing offer stops and the
        agent is free again. None when it was not queued (idempotent)."""
        raw = await self._run(self._dequeue, tenant, call_id, reason)
        return _call_from_json(tenant, json.loads(raw)) if raw else None

    async def offer_next(self, tenant: str) -> Offered | None:
        """Atomically pick the next (call, agent) and mark both offered; None when no pair.

        Ends due wrap-ups and takes back lost offers first. Call again until None."""
        p = self.policy(tenant)
        ring_ms = (p.ring_timeout_s + acd.OFFER_MARGIN_S) * 1000
        res = await self._run(self._offer_next, tenant, ring_ms, p.retry_s * 1000, self.instance)
        if not res:
            return None
        entry = _call_from_json(tenant, json.loads(res[0]))
        return Offered(entry.call_id, _text(res[1]), entry)

    async def answered(self, tenant: str, call_id: str, extension: str) -> QueueEntry:
        """The agent answered: the call leaves the queue, the agent is on the call. Raises
        QueueConflict ``offer_gone`` when the offer no longer stands (hang up the agent leg)."""
        raw = await self._run(self._answered, tenant, call_id, extension)
        if not raw:
            raise QueueConflict("offer_gone", f"{tenant}: call {call_id} is not ringing agent "
                                              f"{extension} any more")
        return _call_from_json(tenant, json.loads(raw))

    async def no_answer(self, tenant: str, call_id: str, extension: str) -> ag.AgentState:
        """The offer rang out or was declined: the call keeps its place, the agent is skipped
        for it. Raises QueueConflict ``offer_gone`` when the offer no longer stands."""
        auto = "1" if self.policy(tenant).auto_pause_on_no_answer else "0"
        raw = await self._run(self._ring_out, tenant, call_id, extension, "no_answer", auto)
        if not raw:
            raise QueueConflict("offer_gone", f"{tenant}: call {call_id} is not ringing agent "
                                              f"{extension} any more")
        return _agent_from_json(json.loads(raw))[0]

    async def call_ended(self, tenant: str, extension: str, call_id: str) -> ag.AgentState:
        """The bridged call ended: the agent goes to wrap-up (``wrap_up_until``). Raises
        QueueConflict ``not_on_call``."""
        p = self.policy(tenant)
        raw = await self._run(self._call_ended, tenant, extension, call_id, p.wrap_up_s * 1000,
                              p.handle_time_window)
        if not raw:
            raise QueueConflict("not_on_call", f"{tenant}: agent {extension} is not on call "
                                               f"{call_id}")
        return _agent_from_json(json.loads(raw))[0]

    async def wrap_up_done(self, tenant: str, extension: str) -> bool:
        """End the agent's wrap-up now ("ready"); False when not in wrap-up (a late timer)."""
        res = int(await self._run(self._wrap_up_done, tenant, extension))
        if res < 0:
            raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
        return res == 1

    async def expire_wrap_ups(self, tenant: str) -> list[str]:
        """End the wrap-ups that are due and take back lost offers; the extensions changed."""
        return [_text(x) for x in await self._run(self._housekeep, tenant)]

    async def callback_offered(self, tenant: str, call_id: str) -> int:
        """Count a callback offer made to a waiting caller; returns the count so far."""
        n = int(await self._run(self._callback, tenant, call_id))
        if n < 0:
            raise QueueConflict("not_queued", f"{tenant}: call {call_id} is not queued")
        return n

    async def reconcile(self, tenant: str, keep: Iterable[str],
                        adopt: Iterable[str] = ()) -> tuple[int, int]:
        """Drop this instance's queued calls not in ``keep`` and take over ``adopt``'s (after a
        reconnect or another instance's death); returns (dropped, adopted)."""
        dropped, adopted = await self._run(self._reconcile, tenant, self.instance,
                                           json.dumps(sorted(keep)), json.dumps(sorted(adopt)))
        return int(dropped), int(adopted)

    # ---- agents -----------------------------------------------------------------------------
    async def agent(self, tenant: str, extension: str) -> ag.AgentState | None:
        raw = await self.redis.hget(agents_key(tenant), extension)
        return _agent_from_json(json.loads(raw))[0] if raw else None

    async def agent_event(self, tenant: str, extension: str,
                          event: ag.Event) -> tuple[ag.AgentState, list[ag.Command]]:
        """Apply an agent's own event (LogIn, LogOut, Pause, Unpause, Reachable, Unreachable,
        WrapUpDone) with ``agents.step``; raises IllegalTransition as the pure machine does,
        QueueConflict ``unknown_agent`` for an extension not configured."""
        policy = self.policy(tenant)
        if isinstance(event, (ag.Offer, ag.Answered, ag.NoAnswer, ag.OfferLost, ag.CallEnded)):
            raise TypeError(f"{type(event).__name__} goes through offer_next/answered/no_answer/"
                            "call_ended/dequeue, which keep the call and the agent together")
        if isinstance(event, ag.WrapUpDone):
            before = await self.agent(tenant, extension)
            if before is None:
                raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
            ended = await self.wrap_up_done(tenant, extension)
            after = await self.agent(tenant, extension)
            assert after is not None
            if ended:
                log.info("%s", ag.describe(before, event, after))
            offer = ended and after.status is ag.AgentStatus.AVAILABLE
            return after, ([ag.OfferCalls()] if offer else [])
        for _ in range(CAS_RETRIES):
            raw = await self.redis.hget(agents_key(tenant), extension)
            if raw is None:
                raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
            before, version = _agent_from_json(json.loads(raw))
            now = self._now() or await self._redis_now()
            after, cmds = ag.step(before, event, now, policy)
            if isinstance(event, ag.Unreachable) and before.status is ag.AgentStatus.RINGING:
                # The offer and the call change together: the ring-out script, not a plain set.
                assert before.call_id is not None
                res = await self._run(self._ring_out, tenant, before.call_id, extension,
                                      "unreachable", "0")
                if not res:
                    continue  # the offer ended meanwhile: decide again on the new state
                stored, _ = _agent_from_json(json.loads(res))
                log.info("%s", ag.describe(before, event, stored))
                return stored, cmds
            cause = _CAUSES.get(type(event), type(event).__name__.lower())
            data = json.dumps(_agent_to_json(after), ensure_ascii=False)
            if await self._run(self._set_agent, tenant, extension, str(version), data, cause):
                log.info("%s", ag.describe(before, event, after))
                return after, cmds
        raise QueueConflict("busy", f"{tenant}: agent {extension} kept changing; gave up after "
                                    f"{CAS_RETRIES} tries")

    # ---- reading ----------------------------------------------------------------------------
    async def load(self, tenant: str) -> tuple[TenantQueue, dt.datetime]:
        """The tenant's whole queue as one consistent value, and the time it was read."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrange(waiting_key(tenant), 0, -1)
        pipe.hgetall(calls_key(tenant))
        pipe.hgetall(agents_key(tenant))
        pipe.lrange(handled_key(tenant), 0, -1)
        pipe.time()
        _ids, calls, agents_raw, handled, (secs, micros) = await pipe.execute()
        now = self._now() or from_ms(int(secs) * 1000 + int(micros) // 1000)
        entries = tuple(_call_from_json(tenant, json.loads(v)) for v in calls.values())
        agents = tuple(sorted((_agent_from_json(json.loads(v))[0] for v in agents_raw.values()),
                              key=lambda a: a.extension))
        return TenantQueue(tenant, entries, agents, tuple(int(x) for x in handled)), now

    async def snapshot(self, tenant: str) -> dict[str, object]:
        """The live state of the tenant (docs/live-state.md), as ``callcenter queue --json``
        prints it and the console shows it."""
        q, now = await self.load(tenant)
        return acd.snapshot(q, now, self.policy(tenant))

    async def position(self, tenant: str, call_id: str) -> tuple[int | None, int | None]:
        """(position, estimated wait s) of a queued call for its announcement."""
        q, _ = await self.load(tenant)
        return acd.position(q, call_id), acd.estimate(q, call_id)

    # ---- internals --------------------------------------------------------------------------
    def _now(self) -> dt.datetime | None:
        return self._clock() if self._clock is not None else None

    async def _redis_now(self) -> dt.datetime:
        secs, micros = await self.redis.time()
        return from_ms(int(secs) * 1000 + int(micros) // 1000)

    async def _run(self, script: Any, tenant: str, *args: object) -> Any:
        now = self._now()
        argv = ["" if now is None else str(to_ms(now)), tenant, offer_key(tenant, ""), *args]
        return await script(keys=_keys(tenant), args=argv)


_CAUSES: dict[type, str] = {
    ag.LogIn: "log_in", ag.LogOut: "log_out", ag.Pause: "pause", ag.Unpause: "unpause",
    ag.Reachable: "reachable", ag.Unreachable: "unreachable",
}

