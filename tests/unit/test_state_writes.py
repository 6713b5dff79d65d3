"""A call's state is written to Redis when what others read of it changes, not after every
event (issue 20): given a call's events, exactly these writes; and an instance adopting the
call from what was written still has everything it needs (phase, node, path, token counters).

The ARI client, pool and Redis are small fakes (unit level); the real adoption runs in
tests/e2e/test_fault_two_instances.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.calls.codec import shared_view, state_from_json
from callcenter.ivr import menu as mn

T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def _ivr(twins: bool = False) -> cm.IvrContext:
    from callcenter.config.base import BaseParser
    from callcenter.config.model import DEFAULT_FIELDS
    from callcenter.ivr.config import parse_ivr
    from callcenter.ivr.menu import NoFaq
    from callcenter.ivr.tree import Prompt

    p = BaseParser("t.yaml")
    tree = parse_ivr(p, {"root": "main", "timeout": 5, "retries": 3, "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 1 nghe thông tin, bấm 9 gặp tổng đài viên",
                 "options": {"1": "info", "9": "op"}},
        "info": {"type": "menu", "prompt": "Bấm 1 kết thúc", "options": {"1": "bye"}},
        "op": {"type": "operator", "prompt": "Xin giữ máy"},
        "bye": {"type": "goodbye", "prompt": "Xin chào"}}}, "ivr", DEFAULT_FIELDS)
    if twins:  # as bench/ivr_capacity.py: silence after silence, callers never leave
        tree = parse_ivr(p, {"root": "main", "timeout": 5, "retries": 10, "nodes": {
            "main": {"type": "menu", "prompt": "Bấm 9 gặp tổng đài viên",
                     "options": {"9": "op"}, "fallback": "twin"},
            "twin": {"type": "menu", "prompt": "Bấm 9 gặp tổng đài viên",
                     "options": {"9": "op"}, "fallback": "main"},
            "op": {"type": "operator", "prompt": "Xin giữ máy"}}}, "ivr", DEFAULT_FIELDS)
    assert tree is not None and not p.errors
    return cm.IvrContext(tree, NoFaq(), Prompt("greeting", "Kính chào"))


class Ari:
    """Records the playback ids it was asked to play and to stop."""

    def __init__(self) -> None:
        self.played: list[int] = []

    async def answer(self, cid: str) -> None:
        pass

    async def play(self, cid: str, media: str, pid: str) -> None:
        self.played.append(int(pid.rpartition("~")[2]))

    async def stop_playback(self, pid: str) -> bool:
        return True

    async def subscribe_channel(self, cid: str) -> None:
        pass

    async def hangup(self, cid: str, reason: str) -> None:
        pass


class Pool:
    degraded = False

    async def acquire(self, tenant: str, cid: str, limit: int, shift: str) -> bool:
        return True

    async def release(self, tenant: str, cid: str) -> bool:
        return True


class Redis:
    """Each write: ("set", phase, node, path length, menu seq) or ("delete",)."""

    def __init__(self) -> None:
        self.writes: list[tuple[Any, ...]] = []
        self.last: str | None = None

    async def set(self, key: str, value: str, ex: int) -> None:
        d = json.loads(value)
        menu = d["menu"] or {}
        self.writes.append(("set", d["phase"], menu.get("node"), len(menu.get("path", ())),
                            menu.get("seq")))
        self.last = value

    async def delete(self, key: str) -> None:
        self.writes.append(("delete",))


class Prompts:
    async def media(self, tenant: str, prompt: Any) -> str:
        return f"sound:{prompt.id}"


class Call:
    """One call's session with the fakes; ``feed`` hands it an event and lets it act."""

    def __init__(self, twins: bool = False) -> None:
        self.ari, self.redis = Ari(), Redis()

        async def record(state: cm.CallState) -> None:
            pass

        deps = CallDeps(ari=self.ari, pool=Pool(), redis=self.redis,  # type: ignore[arg-type]
                        sounds_dir="/s", write_record=record, prompts=Prompts())  # type: ignore[arg-type]
        self.session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps,
                                   _ivr(twins))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.session.run([cm.Routed(T0, "dongnai", "day", 5)]))
        await asyncio.sleep(0.01)

    async def feed(self, event: cm.Event) -> None:
        self.session.events.put_nowait(event)
        await asyncio.sleep(0.01)

    def prompt_ended(self) -> cm.Event:
        return cm.PlaybackFinished(T0, self.ari.played[-1])

    def timer(self) -> cm.Event:
        menu = self.session.state.menu
        assert menu is not None and menu.timer is not None
        return mn.TimerFired(T0, menu.timer)

    async def end(self) -> None:
        await self.feed(cm.HungUp(T0, 16))
        assert self.task is not None
        await asyncio.wait_for(self.task, 2)


async def test_given_typical_ivr_call_when_events_arrive_then_written_on_changes_only() -> None:
    call = Call()
    await call.start()  # answered, greeting: admitted into the menus
    await call.feed(call.prompt_ended())  # greeting over: the main menu's prompt
    await call.feed(call.prompt_ended())  # menu prompt over: waiting for a key
    await call.feed(call.timer())  # silence: "invalid" and the menu again (a path step)
    await call.feed(call.prompt_ended())  # "invalid" over: the menu prompt again
    stopped = call.ari.played[-1]
    await call.feed(mn.Digit(T0, "1"))  # barge-in: to the info menu (node and path)
    await call.feed(cm.PlaybackFinished(T0, stopped))  # the stopped prompt's end: stale
    await call.feed(call.prompt_ended())  # info prompt over: waiting for a key
    await call.end()
    # 9 events, written 9 times before (8 sets and the delete): now on admission, the path's
    # step, the new node and the end.
    kinds = [w[:4] for w in call.redis.writes]
    assert kinds == [("set", "ivr", "main", 1), ("set", "ivr", "main", 2),
                     ("set", "ivr", "info", 4), ("delete",)]
    assert call.session.writes == 4


async def test_given_caller_silent_in_menus_then_written_per_step_and_adoptable() -> None:
    call = Call(twins=True)
    await call.start()
    events = 0
    for _ in range(40):  # a prompt ends, the silence times out (bench/ivr_capacity.py)
        await call.feed(call.prompt_ended())
        events += 1
        if call.session.state.menu is not None and call.session.state.menu.timer is not None:
            await call.feed(call.timer())
            events += 1
    await call.feed(call.prompt_ended())  # the menu prompt again: a timer armed, not written
    events += 1
    state = call.session.state
    assert state.phase is cm.Phase.IVR and state.menu is not None
    sets = [w for w in call.redis.writes if w[0] == "set"]
    # Written at admission and at each step of the path (every timeout, the fallbacks to the
    # twin menu), never for a prompt's end or a timer armed alone.
    lengths = [w[3] for w in sets]
    assert lengths == sorted(set(lengths)) and lengths[-1] == len(state.menu.path)
    assert len(sets) < events // 2  # before: one write per event
    assert call.redis.last is not None
    shared = state_from_json(call.redis.last)
    assert shared.menu is not None and shared.menu.node == state.menu.node
    assert shared.menu.path == state.menu.path  # the record loses no step on adoption
    assert shared.menu.seq < state.menu.seq  # the token counter was not shared every time
    # Adopted from what was written: every new token is above every token handed out.
    adopted, commands = cm.step(shared, cm.Resume(T0), _ivr(twins=True))
    says = [c.token for c in commands if isinstance(c, mn.Say)]
    assert says and min(says) > state.menu.seq
    await call.end()


def test_given_queue_announcements_when_shared_view_then_unchanged_until_callback_offer() -> None:
    state = cm.CallState("c1", "pbx1", "1022", "0909", "c1", T0, phase=cm.Phase.QUEUED,
                         tenant_id="dongnai", line_held=True, queue_enabled=True, queued_at=T0)
    before = shared_view(state)
    for i in range(1, 4):
        state, _ = cm.step(state, cm.WaitTick(T0 + dt.timedelta(seconds=30 * i), "announce",
                                              "Quý khách đang ở vị trí số 2"))
        state, _ = cm.step(state, cm.PlaybackFinished(T0, state.announcing))
    assert shared_view(state) == before  # announcements alone: nothing to share
    state, _ = cm.step(state, cm.WaitTick(T0, "callback", "Bấm phím 1 để được gọi lại"))
    assert shared_view(state) != before  # "press 1 to be called back" was said: shared


def test_given_queued_call_adopted_then_queue_tokens_from_next_block() -> None:
    state = cm.CallState("c1", "pbx1", "1022", "0909", "c1", T0, phase=cm.Phase.QUEUED,
                         tenant_id="dongnai", line_held=True, queue_enabled=True, queued_at=T0,
                         queue_seq=cm.QUEUE_TOKENS + 5, announcing=cm.QUEUE_TOKENS + 5)
    adopted, _ = cm.step(state, cm.Resume(T0))
    assert adopted.announcing is None and adopted.queue_seq % 64 == 0
    assert adopted.queue_seq > cm.QUEUE_TOKENS + 63
