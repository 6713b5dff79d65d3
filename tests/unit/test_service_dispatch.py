"""StasisService's routing of ARI events: each event type and each Stasis verb reaches its
handler, in the order of precedence; unknown events and verbs change nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import weakref
from typing import Any, cast

import pytest

from callcenter import calls as cm
from callcenter.ari_app import service as sv
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient
from callcenter.config.model import HotlineConfig
from callcenter.ivr import menu as mn
from callcenter.transfers.ari import TransferEvents

T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
CALL = "1765000000.7"
OP_LEG = f"{CALL}-op1"
UNIT_LEG = f"{CALL}-unit1"


class FakeAri:
    app = "hotline-test"

    def __init__(self) -> None:
        self.continued: list[str] = []

    async def continue_in_dialplan(self, channel_id: str) -> None:
        self.continued.append(channel_id)


class FakeListen:
    """The listen-in manager: what it was given; ``owns`` the channels it claims."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, list[str]]] = []
        self.events: list[str] = []
        self.owns: set[str] = set()

    async def on_start(self, channel: dict[str, Any], args: list[str]) -> bool:
        if args[:1] not in (["supervisor"], ["snoop"]):  # as ListenManager.on_start
            return False
        self.starts.append((channel["id"], args))
        return True

    async def on_event(self, event: dict[str, Any]) -> bool:
        self.events.append(str(event.get("type")))
        return event.get("channel", {}).get("id") in self.owns


Seen = list[tuple[str, Any]]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """The service's own handlers, replaced by recorders (before any service is built)."""
    calls: Seen = []

    def recorder(name: str) -> Any:
        async def handler(self: object, ch: dict[str, Any], arg: str) -> None:
            calls.append((name, (ch["id"], arg)))
        return handler

    async def on_transfer(self: TransferEvents, event: dict[str, Any]) -> None:
        calls.append(("transfer", event["referred_by"]))

    def on_new_call(self: sv.StasisService, ch: dict[str, Any]) -> None:
        calls.append(("new call", ch["id"]))

    monkeypatch.setattr(sv.StasisService, "_on_operator_answer", recorder("operator"))
    monkeypatch.setattr(TransferEvents, "on_unit_answer", recorder("unit"))
    monkeypatch.setattr(TransferEvents, "on_consult", recorder("consult"))
    monkeypatch.setattr(TransferEvents, "on_transfer", on_transfer)
    monkeypatch.setattr(sv.StasisService, "_on_new_call", on_new_call)
    return calls


def service(features: sv.FeatureHandler | None = None
            ) -> tuple[sv.StasisService, FakeAri, FakeListen]:
    ari = FakeAri()
    deps = CallDeps(ari=cast(AriClient, ari), pool=cast(Any, None), redis=cast(Any, None),
                    sounds_dir="/sounds", write_record=cast(Any, None))
    svc = sv.StasisService(cast(AriClient, ari), deps,
                           lambda: cast(HotlineConfig, None), features=features)
    listen = FakeListen()
    svc.listen = cast(Any, listen)
    return svc, ari, listen


def with_session(svc: sv.StasisService) -> CallSession:
    session = CallSession(cm.new_call(CALL, "pbx1", "1022", "0909000111", CALL, T0), svc.deps)
    svc.sessions[CALL] = session
    return session


def queued(session: CallSession) -> list[cm.Event]:
    out = []
    while not session.events.empty():
        out.append(session.events.get_nowait())
    return out


def start(channel: str, *args: str) -> dict[str, Any]:
    return {"type": "StasisStart", "channel": {"id": channel}, "args": list(args)}


# ---- StasisStart by verb ------------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (("operator", CALL), ("operator", ("leg", CALL))),
    (("unit", CALL), ("unit", ("leg", CALL))),
    (("consult", "02513822000"), ("consult", ("leg", "02513822000"))),
    ((), ("new call", "leg")),
    (("1022",), ("new call", "leg")),
    (("operator",), ("new call", "leg")),  # a verb without its call id: not one of our legs
    (("unit",), ("new call", "leg")),
])
async def test_given_stasis_args_then_the_verbs_handler(seen: Seen, args: tuple[str, ...],
                                                       expected: tuple[str, Any]) -> None:
    svc, _ari, listen = service()
    await svc.dispatch(start("leg", *args))
    assert seen == [expected]
    assert listen.starts == [] and listen.events == []


@pytest.mark.parametrize("args", [("supervisor", "c-sup1a2b3c"), ("snoop", "c-sup1a2b3c"),
                                  ("supervisor",)])
async def test_given_a_listen_leg_then_the_listen_manager_with_every_arg(
        seen: Seen, args: tuple[str, ...]) -> None:
    svc, _ari, listen = service()
    await svc.dispatch(start("leg", *args))
    assert listen.starts == [("leg", list(args))]
    assert seen == []


async def test_given_a_feature_code_then_its_own_task_with_every_arg(seen: Seen) -> None:
    got: list[tuple[str, list[str]]] = []

    async def features(ch: dict[str, Any], args: list[str]) -> None:
        got.append((ch["id"], args))

    svc, ari, _listen = service(features)
    await svc.dispatch(start("leg", "agent", "pause", "2"))
    await asyncio.gather(*svc._tasks)
    assert got == [("leg", ["agent", "pause", "2"])]
    assert seen == [] and ari.continued == []


async def test_given_a_feature_code_and_no_handler_then_back_to_the_dialplan(seen: Seen) -> None:
    svc, ari, _listen = service()
    await svc.dispatch(start("leg", "agent", "login"))
    assert ari.continued == ["leg"]
    assert seen == []


async def test_given_a_known_call_when_started_again_then_ignored(seen: Seen) -> None:
    svc, _ari, listen = service()
    with_session(svc)
    await svc.dispatch(start(CALL))
    await svc.dispatch(start(CALL, "supervisor", "x"))
    assert seen == [] and listen.starts == []


# ---- other events -------------------------------------------------------------------------

async def test_given_a_transfer_then_its_handler_before_the_listen_ins(seen: Seen) -> None:
    svc, _ari, listen = service()
    listen.owns.add(OP_LEG)
    await svc.dispatch({"type": "ChannelTransfer", "channel": {"id": OP_LEG},
                        "referred_by": {"source_channel": {"id": OP_LEG}}})
    assert seen == [("transfer", {"source_channel": {"id": OP_LEG}})]
    assert listen.events == []


async def test_given_a_listen_leg_event_then_not_the_calls(seen: Seen) -> None:
    svc, _ari, listen = service()
    session = with_session(svc)
    listen.owns.add(CALL)
    await svc.dispatch({"type": "ChannelDestroyed", "channel": {"id": CALL}, "cause": 16})
    assert listen.events == ["ChannelDestroyed"]
    assert queued(session) == []


async def test_given_a_calls_events_then_each_reaches_the_session(seen: Seen) -> None:
    svc, _ari, listen = service()
    session = with_session(svc)
    await svc.dispatch({"type": "PlaybackFinished",
                        "playback": {"id": f"{CALL}~7", "target_uri": f"channel:{CALL}"}})
    await svc.dispatch({"type": "ChannelDtmfReceived", "channel": {"id": CALL}, "digit": "5"})
    await svc.dispatch({"type": "ChannelHangupRequest", "channel": {"id": CALL}, "cause": 17})
    events = queued(session)
    assert [type(e) for e in events] == [cm.PlaybackFinished, mn.Digit]
    assert cast(cm.PlaybackFinished, events[0]).token == 7
    assert cast(mn.Digit, events[1]).digit == "5"
    assert session.cause_code == 17  # noted, nothing queued
    await svc.dispatch({"type": "ChannelDestroyed", "channel": {"id": CALL}, "cause": 16})
    [gone] = queued(session)
    assert isinstance(gone, cm.HungUp) and gone.cause_code == 16
    assert listen.events == ["PlaybackFinished", "ChannelDtmfReceived", "ChannelHangupRequest",
                             "ChannelDestroyed"]


async def test_given_stasis_end_then_the_call_ends_shortly_even_without_destroyed(
        seen: Seen) -> None:
    svc, _ari, _listen = service()
    session = with_session(svc)
    await svc.dispatch({"type": "StasisEnd", "channel": {"id": CALL}})
    assert queued(session) == []
    await asyncio.sleep(0.4)
    [gone] = queued(session)
    assert isinstance(gone, cm.HungUp)
    assert not svc._timers


async def test_given_stasis_end_when_its_timer_fired_then_nothing_keeps_the_session(
        seen: Seen) -> None:
    """No reference cycle through the timer: an ended call's session (state, menus, event
    queue) is freed as soon as the service lets go of it, not at the next full collection
    (bench/soak.py found ended sessions piling up until one)."""
    svc, _ari, _listen = service()
    session = with_session(svc)
    await svc.dispatch({"type": "StasisEnd", "channel": {"id": CALL}})
    gc.disable()
    try:
        await asyncio.sleep(0.4)
        [gone] = queued(session)
        assert isinstance(gone, cm.HungUp)
        del svc.sessions[CALL]
        ref = weakref.ref(session)
        del session, gone
        assert ref() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("event", [
    {"type": "ChannelVarset", "channel": {"id": CALL}, "variable": "X"},
    {"type": "ChannelStateChange", "channel": {"id": CALL}},
    {"type": "BridgeCreated", "bridge": {"id": "b1"}},
    {"type": "DeviceStateChanged"},
    {"channel": {"id": CALL}},
])
async def test_given_an_unknown_event_then_ignored(seen: Seen, event: dict[str, Any]) -> None:
    svc, _ari, listen = service()
    session = with_session(svc)
    await svc.dispatch(event)
    assert queued(session) == [] and seen == []
    assert listen.events == [str(event.get("type"))]  # the listen-ins still watch every event


@pytest.mark.parametrize("leg,kind", [(OP_LEG, cm.OperatorGone), (UNIT_LEG, cm.UnitGone)])
async def test_given_a_legs_end_then_the_call_hears_of_it(seen: Seen, leg: str,
                                                          kind: type) -> None:
    svc, _ari, _listen = service()
    session = with_session(svc)
    svc.deps.legs[leg] = CALL
    await svc.dispatch({"type": "ChannelStateChange", "channel": {"id": leg}})
    assert queued(session) == [] and svc.deps.legs == {leg: CALL}
    await svc.dispatch({"type": "ChannelDestroyed", "channel": {"id": leg}, "cause": 19})
    [gone] = queued(session)
    assert isinstance(gone, kind) and gone.channel == leg and gone.cause_code == 19
    assert svc.deps.legs == {}


def test_given_channel_ids_when_is_leg_then_only_our_operator_and_unit_legs() -> None:
    from callcenter.ari_app.service import is_leg

    assert is_leg("pbx-1796594552.1-op1") and is_leg("pbx-17.2-unit12")
    for not_leg in ("pbx-1796594552.1", "pbx-17.2-op", "op1", "pbx-17.2-sup3", "x-bridge",
                    "pbx-17.2-snoop1", "-op1"):
        assert not is_leg(not_leg), not_leg


class PeerAri(FakeAri):
    """A PBX where the peer application ``hotline-test-2`` still lists these channels."""

    def __init__(self, listed: list[str]) -> None:
        super().__init__()
        self.listed = listed
        self.moved: list[str] = []

    async def application_named(self, name: str) -> dict[str, Any] | None:
        return {"name": name, "channel_ids": list(self.listed)}

    async def move(self, channel_id: str, app: str) -> None:
        self.moved.append(channel_id)


class Alive:
    """Redis's liveness keys: present for the peers named."""

    def __init__(self, alive: set[str]) -> None:
        self.alive = alive

    async def exists(self, key: str) -> int:
        return int(key.removeprefix("hotline:stasis:") in self.alive)


class NotDegraded:
    degraded = False


async def test_given_peer_silent_when_grace_passed_then_its_channels_moved_once(
        seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(sv.time, "monotonic", lambda: clock[0])
    svc, _, _ = service()
    ari = PeerAri([CALL, OP_LEG, "already-ours"])
    svc.ari = cast(AriClient, ari)
    svc.peers = ("hotline-test-2",)
    redis = Alive({"hotline-test-2"})
    svc.deps.redis, svc.deps.pool = cast(Any, redis), cast(Any, NotDegraded())
    svc.connected.set()
    svc.sessions["already-ours"] = cast(Any, object())  # moved earlier, adopted: ours now
    assert await svc.take_over_peers() == 0  # the peer announces itself: alive
    redis.alive.clear()
    assert await svc.take_over_peers() == 0  # silent, but not yet for PEER_GRACE_S
    clock[0] += sv.PEER_GRACE_S
    assert await svc.take_over_peers() == 2
    assert ari.moved == [CALL, OP_LEG]  # never a channel we already serve
    assert await svc.take_over_peers() == 0  # asked once: adopted when its StasisStart comes
    assert ari.moved == [CALL, OP_LEG]
    # The moved call's StasisStart is an adoption, not a new citizen's call.
    adopted: list[str] = []

    async def adopt(self: sv.StasisService, ch: dict[str, Any]) -> None:
        adopted.append(ch["id"])

    monkeypatch.setattr(sv.StasisService, "_adopt_moved", adopt)
    await svc.dispatch(start(CALL))
    await svc.dispatch(start("1765000000.9"))  # a new call all the same
    assert adopted == [CALL] and seen == [("new call", "1765000000.9")]


# ---- adoption: the legs of an adopted call ------------------------------------------------
class SubscribingAri(FakeAri):
    """Subscriptions asked for; ``gone``: channels Asterisk no longer has (422, as ARI answers
    a subscription to an event source that does not exist)."""

    def __init__(self, gone: set[str] | None = None) -> None:
        super().__init__()
        self.gone = gone or set()
        self.subscribed: list[str] = []

    async def subscribe_channel(self, channel_id: str) -> None:
        from callcenter.ari_app.client import AriError
        if channel_id in self.gone:
            raise AriError("POST", "/applications/hotline-test/subscription", 422,
                           '{"message":"Provided channel was not found"}')
        self.subscribed.append(channel_id)


class SharedState:
    """Redis holding one call's shared state."""

    def __init__(self, state: cm.CallState) -> None:
        from callcenter.calls.codec import CALL_KEY, state_to_json
        self.data = {CALL_KEY.format(state.call_id): state_to_json(state)}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)


def _talking() -> cm.CallState:
    """A call talking with operator 101, as its dead instance left it in Redis."""
    import dataclasses
    return dataclasses.replace(
        cm.new_call(CALL, "pbx1", "1022", "0909000111", CALL, T0), phase=cm.Phase.BRIDGED,
        tenant_id="dongnai", shift="day", limit=3, line_held=True, answered_at=T0,
        queued_at=T0, queue_enabled=True, operator="101", operator_channel=OP_LEG, legs=1,
        bridge=f"{CALL}-bridge", bridged_at=T0)


def _adopting(ari: SubscribingAri, monkeypatch: pytest.MonkeyPatch,
              state: cm.CallState | None = None
              ) -> tuple[sv.StasisService, list[tuple[str, list[cm.Event]]]]:
    from types import SimpleNamespace

    svc, _, _ = service()
    svc.ari = cast(AriClient, ari)
    shared = state or _talking()
    svc.deps.redis, svc.deps.pool = cast(Any, SharedState(shared)), cast(Any, NotDegraded())
    config = SimpleNamespace(service=SimpleNamespace(node="pbx1"),
                             require_tenant=lambda t: SimpleNamespace(id=t, ivr=None))
    svc.config = lambda: cast(HotlineConfig, config)
    spawned: list[tuple[str, list[cm.Event]]] = []

    def spawn(self: sv.StasisService, session: CallSession, first: list[cm.Event]) -> None:
        spawned.append((session.call_id, first))

    monkeypatch.setattr(sv.StasisService, "_spawn", spawn)
    return svc, spawned


async def test_given_talking_call_adopted_then_our_app_subscribes_to_its_operator_leg(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Adopted from a dead instance, the operator's leg may be in no application of ours: its
    end must still reach us, or the call's end waits LEG_GONE_WAIT_S to free the operator."""
    ari = SubscribingAri()
    svc, spawned = _adopting(ari, monkeypatch)
    adopted: dict[str, list[str]] = {"dongnai": []}
    await svc._adopt(CALL, None, adopted, {"dongnai": []})
    assert adopted == {"dongnai": [CALL]} and ari.subscribed == [OP_LEG]
    assert svc.deps.legs == {OP_LEG: CALL}
    [(call_id, first)] = spawned
    assert call_id == CALL and [type(e) for e in first] == [cm.Resume]


async def test_given_talking_call_adopted_when_its_operator_leg_is_gone_then_call_told_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator hung up while no app served the call: its ChannelDestroyed was never read.
    The adopted call hears of it as it resumes (it ends), instead of talking to no one."""
    ari = SubscribingAri(gone={OP_LEG})
    svc, spawned = _adopting(ari, monkeypatch)
    await svc._adopt(CALL, None, {"dongnai": []}, {"dongnai": []})
    [(_, first)] = spawned
    assert [type(e) for e in first] == [cm.Resume, cm.OperatorGone]
    assert cast(cm.OperatorGone, first[1]).channel == OP_LEG
    assert svc.deps.legs == {}
    # What the call does with it: the caller is hung up, the operator freed at once.
    resumed, _ = cm.step(_talking(), first[0])
    closing, commands = cm.step(resumed, first[1])
    assert closing.phase is cm.Phase.CLOSING
    assert commands == [cm.EndOperatorCall("dongnai", "101", after=()), cm.Hangup("normal")]



# ---- adoption: a call whose operator answered as its instance died --------------------------
def _ringing() -> cm.CallState:
    """A call ringing operator 101, as its dead instance left it in Redis."""
    import dataclasses
    return dataclasses.replace(
        cm.new_call(CALL, "pbx1", "1022", "0909000111", CALL, T0), phase=cm.Phase.RINGING,
        tenant_id="dongnai", shift="day", limit=3, line_held=True, answered_at=T0,
        queued_at=T0, queue_enabled=True, ringing="101", operator_channel=OP_LEG, legs=1)


class BridgeAri(SubscribingAri):
    def __init__(self) -> None:
        super().__init__()
        self.destroyed: list[str] = []

    async def destroy_bridge(self, bridge_id: str) -> bool:
        self.destroyed.append(bridge_id)
        return True


class OneAgent:
    """The queue's view of operator 101."""

    def __init__(self, status: str, call_id: str) -> None:
        from callcenter.queue import agent as ag
        self.state = ag.AgentState("101", ag.AgentStatus(status), T0, reachable=True,
                                   call_id=call_id)

    async def agent(self, tenant: str, extension: str) -> Any:
        return self.state if (tenant, extension) == ("dongnai", "101") else None


async def test_given_ringing_call_whose_operator_answered_as_instance_died_then_connected(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between the queue's ``answered`` (the operator on this call, the call out of
    the queue) and sharing the call as bridged: resumed as ringing, the caller waited in a
    queue that no longer held it and the operator stayed on call for good (CI). The adopter
    connects them instead, in a fresh bridge."""
    ari = BridgeAri()
    svc, spawned = _adopting(ari, monkeypatch, _ringing())
    svc.deps.acd = cast(Any, OneAgent("on_call", CALL))
    await svc._adopt(CALL, None, {"dongnai": []}, {"dongnai": []})
    [(_, first)] = spawned
    assert first == [cm.OperatorAnswered(first[0].at, "101")]
    assert ari.destroyed == [cm.bridge_id(CALL)] and ari.subscribed == [OP_LEG]
    bridged, commands = cm.step(_ringing(), first[0])
    assert bridged.phase is cm.Phase.BRIDGED and bridged.operator == "101"
    [bridge] = [c for c in commands if isinstance(c, cm.BridgeOperator)]
    assert (bridge.bridge, bridge.operator_channel) == (cm.bridge_id(CALL), OP_LEG)


@pytest.mark.parametrize(("status", "call_id"), [("ringing", CALL), ("on_call", "other.1")])
async def test_given_ringing_call_not_answered_when_adopted_then_resumed_and_no_bridge_touched(
        monkeypatch: pytest.MonkeyPatch, status: str, call_id: str) -> None:
    ari = BridgeAri()
    svc, spawned = _adopting(ari, monkeypatch, _ringing())
    svc.deps.acd = cast(Any, OneAgent(status, call_id))
    await svc._adopt(CALL, None, {"dongnai": []}, {"dongnai": []})
    [(_, first)] = spawned
    assert [type(e) for e in first] == [cm.Resume] and ari.destroyed == []
