"""Issue 20 — how often a call's state is written to Redis (CALL_KEY), per kind of call.

Drives the product's ``CallSession`` (the call machine, the IVR, the queue phases) through
scripted calls, with ARI, the line pool, the queue and Redis replaced by counters: no PBX, no
timing, so the figures are exact and the same on a loaded machine. Run it against two versions
to compare (``PYTHONPATH=/path/to/other/checkout``):

    .venv/bin/python bench/state_writes.py

Calls:

* P1/P2 call: greeting, music on hold, the caller hangs up (bench/answer_latency.py);
* IVR, a typical path: greeting, the menu, a silence, the menu again, a key to a sub-menu
  (barge-in), its prompt, hang-up;
* P3 caller, 10 minutes in the menus, silent (bench/ivr_capacity.py: menu prompt ~20 s, 5 s of
  silence, "invalid" ~3 s, the menu again; after 10 failures the twin menu);
* queued 5 minutes: position announced every 30 s, callback offered at 2 minutes, hang-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table  # noqa: E402

from callcenter import calls as cm  # noqa: E402
from callcenter.ari_app.calls import CallDeps, CallSession  # noqa: E402
from callcenter.ivr import menu as mn  # noqa: E402

T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def ivr(twins: bool) -> cm.IvrContext:
    from callcenter.config.base import BaseParser
    from callcenter.config.model import DEFAULT_FIELDS
    from callcenter.ivr.config import parse_ivr
    from callcenter.ivr.menu import NoFaq
    from callcenter.ivr.tree import Prompt

    p = BaseParser("state_writes")
    if twins:
        nodes: dict[str, Any] = {
            "main": {"type": "menu", "prompt": "Bấm 9", "options": {"9": "op"},
                     "fallback": "twin"},
            "twin": {"type": "menu", "prompt": "Bấm 9", "options": {"9": "op"},
                     "fallback": "main"},
            "op": {"type": "operator", "prompt": "Xin giữ máy"}}
        retries = 10
    else:
        nodes = {
            "main": {"type": "menu", "prompt": "Bấm 1 thông tin, bấm 9 tổng đài viên",
                     "options": {"1": "info", "9": "op"}},
            "info": {"type": "menu", "prompt": "Bấm 1 kết thúc", "options": {"1": "bye"}},
            "op": {"type": "operator", "prompt": "Xin giữ máy"},
            "bye": {"type": "goodbye", "prompt": "Xin chào"}}
        retries = 3
    tree = parse_ivr(p, {"root": "main", "timeout": 5, "retries": retries, "nodes": nodes},
                     "ivr", DEFAULT_FIELDS)
    assert tree is not None and not p.errors, p.errors
    return cm.IvrContext(tree, NoFaq(), Prompt("greeting", "Kính chào"))


class Ari:
    def __init__(self) -> None:
        self.played: list[int] = []

    async def play(self, cid: str, media: str, pid: str) -> None:
        tail = pid.rpartition("~")[2]
        self.played.append(int(tail) if tail.isdigit() else 0)

    def __getattr__(self, name: str) -> Any:  # answer, start_moh, hangup ...: accepted
        async def accepted(*a: Any, **kw: Any) -> None:
            return None
        return accepted


class Pool:
    degraded = False

    async def acquire(self, *a: Any) -> bool:
        return True

    async def release(self, *a: Any) -> bool:
        return True

    def lost(self, e: BaseException) -> None:
        pass


class Acd:
    async def enqueue(self, *a: Any, **kw: Any) -> bool:
        return True

    async def dequeue(self, *a: Any) -> None:
        return None


class Redis:
    def __init__(self) -> None:
        self.sets = self.deletes = 0

    async def set(self, key: str, value: str, ex: int) -> None:
        self.sets += 1

    async def delete(self, key: str) -> None:
        self.deletes += 1


class Prompts:
    async def media(self, tenant: str, prompt: Any) -> str:
        return f"sound:{prompt.id}"


class Call:
    def __init__(self, menus: cm.IvrContext | None = None, queue: bool = False) -> None:
        self.ari, self.redis = Ari(), Redis()
        self.events = 0

        async def record(state: cm.CallState) -> None:
            pass

        deps = CallDeps(ari=self.ari, pool=Pool(), redis=self.redis,  # type: ignore[arg-type]
                        sounds_dir="/s", write_record=record, prompts=Prompts(),  # type: ignore[arg-type]
                        acd=Acd() if queue else None)  # type: ignore[arg-type]
        self.session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps,
                                   menus)
        self.queue = queue
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.events += 1
        self.task = asyncio.create_task(self.session.run(
            [cm.Routed(T0, "dongnai", "day", 5, queue=self.queue)]))
        await asyncio.sleep(0)
        await self.settle()

    async def settle(self) -> None:
        while not self.session.events.empty():
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)

    async def feed(self, event: cm.Event) -> None:
        self.events += 1
        self.session.events.put_nowait(event)
        await self.settle()

    async def prompt_ends(self) -> None:
        await self.feed(cm.PlaybackFinished(T0, self.ari.played[-1]))

    async def timer(self) -> None:
        menu = self.session.state.menu
        assert menu is not None and menu.timer is not None
        await self.feed(mn.TimerFired(T0, menu.timer))

    async def end(self) -> tuple[int, int, int]:
        await self.feed(cm.HungUp(T0, 16))
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return self.events, self.redis.sets, self.redis.deletes


async def p1_call() -> tuple[int, int, int]:
    call = Call()
    await call.start()
    await call.prompt_ends()  # greeting over: music on hold
    return await call.end()


async def ivr_typical() -> tuple[int, int, int]:
    call = Call(ivr(twins=False))
    await call.start()
    await call.prompt_ends()  # greeting -> menu prompt
    await call.prompt_ends()  # menu prompt over: timer
    await call.timer()  # silence: invalid
    await call.prompt_ends()  # invalid over: menu again
    stopped = call.ari.played[-1]
    await call.feed(mn.Digit(T0, "1"))  # barge-in: sub-menu
    await call.feed(cm.PlaybackFinished(T0, stopped))  # the stopped prompt's end
    await call.prompt_ends()  # sub-menu prompt over: timer
    return await call.end()


async def p3_caller(minutes: int = 10) -> tuple[int, int, int]:
    call = Call(ivr(twins=True))
    await call.start()
    await call.prompt_ends()  # greeting -> menu prompt
    cycle_s = 20 + 5 + 3  # menu prompt, silence, invalid
    for _ in range(minutes * 60 // cycle_s):
        await call.prompt_ends()  # menu prompt over: timer
        await call.timer()  # silence: invalid (or the twin menu)
        await call.prompt_ends()  # invalid over: the menu again
    return await call.end()


async def queued_caller(minutes: int = 5) -> tuple[int, int, int]:
    call = Call(queue=True)
    await call.start()
    await call.prompt_ends()  # greeting over: queued, music on hold
    for i in range(1, minutes * 2 + 1):
        kind = "callback" if i == 4 else "announce"
        await call.feed(cm.WaitTick(T0 + dt.timedelta(seconds=30 * i), kind, "Quý khách ..."))
        await call.prompt_ends()  # the announcement over: music again
    return await call.end()


async def main() -> None:
    rows = []
    for name, scenario in (("P1/P2 call: greeting, hold, hang-up", p1_call),
                           ("IVR, typical path (9 events)", ivr_typical),
                           ("P3 caller, 10 min silent in the menus", p3_caller),
                           ("queued 5 min, announcements every 30 s", queued_caller)):
        events, sets, deletes = await scenario()
        rows.append([name, events, sets, deletes, sets + deletes])
    print(table(["call", "events", "state SETs", "DELs", "writes"], rows))


if __name__ == "__main__":
    asyncio.run(main())
