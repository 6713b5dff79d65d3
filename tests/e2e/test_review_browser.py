"""The disclosure review in a real browser (Debian's headless Chromium via Playwright) against
a whole running hotline: an answered ticket waits in the supervisor's review list with the
citizen's name and number masked, the supervisor edits the public question and answer and
publishes; the public page then shows the edited texts, never the citizen's name or number.
The ticket is recorded with the ``callcenter ticket`` CLI, as an operator would."""

from __future__ import annotations

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
)
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack
from tests.e2e.test_lists_browser import cli

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

PASSWORD = "Mật khẩu thử 2026"
EXPECT_TIMEOUT = 10_000  # ms
QUESTION = "Người dân hỏi lịch tiêm chủng mở rộng tại trạm y tế phường Tân Phong."
ANSWER = "Trạm y tế phường Tân Phong tiêm chủng mở rộng vào sáng thứ Tư hằng tuần."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("review-browser")))
    tenant = s.config_data["tenants"][0]
    tenant["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department",
         "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912000001"}]},
    ]
    tenant["tickets"] = {"fallback_unit": "so_y_te"}  # public_by_default: false (default)
    s.write_config(s.config_data)
    with running(s):
        add_user(s, "giamsat", "supervisor", PASSWORD, full_name="Lê Văn Giám")
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


def test_given_answered_ticket_when_supervisor_edits_and_publishes_then_public_page_shows_it(
        stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    opened = cli(stack, "open", "--as", "operator:dtv101", "--tenant", "dongnai",
                 "--field", "health", "--name", "Trần Văn Bình", "--phone", "0912345678",
                 "--content", "Tôi là Trần Văn Bình, số 0912 345 678, hỏi lịch tiêm chủng "
                              "mở rộng ở trạm y tế phường Tân Phong.",
                 "--answer", "Sáng thứ Tư hằng tuần; anh Bình cần thêm thông tin gọi lại "
                             "0912345678.")
    code = opened["code"]
    assert opened["review"] == "pending"

    ctx = new_context(browser, 768, 1024)
    try:
        anon = ctx.new_page()
        anon.goto(base_url(stack) + "/public/dongnai/")
        expect(anon.locator("body")).not_to_contain_text(code)  # nothing before the review

        page = ctx.new_page()
        login(page, stack, "giamsat", PASSWORD)
        page.goto(base_url(stack) + "/console/review")
        row = page.locator(f'tr[data-code="{code}"]')
        expect(row).to_have_count(1)
        expect(row).to_contain_text("[họ tên]")
        expect(row).not_to_contain_text("0912")
        assert no_sideways_scroll(page), "the review list scrolls sideways at 768 px"

        page.click(f'a[href="/console/review/{code}"]')
        expect(page.locator("[data-review]")).to_have_attribute("data-review", "pending")
        assert "0912345678" not in page.input_value("#answer")
        assert "Bình" not in page.input_value("#question")
        page.fill("#question", QUESTION)
        page.fill("#answer", ANSWER)
        screenshot(page, "review-ticket")
        page.click('button[data-action="publish"]')
        expect(page.locator("[data-done]")).to_have_attribute("data-done", "publish",
                                                              timeout=EXPECT_TIMEOUT)
        expect(page.locator(f'tr[data-code="{code}"]')).to_have_count(0)
        page.click('a[data-status="published"]')
        expect(page.locator(f'tr[data-code="{code}"]')).to_have_count(1)

        # The public page may be cached for a minute (Cache-Control): ask for another URL.
        anon.goto(base_url(stack) + "/public/dongnai/?field=health")
        body = anon.locator("body")
        expect(body).to_contain_text(ANSWER)
        expect(body).to_contain_text(QUESTION)
        text = body.inner_text()
        for personal in ("0912345678", "0912 345 678", "Trần Văn Bình", "Bình"):
            assert personal not in text, personal
        screenshot(anon, "review-public")
    finally:
        ctx.close()

    shown = cli(stack, "show", code, "--as", "supervisor:giamsat")
    assert any("-[publish]->" in line and "by supervisor:giamsat" in line
               for line in shown["audit"])
