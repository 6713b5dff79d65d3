"""The operator desk's transfer panel and its banners in a real browser (Debian's headless
Chromium via Playwright) against a whole running hotline.

One stack for the module: operator 101 (a pjsua2 phone answering by itself), a unit "so_y_te"
whose hotline is reached over the outbound trunk (a pjsua2 unit phone on the trunk's port,
started per call), wrap-up long enough to be seen and ended from the desk. The citizen is a
pjsua2 phone too, so the test hears what each party hears (RTP per call). From the desk: a
blind transfer, an attended transfer completed, an attended transfer cancelled; then the stale
banner (the desk's API cut off and restored) and the session-ended banner (logout in another
tab). Each test ends with nothing left: no channel or bridge in Asterisk, no line held.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import scenarios
from tests.e2e.browser import (
    add_user,
    base_url,
    chromium_missing,
    login,
    new_context,
    no_sideways_scroll,
    screenshot,
)
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
    agent,
    assert_nothing_left,
    bridges,
    configure_tenant,
    grows,
    record,
    registered,
    running,
)
from tests.e2e.stack import Stack, free_port, wait_until
from tests.support.config_files import config_data

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

UNITS = config_data("e2e_transfer_units.yaml")
HOTLINE = UNITS["units"][0]["hotline"]  # so_y_te's: 02513822000
UNIT_PORT = free_port(socket.SOCK_DGRAM)
PASSWORD = "Mật khẩu thử 2026"
OPERATOR_PW = "desk-xfer-e2e-101-pw"
EXPECT_MS = 10_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("desk-transfer")), operators={"101": OPERATOR_PW},
              outbound_port=UNIT_PORT)
    tenant = config_data("e2e_operator_tenant.yaml")
    tenant["queue"]["wrap_up_s"] = 120  # long enough to be seen and ended from the desk
    configure_tenant(s, **tenant, **UNITS)
    with running(s):
        add_user(s, "101", "operator", PASSWORD, full_name="Tổng đài viên 101")
        yield s


@pytest.fixture(scope="module")
def op(stack: Stack) -> Iterator[OperatorPhone]:
    with registered(stack, "101", auto_answer=0.2) as phone:
        yield phone


@pytest.fixture
def page(stack: Stack, op: OperatorPhone, browser: Any) -> Iterator[Any]:
    """The desk of 101, logged in, the operator available; afterwards nothing is left."""
    from playwright.sync_api import expect

    ctx = new_context(browser, 768, 1024)  # a tablet held upright
    try:
        pg = ctx.new_page()
        login(pg, stack, "101", PASSWORD)
        pg.goto(base_url(stack) + "/console/desk")
        state = pg.locator("#agent-state")
        expect(state).not_to_have_attribute("data-state", "", timeout=EXPECT_MS)
        if state.get_attribute("data-state") == "logged_out":
            pg.click("#btn-ready")  # logged out -> log in
        expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)
        yield pg
        assert_nothing_left(stack)
    finally:
        op.hangup()
        ctx.close()


def connect(stack: Stack, op: OperatorPhone, page: Any,
            citizen: UnitPhone) -> tuple[str, int]:
    """The citizen calls 1022, operator 101 answers, the desk shows the call with its transfer
    button enabled: (call id, the operator phone's call index)."""
    from playwright.sync_api import expect

    call_id, index = scenarios.connect(stack, op, citizen)
    expect(page.locator("#call-card")).to_have_attribute("data-call", call_id, timeout=EXPECT_MS)
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "on_call")
    expect(page.locator("#btn-transfer")).to_be_enabled(timeout=EXPECT_MS)
    expect(page.locator("#transfer-progress")).to_be_hidden()
    return call_id, index


def start_transfer(page: Any, kind: str) -> None:
    """Choose the unit and the kind on the desk and press "Chuyển cuộc gọi"."""
    page.select_option("#transfer-unit", "so_y_te")
    page.select_option("#transfer-kind", kind)
    page.click("#btn-transfer")


def operator_left(op: OperatorPhone, index: int) -> bool:
    return bool(wait_until(lambda: [e for e in op.events if e["event"] == "disconnected"
                                    and e["index"] == index], 5))


def unit_took_caller(stack: Stack, call_id: str) -> bool:
    """The call's bridge holds the caller and the unit's leg, and no consultation is left."""
    return bool(wait_until(lambda: sorted(bridges(stack).get(f"{call_id}-bridge", []))
                           == sorted([call_id, f"{call_id}-unit1"])
                           and f"{call_id}-consult1" not in bridges(stack), 5))


def end_wrap_up(page: Any) -> None:
    """The operator's part is over: wrap-up, no transfer to offer; "Kết thúc xử lý" ends it."""
    from playwright.sync_api import expect

    state = page.locator("#agent-state")
    expect(state).to_have_attribute("data-state", "wrap_up", timeout=EXPECT_MS)
    expect(page.locator("#transfer-progress")).to_be_hidden()
    expect(page.locator("#btn-transfer")).to_be_disabled()
    page.click("#btn-wrapup")
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)


def test_given_call_on_desk_when_blind_transfer_pressed_then_caller_talks_to_unit(
        stack: Stack, op: OperatorPhone, page: Any) -> None:
    from playwright.sync_api import expect

    unit = UnitPhone(UNIT_PORT, answer_after=None)  # rings until answered: the desk shows it
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(stack, op, page, citizen)
        start_transfer(page, "blind")
        expect(page.locator('#transfer-msg[data-kind="ok"]')).to_have_text(
            "Đang gọi đơn vị…", timeout=EXPECT_MS)
        assert wait_until(lambda: unit.dialled() == [HOTLINE], 10), unit.events
        status = page.locator("#transfer-status")
        expect(status).to_have_text(
            "Đang chuyển tới Sở Y tế (chuyển thẳng): đang đổ chuông…", timeout=EXPECT_MS)
        expect(page.locator("#btn-transfer-complete")).to_be_hidden()  # blind: nothing to do
        expect(page.locator("#btn-transfer-cancel")).to_be_enabled()
        expect(page.locator("#btn-transfer")).to_be_disabled()
        assert no_sideways_scroll(page)
        screenshot(page, "desk-transfer-ringing")
        unit.answer()

        # The unit took the caller; the operator's phone is released.
        assert operator_left(op, index), op.events
        assert unit_took_caller(stack, call_id), bridges(stack)
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5), unit.of("rtp")
        assert grows(citizen, 0) and grows(unit, 0)  # both ways
        expect(page.locator("#call-phase")).to_have_text("Đã chuyển cho đơn vị",
                                                         timeout=EXPECT_MS)
        # The message under the panel followed the transfer to its end.
        expect(page.locator('#transfer-msg[data-kind="ok"]')).to_have_text(
            "Đã chuyển cuộc gọi cho đơn vị.", timeout=EXPECT_MS)
        end_wrap_up(page)
        assert agent(stack)["state"] == "available"
        unit.hangup()  # the unit hanging up ends the call
        assert citizen.wait_for("disconnected", 1, 10)
        expect(page.locator("#no-call")).to_be_visible(timeout=EXPECT_MS)
        expect(page.locator("#transfer-msg")).to_have_text("")  # no word of a call gone
    finally:
        unit.close()
        citizen.close()
    rec = record(stack, call_id)
    assert rec["outcome"] == "answered" and rec["operator"] == "101", rec
    (t,) = rec["transfers"]
    assert (t["by"], t["unit"], t["number"], t["kind"], t["answered"], t["result"]) == (
        "101", "so_y_te", HOTLINE, "blind", True, "completed"), t


def test_given_call_on_desk_when_attended_transfer_completed_then_unit_takes_caller(
        stack: Stack, op: OperatorPhone, page: Any) -> None:
    from playwright.sync_api import expect

    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(stack, op, page, citizen)
        start_transfer(page, "attended")
        # Consultation: operator and unit talk in a bridge of their own, the caller waits.
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(stack).get(consult, [])) == 2, 10), bridges(stack)
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5) and grows(op, index)
        expect(page.locator("#transfer-status")).to_have_text(
            "Đang chuyển tới Sở Y tế (trao đổi trước): đơn vị đã nhấc máy.", timeout=EXPECT_MS)
        # The message no longer says the unit is being called.
        expect(page.locator('#transfer-msg[data-kind="ok"]')).to_have_text(
            "Đơn vị đã nhấc máy: trao đổi xong thì bấm “Hoàn tất chuyển”, hoặc “Hủy chuyển” "
            "để trở lại với người gọi.", timeout=EXPECT_MS)
        complete = page.locator("#btn-transfer-complete")
        expect(complete).to_be_visible()
        expect(complete).to_be_enabled()
        expect(page.locator("#btn-transfer-cancel")).to_be_enabled()
        assert no_sideways_scroll(page)
        screenshot(page, "desk-transfer-consult")
        complete.click()
        expect(page.locator('#transfer-msg[data-kind="ok"]')).to_have_text(
            "Đã chuyển cuộc gọi cho đơn vị.", timeout=EXPECT_MS)

        assert unit_took_caller(stack, call_id), bridges(stack)
        assert operator_left(op, index), op.events
        assert grows(unit, 0) and grows(citizen, 0)
        end_wrap_up(page)
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(stack, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "completed"), t


def test_given_consultation_on_desk_when_cancel_pressed_then_operator_back_with_caller(
        stack: Stack, op: OperatorPhone, page: Any) -> None:
    from playwright.sync_api import expect

    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(stack, op, page, citizen)
        start_transfer(page, "attended")
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(stack).get(consult, [])) == 2, 10), bridges(stack)
        cancel = page.locator("#btn-transfer-cancel")
        expect(page.locator("#btn-transfer-complete")).to_be_enabled(timeout=EXPECT_MS)
        cancel.click()
        expect(page.locator('#transfer-msg[data-kind="ok"]')).to_have_text(
            "Đã hủy chuyển; người gọi trở lại với bạn.", timeout=EXPECT_MS)

        # The unit's leg is gone; the operator talks with the caller again.
        assert unit.wait_for("disconnected", 1, 10), unit.events
        assert wait_until(lambda: consult not in bridges(stack) and len(
            bridges(stack).get(f"{call_id}-bridge", [])) == 2
            and f"{call_id}-unit1" not in bridges(stack)[f"{call_id}-bridge"], 5), bridges(stack)
        assert grows(citizen, 0) and grows(op, index)
        assert not [e for e in op.events if e["event"] == "disconnected"
                    and e["index"] == index]
        expect(page.locator("#transfer-progress")).to_be_hidden(timeout=EXPECT_MS)
        expect(page.locator("#btn-transfer")).to_be_enabled()  # may transfer again
        expect(page.locator("#agent-state")).to_have_attribute("data-state", "on_call")
        assert agent(stack)["state"] == "on_call"
        citizen.hangup()
        assert operator_left(op, index), op.events
        end_wrap_up(page)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(stack, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "returned"), t


def test_given_polls_overlapping_when_older_reply_comes_last_then_desk_keeps_newer_state(
        stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    # Hold back one timed poll's reply (the server answered "available"), pause meanwhile
    # (the pause's own poll shows "paused"), then let the old reply arrive.
    held: list[tuple[Any, Any]] = []

    def hold(route: Any) -> None:
        if not held and "detail=false" in route.request.url:
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route("**/api/v1/desk*", hold)
    assert wait_until(lambda: held or page.wait_for_timeout(100), 10), "no poll held"
    assert held[0][1].json()["agent"]["state"] == "available"
    state = page.locator("#agent-state")
    page.select_option("#pause-reason", "meeting")
    page.click("#btn-pause")
    expect(state).to_have_attribute("data-state", "paused", timeout=EXPECT_MS)
    page.evaluate("() => { window.deskStates = []; new MutationObserver(() => window.deskStates"
                  ".push(document.getElementById('agent-state').dataset.state)).observe("
                  "document.getElementById('agent-state'), {attributes: true}); }")
    route, reply = held[0]
    # Nothing else is asking now (the timed loop waits for this very reply).
    with page.expect_response(lambda r: "/api/v1/desk" in r.url, timeout=EXPECT_MS):
        route.fulfill(response=reply)
    # The next timed poll has been answered too: the old reply has been handled by then.
    with page.expect_response(lambda r: "/api/v1/desk" in r.url, timeout=EXPECT_MS):
        pass
    page.unroute("**/api/v1/desk*", hold)
    seen = page.evaluate("window.deskStates")
    assert seen and set(seen) == {"paused"}, seen  # never stepped back to "available"
    expect(state).to_have_attribute("data-state", "paused")
    page.click("#btn-ready")  # back to work for the next test
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)


def test_given_desk_when_api_cut_off_then_stale_banner_until_it_answers_again(
        stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    banner = page.locator("#stale-banner")
    expect(banner).to_be_hidden()
    page.route("**/api/v1/desk*", lambda route: route.abort())
    # The desk polls every 1.5 s and gives up on a request after 5 s: well within 10 s.
    expect(banner).to_be_visible(timeout=EXPECT_MS)
    expect(banner).to_contain_text("Mất kết nối với máy chủ")
    expect(page.locator("#desk")).to_have_attribute("data-stale", "1")
    screenshot(page, "desk-stale")
    page.unroute("**/api/v1/desk*")
    expect(banner).to_be_hidden(timeout=EXPECT_MS)
    expect(page.locator("#desk")).to_have_attribute("data-stale", "0")
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "available")


def test_given_desk_when_logged_out_in_another_tab_then_session_ended_banner_with_login_link(
        stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    # A clock of the test's own (running at the real pace until told to jump), so that the
    # minutes after the logout can pass without waiting for them.
    page.clock.install()
    page.reload()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "available",
                                                           timeout=EXPECT_MS)
    banner = page.locator("#session-banner")
    expect(banner).to_be_hidden()
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    other = page.context.new_page()  # another tab of the same browser: the same session
    other.goto(base_url(stack) + "/console/")
    status = other.evaluate(
        "async (t) => { const r = await fetch('/console/logout', {method: 'POST', "
        "credentials: 'same-origin', body: new URLSearchParams({csrf: t})}); "
        "return r.status; }", token)
    assert status == 200, status  # the login page, after the redirect

    expect(banner).to_be_visible(timeout=EXPECT_MS)
    expect(banner).to_contain_text("Phiên đăng nhập đã hết hạn.")
    expect(page.locator("#desk")).to_have_attribute("data-session", "ended")
    for button in ("#btn-pause", "#btn-save", "#btn-forward"):  # each would be refused now
        expect(page.locator(button)).to_be_disabled()
    link = banner.get_by_role("link", name="Đăng nhập lại")
    expect(link).to_have_attribute("href", "/console/login?next=/console/desk")
    # The desk stops asking (nothing will answer until a new login): it must not claim to be
    # retrying a lost connection later on.
    page.clock.fast_forward(60_000)
    expect(page.locator("#stale-banner")).to_be_hidden()
    expect(banner).to_be_visible()
    screenshot(page, "desk-session-ended")

    # The link leads back to the desk after logging in again.
    link.click()
    page.wait_for_url(re.compile(r".*/console/login\?next=/console/desk$"), timeout=EXPECT_MS)
    page.fill("#username", "101")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/desk", timeout=EXPECT_MS)
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "available",
                                                           timeout=EXPECT_MS)
    expect(page.locator("#session-banner")).to_be_hidden()
    expect(page.locator("#btn-pause")).to_be_enabled()
