"""End to end, issue 15 item 5: the citizen hangs up in every state of a call and the line is
free within 1 s (from the hang-up sent by the citizen's phone to the tenant's line count in
Redis dropping, tests/e2e/line_release.py), the call's record says what happened, and nothing
is left in Asterisk (no channel, no bridge), in the queue or on the operator.

Here: talking with an operator, during a blind transfer (the unit's phone ringing) and during
an attended transfer (the operator consulting the unit). The other states are measured where
their tests already drive a caller into them: waiting in the queue and while an operator's phone
rings in tests/e2e/test_queue.py (``test_given_caller_leaves_while_waiting_or_ringing_…``),
during a supervisor's listen-in in tests/e2e/test_listen.py (mode listen), on hold without
operators in tests/e2e/test_calls.py.

One stack for the module, as tests/e2e/test_transfers.py's: operator 101 (a pjsua2 phone
answering by itself), the unit so_y_te whose hotline is a pjsua2 unit phone on the outbound
trunk's port, no wrap-up time. The citizen is a pjsua2 phone too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.line_release import hang_up_and_time_release
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
    UNITS,
    agent,
    api,
    bridges,
    connect,
    logged_in_101,
    operator_free_around,
    record,
    since,
    snap,
    transfer_stack,
)
from tests.e2e.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.pbx

HOTLINE = UNITS["units"][0]["hotline"]  # so_y_te's: 02513822000
UNIT_PORT = free_port(socket.SOCK_DGRAM)


def agent_state(stack: Stack) -> str:
    return str(agent(stack, "101")["state"])


@pytest.fixture(scope="module")
def hstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with transfer_stack(Path(tmp_path_factory.mktemp("hangups")), "hangup-e2e-101-pw",
                        UNIT_PORT) as s:
        yield s


@pytest.fixture(scope="module")
def op(hstack: Stack) -> Iterator[OperatorPhone]:
    with logged_in_101(hstack) as phone:
        yield phone


@pytest.fixture
def h(hstack: Stack, op: OperatorPhone) -> Iterator[Stack]:
    """Operator 101 free before; after: nothing in Asterisk, no line, no queued call, the
    operator free again."""
    with operator_free_around(hstack, op) as s:
        yield s


def operator_left(op: OperatorPhone, mark: int, index: int) -> bool:
    """Whether the operator phone's call ``index`` ended since ``mark`` (within 5 s)."""
    return bool(wait_until(lambda: since(op, mark, "disconnected", index=index), 5))


def test_given_bridged_with_operator_when_citizen_hangs_up_then_line_free_within_1s_and_answered(
        h: Stack, op: OperatorPhone) -> None:
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(h, op, citizen)
        mark = len(op.events)
        hang_up_and_time_release(h, citizen.hangup, "bridged with an operator")
        assert operator_left(op, mark, index)
    finally:
        citizen.close()
    rec = record(h, call_id)
    assert (rec["outcome"], rec["operator"], rec["transfers"]) == ("answered", "101", [])
    assert rec["bridged_at"] and rec["ended_at"]


@pytest.mark.parametrize("operator_hangs_up_first", [False, True],
                         ids=["operator_on_the_line", "operator_gone_caller_on_music"])
def test_given_blind_transfer_unit_ringing_when_citizen_hangs_up_then_line_free_in_1s_unit_stops(
        h: Stack, op: OperatorPhone, operator_hangs_up_first: bool) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=None)  # rings until the call is withdrawn
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(h, op, citizen)
        mark = len(op.events)
        op.xfer(index, HOTLINE)  # the phone's transfer button (REFER)
        assert wait_until(lambda: unit.of("incoming"), 10), h.app_log_tail()
        assert unit.dialled() == [HOTLINE] and not unit.of("disconnected")
        state = "blind transfer, unit ringing"
        if operator_hangs_up_first:
            # The operator's part is over; the caller waits for the unit with music.
            op.hangup(index)
            assert operator_left(op, mark, index)
            assert wait_until(lambda: agent_state(h) == "available", 5), snap(h)
            state += ", operator gone"
        hang_up_and_time_release(h, citizen.hangup, state)
        assert wait_until(lambda: unit.of("disconnected"), 5), "the unit's phone still rings"
        assert not unit.of("confirmed")
        assert operator_left(op, mark, index)
    finally:
        unit.close()
        citizen.close()
    rec = record(h, call_id)
    assert (rec["outcome"], rec["operator"]) == ("answered", "101")
    (t,) = rec["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "blind", False, "failed")


def test_given_attended_transfer_consulting_when_citizen_hangs_up_then_line_free_in_1s_legs_end(
        h: Stack, op: OperatorPhone) -> None:
    token: str = h.token  # type: ignore[attr-defined]
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(h, op, citizen)
        mark = len(op.events)
        status, body = api(h, "POST", f"/calls/{call_id}/transfer",
                           {"unit": "so_y_te", "kind": "attended"}, token=token)
        assert status == 202, body
        # Operator and unit talk in the consultation bridge; the caller waits in the call's.
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(h).get(consult, [])) == 2, 10), bridges(h)
        assert bridges(h)[f"{call_id}-bridge"] == [call_id]
        hang_up_and_time_release(h, citizen.hangup, "attended transfer, operator consulting")
        assert wait_until(lambda: unit.of("disconnected"), 5), "the unit is still on the line"
        assert operator_left(op, mark, index)
    finally:
        unit.close()
        citizen.close()
    rec = record(h, call_id)
    assert (rec["outcome"], rec["operator"]) == ("answered", "101")
    (t,) = rec["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "failed")
