"""The oversight overview in a real browser (Debian's headless Chromium via Playwright) against
a whole running hotline, at a tablet's 768×1024: Sở Y tế oversees the health group, so a health
ticket UBND Long Thành holds, already late, is at the top of its overview with the holder and
the holder's deadline, counted by state and by holder; its page opens read only (no forms); a
supervisor chooses the district's overview from the list of overseeing units. Tickets are made
with the ``callcenter ticket`` CLI, as in test_lists_browser."""

from __future__ import annotations

import datetime as dt
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("oversight-browser")))
    tenant = s.config_data["tenants"][0]
    tenant["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department",
         "oversees": {"groups": ["health"]},
         "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912000001"}]},
        {"id": "ubnd_long_thanh", "name": "UBND huyện Long Thành", "kind": "district",
         "places": ["long_thanh"], "oversees": {"places": ["long_thanh"]},
         "focal_persons": [{"name": "Lê Thị Cúc", "phone": "0912000002"}]},
    ]
    tenant["places"] = [{"id": "long_thanh", "name": "Huyện Long Thành",
                         "communes": [{"id": "long_thanh.an_phuoc", "name": "Xã An Phước"}]},
                        {"id": "bien_hoa", "name": "Thành phố Biên Hòa"}]
    tenant["tickets"] = {"fallback_unit": "so_y_te",
                         "routing": [{"field": "health", "unit": "so_y_te"}]}
    s.write_config(s.config_data)
    with running(s):
        add_user(s, "soyte", "unit", PASSWORD, unit="so_y_te", full_name="Phạm Thu Hà")
        add_user(s, "giamsat", "supervisor", PASSWORD, full_name="Trần Minh")
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


def ticket(stack: Stack, field: str, place: str, unit: str, hours_ago: float,
           content: str) -> str:
    """A ticket received ``hours_ago`` and forwarded now to ``unit``; its code."""
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)).isoformat()
    opened = cli(stack, "open", "--as", "operator:dtv101", "--tenant", "dongnai", "--field",
                 field, "--place", place, "--content", content, "--phone", "0912345678",
                 "--at", at)
    code: str = opened["code"]
    cli(stack, "act", code, "forward", "--unit", unit, "--as", "operator:dtv101")
    return code


def test_given_late_overseen_ticket_when_department_opens_overview_then_first_and_read_only(
        stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    late = ticket(stack, "health", "long_thanh.an_phuoc", "ubnd_long_thanh", 30,
                  "Trạm y tế xã An Phước đóng cửa giờ hành chính, người bệnh phải chờ.")
    fresh = ticket(stack, "health", "bien_hoa", "so_y_te", 1,
                   "Bệnh viện thu thêm phí khám ngoài quy định.")
    road = ticket(stack, "transport", "long_thanh", "ubnd_long_thanh", 40,
                  "Đèn tín hiệu giao thông ngã tư hỏng ba ngày nay.")
    ctx = new_context(browser, 768, 1024)
    try:
        page = ctx.new_page()
        login(page, stack, "soyte", PASSWORD)
        page.goto(base_url(stack) + "/console/oversight")
        expect(page.locator("h1")).to_have_text(
            "Theo dõi phản ánh theo lĩnh vực, địa bàn — Sở Y tế")
        late_rows = page.locator("table[data-late] tr[data-code]")
        expect(late_rows).to_have_count(1)
        assert late_rows.first.get_attribute("data-code") == late
        expect(late_rows.first).to_contain_text("UBND huyện Long Thành")
        expect(late_rows.first).to_contain_text("Xã An Phước")
        assert page.locator(f'tr[data-code="{road}"]').count() == 0
        expect(page.locator('tr[data-state="forwarded"] [data-count]')).to_have_text("2")
        expect(page.locator('tr[data-holder="ubnd_long_thanh"] [data-late]')).to_have_text("1")
        expect(page.locator('tr[data-holder="so_y_te"] [data-late]')).to_have_text("0")
        assert no_sideways_scroll(page), "the overview scrolls sideways at 768 px"
        screenshot(page, "oversight-department")

        page.click(f'table[data-late] a[href="/console/tickets/{late}"]')
        expect(page.locator("h1")).to_have_text(f"Phiếu {late}")
        expect(page.locator("dd[data-state]")).to_have_attribute("data-state", "forwarded")
        assert page.locator("[data-action]").count() == 0  # read only: no forms
        page.goto(base_url(stack) + "/console/tickets")
        expect(page.locator(f'tr[data-code="{late}"] [data-read-only]')).to_be_visible()
        assert page.locator(f'tr[data-code="{fresh}"] [data-read-only]').count() == 0

        ctx.clear_cookies()
        sup = ctx.new_page()
        login(sup, stack, "giamsat", PASSWORD)
        sup.goto(base_url(stack) + "/console/oversight")
        sup.select_option("select[data-choose-unit]", "ubnd_long_thanh")
        sup.click("form.filters button[type=submit]")
        expect(sup.locator("h1")).to_have_text(
            "Theo dõi phản ánh theo lĩnh vực, địa bàn — UBND huyện Long Thành",
            timeout=EXPECT_TIMEOUT)
        codes = sup.locator("table[data-late] tr[data-code]").evaluate_all(
            "els => els.map(e => e.dataset.code)")
        assert codes == [road, late]  # the most overdue first
        assert no_sideways_scroll(sup), "the supervisor's overview scrolls sideways at 768 px"
        screenshot(sup, "oversight-district")
    finally:
        ctx.close()
