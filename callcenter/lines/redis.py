"""Shift line pools in Redis: one hash of held lines per tenant, taken and freed atomically.

Keys (one Redis for all instances and nodes):
  hotline:lines:{tenant}   hash  call_id -> JSON {"i": instance, "n": node, "t": ms}
  hotline:instances        hash  instance -> heartbeat expiry (ms, Redis clock)
  hotline:nodes            hash  node -> expiry of its instances' last beat (lines/nodes.py)
  hotline:pool:{tenant}    hash  shift, limit, updated_ms  (what is in force, for the CLI/console)
  hotline:events           pub/sub channel, JSON events {"type": "pool", ...}
A line held by an instance whose heartbeat expired is reclaimed by the next acquire, so a crashed
instance never leaks lines. Lua keeps check-and-take atomic across instances.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.redis_scripts import lua_script

INSTANCES = "hotline:instances"
NODES = "hotline:nodes"
EVENTS = "hotline:events"


def lines_key(tenant_id: str) -> str:
    return f"hotline:lines:{tenant_id}"


def status_key(tenant_id: str) -> str:
    return f"hotline:pool:{tenant_id}"


# ---- Lua ------------------------------------------------------------------------------------
# The scripts are files in lua/ (package data); each file's first lines give its KEYS and ARGV.
# now.lua (Redis's clock) and reclaim.lua (freeing lines of instances whose heartbeat expired)
# are shared steps, included where a script says ``--#include``.
ACQUIRE = lua_script("callcenter.lines", "acquire")
RELEASE = lua_script("callcenter.lines", "release")
RECONCILE = lua_script("callcenter.lines", "reconcile")
REASSERT = lua_script("callcenter.lines", "reassert")
HEARTBEAT = lua_script("callcenter.lines", "heartbeat")


@dataclass(frozen=True)
class PoolUse:
    tenant_id: str
    in_use: int
    limit: int | None
    shift: str | None


class LinePool:
    """Atomic line accounting for every tenant, shared by all app instances."""

    def __init__(self, redis: aioredis.Redis, instance: str, node: str, ttl_ms: int = 10_000,
                 timeout_s: float | None = None):
        self.redis = redis
        self.instance = instance
        self.node = node
        self.ttl_ms = ttl_ms
        # A script not answered within timeout_s raises TimeoutError (redis-py closes the
        # connection it was read from). Given here rather than as the client's socket_timeout:
        # redis-py sends each command of a client with a socket_timeout through
        # asyncio.wait_for, a task of its own and two more turns of the event loop before and
        # after the line pool's command leaves (issue 20: bench/answer_profile.py).
        self.timeout_s = timeout_s
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._reconcile = redis.register_script(RECONCILE)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._reassert = redis.register_script(REASSERT)

    async def _run(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        if self.timeout_s is None:
            return await self._evalsha(script, keys, args)
        async with asyncio.timeout(self.timeout_s):
            return await self._evalsha(script, keys, args)

    async def _evalsha(self, script: AsyncScript, keys: list[str],
                       args: list[str | int]) -> Any:
        """The script on the client's single connection, straight: EVALSHA written and its
        reply read under the client's own lock, as redis-py's ``execute_command`` does but
        without its layers (retry closures, observability hooks, ``Script.__call__``), which
        cost the event loop ~150 µs of the ~350 µs an admission took before the caller's
        answer (issue 20, bench/answer_wire.py). Anything unusual goes the whole way instead:
        no single connection (a shared client), not connected yet or any more (redis-py
        connects and, with Sentinel, finds the primary), a script Redis does not have (redis-py
        loads it). A connection error or timeout is raised as redis-py raises it, unless the
        client was given retries (the app's are not): then redis-py's whole way retries it
        (the pool's scripts may run twice: each is idempotent per call). A failed read or write
        closes the connection (redis-py), so a late reply never answers the next command."""
        conn = self.redis.connection
        lock = getattr(self.redis, "_single_conn_lock", None)
        if conn is None or lock is None or not conn.is_connected:
            return await script(keys=keys, args=args)
        try:
            async with lock:
                await conn.send_packed_command(
                    conn.pack_command("EVALSHA", script.sha, len(keys), *keys, *args))
                return await conn.read_response()
        except NoScriptError:
            return await script(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError):
            if conn.retry is None or conn.retry.get_retries() == 0:
                raise
            return await script(keys=keys, args=args)

    async def heartbeat(self) -> bool:
        """Keep this instance's lines alive (call well within ttl_ms); True after a lapse."""
        lapsed = await self._run(self._heartbeat, [INSTANCES, NODES],
                                 [self.instance, self.ttl_ms, self.node])
        return bool(lapsed)

    async def reassert(self, tenant_id: str, call_ids: list[str]) -> int:
        """Write back the lines of our calls in progress; returns how many were missing."""
        added = await self._run(self._reassert, [lines_key(tenant_id)],
                                [self.node, self.instance, json.dumps(call_ids)])
        return int(added)

    async def acquire(self, tenant_id: str, call_id: str, limit: int, shift: str) -> bool:
        """Take one line if the tenant's pool has one free; idempotent per call_id."""
        ok, _used = await self._run(
            self._acquire, [lines_key(tenant_id), INSTANCES],
            [call_id, limit, self.instance, self.node, shift, tenant_id, self.ttl_ms])
        return bool(ok)

    async def release(self, tenant_id: str, call_id: str) -> bool:
        """Free the call's line; False if it held none."""
        removed, _used = await self._run(self._release, [lines_key(tenant_id)],
                                         [call_id, tenant_id])
        return bool(removed)

    async def reconcile(self, tenant_id: str, keep: list[str],
                        adopt: list[str] | None = None) -> tuple[int, int]:
        """Drop our lines of calls not in keep, take over adopt's; returns (dropped, in_use)."""
        dropped, used = await self._run(
            self._reconcile, [lines_key(tenant_id), INSTANCES],
            [self.node, self.instance, json.dumps(sorted(keep)),
             json.dumps(sorted(adopt or []))])
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
