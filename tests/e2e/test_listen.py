"""End to end: a supervisor listens in on (and whispers to) a live operator call on a real
Asterisk, from their own pjsua2 softphone (ARI snoop).

One stack for the module: operator 101 (logged in with `callcenter agent login 101`,
answering by itself), supervisor phone 109 configured as an operator of the tenant but never
logged in (so the queue never offers it a call), a supervisor user with an API token. The
citizen is a pjsua2 phone sending a tone. Each test ends with nothing left in Asterisk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.store.listen_audit import ListenAuditStore
from tests.e2e.audio import heard
from tests.e2e.browser import add_user, base_url, login, new_context, no_sideways_scroll, screenshot
from tests.e2e.line_release import hang_up_and_time_release
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
    TENANT,
    agent,
    api,
    api_token,
    assert_nothing_left,
    bridges,
    configure_tenant,
    connect,
    grows,
    record,
    registered,
    running,
    since,
)
from tests.e2e.stack import Stack, wait_until
from tests.support.config_files import config_data

pytestmark = pytest.mark.pbx

OPERATOR, SUPERVISOR = "101", "109"
# Each party sends its own pure tone, so what a phone recorded tells whose voice reached it.
CALLER_HZ, OPERATOR_HZ, SUPERVISOR_HZ = 425, 600, 1400
HEARD, NOT_HEARD = 0.1, 0.01  # share of the received power at the supervisor's frequency


@pytest.fixture(scope="module")
def lstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("listen")),
              operators={OPERATOR: "listen-e2e-101-pw", SUPERVISOR: "listen-e2e-109-pw"})
    configure_tenant(s, **config_data("e2e_operator_tenant.yaml"))
    with running(s):
        s.token = api_token(s, "giamsat", "supervisor")  # type: ignore[attr-defined]
        s.op_token = api_token(s, OPERATOR, "operator")  # type: ignore[attr-defined]
        yield s


@pytest.fixture(scope="module")
def phones(lstack: Stack) -> Iterator[tuple[OperatorPhone, OperatorPhone]]:
    (lstack.workdir / "heard-by-operator").mkdir(exist_ok=True)
    with registered(lstack, OPERATOR, auto_answer=0.2, audio=f"tone:{OPERATOR_HZ}",
                    record_dir=lstack.workdir / "heard-by-operator") as op:
        sup = lstack.operator_phone(SUPERVISOR, auto_answer=0.2, audio=f"tone:{SUPERVISOR_HZ}")
        try:
            assert sup.wait_registered() == 200
            out = lstack.cli("agent", "login", OPERATOR)
            assert out.returncode == 0, out.stderr
            yield op, sup
        finally:
            sup.close()


@pytest.fixture
def ls(lstack: Stack, phones: tuple[OperatorPhone, OperatorPhone]) -> Iterator[Stack]:
    assert wait_until(lambda: agent(lstack, OPERATOR)["state"] == "available", 10)
    try:
        yield lstack
        assert_nothing_left(lstack)
        assert agent(lstack, SUPERVISOR)["state"] != "available"  # never logged in
    finally:
        phones[0].hangup()
        phones[1].hangup()


def new_sip_events(phone: Any, mark: int) -> list[dict[str, Any]]:
    """Anything a phone would notice: a new call, a re-INVITE changing its media, a hang-up."""
    return [e for e in phone.events[mark:]
            if e["event"] in ("incoming", "media", "replaced", "disconnected", "dialing")]


@pytest.mark.parametrize("mode", ["listen", "whisper"])
def test_given_bridged_call_when_supervisor_listens_then_hears_it_and_nobody_notices(
        ls: Stack, phones: tuple[OperatorPhone, OperatorPhone], mode: str) -> None:
    op, sup = phones
    token: str = ls.token  # type: ignore[attr-defined]
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(ls, op, citizen)
        op_mark, cit_mark, sup_mark = len(op.events), len(citizen.events), len(sup.events)
        # An operator may not listen in; an unknown extension is refused.
        status, body = api(ls, "POST", f"/calls/{call_id}/listen", {"extension": SUPERVISOR},
                           token=ls.op_token)  # type: ignore[attr-defined]
        assert (status, body["error"]["id"]) == (403, "auth.forbidden")
        status, body = api(ls, "POST", f"/calls/{call_id}/listen",
                           {"extension": "555", "mode": mode}, token=token)
        assert (status, body["error"]["id"]) == (422, "listen.unknown_extension")
        status, body = api(ls, "POST", f"/calls/{call_id}/listen",
                           {"extension": SUPERVISOR, "mode": mode}, token=token)
        assert status == 202, body
        listen_id = body["listen_id"]
        incoming = wait_until(lambda: since(sup, sup_mark, "incoming"), 10)
        assert incoming, ls.app_log_tail()
        sup_index = incoming[0]["index"]
        assert wait_until(lambda: since(sup, sup_mark, "confirmed"), 10)
        # The supervisor receives the call's audio.
        assert wait_until(lambda: sup.rtp_rx(sup_index) > 50, 8), (sup.of("rtp"),
                                                                   ls.app_log_tail())
        assert grows(sup, sup_index)
        listen_bridges = {b: c for b, c in bridges(ls).items() if "-listen" in b}
        (chans,) = listen_bridges.values()
        assert listen_id in chans and len(chans) == 2  # supervisor + snoop
        call_bridge = bridges(ls)[f"{call_id}-bridge"]
        assert call_id in call_bridge and len(call_bridge) == 2  # untouched: caller, operator
        # Caller and operator talk on, noticing nothing: no new call, no re-INVITE.
        assert grows(citizen, 0) and grows(op, index)
        assert new_sip_events(op, op_mark) == [] and new_sip_events(citizen, cit_mark) == []
        status, body = api(ls, "GET", f"/calls/{call_id}/listen", token=token)
        assert status == 200 and [a["mode"] for a in body["active"]] == [mode]
        if mode == "whisper":
            # The supervisor speaks (tone) into the snoop that whispers to the operator.
            assert wait_until(lambda: sup.rtp_tx(sup_index) > 50, 5)
            status, body = api(ls, "DELETE", f"/calls/{call_id}/listen", token=token)
            assert status == 200 and body["stopped"] == [listen_id]
            assert wait_until(lambda: since(sup, sup_mark, "disconnected"), 10)
            assert wait_until(lambda: not [b for b in bridges(ls) if "-listen" in b], 5)
            assert grows(citizen, 0) and grows(op, index)  # the call goes on
            citizen.hangup()
        else:
            # The caller hangs up: the call ends, and with it the listen-in; the line is free
            # within 1 s (issue 15: hang-up in every state).
            hang_up_and_time_release(ls, citizen.hangup, "supervisor listening in")
            assert wait_until(lambda: since(sup, sup_mark, "disconnected"), 10)
        assert wait_until(lambda: [e for e in op.events[op_mark:]
                                   if e["event"] == "disconnected"], 10)
        assert since(sup, sup_mark, "incoming") == incoming  # rung once, for the listen-in
    finally:
        citizen.close()
    store = ListenAuditStore(ls.database_url)
    try:
        (use,) = wait_until(lambda: [u for u in store.recent(TENANT, call_id=call_id)
                                     if u.ended_at is not None], 5)
    finally:
        store.close()
    assert (use.supervisor, use.extension, use.operator, use.mode) == (
        "giamsat", SUPERVISOR, OPERATOR, mode)
    assert use.started_at is not None and use.end_reason == (
        "stopped by giamsat" if mode == "whisper" else "call ended")
    assert f"listen {listen_id}: ended" in ls.app_log.read_text()
    rec = record(ls, call_id)
    assert (rec["outcome"], rec["operator"]) == ("answered", OPERATOR)


@pytest.mark.parametrize(("mode", "operator_hears", "caller_hears"), [
    ("listen", False, False), ("whisper", True, False), ("barge", True, True)])
def test_given_mode_when_supervisor_speaks_then_only_the_right_people_hear_it(
        ls: Stack, phones: tuple[OperatorPhone, OperatorPhone], tmp_path: Path, mode: str,
        operator_hears: bool, caller_hears: bool) -> None:
    op, sup = phones
    token: str = ls.token  # type: ignore[attr-defined]
    citizen = UnitPhone(answer_after=None, record_dir=tmp_path)
    try:
        call_id, index = connect(ls, op, citizen)
        sup_mark, op_mark = len(sup.events), len(op.events)
        status, body = api(ls, "POST", f"/calls/{call_id}/listen",
                           {"extension": SUPERVISOR, "mode": mode}, token=token)
        assert status == 202, body
        incoming = wait_until(lambda: since(sup, sup_mark, "incoming"), 10)
        assert incoming, ls.app_log_tail()
        sup_index = incoming[0]["index"]
        assert wait_until(lambda: sup.rtp_tx(sup_index) > 10 and sup.rtp_rx(sup_index) > 10, 10)
        # Three seconds of the supervisor speaking (150 packets of 20 ms sent) ...
        start = sup.rtp_tx(sup_index)
        assert wait_until(lambda: sup.rtp_tx(sup_index) > start + 150, 10)
        hang_up_at = time.time()
        citizen.hangup()  # ... then the call ends: the recordings close
        assert wait_until(lambda: since(op, op_mark, "disconnected"), 10)
        assert wait_until(lambda: citizen.of("disconnected"), 10)
    finally:
        citizen.close()
    # The two seconds before the hang-up, on each phone's own recording (its start is the
    # phone's "recording" event): inside the listen-in, and before either side went quiet.
    at_op = ls.workdir / "heard-by-operator" / f"call-{index}.wav"
    at_cit = tmp_path / "call-0.wav"
    op_window = _before(op, index, hang_up_at)
    cit_window = _before(citizen, 0, hang_up_at)
    at_operator = heard(at_op, SUPERVISOR_HZ, between=op_window)
    at_caller = heard(at_cit, SUPERVISOR_HZ, between=cit_window)
    assert (at_operator >= HEARD) is operator_hears, (mode, at_operator)
    assert (at_operator <= NOT_HEARD) is not operator_hears, (mode, at_operator)
    assert (at_caller >= HEARD) is caller_hears, (mode, at_caller)
    assert (at_caller <= NOT_HEARD) is not caller_hears, (mode, at_caller)
    # The call itself went on: each heard the other's tone.
    assert heard(at_cit, OPERATOR_HZ, between=cit_window) >= HEARD
    assert heard(at_op, CALLER_HZ, between=op_window) >= HEARD


def _before(phone: Any, index: int, moment: float, span: float = 2.0,
            margin: float = 0.3) -> tuple[float, float]:
    """The ``span`` seconds up to ``margin`` before ``moment`` (wall clock), in seconds from
    the start of the phone's recording of call ``index``."""
    (started,) = [e["t"] for e in phone.events
                  if e["event"] == "recording" and e.get("index") == index]
    end = moment - started - margin
    return end - span, end

WEB_SUPERVISOR, WEB_PASSWORD = "giamsat.web", "Mật khẩu giám sát 2026"


def test_given_wallboard_when_supervisor_clicks_listen_then_their_phone_hears_the_call(
        ls: Stack, phones: tuple[OperatorPhone, OperatorPhone], browser: Any) -> None:
    from playwright.sync_api import expect

    op, sup = phones
    add_user(ls, WEB_SUPERVISOR, "supervisor", WEB_PASSWORD)
    citizen = UnitPhone(answer_after=None)
    ctx = new_context(browser, 768, 1024)
    try:
        call_id, _index = connect(ls, op, citizen)
        page = ctx.new_page()
        login(page, ls, WEB_SUPERVISOR, WEB_PASSWORD)
        page.goto(base_url(ls) + "/console/wallboard")
        row = page.locator(f'tr[data-extension="{OPERATOR}"]')
        expect(row).to_have_attribute("data-state", "on_call", timeout=10_000)
        # No extension typed yet: told to type one, nothing rings.
        sup_mark = len(sup.events)
        row.locator("button.listen-listen").click()
        expect(page.locator("#listen-status")).to_contain_text("Nhập máy lẻ")
        # An extension that is no phone of the province: the API's Vietnamese refusal.
        page.fill("#listen-ext", "555")
        row.locator("button.listen-listen").click()
        expect(page.locator("#listen-status")).to_contain_text("không phải máy của tổng đài")
        page.fill("#listen-ext", SUPERVISOR)
        row.locator("button.listen-listen").click()
        expect(page.locator("#listen-status")).to_contain_text(f"Máy lẻ {SUPERVISOR} đổ chuông")
        incoming = wait_until(lambda: since(sup, sup_mark, "incoming"), 10)
        assert incoming, ls.app_log_tail()
        sup_index = incoming[0]["index"]
        assert wait_until(lambda: sup.rtp_rx(sup_index) > 50, 10), ls.app_log_tail()
        assert no_sideways_scroll(page)
        screenshot(page, "wallboard-listen")
        page.click("#listen-stop")
        expect(page.locator("#listen-status")).to_contain_text("Đã dừng nghe xen")
        assert wait_until(lambda: since(sup, sup_mark, "disconnected"), 10)
        status, body = api(ls, "GET", f"/calls/{call_id}/listen",
                           token=ls.token)  # type: ignore[attr-defined]
        assert status == 200 and body["active"] == []
        assert [a["supervisor"] for a in body["audit"]][:1] == [WEB_SUPERVISOR]
        citizen.hangup()
    finally:
        ctx.close()
        citizen.close()
