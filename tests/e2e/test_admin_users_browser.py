"""User administration in a real browser (Debian's headless Chromium via Playwright) against a
whole running hotline: an admin creates a supervisor in the form, the supervisor logs in and
sees the wallboard link, the admin disables them and their next page load is the login page;
an invalid form shows its field error; at tablet width (768×1024) no page scrolls sideways.
Screenshots in test-artifacts/screenshots/, one copy in docs/screenshots/admin-users.png."""

from __future__ import annotations

import re
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
    no_sideways_scroll,
    screenshot,
    to_docs,
)
from tests.e2e.scenarios import configure_tenant, nothing_left_after, running
from tests.e2e.stack import Stack
from tests.support.config_files import config_data

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

PASSWORD = "Mật khẩu thử 2026"
NEW_PASSWORD = "Giám sát mới 2026"
PATH = "/console/admin/users"
EXPECT_TIMEOUT = 10_000  # ms


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The hotline with no operators: these pages need no calls."""
    s = Stack(Path(tmp_path_factory.mktemp("admin-users-browser")))
    configure_tenant(s, **config_data("e2e_one_unit.yaml"))
    with running(s):
        add_user(s, "quantri", "admin", PASSWORD, full_name="Quản trị tỉnh")
        add_user(s, "soyte", "unit", PASSWORD, unit="so_y_te", full_name="Văn thư Sở Y tế")
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


def test_given_admin_when_creating_then_disabling_a_supervisor_then_their_session_ends(
        stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    admin_ctx, sup_ctx = new_context(browser), new_context(browser)
    try:
        admin = admin_ctx.new_page()
        login(admin, stack, "quantri", PASSWORD)
        admin.goto(base_url(stack) + PATH)
        expect(admin.locator('[data-user-row="soyte"]')).to_contain_text("Sở Y tế")

        # An invalid form: the field error, nothing saved, the typed name kept.
        admin.fill("#name", "giamsat.moi")
        admin.fill("#full_name", "Trần Thị Giám Sát")
        admin.select_option("#role", "supervisor")
        admin.fill("#password", NEW_PASSWORD)
        admin.fill("#password2", NEW_PASSWORD + "?")
        with admin.expect_navigation():
            admin.click("form[data-create] button[type=submit]")
        error = admin.locator('[data-error-field="password"]')
        expect(error).to_contain_text("không khớp")
        expect(admin.locator("#password")).to_have_attribute("aria-invalid", "true")
        expect(admin.locator("#name")).to_have_value("giamsat.moi")
        expect(admin.locator("#password")).to_have_value("")
        expect(admin.locator('[data-user-row="giamsat.moi"]')).to_have_count(0)
        screenshot(admin, "admin-users-invalid")

        # The same form, right this time.
        admin.select_option("#role", "supervisor")
        admin.fill("#password", NEW_PASSWORD)
        admin.fill("#password2", NEW_PASSWORD)
        with admin.expect_navigation():
            admin.click("form[data-create] button[type=submit]")
        expect(admin.locator('[data-done="create"]')).to_be_visible()
        expect(admin.locator('[data-fact="role"]')).to_have_text("Giám sát viên")
        admin.goto(base_url(stack) + PATH)
        expect(admin.locator('[data-user-row="giamsat.moi"]')).to_contain_text("Giám sát viên")
        shot = screenshot(admin, "admin-users")
        to_docs(shot, "admin-users.png")
        with admin.expect_navigation():
            admin.click("header.top form button[type=submit]")  # log out
        assert "/console/login" in admin.url

        sup = sup_ctx.new_page()
        login(sup, stack, "giamsat.moi", NEW_PASSWORD)
        expect(sup.locator('nav a[href="/console/wallboard"]')).to_be_visible()
        expect(sup.locator('a[href="/console/admin/users"]')).to_have_count(0)

        login(admin, stack, "quantri", PASSWORD)
        admin.goto(base_url(stack) + PATH + "/giamsat.moi")
        expect(admin.locator('[data-fact="sessions"]')).to_have_text("1")
        with admin.expect_navigation():
            admin.click('form[data-action="disable"] button[type=submit]')
        expect(admin.locator('[data-done="disable"]')).to_be_visible()
        expect(admin.locator('[data-fact="sessions"]')).to_have_text("0")
        expect(admin.locator('[data-audit="disable"]')).to_have_count(1)
        screenshot(admin, "admin-user-disabled")

        sup.reload()
        assert re.search(r"/console/login(\?|$)", sup.url), sup.url
        expect(sup.locator("#username")).to_be_visible()
    finally:
        admin_ctx.close()
        sup_ctx.close()


def test_given_tablet_width_when_admin_pages_open_then_no_sideways_scroll(
        stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = new_context(browser, 768, 1024)
    try:
        page = ctx.new_page()
        login(page, stack, "quantri", PASSWORD)
        for path in (PATH, PATH + "/soyte"):
            page.goto(base_url(stack) + path)
            expect(page.locator("h1")).to_be_visible()
            assert no_sideways_scroll(page), path
        # The unit select applies only to the unit role (a script in a static file).
        page.goto(base_url(stack) + PATH)
        expect(page.locator("#unit")).to_be_disabled()
        page.select_option("#role", "unit")
        expect(page.locator("#unit")).to_be_enabled()
        screenshot(page, "admin-users-tablet")
    finally:
        ctx.close()
