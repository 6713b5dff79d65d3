"""The console in a real browser (Debian's headless Chromium via Playwright) against a whole
running hotline: login per role, the live wallboard while a real call comes and goes (and its
warning of fewer operators logged in than the shift's minimum), the admin shift form lowering
the line count to 0 (the next call hears busy), a refused value, and screenshots as test
artefacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.console.pages import ROLE_LINKS
from tests.e2e.browser import (
    add_user,
    base_url,
    chromium_missing,
    login,
    new_context,
    no_sideways_scroll,
    screenshot,
)
from tests.e2e.scenarios import configure_tenant, nothing_left_after, running
from tests.e2e.stack import Stack, wait_until
from tests.support.config_files import config_data

pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=chromium_missing() or "")

PASSWORD = "Mật khẩu thử 2026"
USERS = {  # name -> (role, unit)
    "quantri": ("admin", None),
    "giamsat": ("supervisor", None),
    "101": ("operator", None),
    "soyte": ("unit", "so_y_te"),
}
EXPECT_TIMEOUT = 10_000  # ms


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("console-browser")),
              operators={"101": "pw-101-browser-e2e"})
    # Every test logs in again from 127.0.0.1: more than the default 10 a minute.
    s.config_data["service"]["login_attempts_per_minute"] = 60
    for shift in s.config_data["tenants"][0]["shifts"]:
        shift["min_operators"] = 2  # Thanh Hóa's "02 người/ca trực"; only 101 exists here
    configure_tenant(s, **config_data("e2e_one_unit.yaml"))
    with running(s):
        for name, (role, unit) in USERS.items():
            add_user(s, name, role, PASSWORD, unit=unit)
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = new_context(browser)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def hotline(stack: Stack) -> Iterator[Stack]:
    """The stack idle before and after a test: nothing held in the pool."""
    assert wait_until(lambda: stack.pool_in_use() == 0, 10), stack.app_log_tail()
    yield stack
    assert wait_until(lambda: stack.pool_in_use() == 0, 10), "lines still held after the test"


def logged_in(context: Any, stack: Stack, name: str) -> Any:
    page = context.new_page()
    login(page, stack, name, PASSWORD)
    return page


@pytest.mark.parametrize(("name", "links"), [
    ("quantri", [href for href, _ in ROLE_LINKS["admin"]]),
    ("giamsat", ["/console/wallboard", "/console/tickets", "/console/review",
                 "/console/oversight", "/console/calls", "/console/callbacks",
                 "/console/quality"]),
    ("101", ["/console/desk", "/console/callbacks"]),
    ("soyte", ["/console/tickets", "/console/oversight"]),
])
def test_given_each_role_when_logging_in_then_home_shows_role_and_only_its_links(
        stack: Stack, context: Any, name: str, links: list[str]) -> None:
    from playwright.sync_api import expect

    page = logged_in(context, stack, name)
    assert page.url == base_url(stack) + "/console/"
    expect(page.locator(f'[data-user="{name}"]')).to_be_visible()
    expect(page.locator(f'[data-role="{USERS[name][0]}"]')).to_be_visible()
    assert page.locator("nav a").evaluate_all("els => els.map(e => e.getAttribute('href'))") \
        == links
    session = [c for c in context.cookies() if c["name"] == "hotline_session"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    # Scripts in the page cannot read the session cookie.
    assert "hotline_session" not in page.evaluate("document.cookie")


def test_given_unit_user_when_opening_wallboard_then_403(stack: Stack, context: Any) -> None:
    from playwright.sync_api import expect

    page = logged_in(context, stack, "soyte")
    response = page.goto(base_url(stack) + "/console/wallboard")
    assert response is not None and response.status == 403
    expect(page.locator('[data-error-id="auth.forbidden"]')).to_be_visible()
    assert page.locator("#lines-in-use").count() == 0


def test_given_supervisor_on_wallboard_when_call_answered_then_hung_up_then_lines_1_then_0(
        hotline: Stack, context: Any) -> None:
    from playwright.sync_api import expect

    page = logged_in(context, hotline, "giamsat")
    page.goto(base_url(hotline) + "/console/wallboard")
    in_use = page.locator("#lines-in-use")
    expect(in_use).to_have_text("0", timeout=EXPECT_TIMEOUT)
    expect(page.locator("#lines-limit")).to_have_text("3", timeout=EXPECT_TIMEOUT)
    expect(page.locator("#stale-banner")).to_be_hidden()
    understaffed = page.locator('[data-testid="understaffed-banner"]')
    expect(understaffed).to_have_attribute("data-understaffed", "1", timeout=EXPECT_TIMEOUT)
    expect(understaffed).to_be_visible()
    expect(understaffed).to_have_text(re.compile(
        r"Ca trực hiện có [01]/2 tổng đài viên đăng nhập — dưới mức tối thiểu"))
    phone = hotline.phone("1022", hold=30, caller="0909777001")
    try:
        assert phone.wait_for("answered", 1, 15), phone.events
        expect(in_use).to_have_text("1", timeout=EXPECT_TIMEOUT)
        expect(page.locator("#lines-bar")).to_have_attribute("data-full", "0")
        page.wait_for_timeout(300)  # let the chart and KPIs of the same state paint
        screenshot(page, "wallboard")
    finally:
        results = phone.finish()
    assert [r["final_code"] for r in results] == [200], results
    expect(in_use).to_have_text("0", timeout=EXPECT_TIMEOUT)


def _active_lines_input(page: Any) -> Any:
    active = page.locator("[data-active-shift]").get_attribute("data-active-shift")
    assert active, "the page names no shift in force"
    return page.locator(f'tr[data-shift="{active}"] input[name^="lines-"]')


def _save_lines(page: Any, value: str) -> None:
    field = _active_lines_input(page)
    field.fill(value)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_given_admin_when_lowering_current_shift_to_0_then_saved_and_next_call_busy(
        hotline: Stack, context: Any) -> None:
    from playwright.sync_api import expect

    page = logged_in(context, hotline, "quantri")
    page.goto(base_url(hotline) + "/console/admin/shifts")
    expect(_active_lines_input(page)).to_have_value("3")
    screenshot(page, "admin-shifts")
    try:
        _save_lines(page, "0")
        expect(page.locator("[data-saved]")).to_be_visible()
        screenshot(page, "admin-shifts-saved")
        assert wait_until(lambda: hotline.app_lines() == 0, 5), hotline.app_log_tail()
        phone = hotline.phone("1022", hold=30, caller="0909777002")
        # The busy message plays as early media (183), then 486 ends the call by itself.
        assert phone.wait_for("disconnected", 1, 30), phone.events
        (result,) = phone.finish()
        assert result["final_code"] == 486 and not result["answered"], result
        assert result["early_media"] and result["rtp_rx_before_answer"] > 20, result
    finally:
        page.goto(base_url(hotline) + "/console/admin/shifts")
        _save_lines(page, "3")
    expect(page.locator("[data-saved]")).to_be_visible()
    assert wait_until(lambda: hotline.app_lines() == 3, 5), hotline.app_log_tail()


def test_given_admin_when_entering_negative_lines_then_field_error_and_file_unchanged(
        hotline: Stack, context: Any) -> None:
    from playwright.sync_api import expect

    page = logged_in(context, hotline, "quantri")
    page.goto(base_url(hotline) + "/console/admin/shifts")
    before = hotline.config_path.read_bytes()
    field = _active_lines_input(page)
    key = field.get_attribute("name")
    _save_lines(page, "-1")
    error = page.locator(f'[data-error-field="{key}"]')
    expect(error).to_be_visible()
    assert error.inner_text().strip()
    expect(page.locator(f'input[name="{key}"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-saved]")).to_have_count(0)
    screenshot(page, "admin-shifts-invalid")
    assert hotline.config_path.read_bytes() == before
    assert hotline.app_lines() == 3


# Every console page, as the role that uses it, must fit a tablet without sideways scrolling.
TABLET_PAGES = {"quantri": ["/console/", "/console/admin/shifts", "/console/admin/users"],
                "giamsat": ["/console/wallboard", "/console/tickets", "/console/review",
                            "/console/calls", "/console/callbacks"],
                "101": ["/console/desk", "/console/callbacks"], "soyte": ["/console/tickets"]}
TABLETS = ({"width": 768, "height": 1024}, {"width": 1024, "height": 768})


def test_given_tablet_when_console_pages_open_then_no_sideways_scrolling(
        stack: Stack, browser: Any) -> None:
    # One login per user (the login rate limit counts every login from 127.0.0.1).
    for name, paths in TABLET_PAGES.items():
        ctx = new_context(browser, **TABLETS[0], has_touch=True)
        try:
            page = ctx.new_page()
            login(page, stack, name, PASSWORD)
            for viewport in TABLETS:
                page.set_viewport_size(viewport)
                for path in paths:
                    response = page.goto(base_url(stack) + path)
                    assert response is not None and response.status == 200, path
                    page.wait_for_load_state("networkidle")
                    assert no_sideways_scroll(page), (path, viewport)
                    if viewport is TABLETS[0]:
                        screenshot(page, "tablet-" + path.strip("/").replace("/", "-"))
        finally:
            ctx.close()
