"""Wrong operator passwords per source at the edge, against Debian's real Kamailio on loopback.

A source (127.0.0.x: every loopback address reaches the edge on 127.0.0.1) that answers the
digest challenge wrongly ``max_failures`` times for an operator that exists is refused (403,
even with the right password) for ``ban_s``; fewer failures, REGISTERs without Authorization,
unknown accounts and answers carrying a nonce sent to another address are not counted; the
carrier's and the ``never_refuse`` networks are never refused. Raw SIP over UDP: each attempt
is a REGISTER, its 401 challenge and the answer computed from it (RFC 2617, qop=auth).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.cluster.edge import (
    AuthGuard,
    EdgeNode,
    EdgeSettings,
    Kamailio,
    Pike,
    kamailio_binary,
)
from callcenter.pbx.render import SIP_REALM, password_digest
from tests.e2e.rawsip import Response, parse_response, register_message
from tests.e2e.stack import free_port, wait_until

PASSWORD = "Dung-Mat-Khau-101"
WRONG = "sai-mat-khau"
MAX_FAILURES = 3
BAN_S = 2
CARRIER = "127.0.0.3"
OFFICE = "127.0.0.4"  # sip_guard.never_refuse


def md5(text: str) -> str:
    # MD5 is what SIP digest authentication is built on.
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Registrar:
    """REGISTERs from one loopback address to the edge, one transaction at a time."""

    def __init__(self, source: str, edge_port: int):
        self.source = source
        self.edge_port = edge_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def request(self, user: str, call_id: str, cseq: int,
                authorization: str | None = None) -> Response | None:
        """One REGISTER (Expires 0: a right password unregisters, nothing is left behind);
        its final answer, None when none came within 2 s."""
        message = register_message(f"sip:127.0.0.1:{self.edge_port}", user, call_id, cseq,
                                   via=f"UDP {self.source}:{self.port}",
                                   contact=f"sip:{user}@{self.source}:{self.port}", expires=0,
                                   authorization=authorization)
        self.sock.sendto(message, ("127.0.0.1", self.edge_port))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            resp = parse_response(data)
            if (resp is not None and call_id in resp.header("call-id")
                    and resp.header("cseq").startswith(f"{cseq} ") and resp.code >= 200):
                return resp
        return None

    def challenge(self, user: str) -> tuple[str, str, Response | None]:
        """A REGISTER without Authorization: (call id, nonce, answer); nonce "" when the
        answer is no challenge."""
        call_id = f"{secrets.token_hex(8)}@{self.source}"
        resp = self.request(user, call_id, 1)
        nonce = ""
        if resp is not None and resp.code == 401:
            m = re.search(r'nonce="([^"]+)"', resp.header("www-authenticate"))
            nonce = m.group(1) if m else ""
        return call_id, nonce, resp

    def answer(self, user: str, password: str, call_id: str, nonce: str) -> int:
        """The digest answer for ``password`` to ``nonce``; the final code (0: none came)."""
        uri = f"sip:127.0.0.1:{self.edge_port}"
        cnonce, nc = secrets.token_hex(4), "00000001"
        ha1 = password_digest(user, password)
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{md5(f'REGISTER:{uri}')}")
        auth = (f'Digest username="{user}", realm="{SIP_REALM}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')
        resp = self.request(user, call_id, 2, auth)
        return resp.code if resp is not None else 0

    def attempt(self, password: str, user: str = "101") -> int:
        """Challenge, then answer with ``password``: the final code. A source refused gets
        403 to the challenge already (returned as is)."""
        call_id, nonce, first = self.challenge(user)
        if first is None or first.code != 401:
            return first.code if first is not None else 0
        return self.answer(user, password, call_id, nonce)


@pytest.fixture
def edge(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kamailio]:
    """The edge with operator 101; the window 60 s unless the test asks for another."""
    try:
        kamailio_binary()
    except RuntimeError as e:
        pytest.skip(str(e))
    window_s = getattr(request, "param", 60)
    settings = EdgeSettings(
        listen_port=free_port(socket.SOCK_DGRAM), carrier_networks=(f"{CARRIER}/32",),
        pike=Pike(requests=1000), guard=AuthGuard(MAX_FAILURES, window_s, BAN_S),
        never_refuse=(f"{OFFICE}/32", "2001:db8:5::/48"),  # an IPv6 one checked as well
        operators=(("101", password_digest("101", PASSWORD)),))
    kamailio = Kamailio(tmp_path, settings, [EdgeNode("node1", "127.0.0.1",
                                                      free_port(socket.SOCK_DGRAM))])
    kamailio.start()
    try:
        yield kamailio
    finally:
        kamailio.stop()


def registrar(edge: Kamailio, source: str) -> Registrar:
    return Registrar(source, edge.settings.listen_port)


def test_given_wrong_passwords_from_one_source_then_refused_at_the_threshold_until_the_ban_ends(
        edge: Kamailio) -> None:
    guesser, other = registrar(edge, "127.0.0.2"), registrar(edge, "127.0.0.5")
    try:
        # Not counted: no Authorization, an unknown account.
        for _ in range(MAX_FAILURES + 1):
            assert guesser.challenge("101")[2] is not None
            assert guesser.attempt(WRONG, user="999") == 401
        for _ in range(MAX_FAILURES - 1):
            assert guesser.attempt(WRONG) == 401
        assert guesser.attempt(PASSWORD) == 200  # one short of the threshold: let in
        assert guesser.attempt(WRONG) == 403  # the threshold: refused from this answer on
        assert guesser.attempt(PASSWORD) == 403  # even with the right password
        assert other.attempt(PASSWORD) == 200  # only that source
        log = edge.log_tail(400)
        refusals = [line for line in log.splitlines() if "refused for" in line]
        assert len(refusals) == 1, log
        assert "127.0.0.2" in refusals[0] and f"{MAX_FAILURES} wrong passwords" in refusals[0]
        assert PASSWORD not in log and WRONG not in log
        # The ban ends after ban_s.
        assert wait_until(lambda: guesser.attempt(PASSWORD) == 200, BAN_S + 5, 0.5)
    finally:
        guesser.close()
        other.close()


def test_given_nonce_sent_to_another_address_when_answered_wrongly_then_nothing_counted(
        edge: Kamailio) -> None:
    # A forger sending "from" the victim's address never sees the victim's challenges: it can
    # only answer with a nonce sent to its own address, which the edge does not take there.
    forger, victim = registrar(edge, "127.0.0.6"), registrar(edge, "127.0.0.7")
    try:
        call_id, nonce, _ = forger.challenge("101")
        assert nonce
        for _ in range(MAX_FAILURES + 2):
            assert victim.answer("101", WRONG, call_id, nonce) == 401
        assert victim.attempt(PASSWORD) == 200
    finally:
        forger.close()
        victim.close()


@pytest.mark.parametrize("source", [CARRIER, OFFICE])
def test_given_carrier_or_never_refuse_network_when_wrong_passwords_then_never_refused(
        edge: Kamailio, source: str) -> None:
    trusted = registrar(edge, source)
    try:
        for _ in range(MAX_FAILURES * 2):
            assert trusted.attempt(WRONG) == 401
        assert trusted.attempt(PASSWORD) == 200
        assert "never refused" in edge.log_tail(400)
    finally:
        trusted.close()


@pytest.mark.parametrize("edge", [2], indirect=True)  # window_s 2
def test_given_no_failure_for_the_window_then_counting_starts_again(
        edge: Kamailio) -> None:
    guesser = registrar(edge, "127.0.0.8")
    try:
        for _ in range(MAX_FAILURES - 1):
            assert guesser.attempt(WRONG) == 401
        time.sleep(edge.settings.guard.window_s + 1.5)  # a window (whole seconds) without any
        for _ in range(MAX_FAILURES - 1):
            assert guesser.attempt(WRONG) == 401
        assert guesser.attempt(PASSWORD) == 200
        assert guesser.attempt(WRONG) == 403  # max_failures since the pause: refused
    finally:
        guesser.close()
