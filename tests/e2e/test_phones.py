"""Self-tests of the test phones: operator and unit phones (pjsua2) talk to each other over
loopback, and an operator phone registers with the real PBX and dials a feature code."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.tools.softphone import request_user
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack, free_port, wait_until


def test_given_invite_text_when_request_user_then_dialled_number() -> None:
    assert request_user("INVITE sip:02513822111@127.0.0.1:5099 SIP/2.0\r\nVia: x\r\n") == (
        "02513822111")
    assert request_user("INVITE sip:127.0.0.1 SIP/2.0\r\n") == ""
    assert request_user("") == ""


def test_given_unit_phone_when_operator_phone_calls_it_then_answered_with_rtp_both_ways(
) -> None:
    unit = UnitPhone(answer_after=0.3)
    op = OperatorPhone(None, "101", "unused", bind="127.0.0.2")  # registers nowhere
    try:
        op.dial(f"sip:02513822111@127.0.0.1:{unit.port}")
        (incoming,) = unit.wait_for("incoming", 1, 5)
        assert incoming["user"] == "02513822111"
        assert incoming["source"].startswith("127.0.0.2:")  # the operator's bind address
        assert op.wait_for("progress", 1, 5)[0]["code"] == 180  # rang before the answer
        assert unit.wait_for("answered", 1, 5) and op.wait_for("confirmed", 1, 5)
        assert wait_until(lambda: unit.rtp_rx() > 50 and op.rtp_rx() > 50, 5), (
            unit.of("rtp"), op.of("rtp"))
        assert unit.rtp_tx() > 0 and op.rtp_tx() > 0
        keys = "1234567890*#55"
        op.dtmf(keys)  # typed at once: sent one at a time, each received once, in order
        assert "".join(e["digit"] for e in op.wait_for("dtmf_sent", len(keys), 30)) == keys
        assert "".join(e["digit"] for e in unit.wait_for("dtmf_rx", len(keys), 5)) == keys
        op.hangup()
        (down,) = unit.wait_for("disconnected", 1, 5)
        assert down["rtp_rx"] > 50
        assert op.wait_for("disconnected", 1, 5)
    finally:
        op.close()
        unit.close()
    assert op.proc.returncode == 0 and unit.proc.returncode == 0


def test_given_ringing_operator_when_told_then_answers_holds_and_unholds() -> None:
    callee = OperatorPhone(None, "102", "unused", bind="127.0.0.3")  # rings until told
    unit = UnitPhone(answer_after=None)  # here the unit side places the call
    try:
        unit.dial(f"sip:102@127.0.0.3:{callee.port}")
        assert callee.wait_for("incoming", 1, 5)
        time.sleep(0.5)
        assert not callee.of("answered")  # still ringing: nobody told it to answer
        callee.answer()
        assert callee.wait_for("answered", 1, 5) and unit.wait_for("confirmed", 1, 5)
        callee.hold()
        assert callee.wait_for("media", 1, 5, status="local_hold")
        assert unit.wait_for("media", 1, 5, status="remote_hold")
        callee.unhold()
        assert callee.wait_for("media", 2, 5, status="active")
        unit.hangup()
        assert callee.wait_for("disconnected", 1, 5)
    finally:
        callee.close()
        unit.close()


def test_given_rejecting_unit_when_called_then_caller_gets_the_code() -> None:
    unit = UnitPhone(reject_code=603, answer_after=None)
    op = OperatorPhone(None, "103", "unused")
    try:
        op.dial(f"sip:0251000@127.0.0.1:{unit.port}")
        (down,) = op.wait_for("disconnected", 1, 5)
        assert down["code"] == 603
        assert not op.of("confirmed")
    finally:
        op.close()
        unit.close()


def test_given_call_when_operator_blind_transfers_then_far_end_calls_target_and_talks() -> None:
    citizen, unit = UnitPhone(answer_after=0.1), UnitPhone(answer_after=0.1)
    op = OperatorPhone(None, "104", "unused", bind="127.0.0.2")
    try:
        op.dial(f"sip:0909@127.0.0.1:{citizen.port}")
        assert op.wait_for("confirmed", 1, 5)
        op.xfer(0, f"sip:02513822111@127.0.0.1:{unit.port}")
        (refer,) = citizen.wait_for("transfer_request", 1, 5)
        assert refer["uri"].strip("<>") == f"sip:02513822111@127.0.0.1:{unit.port}"
        assert op.wait_for("transfer_status", 1, 5, final=True)[0]["code"] == 200
        assert op.wait_for("disconnected", 1, 5, index=0)  # transferred: the operator leaves
        assert unit.wait_for("confirmed", 1, 5)
        assert unit.dialled() == ["02513822111"]
        assert wait_until(lambda: citizen.rtp_rx(1) > 20 and unit.rtp_rx(0) > 20, 5)
    finally:
        op.close()
        citizen.close()
        unit.close()


def test_given_consultation_when_operator_attended_transfers_then_citizen_replaces_operator(
) -> None:
    citizen, unit = UnitPhone(answer_after=0.1), UnitPhone(answer_after=0.1)
    op = OperatorPhone(None, "105", "unused", bind="127.0.0.2")
    try:
        op.dial(f"sip:0909@127.0.0.1:{citizen.port}")
        assert op.wait_for("confirmed", 1, 5)
        op.hold(0)  # two commands at once: both obeyed at once
        op.dial(f"sip:02513822111@127.0.0.1:{unit.port}")
        assert op.wait_for("media", 1, 5, index=0, status="local_hold")
        assert op.wait_for("confirmed", 1, 5, index=1)
        op.xfer_replaces(0, 1)
        assert op.wait_for("transfer_status", 1, 5, final=True)[0]["code"] == 200
        (replaced,) = unit.wait_for("replaced", 1, 5)
        assert replaced["replaces"] == 0
        assert unit.wait_for("disconnected", 1, 5, index=0)  # the consultation leg
        assert op.wait_for("disconnected", 2, 5)
        assert wait_until(lambda: citizen.rtp_rx(1) > 20 and unit.rtp_rx(1) > 20, 5)
    finally:
        op.close()
        citizen.close()
        unit.close()


@pytest.fixture(scope="module")
def operator_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own (the session one has no operators rendered)."""
    unit_port = free_port(socket.SOCK_DGRAM)
    s = Stack(Path(tmp_path_factory.mktemp("phones")), operators={"151": "mật-khẩu;151-đủ-dài"},
              outbound_port=unit_port)
    with running(s):
        yield s


# After each test on operator_stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("operator_stack")


def test_given_operator_in_config_when_phone_registers_and_dials_login_code_then_pbx_answers(
        operator_stack: Stack) -> None:
    op = operator_stack.operator_phone("151", bind="127.0.0.2")
    try:
        assert op.wait_registered() == 200, operator_stack.pbx and operator_stack.pbx.log_tail()
        op.dial("*11")
        # The feature's outcome (and its prompt) is another test's business: here the call
        # reaches the PBX (authenticated, not refused, the code known), is answered by the
        # feature-code dialplan and ends by itself.
        (down,) = op.wait_for("disconnected", 1, 30)
        assert down["code"] not in (401, 403, 404, 407), down
        assert op.of("confirmed"), op.events
        assert op.of("dialing")[0]["uri"] == f"sip:*11@127.0.0.1:{operator_stack.sip_port}"
        op.unregister()
        assert op.wait_registered() == 200
        assert op.of("unregistered")
    finally:
        op.close()


def test_given_wrong_password_when_operator_registers_then_refused(
        operator_stack: Stack) -> None:
    op = OperatorPhone(operator_stack, "151", "wrong", bind="127.0.0.5")
    try:
        assert op.wait_registered() in (401, 403)
    finally:
        op.close()


def test_given_outbound_trunk_when_pbx_dials_a_unit_then_unit_phone_answers_and_hears_audio(
        operator_stack: Stack) -> None:
    port = operator_stack.config_data["trunk"]["outbound"]["port"]
    unit = UnitPhone(port, answer_after=0.2)
    try:
        # What a transfer does, without the app: the PBX dials PJSIP/<number>@trunk-out; once
        # the unit answers, the dialplan plays a prompt to it and hangs up.
        prompt = f"{operator_stack.layout.paths()['sounds']}/default/unavailable"
        operator_stack.ari("/channels", "POST", {
            "endpoint": "PJSIP/02513822111@trunk-out", "context": "operator-feature-done",
            "extension": "s", "priority": 1, "callerId": "1022",
            "variables": {"HOTLINE_FEATURE_PROMPT": prompt}})
        (incoming,) = unit.wait_for("incoming", 1, 10)
        assert incoming["user"] == "02513822111"
        assert incoming["source"].startswith("127.0.0.1:")
        assert unit.wait_for("confirmed", 1, 5)
        (down,) = unit.wait_for("disconnected", 1, 30)
        assert down["rtp_rx"] > 10, down
        assert down["rtp_tx"] > 10, down
    finally:
        unit.close()
    assert wait_until(lambda: operator_stack.ari("/channels") == [], 5)
