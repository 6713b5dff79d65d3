"""The operator desk in a real browser (Debian's headless Chromium via Playwright) against a whole
running hotline: a registered pjsua2 operator phone (101), a citizen's call through the IVR to
the queue, the desk showing the call, a ticket answered from the FAQ, a ticket forwarded to a
unit (its first answer lost on the way back: the desk finds it saved rather than saving twice),
then pause and the end of wrap-up from the desk's buttons; then two calls in a row with a
ticket drafted during the first: it keeps the first call's number and record id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import (
    add_user,
    base_url,
    chromium_missing,
    login,
    new_context,
    screenshot,
    to_docs,
)
from tests.e2e.scenarios import agent, configure_tenant, nothing_left_after, registered, running
from tests.e2e.stack import ROOT, Stack, wait_until
from tests.support.config_files import config_data

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

PASSWORD = "Mật khẩu thử 2026"
OPERATOR_PW = "desk-e2e-101-password"
CALLER = "0918200001"
CALLER_A, CALLER_B = "0918200002", "0918200003"
EXPECT_MS = 10_000
TREE = {  # 1 = an operator; nothing else, so the path is short and known
    "root": "main", "timeout": 5, "retries": 1, "inter_digit": 1, "fallback": "normal",
    "nodes": {
        "main": {"type": "menu", "prompt": "Để gặp tổng đài viên, bấm phím 1.",
                 "options": {"1": "normal"}},
        "normal": {"type": "operator", "prompt": "Xin giữ máy."},
    },
}
FAQ_CSV = ("Lĩnh vực,Câu hỏi,Trả lời,Từ khóa\n"
           "Y tế,Giờ làm việc của bệnh viện tỉnh?,Bệnh viện làm việc từ 7 giờ đến 17 giờ.,"
           "khám bệnh\n"
           "Y tế,Thủ tục cấp thẻ bảo hiểm y tế?,Nộp hồ sơ tại bưu điện xã.,bhyt\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("desk-browser")), operators={"101": OPERATOR_PW})
    tenant = config_data("e2e_operator_tenant.yaml")
    tenant["queue"]["wrap_up_s"] = 120
    units = config_data("e2e_one_unit.yaml")
    units["units"][0]["hotline"] = "02513822222"
    configure_tenant(s, **tenant, ivr=TREE, **units)
    with running(s):
        add_user(s, "101", "operator", PASSWORD, full_name="Tổng đài viên 101")
        faq = s.workdir / "faq.csv"
        faq.write_text(FAQ_CSV, encoding="utf-8")
        out = s.cli("faq", "import", str(faq), "--tenant", "dongnai")
        assert out.returncode == 0, out.stdout + out.stderr
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


@pytest.fixture(scope="module")
def phone(stack: Stack) -> Iterator[Any]:
    with registered(stack, "101") as p:
        yield p


@pytest.fixture
def page(stack: Stack, browser: Any) -> Iterator[Any]:
    # A tablet held upright: the desk must not scroll sideways.
    ctx = new_context(browser, 768, 1024)
    try:
        pg = ctx.new_page()
        login(pg, stack, "101", PASSWORD)
        yield pg
    finally:
        ctx.close()


def api_get(page: Any, path: str) -> Any:
    """GET an API path from inside the page (the session cookie, as the desk's script does)."""
    return page.evaluate("async (p) => { const r = await fetch(p, {credentials: "
                         "'same-origin'}); return {status: r.status, body: await r.json()}; }",
                         path)


def saved_code(page: Any, previous: str | None = None) -> str:
    """The code of the ticket the form just saved (the success message carries it)."""
    from playwright.sync_api import expect

    msg = page.locator("#ticket-msg")
    expect(msg).to_have_attribute("data-kind", "ok", timeout=EXPECT_MS)
    if previous:
        expect(msg).not_to_have_attribute("data-code", previous, timeout=EXPECT_MS)
    code = msg.get_attribute("data-code")
    assert code, msg.inner_text()
    return str(code)


def test_given_operator_on_desk_when_call_answered_then_call_shown_tickets_saved_and_paused(
        stack: Stack, phone: Any, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(base_url(stack) + "/console/desk")
    state = page.locator("#agent-state")
    expect(state).to_have_attribute("data-state", "logged_out", timeout=EXPECT_MS)
    page.click("#btn-ready")  # logged out -> log in
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)
    assert agent(stack)["state"] == "available"

    mark = len(phone.events)
    caller = stack.phone("1022", caller=CALLER, hold=90)
    try:
        assert caller.wait_for("answered", 1), caller.events
        time.sleep(0.5)  # the menu prompt has started: the digit is taken as a choice
        caller.send("dtmf 1")
        assert wait_until(lambda: any(e["event"] == "incoming" for e in phone.events[mark:]),
                          15), (phone.events[mark:], stack.app_log_tail())
        incoming = next(e for e in phone.events[mark:] if e["event"] == "incoming")
        phone.answer(incoming["index"])
        answered = time.monotonic()

        # The desk shows the call within a few seconds: number, tenant, IVR path.
        expect(page.locator("#call-caller")).to_have_text(CALLER, timeout=5_000)
        shown_s = time.monotonic() - answered
        expect(state).to_have_attribute("data-state", "on_call")
        expect(page.locator("#call-tenant")).to_have_text("Đồng Nai")
        path = page.locator("#ivr-path li")
        digit = page.locator('#ivr-path li[data-event="digit"]')
        expect(digit).to_have_count(1, timeout=EXPECT_MS)
        expect(digit).to_contain_text("Bấm phím 1")
        expect(page.locator('#ivr-path li[data-event="operator"]')).to_contain_text(
            "Chọn gặp điện thoại viên")
        expect(path.first).to_contain_text("Vào «Để gặp tổng đài viên, bấm phím 1.»")
        record_id = page.locator("#call-record").inner_text().strip()
        assert record_id.startswith("testpbx:"), record_id
        expect(page.locator("#t-phone")).to_have_value(CALLER)
        expect(page.locator("#t-call")).to_have_text(record_id)
        assert page.evaluate("document.documentElement.scrollWidth") <= 768  # no sideways scroll
        expect(page.locator("#btn-transfer")).to_be_enabled()  # bridged with this operator
        expect(page.locator("#transfer-progress")).to_be_hidden()

        # A refused number: a Vietnamese error next to the form, nothing saved.
        page.fill("#t-content", "Thử số sai")
        page.fill("#t-phone", "12ab")
        page.click("#btn-save")
        expect(page.locator('#ticket-msg[data-kind="error"]')).to_have_text(
            "Số điện thoại không hợp lệ.", timeout=EXPECT_MS)
        assert api_get(page, f"/api/v1/calls/{record_id}/tickets")["body"]["items"] == []
        page.fill("#t-phone", CALLER)
        page.fill("#t-content", "")
        expect(page.locator("#ticket-msg")).to_have_text("")  # the form changed: error gone

        # Answer from the FAQ: search without diacritics, choose, save -> closed with the answer.
        page.fill("#faq-q", "benh vien")
        first = page.locator("#faq-results li").first
        expect(first).to_contain_text("Giờ làm việc của bệnh viện tỉnh?", timeout=EXPECT_MS)
        first.locator("button.choose").click()
        expect(page.locator("#t-answer")).to_have_value("Bệnh viện làm việc từ 7 giờ đến 17 giờ.")
        screenshot(page, "desk")
        # A full-page screenshot resizes the viewport and back: let layout settle (two frames)
        # before the next click, or Chromium may deliver it to where the button was.
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => "
                      "requestAnimationFrame(r)))")
        page.click("#btn-answer")
        code1 = saved_code(page)
        t1 = api_get(page, f"/api/v1/tickets/{code1}")
        assert t1["status"] == 200, t1
        t1 = t1["body"]
        assert t1["state"] in ("answered", "closed") and not t1["open"], t1
        assert t1["result"] == "Bệnh viện làm việc từ 7 giờ đến 17 giờ."
        assert t1["faq_item"] and t1["call_ids"] == [record_id]
        assert (t1["field"], t1["citizen_phone"]) == ("health", CALLER)
        # The desk lists it under the call's tickets.
        expect(page.locator(f'#call-tickets li[data-code="{code1}"]')).to_have_count(
            1, timeout=EXPECT_MS)

        # A second ticket, forwarded by the routing (the fallback unit). The server stores it
        # but its answer is lost on the way back: the desk looks at the call's tickets, finds
        # it and goes on with the forward instead of saving a second one.
        lost: list[str] = []

        def lose_answer(route: Any) -> None:
            if route.request.method == "POST" and not lost:
                route.fetch()  # the server does the work...
                lost.append(route.request.url)
                route.abort("connectionreset")  # ...and the desk never hears of it
            else:
                route.continue_()

        page.route("**/api/v1/tickets", lose_answer)
        page.fill("#t-content", "Đèn đường trước cổng bệnh viện bị hỏng.")
        page.select_option("#t-field", "transport")
        page.click("#btn-forward")
        code2 = saved_code(page, code1)
        page.unroute("**/api/v1/tickets", lose_answer)
        assert lost, "the save's answer was not cut off"
        t2 = api_get(page, f"/api/v1/tickets/{code2}")["body"]
        assert (t2["state"], t2["unit"], t2["call_ids"]) == ("forwarded", "so_y_te",
                                                            [record_id]), t2
        expect(page.locator("#ticket-msg")).to_contain_text("Sở Y tế")
        of_call = api_get(page, f"/api/v1/calls/{record_id}/tickets")["body"]["items"]
        assert sorted(t["code"] for t in of_call) == sorted([code1, code2]), of_call
    finally:
        caller.finish()

    # After the call: wrap-up; pausing now waits for its end, "Kết thúc xử lý" ends it.
    expect(state).to_have_attribute("data-state", "wrap_up", timeout=EXPECT_MS)
    page.select_option("#pause-reason", "meeting")
    page.click("#btn-pause")
    expect(page.locator("#desk")).to_have_attribute("data-pending", "pause", timeout=EXPECT_MS)
    page.click("#btn-wrapup")
    expect(state).to_have_attribute("data-state", "paused", timeout=EXPECT_MS)
    expect(state).to_contain_text("Họp")
    via_api = api_get(page, "/api/v1/agents/101")
    assert via_api["status"] == 200 and (via_api["body"]["state"], via_api["body"]["reason"]) \
        == ("paused", "meeting"), via_api
    assert (agent(stack)["state"], agent(stack)["reason"]) == ("paused", "meeting")
    assert shown_s < 5, shown_s

    to_docs(ROOT / "test-artifacts" / "screenshots" / "desk.png", "desk.png")


def call_in(stack: Stack, phone: Any, number: str) -> Any:
    """A citizen calling from ``number`` chooses the operator; 101's phone answers."""
    mark = len(phone.events)
    caller = stack.phone("1022", caller=number, hold=90)
    assert caller.wait_for("answered", 1), caller.events
    time.sleep(0.5)  # the menu prompt has started: the digit is taken as a choice
    caller.send("dtmf 1")
    assert wait_until(lambda: any(e["event"] == "incoming" for e in phone.events[mark:]),
                      15), (phone.events[mark:], stack.app_log_tail())
    incoming = next(e for e in phone.events[mark:] if e["event"] == "incoming")
    phone.answer(incoming["index"])
    return caller


def test_given_ticket_drafted_during_call_when_next_call_arrives_then_draft_keeps_its_call(
        stack: Stack, phone: Any, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(base_url(stack) + "/console/desk")
    state = page.locator("#agent-state")
    expect(state).not_to_have_attribute("data-state", "", timeout=EXPECT_MS)
    if state.get_attribute("data-state") != "available":
        page.click("#btn-ready")  # logged out or paused (the test before): ready
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)
    content = "Nước sinh hoạt ở khu phố 3 bị đục từ sáng nay."

    first = call_in(stack, phone, CALLER_A)
    try:
        expect(page.locator("#call-caller")).to_have_text(CALLER_A, timeout=EXPECT_MS)
        record_a = page.locator("#call-record").inner_text().strip()
        expect(page.locator("#t-call")).to_have_text(record_a)
        page.fill("#t-content", content)
        page.check("#t-urgent")
    finally:
        first.finish()
    # Wrap-up ends (here from the desk) and the next caller is put through at once.
    expect(state).to_have_attribute("data-state", "wrap_up", timeout=EXPECT_MS)
    page.click("#btn-wrapup")
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)

    second = call_in(stack, phone, CALLER_B)
    try:
        expect(page.locator("#call-caller")).to_have_text(CALLER_B, timeout=EXPECT_MS)
        record_b = page.locator("#call-record").inner_text().strip()
        assert record_b != record_a
        notice = page.locator("#draft-notice")
        expect(notice).to_be_visible(timeout=EXPECT_MS)
        expect(notice).to_contain_text(f"gắn với cuộc gọi trước (số {CALLER_A})")
        expect(notice.locator("#btn-draft-clear")).to_have_text("Xoá phiếu")
        # The draft still belongs to the first call: its number, urgency and record.
        expect(page.locator("#t-phone")).to_have_value(CALLER_A)
        expect(page.locator("#t-urgent")).to_be_checked()
        expect(page.locator("#t-call")).to_have_text(record_a)
        expect(page.locator("#t-content")).to_have_value(content)
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.click("#btn-save")
        code = saved_code(page)
        t = api_get(page, f"/api/v1/tickets/{code}")["body"]
        assert (t["content"], t["citizen_phone"], t["urgent"], t["call_ids"]) == (
            content, CALLER_A, True, [record_a]), t
        assert api_get(page, f"/api/v1/calls/{record_b}/tickets")["body"]["items"] == []
        # Saved: the form is free again and follows the call in progress.
        expect(notice).to_be_hidden(timeout=EXPECT_MS)
        expect(page.locator("#t-phone")).to_have_value(CALLER_B)
        expect(page.locator("#t-urgent")).not_to_be_checked()
        expect(page.locator("#t-call")).to_have_text(record_b)
    finally:
        second.finish()
    expect(state).to_have_attribute("data-state", "wrap_up", timeout=EXPECT_MS)
    page.click("#btn-wrapup")
    expect(state).to_have_attribute("data-state", "available", timeout=EXPECT_MS)
