"""Shift line pools in Redis: one hash of held lines per tenant, taken and freed atomically.

Keys (one Redis for all instances and nodes):
  hotline:lines:{tenant}   hash  call_id -> JSON {"i": instance, "n": node, "t": ms}
  hotline:instances        hash  instance -> heartbeat expiry (ms, Redis clock)
  hotline:pool:{tenant}    hash  shift, limit, updated_ms  (what is in force, for the CLI/console)
  hotline:events           pub/sub channel, JSON events {"type": "pool", ...}
A line held by an instance whose heartbeat expired is reclaimed by the next acquire, so a crashed
instance never leaks lines. Lua keeps check-and-take atomic across instances.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis

INSTANCES = "hotline:instances"
EVENTS = "hotline:events"


def lines_key(tenant_id: str) -> str:
    return f"hotline:lines:{tenant_id}"


def status_key(tenant_id: str) -> str:
    return f"hotline:pool:{tenant_id}"


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Frees lines of instances whose heartbeat expired, never the caller's own (ARGV[3] in ACQUIRE,
# ARGV[2] in RECONCILE, passed as `me`): a lapse of our own heartbeat must not free our calls.
_RECLAIM = """
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local owner = cjson.decode(held[i + 1]).i
  if owner ~= me then
    local exp = tonumber(redis.call('HGET', KEYS[2], owner) or '0')
    if exp < now then redis.call('HDEL', KEYS[1], held[i]) end
  end
end
"""

# KEYS: lines, instances. ARGV: call_id, limit, instance, node, shift, tenant, ttl_ms
# (the shift and limit in force are published by the heartbeat, not on every call)
ACQUIRE = _NOW_MS + """
local me = ARGV[3]
redis.call('HSET', KEYS[2], me, now + tonumber(ARGV[7]))
""" + _RECLAIM + """
local limit = tonumber(ARGV[2])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {1, redis.call('HLEN', KEYS[1])} end
local used = redis.call('HLEN', KEYS[1])
if used >= limit then return {0, used} end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({i = ARGV[3], n = ARGV[4], t = now}))
used = used + 1
redis.call('PUBLISH', 'hotline:events', cjson.encode(
  {type = 'pool', tenant = ARGV[6], in_use = used, limit = limit, shift = ARGV[5]}))
return {1, used}
"""

# KEYS: lines. ARGV: call_id, tenant
RELEASE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local used = redis.call('HLEN', KEYS[1])
if removed == 1 then
  redis.call('PUBLISH', 'hotline:events', cjson.encode(
    {type = 'pool', tenant = ARGV[2], in_use = used}))
end
return {removed, used}
"""

# KEYS: lines, instances. ARGV: node, instance, keep ids (JSON), adopt ids (JSON).
# Drops this instance's lines whose calls are gone (not in keep); takes over the adopted calls'
# lines (a restarted instance adopting its predecessor's calls). Other instances' lines are
# left alone: they are freed by their owner, or reclaimed when its heartbeat expires.
RECONCILE = _NOW_MS + """
local me = ARGV[2]
""" + _RECLAIM + """
local keep = {}
for _, id in ipairs(cjson.decode(ARGV[3])) do keep[id] = true end
local adopt = cjson.decode(ARGV[4])
for _, id in ipairs(adopt) do keep[id] = true end
local held = redis.call('HGETALL', KEYS[1])
local dropped = 0
for i = 1, #held, 2 do
  local entry = cjson.decode(held[i + 1])
  if entry.i == me and not keep[held[i]] then
    redis.call('HDEL', KEYS[1], held[i]); dropped = dropped + 1
  end
end
for _, id in ipairs(adopt) do
  redis.call('HSET', KEYS[1], id, cjson.encode({i = me, n = ARGV[1], t = now}))
end
return {dropped, redis.call('HLEN', KEYS[1])}
"""

# KEYS: lines. ARGV: node, instance, ids (JSON). After our own heartbeat lapsed (or Redis lost
# its data) the lines of our calls in progress are written back, so they count again.
REASSERT = _NOW_MS + """
local added = 0
for _, id in ipairs(cjson.decode(ARGV[3])) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    redis.call('HSET', KEYS[1], id, cjson.encode({i = ARGV[2], n = ARGV[1], t = now}))
    added = added + 1
  end
end
return added
"""

# KEYS: instances. ARGV: instance, ttl_ms. Returns 1 when our previous beat had lapsed.
HEARTBEAT = _NOW_MS + """
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now - 3600000 then redis.call('HDEL', KEYS[1], all[i]) end
end
if before < now then return 1 end
return 0
"""


@dataclass(frozen=True)
class PoolUse:
    tenant_id: str
    in_use: int
    limit: int | None
    shift: str | None


class LinePool:
    """Atomic line accounting for every tenant, shared by all app instances."""

    def __init__(self, redis: aioredis.Redis, instance: str, node: str, ttl_ms: int = 10_000):
        self.redis = redis
        self.instance = instance
        self.node = node
        self.ttl_ms = ttl_ms
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._reconcile = redis.register_script(RECONCILE)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._reassert = redis.register_script(REASSERT)

    async def heartbeat(self) -> bool:
        """Keep this instance's lines alive (call well within ttl_ms); True after a lapse."""
        lapsed = await self._heartbeat(keys=[INSTANCES], args=[self.instance, self.ttl_ms])
        return bool(lapsed)

    async def reassert(self, tenant_id: str, call_ids: list[str]) -> int:
        """Write back the lines of our calls in progress; returns how many were missing."""
        added = await self._reassert(keys=[lines_key(tenant_id)],
                                     args=[self.node, self.instance, json.dumps(call_ids)])
        return int(added)

    async def acquire(self, tenant_id: str, call_id: str, limit: int, shift: str) -> bool:
        """Take one line if the tenant's pool has one free; idempotent per call_id."""
        ok, _used = await self._acquire(
            keys=[lines_key(tenant_id), INSTANCES],
            args=[call_id, limit, self.instance, self.node, shift, tenant_id, self.ttl_ms],
        )
        return bool(ok)

    async def release(self, tenant_id: str, call_id: str) -> bool:
        """Free the call's line; False if it held none."""
        removed, _used = await self._release(keys=[lines_key(tenant_id)], args=[call_id, tenant_id])
        return bool(removed)

    async def reconcile(self, tenant_id: str, keep: list[str],
                        adopt: list[str] | None = None) -> tuple[int, int]:
        """Drop our lines of calls not in keep, take over adopt's; returns (dropped, in_use)."""
        dropped, used = await self._reconcile(
            keys=[lines_key(tenant_id), INSTANCES],
            args=[self.node, self.instance, json.dumps(sorted(keep)),
                  json.dumps(sorted(adopt or []))],
        )
        return int(dropped), int(used)

    async def use(self, tenant_id: str) -> PoolUse:
        """Lines in use now and the limit/shift last put in force."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(lines_key(tenant_id))
        pipe.hgetall(status_key(tenant_id))
        used, status = await pipe.execute()
        status = {(k.decode() if isinstance(k, bytes) else k):
                  (v.decode() if isinstance(v, bytes) else v) for k, v in status.items()}
        limit = int(status["limit"]) if "limit" in status else None
        return PoolUse(tenant_id, int(used), limit, status.get("shift"))

    async def set_in_force(self, tenant_id: str, shift: str, limit: int) -> None:
        """Record the shift and limit in force (on start and reload)."""
        await self.redis.hset(status_key(tenant_id), mapping={"shift": shift, "limit": limit})
