"""A call's task when its adapters fail: the record is still written, the line still freed.

The ARI client, pool and Redis are replaced by small fakes here (unit level); the real ones
are exercised in tests/adapters and tests/e2e.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import ChannelGone
from callcenter.ivr import menu as mn
from callcenter.queue.rules import QUEUE_UNAVAILABLE_TEXT

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

    async def send_start_moh(self, cid: str) -> asyncio.Task[None]:
        """Sent now, answered later: "moh?" when sent, "moh" once the answer is read."""
        self.calls.append("moh?")
        return asyncio.create_task(self._do("moh"))

    async def hangup(self, cid: str, reason: str) -> None:
        await self._do(f"hangup:{reason}")

    async def subscribe_channel(self, cid: str) -> None:
        await self._do("subscribe")


class FakePool:
    def __init__(self, grant: bool = True, release_fails: bool = False,
                 acquire_fails: bool = False):
        self.grant, self.release_fails, self.acquire_fails = grant, release_fails, acquire_fails
        self.released: list[str] = []
        self.degraded = False  # as ResilientPool: never falls back here

    def lost(self, error: BaseException) -> None:
        self.degraded = True

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


class DownAcd:
    """The operators' queue with Redis unreachable (every call fails as redis-py does)."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    async def enqueue_offer(self, tenant: str, cid: str, **kwargs: Any) -> tuple[bool, None]:
        self.tried.append("enqueue")
        raise RedisConnectionError("Connection refused")

    async def dequeue(self, tenant: str, cid: str, reason: str) -> None:
        self.tried.append(f"dequeue:{reason}")
        raise RedisConnectionError("Connection refused")


class Prompts:
    def __init__(self) -> None:
        self.said: list[tuple[str, str | None]] = []

    async def media(self, tenant: str, prompt: Any) -> str:
        self.said.append((prompt.id, prompt.text))
        return f"sound:{prompt.id}"


class QueueAri(FakeAri):
    async def stop_moh(self, cid: str) -> None:
        await self._do("stop-moh")

    async def stop_playback(self, pid: str) -> bool:
        await self._do("stop-playback")
        return True


async def test_given_redis_down_when_caller_queued_then_told_offered_callback_and_kept() -> None:
    """Issue 15: no 500 and no hang-up when the queue (Redis) is gone: the caller hears that
    the system has a fault, may press 1 for a callback (kept in the database), and waits on
    hold meanwhile; the line is freed at the end as always."""
    written: list[cm.CallState] = []
    saved: list[str] = []
    pool, acd, prompts, ari = FakePool(), DownAcd(), Prompts(), QueueAri()

    async def write(state: cm.CallState) -> None:
        written.append(state)

    async def save_callback(state: cm.CallState, source: str) -> None:
        assert source == "queue"
        saved.append(state.caller)

    deps = CallDeps(ari=ari, pool=pool, redis=FakeRedis(), sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, acd=acd, prompts=prompts,  # type: ignore[arg-type]
                    save_callback=save_callback)
    session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps)
    task = asyncio.create_task(session.run([cm.Routed(T0, "dongnai", "day", 3, queue=True)]))
    await asyncio.sleep(0.02)
    session.events.put_nowait(cm.PlaybackFinished(T0))  # the greeting ended: to the queue
    await asyncio.sleep(0.05)
    assert acd.tried == ["enqueue"] and pool.degraded
    assert session.state.phase is cm.Phase.QUEUED and session.state.callback_offered
    assert prompts.said == [("queue_unavailable", QUEUE_UNAVAILABLE_TEXT)]
    assert "hangup:failure" not in ari.calls
    session.events.put_nowait(mn.Digit(T0, "1"))
    await asyncio.sleep(0.05)
    assert saved == ["0909"] and acd.tried == ["enqueue", "dequeue:callback"]
    assert session.state.phase is cm.Phase.CLOSING
    session.events.put_nowait(cm.HungUp(T0, 16))
    await asyncio.wait_for(task, 2)
    assert [w.outcome for w in written] == ["callback"] and pool.released == ["c1"]


class LeavingAri(QueueAri):
    """The caller's channel vanished as the operator answered: addChannel says 400."""

    async def create_bridge(self, bridge: str) -> None:
        await self._do("create-bridge")

    async def add_to_bridge(self, bridge: str, channels: list[str]) -> None:
        from callcenter.ari_app.client import AriError
        self.calls.append("add-to-bridge")
        raise AriError("POST", f"/bridges/{bridge}/addChannel", 400,
                       '{"message":"Channel not found"}')

    async def destroy_bridge(self, bridge: str) -> bool:
        await self._do("destroy-bridge")
        return True


class FreeAcd:
    def __init__(self) -> None:
        self.ended: list[str] = []

    async def call_ended(self, tenant: str, ext: str, cid: str) -> None:
        self.ended.append(ext)


async def test_given_caller_gone_as_operator_answers_when_bridging_then_no_failure() -> None:
    """Found by hand (issue 15.5): the caller hangs up at the moment the operator picks up;
    the bridge cannot take the vanished channel (400). The call ends through the caller's own
    hang-up, not as an internal failure, and the operator is freed."""
    import dataclasses

    written: list[cm.CallState] = []
    pool, acd, ari = FakePool(), FreeAcd(), LeavingAri()

    async def write(state: cm.CallState) -> None:
        written.append(state)

    deps = CallDeps(ari=ari, pool=pool, redis=FakeRedis(), sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, acd=acd)  # type: ignore[arg-type]
    ringing = dataclasses.replace(
        cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), phase=cm.Phase.RINGING,
        tenant_id="dongnai", shift="day", limit=3, line_held=True, answered_at=T0,
        queued_at=T0, queue_enabled=True, ringing="101", operator_channel="c1-op1", legs=1)
    session = CallSession(ringing, deps)
    task = asyncio.create_task(session.run([cm.OperatorAnswered(T0, "101")]))
    await asyncio.sleep(0.05)
    assert "add-to-bridge" in ari.calls and "hangup:failure" not in ari.calls
    session.events.put_nowait(cm.HungUp(T0, 16, "16 Normal Clearing"))
    await asyncio.wait_for(task, 2)
    assert len(written) == 1 and written[0].outcome == "answered"  # bridged_at was set
    assert written[0].cause != "BridgeOperator failed"
    assert acd.ended == ["101"] and pool.released == ["c1"]


# ---- the pool-full callback offer: its slots (calls/full_offer.py, lines/offers.py) --------
class FakeOffers:
    def __init__(self, grant: bool = True, fails: bool = False):
        self.grant, self.fails = grant, fails
        self.held: list[tuple[str, str, int]] = []
        self.released: list[str] = []

    async def hold(self, tenant: str, cid: str, slots: int) -> bool:
        if self.fails:
            raise RedisConnectionError("redis down")
        self.held.append((tenant, cid, slots))
        return self.grant

    async def release(self, tenant: str, cid: str) -> bool:
        self.released.append(cid)
        return True


class PlayAri(FakeAri):
    """Also keeps what was played under which playback id."""

    def __init__(self) -> None:
        super().__init__()
        self.played: list[tuple[str, str]] = []

    async def play(self, cid: str, media: str, pid: str) -> None:
        self.played.append((media, pid))
        await self._do("play")


async def _offer_run(offers: FakeOffers | None, pool: FakePool | None = None,
                     *events: cm.Event) -> tuple[PlayAri, list[cm.CallState]]:
    written: list[cm.CallState] = []
    ari = PlayAri()

    async def write(state: cm.CallState) -> None:
        written.append(state)

    deps = CallDeps(ari=ari, pool=pool or FakePool(grant=False),  # type: ignore[arg-type]
                    redis=FakeRedis(), sounds_dir="/s", write_record=write,  # type: ignore[arg-type]
                    offers=offers)  # type: ignore[arg-type]
    session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909123456", "c1", T0), deps)
    routed = cm.Routed(T0, "dongnai", "night", 2, callback_when_full=True)
    task = asyncio.create_task(session.run([routed]))
    for ev in events:
        await asyncio.sleep(0.01)
        session.events.put_nowait(ev)
    await asyncio.wait_for(task, 2)
    return ari, written


async def test_given_lines_full_and_a_slot_when_offered_then_answered_offer_released() -> None:
    offers = FakeOffers()
    ari, written = await _offer_run(offers, None, cm.HungUp(T0, 16))
    assert offers.held == [("dongnai", "c1", cm.FULL_OFFER_SLOTS)]
    assert ari.calls[:2] == ["answer", "play"]  # answered: no early media, no busy message
    assert ari.played == [("sound:/s/dongnai/callback_offer", f"c1~{cm.QUEUE_TOKENS + 1}")]
    assert offers.released == ["c1"]
    assert [w.outcome for w in written] == ["busy"]


async def test_given_no_slot_left_when_lines_full_then_plain_busy_message_in_early_media() -> None:
    offers = FakeOffers(grant=False)
    ari, written = await _offer_run(offers, None, cm.HungUp(T0, 17))
    assert ari.calls[:2] == ["progress", "play"] and "answer" not in ari.calls
    assert ari.played == [("sound:/s/dongnai/all_busy", "c1~p1")]
    assert offers.released == []  # none was held


async def test_given_redis_down_or_no_offer_store_when_lines_full_then_busy_message() -> None:
    pool = FakePool(grant=False)
    ari, _ = await _offer_run(FakeOffers(fails=True), pool, cm.HungUp(T0, 17))
    assert "answer" not in ari.calls and pool.degraded  # the outage noted, nobody answered
    ari, _ = await _offer_run(None, None, cm.HungUp(T0, 17))
    assert "answer" not in ari.calls and ari.played[0][0].endswith("/all_busy")


# ---- the operator freed once their leg is gone (issue 19.3) ---------------------------------
class LegAri(FakeAri):
    """Hanging up a leg only asks Asterisk (as ARI's DELETE does): the leg's ChannelDestroyed
    comes later. ``gone``: legs already gone (404). ``unheard``: legs whose hang-up destroys
    them at once, their ChannelDestroyed going to no one (GET /channels/{id} says 404)."""

    def __init__(self, gone: set[str] | None = None, unheard: set[str] | None = None) -> None:
        super().__init__()
        self.gone = gone or set()
        self.unheard = unheard or set()

    async def hangup(self, cid: str, reason: str) -> None:
        from callcenter.ari_app.client import ChannelGone as Gone
        self.calls.append(f"hangup:{cid}")
        if cid in self.gone:
            raise Gone("DELETE", f"/channels/{cid}", 404, '{"message":"Channel not found"}')
        if cid in self.unheard:
            self.gone.add(cid)

    async def channel_exists(self, cid: str) -> bool:
        self.calls.append(f"get:{cid}")
        return cid not in self.gone

    async def destroy_bridge(self, bridge: str) -> bool:
        await self._do("destroy-bridge")
        return True


def _bridged_session(ari: FakeAri, acd: FreeAcd,
                     written: list[cm.CallState]) -> tuple[CallSession, CallDeps]:
    import dataclasses

    async def write(state: cm.CallState) -> None:
        written.append(state)

    deps = CallDeps(ari=ari, pool=FakePool(), redis=FakeRedis(),  # type: ignore[arg-type]
                    sounds_dir="/s", write_record=write, acd=acd)  # type: ignore[arg-type]
    deps.legs["c1-op1"] = "c1"  # as RingOperator left it
    bridged = dataclasses.replace(
        cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), phase=cm.Phase.BRIDGED,
        tenant_id="dongnai", shift="day", limit=3, line_held=True, answered_at=T0,
        queued_at=T0, queue_enabled=True, operator="101", operator_channel="c1-op1", legs=1,
        bridge="c1-bridge", bridged_at=T0)
    return CallSession(bridged, deps), deps


async def test_given_bridged_when_caller_hangs_up_then_operator_freed_only_once_leg_gone(
) -> None:
    """ARI's hang-up returns once the hang-up is queued; freeing the operator then let the queue
    ring their phone with a waiting call (another node's, through the edge) before Asterisk had
    sent this call's BYE: two calls at once on the phone (issue 19.3)."""
    written: list[cm.CallState] = []
    ari, acd = LegAri(), FreeAcd()
    session, deps = _bridged_session(ari, acd, written)
    task = asyncio.create_task(session.run([cm.HungUp(T0, 16, "16 Normal Clearing")]))
    await asyncio.sleep(0.05)
    assert "hangup:c1-op1" in ari.calls
    assert acd.ended == []  # the leg is still there: the operator is not free yet
    assert deps.leg_gone("c1-op1") == "c1"  # its ChannelDestroyed (StasisService._on_leg_event)
    await asyncio.wait_for(task, 2)
    assert acd.ended == ["101"] and [w.outcome for w in written] == ["answered"]
    assert deps.legs == {} and deps.leg_ended == {}


async def test_given_operator_leg_gone_already_when_caller_hangs_up_then_freed_at_once(
) -> None:
    written: list[cm.CallState] = []
    ari, acd = LegAri(gone={"c1-op1"}), FreeAcd()  # 404: the operator hung up just then
    session, deps = _bridged_session(ari, acd, written)
    await asyncio.wait_for(session.run([cm.HungUp(T0, 16)]), 1)
    assert acd.ended == ["101"] and deps.legs == {} and deps.leg_ended == {}


async def test_given_operator_leg_end_never_seen_when_caller_hangs_up_then_freed_after_bound(
        monkeypatch: Any) -> None:
    """An operator is never kept out of the queue by a lost event: freed after the bound."""
    from callcenter.ari_app import calls as ari_calls
    monkeypatch.setattr(ari_calls, "LEG_GONE_WAIT_S", 0.1)
    written: list[cm.CallState] = []
    ari, acd = LegAri(), FreeAcd()
    session, deps = _bridged_session(ari, acd, written)
    await asyncio.wait_for(session.run([cm.HungUp(T0, 16)]), 2)
    assert acd.ended == ["101"] and [w.outcome for w in written] == ["answered"]
    assert deps.leg_ended == {}


async def test_given_leg_end_not_told_when_caller_hangs_up_then_freed_once_asterisk_lost_it(
        monkeypatch: Any, caplog: Any) -> None:
    """A leg whose ChannelDestroyed never reaches the app (an adopted call's leg whose events
    go to another application, an event lost in a reconnect): the operator is freed as soon as
    Asterisk no longer has the leg, not after the whole bounded wait, and with no warning."""
    from callcenter.ari_app import calls as ari_calls
    monkeypatch.setattr(ari_calls, "LEG_GONE_WAIT_S", 60.0)  # longer than the test may take
    monkeypatch.setattr(ari_calls, "LEG_CHECK_S", 0.01, raising=False)
    written: list[cm.CallState] = []
    ari, acd = LegAri(unheard={"c1-op1"}), FreeAcd()
    session, deps = _bridged_session(ari, acd, written)
    with caplog.at_level("INFO", logger="callcenter.call"):
        await asyncio.wait_for(session.run([cm.HungUp(T0, 16)]), 2)
    assert acd.ended == ["101"] and [w.outcome for w in written] == ["answered"]
    assert "get:c1-op1" in ari.calls
    assert deps.legs == {} and deps.leg_ended == {}
    assert "not gone after" not in caplog.text


class DequeueAcd(FreeAcd):
    def __init__(self) -> None:
        super().__init__()
        self.dequeued: list[str] = []

    async def dequeue(self, tenant: str, cid: str, reason: str) -> object:
        self.dequeued.append(reason)
        return object()  # it was queued


async def test_given_phone_ringing_when_caller_hangs_up_then_dequeued_once_leg_gone() -> None:
    """Taking the call out of the queue frees the ringing operator: not before their phone's
    leg is gone, or the next call could ring it before the first stopped (issue 19.3)."""
    import dataclasses

    written: list[cm.CallState] = []
    ari, acd = LegAri(), DequeueAcd()
    session, deps = _bridged_session(ari, acd, written)
    session.state = dataclasses.replace(session.state, phase=cm.Phase.RINGING, ringing="101",
                                        operator=None, bridge=None, bridged_at=None)
    task = asyncio.create_task(session.run([cm.HungUp(T0, 16)]))
    await asyncio.sleep(0.05)
    assert "hangup:c1-op1" in ari.calls and acd.dequeued == []
    deps.leg_gone("c1-op1")
    await asyncio.wait_for(task, 2)
    assert acd.dequeued == ["abandoned"] and [w.outcome for w in written] == ["abandoned"]


class LoggedAtAnswer(FakeAri):
    """Notes which of the call's log lines were written when Asterisk was asked to answer."""

    def __init__(self, caplog: Any):
        super().__init__()
        self.caplog = caplog
        self.lines_at_answer: list[str] | None = None

    async def answer(self, cid: str) -> None:
        self.lines_at_answer = [r.getMessage() for r in self.caplog.records]
        await super().answer(cid)


def _held_session(ari: FakeAri, pool: FakePool) -> CallSession:
    deps = CallDeps(ari=ari, pool=pool, redis=FakeRedis(),  # type: ignore[arg-type]
                    sounds_dir="/s", write_record=lambda s: asyncio.sleep(0))
    arrival = (logging.getLogger("callcenter.ari"), logging.INFO,
               "call=%s arrived dialled=%s", ("c1", "1022"))
    return CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps, held=[arrival])


async def test_given_new_call_when_admitted_then_its_lines_follow_the_answer_in_order(
        caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    ari = LoggedAtAnswer(caplog)
    await _run(_held_session(ari, FakePool()), cm.HungUp(T0, 16, "16 Normal Clearing"))
    assert ari.lines_at_answer == []  # nothing written before the answer was asked for
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["call=c1 arrived dialled=1022",
                         "call=c1 tenant=dongnai dialled=1022: routing -[Routed]-> admitting",
                         "call=c1 tenant=dongnai dialled=1022: admitting -[LineGranted]-> "
                         "greeting"]
    assert "call=c1 tenant=dongnai dialled=1022: greeting -[HungUp]-> ended" in lines


async def test_given_new_call_when_pool_fails_then_held_lines_come_before_the_error(
        caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    await _run(_held_session(FakeAri(), FakePool(acquire_fails=True)))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "call=c1 arrived dialled=1022"
    failed = next(i for i, line in enumerate(lines) if "AcquireLine failed" in line)
    routed = "call=c1 tenant=dongnai dialled=1022: routing -[Routed]-> admitting"
    assert lines.index(routed) < failed


class JoiningAcd:
    """The operators' queue answering ``enqueue_offer`` with a set offer (or none)."""

    instance = "inst-a"  # this instance

    def __init__(self, offer_for: str | None, owner: str = "inst-a") -> None:
        self.offer_for, self.owner = offer_for, owner  # the offered call and its instance

    async def enqueue_offer(self, tenant: str, cid: str, **kwargs: Any) -> tuple[bool, Any]:
        from callcenter.queue.redis import Offered
        from callcenter.queue.rules import QueueEntry
        if self.offer_for is None:
            return True, None
        entry = QueueEntry(self.offer_for, tenant, T0, 5, "0909", "pbx1", self.owner)
        return True, Offered(self.offer_for, "101", entry)

    async def dequeue(self, tenant: str, cid: str, reason: str) -> None:
        return None

    async def call_ended(self, tenant: str, ext: str, cid: str) -> None:
        return None

    def policy(self, tenant: str) -> Any:
        from callcenter.queue.policy import QueuePolicy
        return QueuePolicy(ring_timeout_s=15, wrap_up_s=0)


class RingingAri(QueueAri):
    async def originate(self, endpoint: str, channel: str, **kwargs: Any) -> dict[str, Any]:
        await self._do(f"originate:{endpoint}:{channel}:{kwargs['timeout_s']}")
        return {}


async def _queue_caller(acd: JoiningAcd) -> tuple[CallSession, RingingAri, list[tuple[str, ...]]]:
    """A caller queued at the end of the greeting; what the driver was told."""
    ari = RingingAri()
    told: list[tuple[str, ...]] = []

    async def write(state: cm.CallState) -> None:
        pass

    deps = CallDeps(ari=ari, pool=FakePool(), redis=FakeRedis(), sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, acd=acd,  # type: ignore[arg-type]
                    kick=lambda t: told.append(("kick", t)),
                    offered=lambda t, c, x: told.append(("offered", t, c, x)))
    session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps)
    session.task = asyncio.create_task(
        session.run([cm.Routed(T0, "dongnai", "day", 3, queue=True)]))
    await asyncio.sleep(0.02)
    session.events.put_nowait(cm.PlaybackFinished(T0))  # the greeting ended: to the queue
    await asyncio.sleep(0.05)
    return session, ari, told


async def _end(session: CallSession) -> None:
    session.events.put_nowait(cm.HungUp(T0, 16))
    assert session.task is not None
    await asyncio.wait_for(session.task, 2)


async def test_given_free_operator_when_caller_queued_then_rung_at_once_by_the_call() -> None:
    """P5: the offer made as the call joins comes back with the enqueue; the call rings the
    operator itself (music first), the driver only told that more offers may be possible."""
    session, ari, told = await _queue_caller(JoiningAcd(offer_for="c1"))
    assert session.state.phase is cm.Phase.RINGING and session.state.ringing == "101"
    # The music is asked for first; its answer is read once the operator is rung.
    assert ari.calls[-3:] == ["moh?", "originate:PJSIP/101:c1-op1:15", "moh"]
    assert told == [("kick", "dongnai")]
    assert session.task is not None
    session.task.cancel()  # (ending it would wait for the operator's leg to go)
    await asyncio.gather(session.task, return_exceptions=True)


async def test_given_offer_for_another_call_of_ours_when_queued_then_handed_to_the_driver(
        ) -> None:
    session, ari, told = await _queue_caller(JoiningAcd(offer_for="c0"))
    assert session.state.phase is cm.Phase.QUEUED
    assert not any(c.startswith("originate") for c in ari.calls)
    assert told == [("kick", "dongnai"), ("offered", "dongnai", "c0", "101")]
    await _end(session)


async def test_given_offer_for_another_instance_or_none_when_queued_then_nothing_rung() -> None:
    session, ari, told = await _queue_caller(JoiningAcd(offer_for="c9", owner="inst-b"))
    assert session.state.phase is cm.Phase.QUEUED and told == [("kick", "dongnai")]
    await _end(session)
    session, ari, told = await _queue_caller(JoiningAcd(offer_for=None))
    # No operator free: nothing for the driver to do until one is (it is told by that event).
    assert session.state.phase is cm.Phase.QUEUED and told == []
    assert not any(c.startswith("originate") for c in ari.calls)
    await _end(session)


async def test_given_caller_gone_when_music_answer_read_after_queueing_then_call_ends() -> None:
    """The music's answer is read after the queue entry: the caller gone by then (404) still
    ends the call, its place given back."""
    ari = RingingAri(gone_on={"moh"})
    written: list[cm.CallState] = []
    dequeued: list[str] = []

    class Acd(JoiningAcd):
        async def dequeue(self, tenant: str, cid: str, reason: str) -> None:
            dequeued.append(reason)

    async def write(state: cm.CallState) -> None:
        written.append(state)

    deps = CallDeps(ari=ari, pool=FakePool(), redis=FakeRedis(), sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, acd=Acd(offer_for=None))  # type: ignore[arg-type]
    session = CallSession(cm.new_call("c1", "pbx1", "1022", "0909", "c1", T0), deps)
    task = asyncio.create_task(session.run([cm.Routed(T0, "dongnai", "day", 3, queue=True)]))
    await asyncio.sleep(0.02)
    session.events.put_nowait(cm.PlaybackFinished(T0))
    await asyncio.wait_for(task, 2)
    assert ari.calls[-2:] == ["moh?", "moh"]
    assert dequeued == ["abandoned"] and [w.outcome for w in written] == ["abandoned"]
