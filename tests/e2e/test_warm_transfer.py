"""End to end: a warm transfer carries the ticket. The operator has linked the call to a
ticket; when the unit answers the consultation, its phone first hears "Tổng đài 1022 chuyển
phản ánh mã số … lĩnh vực Y tế" (fragments built ahead, played on its leg), then the operator;
the operator completes the transfer and the call record's transfer names the ticket; the
unit's user, logged in to the console over HTTP, finds the ticket under "Cuộc gọi chuyển đến"
and may open it (read only), while another unit still may not.

Its own stack (as tests/e2e/test_transfers.py's): operator 101 answering by itself, the unit
so_y_te's hotline over the outbound trunk (a pjsua2 phone recording what it receives). All
phones send a 425 Hz tone, so "the unit hears the operator" is power at 425 Hz in its
recording, and "the unit hears the announcement" is sound that is not that tone.
"""

from __future__ import annotations

import http.cookiejar
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.pbx.prompts import synthesise
from callcenter.transfers import rules as xf
from tests.e2e.audio import heard, read_pcm16
from tests.e2e.browser import add_user
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
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

UNIT_PORT = free_port(socket.SOCK_DGRAM)
PASSWORD = "warm-e2e-101-password"
TONE_HZ = 425  # every test phone's tone (the operator's included)


@pytest.fixture(scope="module")
def xstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with transfer_stack(Path(tmp_path_factory.mktemp("warm")), PASSWORD, UNIT_PORT) as s:
        yield s


@pytest.fixture(scope="module")
def op(xstack: Stack) -> Iterator[OperatorPhone]:
    with logged_in_101(xstack) as phone:
        yield phone


@pytest.fixture
def x(xstack: Stack, op: OperatorPhone) -> Iterator[Stack]:
    with operator_free_around(xstack, op) as s:
        yield s


def seconds_of(ticket: xf.WarmTicket, cache: Path) -> float:
    """How long the announcement lasts, synthesised exactly as the hotline does."""
    total = 0.0
    for p in xf.announcement(ticket):
        assert p.text is not None
        with wave.open(str(synthesise(p.text, cache, p.clip))) as w:
            total += w.getnframes() / w.getframerate()
    return total


class Console:
    """A console user's session over plain HTTP (cookies, the login form's CSRF token)."""

    def __init__(self, stack: Stack, name: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{stack.http_port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        _, page = self.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None, page
        form = urllib.parse.urlencode({"username": name, "password": password,
                                       "csrf": token[1]}).encode()
        with self.opener.open(self.base + "/console/login", form, timeout=10) as r:
            assert "/console/login" not in r.geturl(), r.geturl()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def rms(path: Path, start: float, end: float) -> float:
    rate, samples = read_pcm16(path)
    part = samples[int(rate * start):int(rate * end)]
    return float((sum(s * s for s in part) / max(1, len(part))) ** 0.5)


def test_given_call_linked_to_a_ticket_when_unit_answers_consultation_then_hears_ticket_first(
        x: Stack, op: OperatorPhone, tmp_path: Path) -> None:
    token: str = x.token  # type: ignore[attr-defined]
    heard_dir = tmp_path / "unit"
    heard_dir.mkdir()
    unit = UnitPhone(UNIT_PORT, answer_after=0.3, record_dir=heard_dir)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        # The operator records the petition from this call (the desk links the live call).
        status, desk = api(x, "GET", "/desk", token=token)
        assert status == 200, desk
        record_id = desk["call"]["record_id"]
        assert record_id.endswith(":" + call_id)
        status, ticket = api(x, "POST", "/tickets", {
            "channel": "phone", "content": "Trạm y tế phường thiếu thuốc.", "field": "health",
            "citizen_phone": "0909555801", "call_ids": [record_id]}, token=token)
        assert status == 201, ticket
        code = ticket["code"]
        status, body = api(x, "POST", f"/calls/{call_id}/transfer",
                           {"unit": "so_y_te", "kind": "attended"}, token=token)
        assert status == 202, body
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(x).get(consult, [])) == 2, 10), bridges(x)
        want = seconds_of(xf.WarmTicket(code, "health", "Y tế"), tmp_path / "cache")
        # The announcement, then two seconds of the operator.
        start = unit.rtp_rx(0)
        assert wait_until(lambda: unit.rtp_rx(0) > start + int((want + 2.5) / 0.02),
                          want + 10), unit.of("rtp")
        assert grows(op, index) and grows(citizen, 0)  # the caller waits with music
        status, body = api(x, "POST", f"/calls/{call_id}/transfer/complete", token=token)
        assert status == 202, body
        assert wait_until(lambda: sorted(bridges(x).get(f"{call_id}-bridge", [])) == sorted(
            [call_id, f"{call_id}-unit1"]) and consult not in bridges(x), 5), bridges(x)
        assert grows(unit, 0) and grows(citizen, 0)
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    assert x.logged(f"told ticket {code}"), x.app_log_tail()
    # What the unit received: speech first (sound, but not the operator's tone), then the
    # operator's tone.
    wav = heard_dir / "call-0.wav"
    speech = (0.3, max(0.6, want - 0.3))
    after = (want + 0.8, want + 2.2)
    during, later = heard(wav, TONE_HZ, between=speech), heard(wav, TONE_HZ, between=after)
    loud = rms(wav, *speech)
    print(f"announcement {want:.1f} s; unit heard: rms {loud:.0f}, tone share {during:.2f} "
          f"during it, tone share {later:.2f} after")
    assert loud > 300, "the unit heard silence where the ticket is announced"
    assert during < 0.3, "the unit heard the operator, not the ticket"
    assert later > 0.5, "the unit did not hear the operator after the announcement"
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"], t["ticket"]) == (
        "so_y_te", "attended", True, "completed", code)
    # The unit's console shows the ticket (not forwarded: still "new"), read only; another
    # unit does not see it.
    add_user(x, "syt.warm", "unit", PASSWORD, unit="so_y_te")
    add_user(x, "vp.warm", "unit", PASSWORD, unit="vp_ubnd")
    unit_user = Console(x, "syt.warm", PASSWORD)
    status, page = unit_user.get("/console/tickets")
    assert status == 200 and "Cuộc gọi chuyển đến" in page, page
    row = re.search(rf'<tr data-transferred="{code}">.*?</tr>', page, re.S)
    assert row is not None and f'href="/console/tickets/{code}"' in row[0], page
    status, detail = unit_user.get(f"/console/tickets/{code}")
    assert status == 200 and "data-action" not in detail
    assert "Chuyển cuộc gọi đến" in detail
    other = Console(x, "vp.warm", PASSWORD)
    status, page = other.get("/console/tickets")
    assert status == 200 and code not in page
    assert other.get(f"/console/tickets/{code}")[0] == 404
