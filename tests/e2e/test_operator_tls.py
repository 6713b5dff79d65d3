"""End to end: operators required to use TLS (``operators_require_tls``) on a real Asterisk.

One stack for the module, with a TLS transport on its own loopback port and a self-signed
pair made as `callcenter run` makes it. Operator 101's pjsua2 phone registers over TLS and
sends SRTP only (SDES); a citizen calls 1022 over the UDP trunk. Registering the same
operator over plain UDP is refused. Each test ends with nothing left in Asterisk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.queue import agent as ag
from tests.e2e.phones import UnitPhone
from tests.e2e.scenarios import (
    agent_event,
    configure_tenant,
    connect,
    grows,
    nothing_left_after,
    registered,
    running,
    since,
)
from tests.e2e.stack import Stack, wait_until
from tests.support.config_files import config_data

pytestmark = pytest.mark.pbx

OPERATOR = "101"
nothing_left = nothing_left_after("tls_stack")


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("tls")), operators={OPERATOR: "tls-e2e-101-password"},
              tls=True)
    configure_tenant(s, **config_data("e2e_operator_tenant.yaml"), operators_require_tls=True)
    with running(s):
        yield s


def contacts(stack: Stack) -> str:
    """What Asterisk has registered for the operator (its AOR's contacts)."""
    return stack.pbx.rx(f"pjsip show aor {OPERATOR}") if stack.pbx else ""


def test_given_operator_required_to_use_tls_when_citizen_calls_1022_then_the_call_reaches_it_over_tls_with_srtp_both_ways(  # noqa: E501
        tls_stack: Stack) -> None:
    with registered(tls_stack, OPERATOR, auto_answer=0.2, transport="tls") as op:
        # The only contact Asterisk has for the operator was registered over TLS.
        assert re.search(rf"sip:{OPERATOR}@127\.0\.0\.1:\d+;transport=TLS", contacts(tls_stack),
                         re.IGNORECASE), contacts(tls_stack)
        agent_event(tls_stack, OPERATOR, ag.LogIn())
        citizen = UnitPhone(answer_after=None)
        try:
            mark = len(op.events)
            _, index = connect(tls_stack, op, citizen)
            # Audio both ways, and the operator's media is an active SRTP session (the phone
            # takes SRTP as mandatory: a plain RTP answer would have failed the call).
            assert grows(op, index) and grows(citizen, 0)
            active = since(op, mark, "media", index=index, status="active")
            assert active and all(e["srtp"] for e in active), active
            # Asterisk's side: the operator's channel is signalled over a secure transport.
            channel = next(c for c in tls_stack.ari("/channels")
                           if c["name"].startswith(f"PJSIP/{OPERATOR}-"))
            secure = tls_stack.ari(f"/channels/{channel['id']}/variable"
                                   f"?variable=CHANNEL(pjsip,secure)")
            assert secure["value"] == "1", secure
            citizen.hangup()
            assert wait_until(lambda: since(op, mark, "disconnected", index=index), 10)
        finally:
            citizen.close()
            op.hangup()


def test_given_operator_required_to_use_tls_when_it_registers_over_udp_then_it_is_refused(
        tls_stack: Stack) -> None:
    phone = tls_stack.operator_phone(OPERATOR)  # plain UDP, the right password
    try:
        code = phone.wait_registered()
        assert code == 401, code  # the denied endpoint's challenge, which no password passes
        assert not re.search(rf"sip:{OPERATOR}@127\.0\.0\.1:{phone.port}\b",
                             contacts(tls_stack)), contacts(tls_stack)
    finally:
        phone.close()
