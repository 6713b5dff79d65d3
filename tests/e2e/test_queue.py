"""End to end: the operators' queue on a real Asterisk with registered pjsua2 operator phones.

One stack for the module (two operators, 101 and 102, short queue timings and a one-word
greeting), the two operator phones reused by every test. Each test starts with both operators
logged out and no call anywhere, and ends with nothing left: no channel or bridge in Asterisk,
no line held, no call queued, no operator ringing or on a call.

Agent states and the queue are read straight from Redis with ``AcdQueue.snapshot`` (what
``callcenter queue --json`` prints; the CLI itself is run where the test is about it: a CLI
process costs seconds on a busy machine). Records are read with ``CallRecordStore`` (what
``callcenter calls --json`` prints).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from callcenter.calls.codec import CALL_KEY, state_from_json, state_to_json
from callcenter.calls.state import Phase
from callcenter.ops.processes import spawn
from callcenter.queue import agent as ag
from callcenter.queue.redis import EVENTS
from tests.e2e.line_release import hang_up_and_time_release
from tests.e2e.phones import OperatorPhone
from tests.e2e.scenarios import (
    TENANT,
    agent_event,
    agents,
    assert_nothing_left,
    configure_tenant,
    grows,
    ivr_in_force,
    record,
    running,
    since,
    snap,
)
from tests.e2e.stack import ROOT, Stack, free_port, readiness_summary, wait_until
from tests.support.config_files import config_data

STASIS_APP = "hotline-test"  # tests/e2e/stack.py base_config
OPERATORS = {"101": "queue-e2e-101-pw", "102": "queue-e2e-102-pw"}
RING_S = 5  # the config's lowest ring timeout
WRAP_S = 2
MAX_WAIT_S = 30  # the config's lowest max wait: the callback offer comes after 30 s
POLICY = {"ring_timeout_s": RING_S, "retry_s": 1, "wrap_up_s": WRAP_S,
          "max_wait_s": MAX_WAIT_S, "announce_every_s": 4, "callback_offer": True}

# The IVR of the urgent-call test: 1 = urgent health (ahead in the queue), 2 = an operator.
URGENT_TREE = {
    "root": "main", "timeout": 5, "retries": 1, "inter_digit": 1, "fallback": "normal",
    "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 1 khẩn cấp. Bấm 2 gặp tổng đài viên.",
                 "options": {"1": "urgent", "2": "normal"}},
        "urgent": {"type": "operator", "urgent": True, "prompt": "Ưu tiên."},
        "normal": {"type": "operator", "prompt": "Xin giữ máy."},
    },
}


# ---- the queue in Redis ----------------------------------------------------------------------
def login(stack: Stack, *exts: str) -> None:
    """Log operators in, in this order (each later one has been idle for less time)."""
    for ext in exts:
        agent_event(stack, ext, ag.LogIn())
        time.sleep(0.05)  # distinct idle_since: the order is the longest-idle order


def call_ids(stack: Stack) -> dict[str, str]:
    """Caller number -> call id of the queued calls."""
    return {c["caller"]: c["call_id"] for c in snap(stack)["calls"]}


def wait_queued(stack: Stack, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        calls = snap(stack)["calls"]
        return list(calls) if len(calls) >= n else None

    calls = wait_until(enough, timeout, 0.1)
    assert calls and len(calls) >= n, (snap(stack), stack.app_log_tail())
    return list(calls)


# ---- phone events since a mark ----------------------------------------------------------------
def wait_since(phone: OperatorPhone, mark: int, kind: str, n: int = 1, timeout: float = 15.0,
               **match: Any) -> list[dict[str, Any]]:
    found = wait_until(lambda: len(since(phone, mark, kind, **match)) >= n, timeout, 0.02)
    return since(phone, mark, kind, **match) if found else []


def shared_phase(stack: Stack, call_id: str) -> str | None:
    """The call's phase as the app shares it in Redis for an adopter (None: not shared)."""
    client = redis.Redis.from_url(stack.redis.url)
    try:
        raw = client.get(CALL_KEY.format(call_id))
    finally:
        client.close()
    return state_from_json(raw).phase.value if raw else None


def ring(phone: OperatorPhone, mark: int, timeout: float = 15.0) -> dict[str, Any]:
    """The next incoming call on ``phone`` since ``mark`` (asserted)."""
    got = wait_since(phone, mark, "incoming", 1, timeout)
    assert got, f"operator {phone.extension} never rang: {phone.events[mark:]}"
    return got[0]


def feature(stack: Stack, phone: OperatorPhone, code: str) -> dict[str, Any]:
    """Dial a feature code; the call is answered, plays the confirmation and ends."""
    mark = len(phone.events)
    phone.dial(code)
    (dialing,) = wait_since(phone, mark, "dialing", 1, 5)
    (down,) = wait_since(phone, mark, "disconnected", 1, 30, index=dialing["index"])
    assert since(phone, mark, "confirmed", index=dialing["index"]), phone.events[mark:]
    return down


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: operators 101 and 102, short queue timings, a short greeting."""
    s = Stack(Path(tmp_path_factory.mktemp("queue")), operators=OPERATORS)
    tenant = config_data("e2e_operator_tenant.yaml")
    tenant["queue"] = dict(POLICY)
    configure_tenant(s, **tenant)
    with running(s):
        yield s


@pytest.fixture(scope="module")
def ops(qstack: Stack) -> Iterator[dict[str, OperatorPhone]]:
    """The operators' phones, registered; they ring until the test answers."""
    phones: dict[str, OperatorPhone] = {}
    try:
        for ext in OPERATORS:
            phones[ext] = qstack.operator_phone(ext)
            assert phones[ext].wait_registered() == 200
        assert wait_until(lambda: all(a["reachable"] for a in agents(qstack).values()), 15), (
            agents(qstack))
        yield phones
    finally:
        for p in phones.values():
            p.close()


@pytest.fixture
def q(qstack: Stack, ops: dict[str, OperatorPhone]) -> Iterator[Stack]:
    """Both operators logged out and reachable before; nothing left in Asterisk, the pool or the
    queue after."""
    assert wait_until(lambda: all(a["state"] in ("logged_out", "available", "paused")
                                  for a in agents(qstack).values()), WRAP_S + 5), agents(qstack)
    for ext, a in agents(qstack).items():
        if a["state"] != "logged_out":
            agent_event(qstack, ext, ag.LogOut())
    assert wait_until(lambda: all(a["reachable"] for a in agents(qstack).values()), 10)
    try:
        yield qstack
        assert_nothing_left(qstack)
        assert wait_until(lambda: not snap(qstack)["calls"], 5), snap(qstack)["calls"]
        busy = [a for a in snap(qstack)["agents"] if a["state"] in ("ringing", "on_call")]
        assert not busy, busy
    finally:
        for phone in ops.values():
            phone.hangup()  # whatever a failed test left ringing or talking


# ---- tests -------------------------------------------------------------------------------------
def test_given_operators_when_logging_in_by_feature_code_and_cli_then_available_and_reachable(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    down = feature(q, ops["101"], "*11")
    assert down["rtp_rx"] > 25, down  # the Vietnamese confirmation was heard
    assert agents(q)["101"]["state"] == "available"
    assert q.logged("extension=101 tenant=dongnai action=login result=ok available", 200), (
        q.app_log_tail())

    out = q.cli("agent", "login", "102", "--json")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert (done["extension"], done["action"], done["agent"]["state"]) == (
        "102", "login", "available")

    out = q.cli("queue", "--json")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    s = json.loads(line)
    assert s["tenant"] == TENANT
    by_ext = {a["extension"]: a for a in s["agents"]}
    assert {e: (a["state"], a["reachable"]) for e, a in by_ext.items()} == {
        "101": ("available", True), "102": ("available", True)}
    assert s["counts"]["agents_free"] == 2 and s["counts"]["queued"] == 0


def test_given_two_free_operators_when_a_call_queues_then_the_longest_idle_rings(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    login(q, "102", "101")  # 102 has waited longer
    marks = {e: len(p.events) for e, p in ops.items()}
    caller = q.phone("1022", caller="0918100001")
    try:
        inc = ring(ops["102"], marks["102"])
        assert "0918100001" in inc["remote_uri"]
        assert not since(ops["101"], marks["101"], "incoming")
        ops["102"].answer(inc["index"])
        assert wait_until(lambda: agents(q)["102"]["state"] == "on_call", 5)
        assert not since(ops["101"], marks["101"], "incoming")
    finally:
        caller.finish()
    rec = record(q, caller="0918100001", last=50)
    assert (rec["outcome"], rec["operator"], rec["no_answers"]) == ("answered", "102", 0)
    assert wait_since(ops["102"], marks["102"], "disconnected", index=inc["index"])


def test_given_paused_operator_when_a_call_queues_then_only_the_other_rings(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    login(q, "101", "102")  # 101 would be first
    down = feature(q, ops["101"], "*13")  # pause, first reason
    assert down["rtp_rx"] > 25, down
    a = agents(q)["101"]
    assert (a["state"], a["reason"]) == ("paused", "break"), a
    marks = {e: len(p.events) for e, p in ops.items()}
    caller = q.phone("1022", caller="0918100002")
    try:
        inc = ring(ops["102"], marks["102"])
        ops["102"].answer(inc["index"])
        assert wait_until(lambda: agents(q)["102"]["state"] == "on_call", 5)
    finally:
        caller.finish()
    assert not since(ops["101"], marks["101"], "incoming")
    assert record(q, caller="0918100002", last=50)["operator"] == "102"
    assert agents(q)["101"]["state"] == "paused"


def test_given_ring_no_answer_when_ring_timeout_passes_then_next_operator_and_place_kept(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    login(q, "101", "102")  # 101 first; its phone will not answer
    marks = {e: len(p.events) for e, p in ops.items()}
    caller = q.phone("1022", caller="0918100003")
    try:
        first = ring(ops["101"], marks["101"])
        assert not since(ops["102"], marks["102"], "incoming")
        (gone,) = wait_since(ops["101"], marks["101"], "disconnected", 1, RING_S + 5,
                             index=first["index"])
        rang_s = gone["t"] - first["t"]
        assert RING_S - 1 <= rang_s <= RING_S + 2, rang_s
        second = ring(ops["102"], marks["102"], 5)
        assert "0918100003" in second["remote_uri"]
        assert caller.of("disconnected") == [], "the caller lost the call"
        (waiting,) = snap(q)["calls"]
        assert waiting["offered_to"] == ["101", "102"] and waiting["position"] == 1
        ops["102"].answer(second["index"])
        assert wait_until(lambda: agents(q)["102"]["state"] == "on_call", 5)
        assert agents(q)["101"]["state"] == "available"  # no auto-pause configured
    finally:
        caller.finish()
    rec = record(q, caller="0918100003", last=50)
    assert (rec["outcome"], rec["operator"]) == ("answered", "102")
    assert rec["no_answers"] >= 1


def test_given_call_ended_when_wrap_up_then_operator_not_offered_until_it_passes(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    login(q, "101")
    op = ops["101"]
    mark = len(op.events)
    first = q.phone("1022", caller="0918100004")
    second = None
    try:
        inc = ring(op, mark)
        op.answer(inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
        second = q.phone("1022", caller="0918100005")
        wait_queued(q, 1)  # waits while 101 talks
        op.hangup(inc["index"])  # the operator ends the first call
        (ended,) = wait_since(op, mark, "disconnected", 1, 5, index=inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "wrap_up", 2), agents(q)
        assert agents(q)["101"]["wrap_up_until_ms"] is not None
        nxt = wait_since(op, mark, "incoming", 2, WRAP_S + 5)[1]
        waited = nxt["t"] - ended["t"]
        assert WRAP_S - 0.2 <= waited <= WRAP_S + 3, waited
        assert "0918100005" in nxt["remote_uri"]
        op.answer(nxt["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
    finally:
        first.finish()
        if second is not None:
            second.finish()
    rec = record(q, caller="0918100004", last=50)
    assert rec["wrap_up_s"] == WRAP_S and rec["talk_ended_at"]
    assert record(q, caller="0918100005", last=50)["operator"] == "101"


def talking_then_killed(q: Stack, op: OperatorPhone, mark: int) -> tuple[dict[str, Any], str]:
    """Operator 101 logged in answers the call ringing since ``mark``; once the call is shared
    as talking, the app is SIGKILLed (the queue has the operator on the call a moment before:
    a kill in between is the unit test's
    test_given_ringing_call_whose_operator_answered_as_instance_died_then_connected). The
    phone's incoming call and the call's id."""
    login(q, "101")
    inc = ring(op, mark)
    op.answer(inc["index"])
    assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
    call_id = str(agents(q)["101"]["call_id"])
    assert wait_until(lambda: shared_phase(q, call_id) == "bridged", 5), q.app_log_tail()
    q.kill_app(signal.SIGKILL)
    return inc, call_id


def test_given_talking_call_adopted_after_restart_when_caller_leaves_then_operator_freed_at_once(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    """The restarted app adopts the talking call (its operator's leg included): when the caller
    hangs up, the operator is freed as soon as the phone's leg is gone, not after the bounded
    wait for a leg whose end the app never hears (EndOperatorCall.after, LEG_GONE_WAIT_S)."""
    op = ops["101"]
    mark = len(op.events)
    caller = q.phone("1022", caller="0918100013")
    try:
        inc, _ = talking_then_killed(q, op, mark)
        q.start_app()
        assert q.logged("adopted in phase bridged", 400, 15), q.app_log_tail()
        assert grows(op, inc["index"]), "the adopted call's audio stopped"
        caller.send("hangup")
        (down,) = wait_since(op, mark, "disconnected", 1, 5, index=inc["index"])
        # Wrap-up (2 s) starts once the leg is gone: well before the 5 s bounded wait ends.
        assert wait_until(lambda: agents(q)["101"]["state"] in ("wrap_up", "available"), 3), (
            agents(q), q.app_log_tail())
    finally:
        caller.finish()
    rec = record(q, caller="0918100013", last=50)
    assert rec["operator"] == "101" and rec["outcome"] == "answered", rec
    assert "not gone after" not in q.app_log_tail(400), q.app_log_tail()


def test_given_app_killed_as_operator_answered_when_restarted_then_connected_again_and_freed(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    """The window CI hit once: killed after the queue put the operator on the call (and took
    it out of the queue) but before the call was shared as bridged. Made here on purpose: the
    call bridged, the app killed, its shared state put back to what it was in that window
    (ringing 101, no bridge recorded) while the real bridge stays in Asterisk. The restarted
    app connects caller and operator again (a fresh bridge, the old one destroyed), and when
    the caller hangs up the operator is freed; nothing is left."""
    op = ops["101"]
    mark = len(op.events)
    caller = q.phone("1022", caller="0918100014")
    try:
        inc, call_id = talking_then_killed(q, op, mark)
        client = redis.Redis.from_url(q.redis.url)
        try:
            talking = state_from_json(client.get(CALL_KEY.format(call_id)) or b"")
            answering = dataclasses.replace(
                talking, phase=Phase.RINGING, ringing="101", operator=None, bridge=None,
                bridged_at=None, recording=None)
            client.set(CALL_KEY.format(call_id), state_to_json(answering))
        finally:
            client.close()
        before = len(q.app_log.read_text(errors="replace"))
        q.start_app()

        def logged_since(text: str) -> bool:
            return text in q.app_log.read_text(errors="replace")[before:]

        assert wait_until(lambda: logged_since(
            f"call={call_id}: operator 101 had answered as the instance"), 15, 0.1), (
            q.app_log_tail())
        assert wait_until(lambda: logged_since(
            f"call={call_id} tenant={TENANT} dialled=1022: bridged with operator 101"), 5, 0.1), (
            q.app_log_tail())
        assert grows(op, inc["index"]), "no audio after the call was connected again"
        assert [b["id"] for b in q.ari("/bridges")] == [f"{call_id}-bridge"]
        caller.send("hangup")
        wait_since(op, mark, "disconnected", 1, 5, index=inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] in ("wrap_up", "available"), 3), (
            agents(q), q.app_log_tail())
    finally:
        caller.finish()
    rec = record(q, caller="0918100014", last=50)
    assert rec["operator"] == "101" and rec["outcome"] == "answered", rec


@pytest.fixture
def urgent_ivr(q: Stack) -> Iterator[Stack]:
    """The tenant with a two-key menu: 1 urgent, 2 an operator (switched off afterwards)."""
    q.config_data["tenants"][0]["ivr"] = URGENT_TREE
    q.write_config(q.config_data)
    try:
        assert wait_until(lambda: ivr_in_force(q)[0]["root"] == "main", 20, 0.2), (
            q.app_log_tail())
        yield q
    finally:
        del q.config_data["tenants"][0]["ivr"]
        q.write_config(q.config_data)
        assert wait_until(lambda: ivr_in_force(q)[0]["root"] is None, 20, 0.2)


def test_given_normal_call_waiting_when_urgent_call_queues_then_urgent_is_bridged_first(
        urgent_ivr: Stack, ops: dict[str, OperatorPhone]) -> None:
    q = urgent_ivr
    normal = q.phone("1022", caller="0918100006")
    urgent = None
    try:
        assert normal.wait_for("answered", 1)
        time.sleep(0.5)
        normal.send("dtmf 2")
        wait_queued(q, 1)
        urgent = q.phone("1022", caller="0918100007")
        assert urgent.wait_for("answered", 1)
        time.sleep(0.5)
        urgent.send("dtmf 1")
        calls = wait_queued(q, 2)
        assert [(c["caller"], c["urgent"], c["position"]) for c in calls] == [
            ("0918100007", True, 1), ("0918100006", False, 2)]
        mark = len(ops["101"].events)
        login(q, "101")
        inc = ring(ops["101"], mark)
        assert "0918100007" in inc["remote_uri"]
        ops["101"].answer(inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
        (left,) = snap(q)["calls"]
        assert left["caller"] == "0918100006" and left["position"] == 1
    finally:
        normal.finish()
        if urgent is not None:
            urgent.finish()
    assert record(q, caller="0918100007", last=50)["operator"] == "101"
    rec = record(q, caller="0918100006", last=50)
    assert rec["outcome"] == "abandoned" and rec["operator"] is None


def test_given_queued_caller_then_music_while_waiting_and_audio_both_ways_once_bridged(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    # The citizen's phone sends a tone too, so the operator's side has something to receive.
    citizen = OperatorPhone(None, "0918100008", "unused")
    op = ops["101"]
    try:
        citizen.dial(f"sip:1022@127.0.0.1:{q.sip_port}")
        assert citizen.wait_for("confirmed", 1, 10), citizen.events
        wait_queued(q, 1)
        start = citizen.rtp_rx(0)
        time.sleep(1.5)
        waiting = citizen.rtp_rx(0)
        assert waiting > start + 40, (start, waiting)  # music on hold (or an announcement)
        mark = len(op.events)
        login(q, "101")
        inc = ring(op, mark)
        op.answer(inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
        assert wait_until(lambda: op.rtp_rx(inc["index"]) > 50, 5), op.events[mark:]
        bridged = citizen.rtp_rx(0)
        assert wait_until(lambda: citizen.rtp_rx(0) > bridged + 50, 5)
        assert op.rtp_tx(inc["index"]) > 50 and citizen.rtp_tx(0) > 50
        citizen.hangup(0)
        (down,) = wait_since(op, mark, "disconnected", 1, 5, index=inc["index"])
        assert down["rtp_rx"] > 50
    finally:
        citizen.close()
    rec = record(q, caller="0918100008", last=50)
    assert rec["operator"] == "101" and rec["recording"]


def test_given_caller_leaves_while_waiting_or_ringing_then_line_free_in_1s_abandoned_op_freed(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    waiting = q.phone("1022", caller="0918100009")
    wait_queued(q, 1)
    hang_up_and_time_release(q, lambda: waiting.send("hangup"), "queued, no operator free")
    waiting.finish()
    assert wait_until(lambda: not snap(q)["calls"], 3), snap(q)
    rec = record(q, caller="0918100009", last=50)
    assert rec["outcome"] == "abandoned" and rec["queued_at"]

    login(q, "101")
    op = ops["101"]
    mark = len(op.events)
    ringing = q.phone("1022", caller="0918100010")
    inc = ring(op, mark)
    hang_up_and_time_release(q, lambda: ringing.send("hangup"), "an operator's phone ringing")
    ringing.finish()
    # The operator's phone stops ringing: Asterisk withdraws the INVITE (CANCEL, 487).
    (gone,) = wait_since(op, mark, "disconnected", 1, 5, index=inc["index"])
    assert gone["code"] == 487, gone
    assert not since(op, mark, "confirmed")
    assert wait_until(lambda: agents(q)["101"]["state"] == "available", 3), agents(q)
    rec = record(q, caller="0918100010", last=50)
    assert rec["outcome"] == "abandoned" and rec["operator"] is None


def test_given_operator_phone_unregistered_then_call_waits_and_is_offered_once_registered(
        q: Stack, ops: dict[str, OperatorPhone]) -> None:
    op = ops["101"]
    login(q, "101")
    op.unregister()
    assert op.wait_registered() == 200
    assert wait_until(lambda: agents(q)["101"]["reachable"] is False, 10), agents(q)
    mark = len(op.events)
    caller = q.phone("1022", caller="0918100011")
    try:
        wait_queued(q, 1)
        time.sleep(2.0)  # two offer ticks
        assert not since(op, mark, "incoming")
        (waiting,) = snap(q)["calls"]
        assert waiting["state"] == "waiting" and waiting["offered_to"] == []
        op.register()
        assert op.wait_registered() == 200
        inc = ring(op, mark, 10)
        op.answer(inc["index"])
        assert wait_until(lambda: agents(q)["101"]["state"] == "on_call", 5)
    finally:
        caller.finish()
        if agents(q)["101"]["reachable"] is False:
            op.register()
    assert record(q, caller="0918100011", last=50)["operator"] == "101"


def test_given_long_wait_when_caller_presses_1_then_callback_recorded_and_listed(
        q: Stack) -> None:
    caller = q.phone("1022", caller="0918100012", hold=MAX_WAIT_S + 40)
    try:
        wait_queued(q, 1)
        offered = wait_until(lambda: snap(q)["calls"][0]["callback_offers"] >= 1,
                             MAX_WAIT_S + 10, 0.2)
        assert offered, q.app_log_tail()
        time.sleep(1.0)  # the offer is being said
        caller.send("dtmf 1")
        pressed = time.monotonic()
        assert caller.wait_for("disconnected", 1, 30), "the hotline did not end the call"
        assert time.monotonic() - pressed > 3  # the confirmation was said first
    finally:
        (result,) = caller.finish()
    assert result["answered"] and result["rtp_rx_packets"] > 50 * MAX_WAIT_S
    rec = record(q, caller="0918100012", last=50)
    assert rec["outcome"] == "callback"
    out = q.cli("callbacks", "--json")
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if r["caller"] == "0918100012"]
    assert len(rows) == 1 and rows[0]["tenant"] == TENANT, rows


class Published:
    """Every message on hotline:events while it is open (a thread on a plain Redis client)."""

    def __init__(self, stack: Stack) -> None:
        self.client = redis.Redis.from_url(stack.redis.url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.messages: list[dict[str, Any]] = []
        self.pubsub.subscribe(**{EVENTS: self._on})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.05, daemon=True,
                                                exception_handler=self._ignore)

    def _on(self, message: dict[str, Any]) -> None:
        self.messages.append(json.loads(message["data"]))

    @staticmethod
    def _ignore(e: BaseException, pubsub: Any, thread: Any) -> None:
        thread.stop()

    def offers(self) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == "queue"
                and m.get("event") == "offered"]

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(5)
        self.pubsub.close()
        self.client.close()


def _stasis_apps(stack: Stack) -> list[str]:
    return [a["name"] for a in stack.ari("/applications")]


@pytest.fixture
def second_app(q: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """A second `callcenter app` on the same PBX, Redis and database (its own HTTP port)."""
    port = free_port()
    data = json.loads(json.dumps(q.config_data))
    data["service"]["http_port"] = port
    config = q.workdir / "hotline-second.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    log_path = q.workdir / "app-second.log"
    with open(log_path, "ab") as log:
        proc = spawn("app", [sys.executable, "-m", "callcenter", "app"],
                     env={**q.env(), "HOTLINE_CONFIG": str(config)},
                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def up() -> bool:
        try:
            return bool(readiness_summary(port).get("ari_connected"))
        except OSError:
            return False

    try:
        assert wait_until(up, 30, 0.2), log_path.read_text(errors="replace")[-3000:]
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # The second app removed the shared pid file on its way out: the first one's again.
        assert q.app is not None
        (q.state / "app.pid").write_text(f"{q.app.pid}\n")
        if not wait_until(lambda: STASIS_APP in _stasis_apps(q), 10, 0.2):
            # The first app stands by while the second holds the Stasis application and takes
            # it back within a second or two; should it not, restart it so later tests run.
            q.kill_app(signal.SIGTERM)
            q.start_app()


def test_given_two_app_instances_when_calls_queue_then_no_call_is_offered_twice(
        second_app: subprocess.Popen[bytes], q: Stack, ops: dict[str, OperatorPhone]) -> None:
    published = Published(q)
    login(q, "101", "102")
    marks = {e: len(p.events) for e, p in ops.items()}
    callers = [f"09181002{i:02d}" for i in range(3)]  # three lines per shift
    group = q.phone("1022", count=3, caller="0918100200")
    handled: dict[tuple[str, int], float] = {}  # (ext, index) -> when to hang up (0: done)
    try:
        end = time.monotonic() + 40
        while time.monotonic() < end and (len(handled) < 3
                                          or any(t > 0 for t in handled.values())):
            for ext, op in ops.items():
                for inc in since(op, marks[ext], "incoming"):
                    key = (ext, inc["index"])
                    if key not in handled:
                        op.answer(inc["index"])
                        handled[key] = time.monotonic() + 1.0  # talk a second
                for key, at in list(handled.items()):
                    if key[0] == ext and 0 < at <= time.monotonic():
                        op.hangup(key[1])
                        handled[key] = 0
            time.sleep(0.05)
        assert wait_until(lambda: len(published.offers()) >= 3, 5)
        time.sleep(0.5)  # a double offer would come now
    finally:
        group.finish()
        published.close()
    offers = published.offers()
    by_call = sorted(o["call_id"] for o in offers)
    assert len(by_call) == 3 and len(set(by_call)) == 3, offers  # one offer per call
    instances = {o["offered_by"] for o in offers} | {o["instance"] for o in offers}
    assert len(instances) <= 2, offers
    rang = {ext: [(e["index"], e["t"], next(c for c in callers if c in e["remote_uri"]))
                  for e in since(op, marks[ext], "incoming")] for ext, op in ops.items()}
    every = [c for calls in rang.values() for _, _, c in calls]
    assert sorted(every) == callers, rang  # each call rang exactly one phone, once
    for ext, calls in rang.items():
        for (index, _, _), (_, next_t, _) in zip(calls, calls[1:], strict=False):
            (down,) = since(ops[ext], marks[ext], "disconnected", index=index)
            assert down["t"] <= next_t + 0.1, f"{ext} rang twice at once: {rang}"
    for c in callers:
        assert record(q, caller=c, last=50)["operator"] in OPERATORS


def test_given_second_instance_stops_then_the_first_answers_calls_again(
        second_app: subprocess.Popen[bytes], q: Stack) -> None:
    second_app.terminate()
    second_app.wait(15)
    assert wait_until(lambda: q.health().get("ari_connected"), 5)
    caller = q.phone("1022", caller="0918100300")
    try:
        assert caller.wait_for("answered", 1, 8), "nobody answered the hotline"
    finally:
        caller.finish()
