"""The ticket list in a real browser (Debian's headless Chromium via Playwright) against a whole
running hotline, at a tablet's 768×1024: a unit user sees only its unit's ticket, opens it,
accepts it, records the result with a small PDF and sees it resolved; the list's xlsx export
downloads and opens with openpyxl; the page never scrolls sideways. Tickets are made with the
``callcenter ticket`` CLI, as an operator would record them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
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
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import ROOT, Stack

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

PASSWORD = "Mật khẩu thử 2026"
EXPECT_TIMEOUT = 10_000  # ms
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")


def cli(stack: Stack, *args: str) -> Any:
    """Run ``python -m callcenter ticket ... --json`` against the stack; its JSON answer."""
    done = subprocess.run([sys.executable, "-m", "callcenter", "ticket", *args, "--json"],
                          env=stack.env(), capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def forwarded_ticket(stack: Stack, unit: str, field: str, content: str) -> str:
    """A ticket an operator recorded and forwarded to ``unit``; its code."""
    opened = cli(stack, "open", "--as", "operator:dtv101", "--tenant", "dongnai",
                 "--field", field, "--content", content, "--name", "Trần Văn Bình",
                 "--phone", "0912345678")
    code: str = opened["code"]
    cli(stack, "act", code, "forward", "--unit", unit, "--as", "operator:dtv101")
    return code


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("lists-browser")))
    tenant = s.config_data["tenants"][0]
    tenant["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department",
         "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912000001"}]},
        {"id": "so_gtvt", "name": "Sở Giao thông vận tải", "kind": "department",
         "focal_persons": [{"name": "Lê Thị Cúc", "phone": "0912000002"}]},
    ]
    tenant["tickets"] = {"fallback_unit": "so_y_te"}
    s.write_config(s.config_data)
    with running(s):
        add_user(s, "soyte", "unit", PASSWORD, unit="so_y_te", full_name="Phạm Thu Hà")
        yield s


# After each test on stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("stack")


@pytest.fixture
def page(stack: Stack, browser: Any) -> Iterator[Any]:
    ctx = new_context(browser, 768, 1024, accept_downloads=True)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def test_given_unit_on_a_tablet_when_recording_a_result_with_pdf_then_resolved_and_exported(
        stack: Stack, page: Any, tmp_path: Path) -> None:
    from openpyxl import load_workbook
    from playwright.sync_api import expect

    mine = forwarded_ticket(stack, "so_y_te", "health",
                            "Trạm y tế phường Tân Phong thiếu thuốc hạ sốt cho trẻ em, "
                            "người dân phải mua ở nhà thuốc tư nhân với giá cao.")
    other = forwarded_ticket(stack, "so_gtvt", "transport",
                             "Đèn tín hiệu giao thông ngã tư Amata hỏng ba ngày nay.")

    login(page, stack, "soyte", PASSWORD)
    page.goto(base_url(stack) + "/console/tickets")
    rows = page.locator("tr[data-code]")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-code") == mine
    assert page.locator(f'tr[data-code="{other}"]').count() == 0
    expect(rows.first.locator("[data-state]")).to_have_text("Đã chuyển đơn vị")
    assert no_sideways_scroll(page), "the ticket list scrolls sideways at 768 px"
    screenshot(page, "tickets-unit-list")

    page.click(f'a[href="/console/tickets/{mine}"]')
    expect(page.locator("h1")).to_have_text(f"Phiếu {mine}")
    expect(page.get_by_text("0912345678")).to_be_visible()  # the unit calls back
    page.click('button[data-action="accept"]')
    expect(page.locator("dd[data-state]")).to_have_attribute("data-state", "in_progress",
                                                              timeout=EXPECT_TIMEOUT)
    result = "Sở Y tế đã chỉ đạo cấp bổ sung thuốc hạ sốt cho trạm y tế phường Tân Phong."
    page.fill("#result", result)
    # Over the 10 MB limit: refused in the page (lists.js) before anything is sent.
    page.set_input_files("#file", files=[{"name": "qua-lon.pdf", "mimeType": "application/pdf",
                                          "buffer": PDF + b"%" * (10 * 1024 * 1024)}])
    page.click('button[data-action="resolve"]')
    expect(page.locator("[data-error-field='file']")).to_have_text(
        "Tệp đính kèm quá lớn: văn bản tối đa 10 MB.")
    expect(page.locator("dd[data-state]")).to_have_attribute("data-state", "in_progress")
    assert page.input_value("#result") == result
    page.set_input_files("#file", files=[{"name": "cong-van-tra-loi.pdf",
                                          "mimeType": "application/pdf", "buffer": PDF}])
    assert no_sideways_scroll(page), "the ticket page scrolls sideways at 768 px"
    shot = screenshot(page, "tickets-unit")
    to_docs(shot, "tickets-unit.png")
    page.click('button[data-action="resolve"]')
    expect(page.locator("dd[data-state]")).to_have_attribute("data-state", "resolved",
                                                              timeout=EXPECT_TIMEOUT)
    expect(page.locator("[data-result]")).to_have_text(result)
    link = page.locator("ul.attachments a")
    expect(link).to_have_text("cong-van-tra-loi.pdf")
    download = page.request.get(base_url(stack) + str(link.get_attribute("href")))
    assert download.status == 200 and download.body() == PDF
    screenshot(page, "tickets-unit-resolved")

    page.goto(base_url(stack) + "/console/tickets")
    expect(page.locator(f'tr[data-code="{mine}"] [data-state]')).to_have_text("Đã có kết quả")
    with page.expect_download() as info:
        page.click('a[data-export="xlsx"]')
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert info.value.suggested_filename.startswith("phieu-dongnai-")
    ws = load_workbook(io.BytesIO(path.read_bytes())).worksheets[0]
    exported = [r for r in ws.iter_rows(min_row=5, values_only=True)]
    assert [r[1] for r in exported] == [mine]
    assert exported[0][6] == "Đã có kết quả"


def test_given_other_units_reply_document_when_its_user_fetches_it_by_id_then_refused_no_bytes(
        stack: Stack, browser: Any, tmp_path: Path) -> None:
    # A reply document is the unit's and the oversight's: another unit's logged-in user who
    # learns (or guesses) its id gets neither through the ticket's URL nor under its own.
    theirs = forwarded_ticket(stack, "so_y_te", "health",
                              "Bệnh viện huyện thu thêm phí khám ngoài quy định.")
    ours = forwarded_ticket(stack, "so_gtvt", "transport",
                            "Xe buýt tuyến 5 bỏ trạm Hố Nai vào giờ cao điểm.")
    doc = tmp_path / "cong-van-so-y-te.pdf"
    doc.write_bytes(PDF)
    attached = cli(stack, "attach", theirs, str(doc), "--as", "unit:soyte:so_y_te")
    add_user(stack, "sogtvt", "unit", PASSWORD, unit="so_gtvt", full_name="Lê Thị Cúc")
    api = base_url(stack) + "/api/v1/tickets"
    ctx = new_context(browser, 768, 1024)
    try:
        page = ctx.new_page()
        login(page, stack, "sogtvt", PASSWORD)  # a real console session (cookie)
        by_id = page.request.get(f"{api}/{theirs}/attachments/{attached['id']}")
        assert by_id.status == 403 and PDF not in by_id.body(), by_id.text()
        assert by_id.json()["error"]["id"] == "ticket.forbidden"
        under_own = page.request.get(f"{api}/{ours}/attachments/{attached['id']}")
        assert under_own.status in (403, 404, 422) and PDF not in under_own.body()
        # The owner's user, logged in the same way, gets the document: the refusal is the rule.
        owner = ctx.new_page()
        ctx.clear_cookies()
        login(owner, stack, "soyte", PASSWORD)
        mine = owner.request.get(f"{api}/{theirs}/attachments/{attached['id']}")
        assert mine.status == 200 and mine.body() == PDF
    finally:
        ctx.close()
