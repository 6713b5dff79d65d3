"""Listen-in (callcenter.ari_app.listen): what the manager asks of ARI for each mode, when it
cleans up, what it records in the audit log; and the audit store on SQLite."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, cast

import pytest

from callcenter import calls as cm
from callcenter.ari_app import listen as ls
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient, AriError
from callcenter.store.listen_audit import ListenAuditStore
from callcenter.store.migrate import upgrade_head

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
CALL = "1764000000.10"
OP_LEG = f"{CALL}-op1"
OPERATORS = ("101", "102", "109")


class FakeAri:
    """Records every ARI request; ``fail`` maps a method name to the error it raises."""

    app = "hotline-test"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, AriError] = {}
        self.bridges: list[dict[str, Any]] = []

    def _note(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise self.fail[call[0]]

    async def originate(self, endpoint: str, channel_id: str, **kw: Any) -> dict[str, Any]:
        self._note("originate", endpoint, channel_id, kw["app_args"])
        return {}

    async def answer(self, channel: str) -> None:
        self._note("answer", channel)

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        self._note("hangup", channel)

    async def create_bridge(self, bridge: str, kind: str = "mixing") -> None:
        self._note("create_bridge", bridge)

    async def add_to_bridge(self, bridge: str, channels: list[str]) -> None:
        self._note("add_to_bridge", bridge, tuple(channels))

    async def remove_from_bridge(self, bridge: str, channels: list[str]) -> None:
        self._note("remove_from_bridge", bridge, tuple(channels))

    async def destroy_bridge(self, bridge: str) -> bool:
        self._note("destroy_bridge", bridge)
        return True

    async def snoop(self, channel: str, snoop_id: str, *, spy: str, whisper: str,
                    app_args: str) -> dict[str, Any]:
        self._note("snoop", channel, snoop_id, spy, whisper, app_args)
        return {}

    async def request(self, method: str, path: str, **params: Any) -> Any:
        self._note("request", method, path)
        return self.bridges

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeAudit:
    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def requested(self, **kw: Any) -> int:
        self.rows[len(self.rows) + 1] = dict(kw)
        return len(self.rows)

    def started(self, id: int, at: dt.datetime) -> None:
        self.rows[id]["started"] = at

    def ended(self, id: int, at: dt.datetime, reason: str) -> None:
        self.rows[id]["ended"], self.rows[id]["reason"] = at, reason


async def _direct(fn: Any, *args: Any, **kw: Any) -> Any:
    return fn(*args, **kw)


def bridged_session(phase: cm.Phase = cm.Phase.BRIDGED) -> CallSession:
    state = dataclasses.replace(
        cm.new_call(CALL, "testpbx", "1022", "0909000111", CALL, T0), phase=phase,
        tenant_id="dongnai", operator="101", operator_channel=OP_LEG,
        bridge=f"{CALL}-bridge")
    return CallSession(state, cast(CallDeps, None))


def manager(session: CallSession) -> tuple[ls.ListenManager, FakeAri]:
    ari = FakeAri()
    return ls.ListenManager(cast(AriClient, ari), {CALL: session}, clock=lambda: T0,
                            in_thread=_direct), ari


def destroyed(channel: str) -> dict[str, Any]:
    return {"type": "ChannelDestroyed", "channel": {"id": channel}, "cause": 16}


# -- pure rules --------------------------------------------------------------------------------
def test_given_bridged_call_when_refusal_asked_then_only_unknown_unbridged_or_own_refused() -> None:
    s = bridged_session().state
    assert ls.refusal_for(s, "109", OPERATORS) is None
    assert ls.refusal_for(s, "555", OPERATORS) == ls.UNKNOWN_EXTENSION
    assert ls.refusal_for(s, "101", OPERATORS) == ls.OWN_CALL
    assert ls.refusal_for(bridged_session(cm.Phase.QUEUED).state, "109",
                          OPERATORS) == ls.NOT_BRIDGED
    assert set(ls.MESSAGES) >= {ls.UNKNOWN_EXTENSION, ls.OWN_CALL, ls.NOT_BRIDGED, ls.BUSY}


def test_given_modes_then_listen_hears_both_silently_and_whisper_speaks_to_operator() -> None:
    assert ls.snoop_params("listen") == ("both", "none")
    assert ls.snoop_params("whisper") == ("both", "out")


# -- the manager -------------------------------------------------------------------------------
async def _connect(mode: str) -> tuple[ls.ListenManager, FakeAri, FakeAudit, ls.Listen]:
    m, ari = manager(bridged_session())
    audit = FakeAudit()
    li = await m.start(bridged_session(), supervisor="giamsat", extension="109", mode=mode,
                       operators=OPERATORS, audit=audit)
    await m.on_start({"id": li.id}, ["supervisor", li.id])
    return m, ari, audit, li


async def test_given_listen_when_supervisor_answers_then_snoop_on_operator_in_own_bridge() -> None:
    m, ari, audit, li = await _connect("listen")
    assert ari.of("originate") == [("originate", "PJSIP/109", li.id, f"supervisor,{li.id}")]
    assert li.id.startswith(f"{CALL}-sup") and ls.OWN_CHANNEL.match(li.id)
    tag = li.id.rpartition("-sup")[2]
    bridge, snoop = f"{CALL}-listen{tag}", f"{CALL}-snoop{tag}"
    assert ari.of("answer") == [("answer", li.id)]
    assert ari.of("create_bridge") == [("create_bridge", bridge)]
    assert ari.of("snoop") == [("snoop", OP_LEG, snoop, "both", "none", f"snoop,{li.id}")]
    # The call's own bridge is never touched in listen mode.
    assert all(c[1] != f"{CALL}-bridge" for c in ari.calls if c[0].endswith("bridge"))
    assert await m.on_start({"id": snoop}, ["snoop", li.id]) is True
    assert ari.of("add_to_bridge") == [("add_to_bridge", bridge, (li.id,)),
                                       ("add_to_bridge", bridge, (snoop,))]
    row = audit.rows[1]
    assert (row["supervisor"], row["extension"], row["operator"], row["mode"], row["call_id"],
            row["started"]) == ("giamsat", "109", "101", "listen", CALL, T0)
    assert "0909000111" not in repr(row)
    # The caller hangs up: everything of the listen-in goes, the audit row is closed.
    ari.calls.clear()
    assert await m.on_event(destroyed(CALL)) is False  # the call's own task handles it too
    assert ari.calls == [("hangup", li.id), ("hangup", snoop), ("destroy_bridge", bridge)]
    assert audit.rows[1]["reason"] == "call ended" and not m.listens


async def test_given_whisper_when_supervisor_answers_then_snoop_whispers_out() -> None:
    _m, ari, _audit, li = await _connect("whisper")
    (snoop,) = ari.of("snoop")
    assert snoop[3:5] == ("both", "out")


async def test_given_barge_when_supervisor_answers_then_joins_call_bridge_and_leaves_it() -> None:
    m, ari, audit, li = await _connect("barge")
    assert ari.of("add_to_bridge") == [("add_to_bridge", f"{CALL}-bridge", (li.id,))]
    assert not ari.of("snoop") and not ari.of("create_bridge")
    ari.calls.clear()
    assert await m.on_event({"type": "StasisEnd", "channel": {"id": li.id}}) is True
    assert ari.calls == [("remove_from_bridge", f"{CALL}-bridge", (li.id,)),
                         ("hangup", li.id)]  # the call's bridge stays for caller and operator
    assert audit.rows[1]["reason"] == "supervisor hung up"


async def test_given_listen_when_operator_leg_ends_then_listen_ends() -> None:
    m, ari, audit, li = await _connect("listen")
    await m.on_event(destroyed(OP_LEG))
    assert audit.rows[1]["reason"] == "operator left" and not m.listens


async def test_given_supervisor_not_answering_when_leg_destroyed_then_audit_no_answer() -> None:
    m, ari = manager(bridged_session())
    audit = FakeAudit()
    li = await m.start(bridged_session(), supervisor="giamsat", extension="109",
                       mode="listen", operators=OPERATORS, audit=audit)
    assert await m.on_event(destroyed(li.id)) is True
    assert audit.rows[1]["reason"] == "no answer" and "started" not in audit.rows[1]
    # A StasisStart arriving after that is hung up, nothing else.
    ari.calls.clear()
    assert await m.on_start({"id": li.id}, ["supervisor", li.id]) is True
    assert ari.calls == [("hangup", li.id)]


async def test_given_extension_listening_when_second_request_then_busy() -> None:
    m, ari, _audit, li = await _connect("listen")
    with pytest.raises(ls.ListenRefused) as e:
        await m.start(bridged_session(), supervisor="giamsat", extension="109",
                      mode="whisper", operators=OPERATORS, audit=None)
    assert e.value.id == ls.BUSY and len(ari.of("originate")) == 1


async def test_given_phone_unreachable_when_start_then_ring_failed_and_audit_closed() -> None:
    m, ari = manager(bridged_session())
    ari.fail["originate"] = AriError("POST", "/channels/x", 500, "Allocation failed")
    audit = FakeAudit()
    with pytest.raises(ls.ListenRefused) as e:
        await m.start(bridged_session(), supervisor="giamsat", extension="109",
                      mode="listen", operators=OPERATORS, audit=audit)
    assert e.value.id == ls.RING_FAILED and not m.listens
    assert audit.rows[1]["reason"] == "ring failed"


async def test_given_listen_when_stopped_then_ended_and_call_untouched() -> None:
    m, ari, audit, li = await _connect("whisper")
    ari.calls.clear()
    assert [x.id for x in await m.stop(CALL, "stopped by giamsat")] == [li.id]
    assert ("hangup", CALL) not in ari.calls and ("hangup", OP_LEG) not in ari.calls
    assert audit.rows[1]["reason"] == "stopped by giamsat"
    assert await m.stop(CALL) == []


async def test_given_other_events_when_no_listen_then_not_ours() -> None:
    m, _ari = manager(bridged_session())
    assert await m.on_event(destroyed(CALL)) is False
    assert await m.on_start({"id": CALL}, []) is False
    assert await m.on_start({"id": "x"}, ["operator", CALL]) is False


async def test_given_leftover_listen_legs_when_reconcile_then_hung_up_and_not_calls() -> None:
    m, ari = manager(bridged_session())
    stale = f"{CALL}-supabc123"
    ari.bridges = [{"id": f"{CALL}-listenabc123"}, {"id": f"{CALL}-bridge"}]
    ours = await m.reconcile({CALL: {}, stale: {}, f"{CALL}-snoopabc123": {}})
    assert ours == {stale, f"{CALL}-snoopabc123"}
    assert ("hangup", stale) in ari.calls
    assert ari.of("destroy_bridge") == [("destroy_bridge", f"{CALL}-listenabc123")]


# -- the audit store ---------------------------------------------------------------------------
def test_given_sqlite_when_use_recorded_then_requested_started_ended_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/listen.db"
    upgrade_head(url)
    store = ListenAuditStore(url)
    try:
        rid = store.requested(tenant="dongnai", node="testpbx", call_id=CALL,
                              supervisor="giamsat", extension="109", operator="101",
                              mode="whisper", at=T0)
        store.started(rid, T0 + dt.timedelta(seconds=3))
        store.ended(rid, T0 + dt.timedelta(seconds=60), "supervisor hung up")
        store.ended(rid, T0 + dt.timedelta(seconds=90), "again")  # the first end stands
        (use,) = store.recent("dongnai", call_id=CALL)
        assert (use.mode, use.operator, use.started_at, use.ended_at, use.end_reason) == (
            "whisper", "101", T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=60),
            "supervisor hung up")
        assert store.recent("other") == []
        with pytest.raises(ValueError):
            store.requested(tenant="dongnai", node=None, call_id=CALL, supervisor="g",
                            extension="109", operator=None, mode="shout", at=T0)
    finally:
        store.close()
