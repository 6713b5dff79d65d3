"""The public petition form in a real browser (Debian's headless Chromium via Playwright) at a
phone's 390×844: a citizen fills it in, makes a mistake in the phone number, sees the error
next to the field with the rest kept, attaches a small JPEG, sends it and sees the ticket's
code; the page never scrolls sideways and runs no script.

The form needs no PBX, so the app here is the console alone (``setup_console`` with the form's
routes, a real TicketService on SQLite) served on loopback from a thread
(``tests.support.api.live_server``), not the whole hotline ``Stack``."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from callcenter.config.file import load_config
from callcenter.console.setup import setup_console
from callcenter.intake.webform import add_webform_routes
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.rules import Actor
from callcenter.tickets.service import TicketService
from tests.e2e.browser import new_context, no_sideways_scroll, screenshot, to_docs
from tests.support.api import CONFIG, live_server

EXPECT_TIMEOUT = 10_000  # ms
# A real (1×1, grey) baseline JPEG.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b"
    "0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ff"
    "c0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a108"
    "2342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53545556"
    "5758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9"
    "aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7"
    "f8f9faffda0008010100003f00fbd3ffd9")
CONTENT = "Đèn đường trên đường 25B đoạn qua xã An Phước bị hỏng cả tuần, ban đêm rất tối."


def _app(tmp_path: Path) -> tuple[web.Application, str, Any]:
    path = tmp_path / "hotline.yaml"
    # One second to fill in (the default 5 s would only slow the test down).
    path.write_text(CONFIG.replace("    tickets:\n      code_prefix: DN\n",
                                   "    webform: {min_fill_seconds: 1}\n"
                                   "    tickets:\n      code_prefix: DN\n"), encoding="utf-8")
    config = load_config(path)
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    app = web.Application()
    setup_console(app, database_url=url, config=lambda: config, files_dir=tmp_path / "files",
                  extra_routes=[functools.partial(add_webform_routes, secret=b"e" * 32)])
    return app, url, config


def test_given_phone_browser_when_citizen_sends_petition_with_photo_then_sees_code(
        browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    app, db_url, config = _app(tmp_path)
    photo = tmp_path / "anh-hien-truong.jpg"
    photo.write_bytes(JPEG)
    with live_server(app) as base:
        context = new_context(browser, 390, 844, is_mobile=True, has_touch=True,
                              java_script_enabled=False)  # the form must work without it
        try:
            page = context.new_page()
            page.goto(base + "/public/dongnai/petition")
            expect(page.locator("h1")).to_contain_text("Gửi phản ánh, kiến nghị")
            assert no_sideways_scroll(page)
            page.fill("#name", "Trần Văn Bình")
            page.fill("#phone", "0912 345")  # a digit short: the server says so
            page.select_option("#field", "transport")
            page.select_option("#place", "long_thanh.an_phuoc")
            page.fill("#content", CONTENT)
            page.set_input_files("#files", str(photo))
            page.wait_for_timeout(1200)  # the least time to fill the form in
            page.click("button[type=submit]")
            expect(page.locator("#phone-error")).to_contain_text(
                "Số điện thoại di động không hợp lệ", timeout=EXPECT_TIMEOUT)
            expect(page.locator("#form-message")).to_contain_text("chọn lại các tệp")
            expect(page.locator("#name")).to_have_value("Trần Văn Bình")
            expect(page.locator("#content")).to_have_value(CONTENT)
            expect(page.locator("#place")).to_have_value("long_thanh.an_phuoc")
            assert no_sideways_scroll(page)
            screenshot(page, "webform-phone-error")

            page.fill("#phone", "0912 345 678")
            page.set_input_files("#files", str(photo))
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/public/dongnai/petition/sent\?code=.*"),
                              timeout=EXPECT_TIMEOUT)
            code = page.locator("#ticket-code").inner_text().strip()
            assert re.fullmatch(r"DN-\d{8}-\d{4}", code), code
            assert no_sideways_scroll(page)
            shot = screenshot(page, "webform-sent")
            to_docs(shot, "webform-sent.png")
        finally:
            context.close()
    service = TicketService(db_url, lambda: config, tmp_path / "files")
    try:
        supervisor = Actor("giamsat", "supervisor")
        ticket = service.get(code, supervisor)
        assert (ticket.channel, ticket.citizen_phone, ticket.commune) == (
            "web", "0912345678", "long_thanh.an_phuoc")
        [att] = service.attachments(code, supervisor)
        assert (att.file_name, att.content_type, att.size) == (
            "anh-hien-truong.jpg", "image/jpeg", len(JPEG))
    finally:
        service.close()
