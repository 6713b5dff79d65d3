"""The running hotline refuses a SIP source after repeated wrong passwords (AMI security events
-> AuthGuard -> pjsip_refused.conf ACL -> PJSIP reload), and only that source; forgeable
failures (unknown accounts, a scanner's User-Agent) are counted, never refused."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.pbx.render import SIP_REALM
from callcenter.phones.guard_rules import GuardPolicy
from tests.e2e.phones import OperatorPhone
from tests.e2e.rawsip import Response, sip_request
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack, free_port, wait_until

PASSWORD = "đúng-mật-khẩu-171"


@pytest.fixture(scope="module")
def guard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("guard")), operators={"171": PASSWORD},
              outbound_port=free_port(socket.SOCK_DGRAM))
    with running(s):
        yield s


# After each test on guard_stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("guard_stack")


def test_given_wrong_passwords_from_one_source_then_that_source_is_refused_not_others(
        guard_stack: Stack) -> None:
    attacker = OperatorPhone(guard_stack, "171", "sai-mật-khẩu", bind="127.0.0.2")
    try:
        codes = [attacker.wait_registered()]
        for _ in range(GuardPolicy().max_failures - 1):
            attacker.register()
            codes.append(attacker.wait_registered())
        assert all(c in (401, 403) for c in codes), codes
        assert wait_until(lambda: "SIP source 127.0.0.2 refused" in guard_stack.app_log_tail(200),
                          10), guard_stack.app_log_tail(40)
    finally:
        attacker.close()
    # The right password from the refused source: 403 from the ACL, not a digest challenge.
    refused = OperatorPhone(guard_stack, "171", PASSWORD, bind="127.0.0.2")
    try:
        codes = [refused.wait_registered()]
        while codes[-1] != 403 and len(codes) < 5:  # the PJSIP reload may take a moment
            refused.register()
            codes.append(refused.wait_registered())
        assert codes[-1] == 403 and 200 not in codes, codes
    finally:
        refused.close()
    # The operator's own phone on another address still registers, and the trunk still works.
    phone = OperatorPhone(guard_stack, "171", PASSWORD, bind="127.0.0.1")
    try:
        assert phone.wait_registered() == 200
    finally:
        phone.close()
    caller = guard_stack.phone(hold=2)
    # Its own end (after the hold), not finish()'s hang-up: sent at once, that cancelled a
    # call not answered yet on a loaded machine (487, CI with three e2e workers).
    caller.wait_for("final", 1, 20)
    [result] = caller.finish()
    assert result["final_code"] == 200 and result["answered"]


def test_given_scanner_user_agent_from_outside_when_registering_then_denied_counted_not_refused(
        guard_stack: Stack) -> None:
    before = guard_stack.metric("hotline_sip_scanner_requests_total") or 0.0
    # SIPVicious' default User-Agent, for a real operator's account: the scanner endpoint's
    # ACL denies it. Asterisk 22 answers an endpoint ACL failure with its artificial
    # endpoint's challenge (no password passes it). One such packet proves nothing about its
    # source address (UDP), so the source is counted, never refused for it.
    scan = sip_request(guard_stack.sip_port, "REGISTER", "171", user_agent="friendly-scanner",
                       bind="127.0.0.3")
    assert scan is not None and scan.code in (401, 403), scan
    assert wait_until(lambda: (guard_stack.metric("hotline_sip_scanner_requests_total") or 0)
                      >= before + 1, 10)
    assert guard_stack.logged("SIP scanner User-Agent from 127.0.0.3", 200), (
        guard_stack.app_log_tail())
    # Every request with the scanner's User-Agent is still denied ...
    again = sip_request(guard_stack.sip_port, "REGISTER", "171", user_agent="friendly-scanner",
                        bind="127.0.0.3")
    assert again is not None and again.code in (401, 403), again
    # ... while an ordinary softphone on that address is challenged as always (not refused).
    for source in ("127.0.0.3", "127.0.0.4"):
        plain = sip_request(guard_stack.sip_port, "REGISTER", "171", user_agent="Zoiper rv2.10",
                            bind=source)
        assert plain is not None and plain.code == 401 and plain.header("www-authenticate")
    assert "SIP source 127.0.0.3 refused" not in guard_stack.app_log_tail(400)


def test_given_forged_registers_for_unknown_accounts_from_an_operator_address_then_not_refused(
        guard_stack: Stack) -> None:
    """The review's attack: unauthenticated REGISTERs for accounts that do not exist, "from"
    the address an operator works at (UDP: anybody can forge it), then the same with a made-up
    digest answer. The operator at that address must still register with the right password."""
    before = guard_stack.metric("hotline_sip_account_probes_total") or 0.0
    refused_before = guard_stack.metric("hotline_sip_sources_refused") or 0.0
    forged = (f'Authorization: Digest username="5559", realm="{SIP_REALM}", '
              f'nonce="1700000000/0123456789abcdef0123456789abcdef", '
              f'uri="sip:127.0.0.1:{guard_stack.sip_port}", '
              'response="00000000000000000000000000000000", algorithm=MD5',)
    for i in range(GuardPolicy().max_failures + 1):
        for headers in ((), forged):
            probe = sip_request(guard_stack.sip_port, "REGISTER", f"55{i}",
                                user_agent="Zoiper rv2.10", bind="127.0.0.7", headers=headers)
            assert probe is not None and probe.code == 401, probe
    # 6 InvalidAccountID, then 6 more and 6 digest answers for no account (<unknown>).
    assert wait_until(lambda: (guard_stack.metric("hotline_sip_account_probes_total") or 0)
                      >= before + 18, 10), guard_stack.app_log_tail(40)
    assert (guard_stack.metric("hotline_sip_sources_refused") or 0) == refused_before
    phone = OperatorPhone(guard_stack, "171", PASSWORD, bind="127.0.0.7")
    try:
        assert phone.wait_registered() == 200
    finally:
        phone.close()
    assert "SIP source 127.0.0.7 refused" not in guard_stack.app_log_tail(400)


def _code(resp: Response | None) -> int:
    return resp.code if resp is not None else 0


def test_given_scanner_user_agent_from_trusted_network_then_denied_but_carrier_not_cut_off(
        guard_stack: Stack) -> None:
    scan = sip_request(guard_stack.sip_port, "OPTIONS", "1022", user_agent="sipvicious 0.3.4",
                       bind="127.0.0.1")
    assert scan is not None and scan.code in (401, 403), scan
    assert wait_until(lambda: "SIP scanner User-Agent from 127.0.0.1 (trusted)"
                      in guard_stack.app_log_tail(200), 10), guard_stack.app_log_tail(40)
    caller = guard_stack.phone(hold=2)
    # Its own end (after the hold), not finish()'s hang-up: sent at once, that cancelled a
    # call not answered yet on a loaded machine (487, CI with three e2e workers).
    caller.wait_for("final", 1, 20)
    [result] = caller.finish()
    assert result["final_code"] == 200 and result["answered"]
