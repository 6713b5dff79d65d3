"""The line pool's fallback when Redis is unreachable (lines/fallback.py), over a fake shared
pool that can be taken down; the real Redis is in tests/adapters/lines/test_fallback_redis.py."""

from __future__ import annotations

import logging
from typing import cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from callcenter.lines.fallback import ResilientPool
from callcenter.lines.redis import LinePool, PoolUse


class FakeShared:
    """A LinePool's methods over a dict; ``down`` makes every call fail as redis-py does."""

    instance, node = "pbx1-test", "pbx1"

    def __init__(self) -> None:
        self.lines: dict[str, dict[str, str]] = {}  # tenant -> call -> instance
        self.down = False
        self.reasserted: list[tuple[str, list[str]]] = []

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("Error 111 connecting to unix socket. Connection refused.")

    async def acquire(self, tenant: str, call: str, limit: int, shift: str) -> bool:
        self._check()
        held = self.lines.setdefault(tenant, {})
        if call in held:
            return True
        if len(held) >= limit:
            return False
        held[call] = self.instance
        return True

    async def release(self, tenant: str, call: str) -> bool:
        self._check()
        return self.lines.setdefault(tenant, {}).pop(call, None) is not None

    async def reconcile(self, tenant: str, keep: list[str],
                        adopt: list[str] | None = None) -> tuple[int, int]:
        self._check()
        held = self.lines.setdefault(tenant, {})
        gone = [c for c, i in held.items() if i == self.instance and c not in keep]
        for c in gone:
            del held[c]
        return len(gone), len(held)

    async def use(self, tenant: str) -> PoolUse:
        self._check()
        return PoolUse(tenant, len(self.lines.get(tenant, {})), 3, "day")

    async def heartbeat(self) -> bool:
        self._check()
        return False

    async def reassert(self, tenant: str, calls: list[str]) -> int:
        self._check()
        self.reasserted.append((tenant, calls))
        held = self.lines.setdefault(tenant, {})
        added = [c for c in calls if c not in held]
        held.update({c: self.instance for c in added})
        return len(added)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _pool() -> tuple[ResilientPool, FakeShared, Clock]:
    shared, clock = FakeShared(), Clock()
    return ResilientPool(cast(LinePool, shared), clock), shared, clock


async def test_given_redis_up_when_acquiring_then_redis_decides_and_nothing_degraded() -> None:
    pool, shared, _ = _pool()
    assert await pool.acquire("dn", "c1", 1, "day")
    assert not await pool.acquire("dn", "c2", 1, "day")
    assert shared.lines == {"dn": {"c1": "pbx1-test"}} and pool.local_use("dn") == 1
    assert not pool.degraded and pool.outages == 0


async def test_given_redis_down_when_acquiring_then_admitted_on_own_count_up_to_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    pool, shared, clock = _pool()
    assert await pool.acquire("dn", "before", 3, "day")  # held in Redis before the outage
    shared.down = True
    with caplog.at_level(logging.INFO, "callcenter.lines"):
        results = [await pool.acquire("dn", f"c{i}", 3, "day") for i in range(4)]
    assert results == [True, True, False, False]  # 1 + 2 = the shift's 3 lines
    assert await pool.acquire("dn", "c0", 3, "day")  # the same call again: idempotent
    assert pool.degraded and pool.outages == 1
    assert (pool.local_admissions, pool.local_refusals) == (2, 2)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "DEGRADED" in errors[0].getMessage()  # logged once
    clock.t += 4.5
    assert pool.degraded_for() == 4.5
    assert (await pool.use("dn")).in_use == 3  # the local view while Redis is away


async def test_given_degraded_when_released_then_local_line_free_for_the_next_call() -> None:
    pool, shared, _ = _pool()
    shared.down = True
    assert await pool.acquire("dn", "c1", 1, "day")
    assert not await pool.acquire("dn", "c2", 1, "day")
    assert await pool.release("dn", "c1")
    assert await pool.acquire("dn", "c2", 1, "day")
    assert not await pool.release("dn", "never-held")


async def test_given_redis_back_when_recovering_then_our_lines_written_back_and_stale_dropped(
        ) -> None:
    pool, shared, _ = _pool()
    assert await pool.acquire("dn", "old", 3, "day")
    shared.down = True
    assert await pool.acquire("dn", "new", 3, "day")
    assert await pool.release("dn", "old")  # ended during the outage: still listed in Redis
    assert await pool.recover() is None  # still down: stays degraded
    assert pool.degraded
    shared.down = False
    assert await pool.recover() == {"dn": 1}
    assert not pool.degraded
    assert shared.lines["dn"] == {"old": "pbx1-test", "new": "pbx1-test"}
    # what the service's reconcile does next (keep = its live calls): the stale line goes
    assert await pool.reconcile("dn", ["new"]) == (1, 1)
    assert shared.lines["dn"] == {"new": "pbx1-test"} and pool.local_use("dn") == 1


async def test_given_not_degraded_when_recover_then_nothing_done() -> None:
    pool, shared, _ = _pool()
    assert await pool.recover() is None
    assert shared.reasserted == []


async def test_given_release_fails_on_redis_then_degraded_and_line_forgotten_locally() -> None:
    pool, shared, _ = _pool()
    assert await pool.acquire("dn", "c1", 1, "day")
    shared.down = True
    assert await pool.release("dn", "c1")
    assert pool.degraded and pool.local_use("dn") == 0


async def test_given_script_error_when_acquiring_then_raised_not_degraded() -> None:
    pool, shared, _ = _pool()

    async def broken(*args: object) -> bool:
        raise ValueError("bad reply")

    shared.acquire = broken  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        await pool.acquire("dn", "c1", 1, "day")
    assert not pool.degraded


async def test_given_heartbeat_lapse_when_calls_end_during_write_back_then_their_lines_freed(
        ) -> None:
    """ResilientPool.write_back: a call that ended while its line was being written back (its
    own release found nothing to free) does not keep that line for good."""
    pool, shared, _ = _pool()
    live = {"dn": ["a", "b", "c"]}
    reassert = shared.reassert

    async def slow_reassert(tenant: str, calls: list[str]) -> int:
        added = await reassert(tenant, calls)
        live["dn"] = ["a"]  # b and c ended meanwhile (released before the write-back landed)
        return added

    shared.reassert = slow_reassert  # type: ignore[method-assign]
    await pool.write_back(lambda: {t: list(ids) for t, ids in live.items()})
    assert shared.lines["dn"] == {"a": "pbx1-test"}


async def test_given_degraded_when_call_ends_during_recovery_then_line_not_left_in_redis(
        ) -> None:
    pool, shared, _ = _pool()
    shared.down = True
    assert await pool.acquire("dn", "c1", 3, "day")
    assert await pool.acquire("dn", "c2", 3, "day")
    shared.down = False
    reassert = shared.reassert

    async def ending_reassert(tenant: str, calls: list[str]) -> int:
        added = await reassert(tenant, calls)
        if "c2" in calls:
            await pool.release("dn", "c2")  # ends while still degraded: local release only
        return added

    shared.reassert = ending_reassert  # type: ignore[method-assign]
    assert await pool.recover() is not None
    assert shared.lines["dn"] == {"c1": "pbx1-test"} and not pool.degraded
