"""A call's task when its adapters fail: the record is still written, the line still freed.

The ARI client, pool and Redis are replaced by small fakes here (unit level); the real ones
are exercised in tests/adapters and tests/e2e.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import ChannelGone

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


class FakeAri:
    def __init__(self, gone_on: set[str] | None = None):
        self.calls: list[str] = []
        self.gone_on = gone_on or set()

    async def _do(self, what: str) -> None:
        self.calls.append(what)
        if what in self.gone_on:
            raise ChannelGone("POST", what, 404, "Channel not found")

    async def answer(self, cid: str) -> None:
        await self._do("answer")

    async def progress(self, cid: str) -> None:
        await self._do("progress")

    async def play(self, cid: str, media: str, pid: str) -> None:
        await self._do("play")

    async def start_moh(self, cid: str) -> None:
        await self._do("moh")

    async def hangup(self, cid: str, reason: str) -> None:
        await self._do(f"hangup:{reason}")

    async def subscribe_channel(self, cid: str) -> None:
        await self._do("subscribe")


class FakePool:
    def __init__(self, grant: bool = True, release_fails: bool = False,
                 acquire_fails: bool = False):
        self.grant, self.release_fails, self.acquire_fails = grant, release_fails, acquire_fails
        self.released: list[str] = []

    async def acquire(self, tenant: str, cid: str, limit: int, shift: str) -> bool:
        if self.acquire_fails:
            raise ConnectionError("reply lost")
        return self.grant

    async def release(self, tenant: str, cid: str) -> bool:
        self.released.append(cid)
        if self.release_fails:
            raise ConnectionError("redis down")
        return True


class FakeRedis:
    def __init__(self, fails: bool = False):
        self.fails = fails
        self.data: dict[str, Any] = {}

    async def set(self, key: str, value: str, ex: int) -> None:
        if self.fails:
            raise ConnectionError("redis down")
        self.data[key] = value

    async def delete(self, key: str) -> None:
        if self.fails:
            raise ConnectionError("redis down")
        self.data.pop(key, None)


def _session(ari: FakeAri, pool: FakePool, redis: FakeRedis,
             written: list[cm.CallState]) -> CallSession:
    async def write(state: cm.CallState) -> None:
        written.append(state)

    deps = CallDeps(ari=ari, pool=pool, redis=redis, sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write)
    return CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps)


async def _run(session: CallSession, *events: cm.Event) -> None:
    task = asyncio.create_task(session.run([cm.Routed(T0, "dongnai", "day", 3)]))
    for ev in events:
        await asyncio.sleep(0.01)
        session.events.put_nowait(ev)
    await asyncio.wait_for(task, 2)


async def test_given_redis_down_at_hangup_when_release_fails_then_record_still_written() -> None:
    written: list[cm.CallState] = []
    pool = FakePool(release_fails=True)
    session = _session(FakeAri(), pool, FakeRedis(), written)
    await _run(session, cm.HungUp(T0, 16, "16 Normal Clearing"))
    assert pool.released == ["c1"]
    assert [w.outcome for w in written] == ["answered"]


async def test_given_pool_reply_lost_when_admitting_then_line_released_and_call_failed() -> None:
    written: list[cm.CallState] = []
    pool = FakePool(acquire_fails=True)
    ari = FakeAri()
    session = _session(ari, pool, FakeRedis(), written)
    await _run(session)
    assert pool.released == ["c1"]
    assert "hangup:failure" in ari.calls
    assert [w.outcome for w in written] == ["failed"]


async def test_given_caller_gone_before_answer_then_abandoned_with_line_released() -> None:
    written: list[cm.CallState] = []
    pool = FakePool()
    session = _session(FakeAri(gone_on={"answer", "play"}), pool, FakeRedis(), written)
    await _run(session)
    assert pool.released == ["c1"]
    assert [(w.outcome, w.answered_at) for w in written] == [("abandoned", None)]


async def test_given_redis_blip_when_sharing_state_then_caller_kept() -> None:
    written: list[cm.CallState] = []
    ari = FakeAri()
    session = _session(ari, FakePool(), FakeRedis(fails=True), written)
    task = asyncio.create_task(session.run([cm.Routed(T0, "dongnai", "day", 3)]))
    await asyncio.sleep(0.05)
    assert session.state.phase is cm.Phase.GREETING and "hangup:failure" not in ari.calls
    session.events.put_nowait(cm.HungUp(T0, 16))
    await asyncio.wait_for(task, 2)
    assert [w.outcome for w in written] == ["answered"]
