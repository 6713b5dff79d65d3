"""The line pool when Redis is gone: this instance admits on its own count of its own lines.

``ResilientPool`` wraps the shared pool (``LinePool``, Redis) and keeps a mirror of the lines this
instance holds. While Redis answers, every decision is Redis's (exact across instances). When a
pool call fails because Redis cannot be reached, the instance turns *degraded*: it logs that
once, admits new calls while its own lines of the tenant are fewer than the shift's limit (the
pure ``pool.admit``), and stops asking Redis until the heartbeat finds it again. Each instance
then stays within the limit on its own; several instances together may exceed it for the
length of the outage (answering beats refusing; issue 15).

When Redis is back, ``recover`` writes this instance's lines back (``reassert``) and leaves
the rest of the rebuild (channels from Asterisk, queue places) to the caller (``app.py``).

Behind Sentinel, a failover may pass without an outage being seen (redis-py retries a command
until the promoted replica answers), yet what the old primary acknowledged and had not copied
is gone: ``primary_switched`` tells the heartbeat to run the same rebuild (docs/sentinel.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.lines.pool import PoolView, admit
from callcenter.lines.redis import LinePool, PoolUse
from callcenter.redis_clients import master_switches

log = logging.getLogger("callcenter.lines")

# What "Redis cannot be reached" looks like through redis-py (refused, reset, timed out) and
# asyncio (a socket's own OSError). Script errors and wrong replies are bugs, not outages.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError,
                                               TimeoutError, OSError)


def redis_down(e: BaseException) -> bool:
    """Whether ``e`` says Redis could not be reached (rather than refused a command)."""
    return isinstance(e, REDIS_DOWN)


class ResilientPool:
    """``LinePool`` with a local fallback (see the module's docs); same methods."""

    def __init__(self, pool: LinePool, clock: Callable[[], float] = time.monotonic):
        self.pool = pool
        self.clock = clock
        self.held: dict[str, set[str]] = {}  # tenant -> calls of ours holding a line
        self.degraded_since: float | None = None  # clock() when Redis was lost
        self.outages = 0  # times Redis was lost (metrics)
        self.local_admissions = 0  # calls admitted on the local count (metrics)
        self.local_refusals = 0
        # How many primaries the pool's client has seen replaced (Sentinel; 0 otherwise).
        self._switches = master_switches(getattr(pool, "redis", None))

    @property
    def instance(self) -> str:
        return self.pool.instance

    @property
    def node(self) -> str:
        return self.pool.node

    @property
    def degraded(self) -> bool:
        return self.degraded_since is not None

    def degraded_for(self) -> float | None:
        """Seconds since Redis was lost; None while it answers."""
        return None if self.degraded_since is None else self.clock() - self.degraded_since

    def local_use(self, tenant_id: str) -> int:
        """Lines this instance holds for ``tenant_id`` (its own view)."""
        return len(self.held.get(tenant_id, ()))

    def lost(self, error: BaseException) -> None:
        """Redis could not be reached: from now on admit on the local count (logged once)."""
        if self.degraded_since is not None:
            return
        self.degraded_since = self.clock()
        self.outages += 1
        log.error("Redis unreachable (%s): DEGRADED, calls are admitted on this instance's own "
                  "line count up to each shift's limit until it is back",
                  str(error) or type(error).__name__)

    def primary_switched(self) -> bool:
        """True once after each failover the pool's client followed (Sentinel promoted another
        primary): writes the old one acknowledged may be lost, so lines must be written back
        (``write_back``) and stale ones dropped (``reconcile``)."""
        now = master_switches(getattr(self.pool, "redis", None))
        if now == self._switches:
            return False
        self._switches = now
        log.warning("Redis primary switched (Sentinel failover): writes the old primary had not "
                    "copied to its replica may be lost; writing our lines back")
        return True

    # -- the pool's methods ---------------------------------------------------------------
    async def acquire(self, tenant_id: str, call_id: str, limit: int, shift: str) -> bool:
        if self.degraded_since is None:
            try:
                ok = await self.pool.acquire(tenant_id, call_id, limit, shift)
            except REDIS_DOWN as e:
                self.lost(e)
            else:
                if ok:
                    self.held.setdefault(tenant_id, set()).add(call_id)
                return ok
        mine = self.held.setdefault(tenant_id, set())
        if call_id in mine:
            return True  # idempotent per call, as in Redis
        if not admit(PoolView(tenant_id, limit, len(mine))):
            self.local_refusals += 1
            return False
        mine.add(call_id)
        self.local_admissions += 1
        log.info("call=%s line %d of %d taken on the local count (Redis unreachable)", call_id,
                 len(mine), limit)
        return True

    async def release(self, tenant_id: str, call_id: str) -> bool:
        mine = self.held.get(tenant_id, set())
        was_mine = call_id in mine
        mine.discard(call_id)
        if self.degraded_since is None:
            try:
                return await self.pool.release(tenant_id, call_id)
            except REDIS_DOWN as e:
                self.lost(e)
        # Redis still lists the line if it was taken there: recover()'s reconcile drops it.
        return was_mine

    async def reconcile(self, tenant_id: str, keep: list[str],
                        adopt: list[str] | None = None) -> tuple[int, int]:
        mine = self.held.setdefault(tenant_id, set())
        mine.intersection_update(keep)
        mine.update(adopt or [])
        if self.degraded_since is not None:
            return 0, len(mine)
        try:
            return await self.pool.reconcile(tenant_id, keep, adopt)
        except REDIS_DOWN as e:
            self.lost(e)
            return 0, len(mine)

    async def use(self, tenant_id: str) -> PoolUse:
        """Lines in use: Redis's count, or this instance's own while degraded."""
        if self.degraded_since is None:
            try:
                return await self.pool.use(tenant_id)
            except REDIS_DOWN as e:
                self.lost(e)
        return PoolUse(tenant_id, self.local_use(tenant_id), None, None)

    async def set_in_force(self, tenant_id: str, shift: str, limit: int) -> None:
        await self.pool.set_in_force(tenant_id, shift, limit)

    async def heartbeat(self) -> bool:
        """The shared heartbeat; True after a lapse (our lines must be written back)."""
        return await self.pool.heartbeat()

    async def reassert(self, tenant_id: str, call_ids: list[str]) -> int:
        return await self.pool.reassert(tenant_id, call_ids)

    async def write_back(self, held: Callable[[], dict[str, list[str]]]) -> None:
        """After our heartbeat lapsed (Redis away, restarted empty, or the loop stalled longer
        than the TTL): write back the lines of our calls in progress (``held()``: tenant ->
        call ids), then free again those of calls that ended meanwhile (their own release came
        before the write-back and found nothing to free)."""
        for tenant_id, call_ids in held().items():
            added = await self.pool.reassert(tenant_id, call_ids)
            if added:
                log.warning("pool %s: %d line(s) of calls in progress written back after a "
                            "Redis lapse", tenant_id, added)
            still = set(held().get(tenant_id, []))
            for call_id in call_ids:
                if call_id not in still:
                    await self.release(tenant_id, call_id)

    # -- recovery ---------------------------------------------------------------------------
    async def recover(self) -> dict[str, int] | None:
        """While degraded: if Redis answers again, write our lines back and leave the degraded
        mode; per tenant, how many lines were written back. None: still unreachable (or not
        degraded). Raises nothing for an outage; the heartbeat calls it every second."""
        if self.degraded_since is None:
            return None
        written: dict[str, int] = {}
        done: set[tuple[str, str]] = set()
        try:
            await self.pool.heartbeat()
            while True:
                # Calls admitted locally while we write back are written in the next round;
                # the check and the switch below run without a pause, so none is missed.
                todo = {(t, c) for t, ids in self.held.items() for c in ids} - done
                if not todo:
                    break
                for tenant_id in sorted({t for t, _ in todo}):
                    ids = sorted(c for t, c in todo if t == tenant_id)
                    written[tenant_id] = (written.get(tenant_id, 0)
                                          + await self.pool.reassert(tenant_id, ids))
                done |= todo
        except REDIS_DOWN as e:
            log.debug("Redis still unreachable: %s", e)
            return None
        away = self.clock() - self.degraded_since
        self.degraded_since = None
        # This rebuild covers a failover seen meanwhile too.
        self._switches = master_switches(getattr(self.pool, "redis", None))
        # Calls that ended while their line was being written back released it only here
        # (degraded): free those lines in Redis too, or they would stay taken for good.
        ended = sorted(done - {(t, c) for t, ids in self.held.items() for c in ids})
        try:
            for tenant_id, call_id in ended:
                await self.pool.release(tenant_id, call_id)
        except REDIS_DOWN as e:
            self.lost(e)
            return None
        log.warning("Redis is back after %.1f s: leaving DEGRADED mode; %s", away,
                    ", ".join(f"{t}: {n} line(s) written back" for t, n in written.items())
                    or "no line to write back")
        return written
