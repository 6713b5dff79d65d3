"""End to end: an operator transfers a caller to a level-2 unit's hotline on a real Asterisk.

One stack for the module: operator 101 (a pjsua2 phone answering by itself), a unit "so_y_te"
whose hotline 02513822000 is reached over the outbound trunk (a pjsua2 unit phone on the
trunk's port, started per test: answering, or refusing as a unit that does not pick up), a
unit without hotline, no wrap-up time. The citizen is a pjsua2 phone too, so the test hears
what they hear (RTP per call). Each test ends with nothing left: no channel or bridge in
Asterisk, no queued call, operator not on a call.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
    UNITS,
    agent,
    api,
    bridges,
    connect,
    grows,
    logged_in_101,
    operator_free_around,
    record,
    transfer_stack,
)
from tests.e2e.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.pbx

HOTLINE = UNITS["units"][0]["hotline"]  # so_y_te's: 02513822000
UNIT_PORT = free_port(socket.SOCK_DGRAM)
PASSWORD = "xfer-e2e-101-password"


def agent_state(stack: Stack) -> str:
    return str(agent(stack, "101")["state"])


@pytest.fixture(scope="module")
def xstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with transfer_stack(Path(tmp_path_factory.mktemp("transfers")), PASSWORD,
                        UNIT_PORT) as s:
        yield s


@pytest.fixture(scope="module")
def op(xstack: Stack) -> Iterator[OperatorPhone]:
    with logged_in_101(xstack) as phone:
        yield phone


@pytest.fixture
def x(xstack: Stack, op: OperatorPhone) -> Iterator[Stack]:
    with operator_free_around(xstack, op) as s:
        yield s


def transfer_final(op: OperatorPhone, mark: int, timeout: float = 25.0) -> int:
    found = wait_until(lambda: [e for e in op.events[mark:]
                                if e["event"] == "transfer_status" and e.get("final")], timeout)
    assert found, op.events[mark:]
    return int(found[0]["code"])


def test_given_bridged_call_when_operator_presses_blind_transfer_then_caller_talks_to_unit(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, HOTLINE)
        assert transfer_final(op, mark) == 200
        assert unit.dialled() == [HOTLINE]
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"
                                   and e["index"] == index], 5)  # the operator's part is over
        # The caller hears the unit and the unit hears the caller.
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5), unit.of("rtp")
        assert grows(citizen, 0)
        assert bridges(x) == {f"{call_id}-bridge": [call_id, f"{call_id}-unit1"]} or sorted(
            bridges(x)[f"{call_id}-bridge"]) == sorted([call_id, f"{call_id}-unit1"])
        assert wait_until(lambda: agent_state(x) == "available", 5)  # wrap-up 0
        unit.hangup()  # the unit hanging up ends the call
        assert citizen.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    rec = record(x, call_id)
    assert rec["outcome"] == "answered" and rec["operator"] == "101"
    (t,) = rec["transfers"]
    assert (t["by"], t["unit"], t["number"], t["kind"], t["answered"], t["result"]) == (
        "101", "so_y_te", HOTLINE, "blind", True, "completed")


def test_given_unit_not_answering_when_blind_transfer_then_caller_back_with_operator(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=None, reject_code=480)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, HOTLINE)
        assert transfer_final(op, mark) == 603
        assert unit.dialled() == [HOTLINE]
        # Still talking: RTP goes on both ways, nobody hung up.
        assert grows(citizen, 0) and grows(op, index)
        assert not [e for e in op.events[mark:] if e["event"] == "disconnected"]
        assert agent_state(x) == "on_call"
        citizen.hangup()
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"],
                          10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "blind", False, "no_answer")


def test_given_bridged_call_when_attended_transfer_by_api_then_consult_then_complete(
        x: Stack, op: OperatorPhone) -> None:
    token: str = x.token  # type: ignore[attr-defined]
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        status, body = api(x, "GET", "/units", token=token)
        assert status == 200 and [u["id"] for u in body["units"]] == ["so_y_te"]
        status, body = api(x, "POST", f"/calls/{call_id}/transfer/complete", token=token)
        assert (status, body["error"]["id"]) == (409, "transfer.none")
        status, body = api(x, "POST", f"/calls/{call_id}/transfer",
                           {"unit": "so_y_te", "kind": "attended"}, token=token)
        assert status == 202, body
        # Consultation: operator and unit talk in a bridge of their own, the caller waits.
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(x).get(consult, [])) == 2, 10), bridges(x)
        assert bridges(x)[f"{call_id}-bridge"] == [call_id]
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5) and grows(op, index)
        assert grows(citizen, 0)  # music on hold
        status, body = api(x, "POST", f"/calls/{call_id}/transfer/complete", token=token)
        assert status == 202, body
        assert wait_until(lambda: sorted(bridges(x).get(f"{call_id}-bridge", [])) == sorted(
            [call_id, f"{call_id}-unit1"]) and consult not in bridges(x), 5), bridges(x)
        assert wait_until(lambda: [e for e in op.events if e["event"] == "disconnected"
                                   and e["index"] == index], 5)
        assert grows(unit, 0) and grows(citizen, 0)
        status, body = api(x, "POST", f"/calls/{call_id}/transfer/cancel", token=token)
        assert (status, body["error"]["id"]) == (409, "transfer.none")
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "completed")


def test_given_number_not_a_unit_when_transfer_then_refused_and_call_goes_on(
        x: Stack, op: OperatorPhone) -> None:
    token: str = x.token  # type: ignore[attr-defined]
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, "0909999999")
        assert transfer_final(op, mark) == 603
        status, body = api(x, "POST", f"/calls/{call_id}/transfer",
                           {"number": "0909999999"}, token=token)
        assert (status, body["error"]["id"]) == (422, "transfer.unknown_unit")
        status, body = api(x, "POST", f"/calls/{call_id}/transfer", {"unit": "vp_ubnd"},
                           token=token)
        assert (status, body["error"]["id"]) == (422, "transfer.unknown_unit")  # no hotline
        status, body = api(x, "POST", "/calls/nope-1.1/transfer", {"unit": "so_y_te"},
                           token=token)
        assert (status, body["error"]["id"]) == (404, "transfer.call_not_found")
        assert grows(citizen, 0) and grows(op, index)
        assert unit.dialled() == []
        citizen.hangup()
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"],
                          10)
    finally:
        unit.close()
        citizen.close()
    assert record(x, call_id)["transfers"] == []


def test_given_phone_consultation_when_transfer_button_with_replaces_then_unit_takes_caller(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.hold(index)
        op.dial(HOTLINE)  # from-operators: a unit's hotline is a consultation in the app
        (dialing,) = wait_until(lambda: [e for e in op.events[mark:]
                                         if e["event"] == "dialing"], 5)
        consult_index = dialing["index"]
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "confirmed"
                                   and e["index"] == consult_index], 10), op.events[mark:]
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(x).get(consult, [])) == 2, 10), bridges(x)
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5) and grows(op, consult_index)
        op.xfer_replaces(index, consult_index)
        assert transfer_final(op, mark) == 200
        assert wait_until(lambda: sorted(bridges(x).get(f"{call_id}-bridge", [])) == sorted(
            [call_id, f"{call_id}-unit1"]) and consult not in bridges(x), 5), bridges(x)
        assert grows(unit, 0) and grows(citizen, 0)
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "completed")
