"""The public petition form over HTTP (aiohttp's test client, a real TicketService on SQLite and
PostgreSQL, a real Redis for the rate limits): a sent form becomes a ``web`` ticket opened by
the system with its photos and the citizen's receipt SMS; robots (honeypot, too fast, forged
token) get no ticket; bad and oversize files come back named; limits per address and per
phone; unknown or switched-off tenants are 404."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.context import SERVICE
from callcenter.console.setup import setup_console
from callcenter.intake.webform import add_webform_routes, form_limit
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.sms.store import SmsOutbox
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.rules import Actor
from tests.support import api as support

T0 = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
SUPERVISOR = Actor("giamsat", "supervisor")
# Đồng Nai takes web petitions with small limits (3 an hour per address, 2 a day per phone);
# Thanh Hóa has the form switched off. Requests from 127.0.0.1 may name the client.
CONFIG = ("console: {trusted_proxies: ['127.0.0.1/32']}\n"
          + support.CONFIG
          .replace("    tickets:\n      code_prefix: DN\n",
                   "    webform: {per_address_per_hour: 3, per_phone_per_day: 2, "
                   "min_fill_seconds: 5}\n    tickets:\n      code_prefix: DN\n")
          .replace("    tickets:\n      code_prefix: TH\n",
                   "    webform: {enabled: false}\n    tickets:\n      code_prefix: TH\n"))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x11" * 600
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300
FIELDS = {"name": "Nguyễn Thị Hoa", "phone": "0912 345 678", "email": "hoa@example.vn",
          "field": "transport", "place": "long_thanh.an_phuoc",
          "content": "Đường ĐT769 đoạn qua xã An Phước ngập sâu, xe máy không qua được."}
REDIS_KEY = web.AppKey("test_webform_redis", aioredis.Redis)


@dataclass
class Clock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Form:
    """The form's test client, its clock and its app."""

    client: TestClient[web.Request, web.Application]
    clock: Clock
    app: web.Application
    database_url: str
    sent: list[str] = field(default_factory=list)

    async def token(self, tenant: str = "dongnai") -> str:
        resp = await self.client.get(f"/public/{tenant}/petition")
        assert resp.status == 200
        return token_of(await resp.text())

    async def post(self, fields: dict[str, str] | None = None,
                   files: list[tuple[str, bytes, str]] | None = None, *,
                   token: str | None = None, wait: float = 10, tenant: str = "dongnai",
                   headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Fetch the form (unless ``token``), wait ``wait`` s, send it; status, body, Location."""
        if token is None:
            token = await self.token(tenant)
        self.clock.now += dt.timedelta(seconds=wait)
        data = FormData()
        data.add_field("form_token", token)
        fields = FIELDS if fields is None else fields
        if "website" not in fields:
            data.add_field("website", "")  # the honeypot, left empty as people leave it
        for k, v in fields.items():
            data.add_field(k, v)
        if not files:  # a browser sends the empty file input as an empty part
            data.add_field("files", b"", filename="", content_type="application/octet-stream")
        for name, body, ctype in files or []:
            data.add_field("files", body, filename=name, content_type=ctype)
        resp = await self.client.post(f"/public/{tenant}/petition", data=data,
                                      headers=headers or {}, allow_redirects=False)
        return resp.status, await resp.text(), resp.headers.get("Location", "")

    def tickets(self) -> list[Any]:
        return list(self.app[SERVICE].list(SUPERVISOR, tenant="dongnai"))

    def sms(self) -> list[Any]:
        outbox = SmsOutbox(self.database_url)
        try:
            return outbox.recent()
        finally:
            outbox.close()


def token_of(html: str) -> str:
    m = re.search(r'name="form_token" value="([^"]+)"', html)
    assert m is not None, html[:500]
    return m.group(1)


def value_of(html: str, name: str) -> str | None:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    return m.group(1) if m else None


def make_app(database_url: str, config: HotlineConfig, files_dir: Path, clock: Clock,
             redis: web.AppKey[aioredis.Redis] | None = None) -> web.Application:
    upgrade_head(database_url)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config, files_dir=files_dir,
                  upload_limits=support.UPLOAD_LIMITS, clock=clock,
                  extra_routes=[functools.partial(add_webform_routes, secret=b"k" * 32,
                                                  redis=redis)])
    return app


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    path = tmp_path / "hotline.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


async def _serve(app: web.Application, clock: Clock,
                 database_url: str) -> AsyncIterator[Form]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    async with TestClient(server) as client:
        yield Form(client, clock, app, database_url)


@pytest.fixture
async def form(database_url: str, config: HotlineConfig, tmp_path: Path) -> AsyncIterator[Form]:
    """The form, rate limits counted in this process (no Redis)."""
    clock = Clock()
    async for f in _serve(make_app(database_url, config, tmp_path / "files", clock), clock,
                          database_url):
        yield f


@pytest.fixture
async def redis_form(database_url: str, config: HotlineConfig, tmp_path: Path,
                     redis_server: PrivateRedis) -> AsyncIterator[Form]:
    """The form with its rate limits in a real Redis (emptied first)."""
    clock = Clock()
    app = make_app(database_url, config, tmp_path / "files", clock, redis=REDIS_KEY)
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    app[REDIS_KEY] = client
    try:
        async for f in _serve(app, clock, database_url):
            yield f
    finally:
        await client.aclose()


# -- the page ----------------------------------------------------------------------------------
async def test_given_tenant_when_form_fetched_then_vietnamese_page_without_script(
        form: Form) -> None:
    resp = await form.client.get("/public/dongnai/petition")
    html = await resp.text()
    assert resp.status == 200 and 'lang="vi"' in html
    assert "<script" not in html.lower()
    assert 'enctype="multipart/form-data"' in html
    assert '<optgroup label="Huyện Long Thành">' in html
    assert '<option value="long_thanh.an_phuoc"' in html
    assert '<option value="transport"' in html and "Giao thông vận tải" in html
    assert 'name="website"' in html and 'tabindex="-1"' in html  # the honeypot
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/public/hanoi/petition", "/public/thanhhoa/petition",
                                  "/public/dongnai/petition/sent?code=DN-20261207-0001&sig=x"])
async def test_given_unknown_or_closed_tenant_or_unsigned_code_when_fetched_then_404(
        form: Form, path: str) -> None:
    resp = await form.client.get(path)
    assert resp.status == 404
    assert "Không tìm thấy trang" in await resp.text()


async def test_given_unknown_tenant_when_posted_then_404_and_no_ticket(form: Form) -> None:
    token = await form.token()
    status, _, _ = await form.post(token=token, tenant="hanoi")
    assert status == 404 and form.tickets() == []


# -- success ------------------------------------------------------------------------------------
async def test_given_filled_form_with_photos_when_sent_then_web_ticket_sms_and_files(
        form: Form) -> None:
    status, _, location = await form.post(files=[("anh-duong.jpg", JPEG, "image/jpeg"),
                                                 ("IMG_2.png", PNG, "image/png")])
    assert status == 303, location
    assert location.startswith("/public/dongnai/petition/sent?code=DN-20261207-")
    page = await form.client.get(location)
    html = await page.text()
    [ticket] = form.tickets()
    assert page.status == 200 and ticket.code in html and 'id="ticket-code"' in html
    assert ticket.channel == "web" and ticket.field == "transport"
    assert (ticket.district, ticket.commune) == ("long_thanh", "long_thanh.an_phuoc")
    assert ticket.citizen_name == "Nguyễn Thị Hoa" and ticket.citizen_phone == "0912345678"
    assert ticket.content.endswith("\n\nE-mail liên hệ: hoa@example.vn")
    service = form.app[SERVICE]
    audit = service.audit(ticket.code, SUPERVISOR)
    assert (audit[0].event, audit[0].actor) == ("open", Actor("web-form", "system"))
    files = service.attachments(ticket.code, SUPERVISOR)
    assert [(a.file_name, a.content_type, a.size) for a in files] == [
        ("anh-duong.jpg", "image/jpeg", len(JPEG)), ("IMG_2.png", "image/png", len(PNG))]
    _, path = service.attachment_file(ticket.code, str(files[0].id), SUPERVISOR)
    assert path.read_bytes() == JPEG
    [sms] = form.sms()
    assert (sms.purpose, sms.to_number, sms.tenant) == ("web_receipt", "0912345678", "dongnai")
    assert sms.text == (f"Tổng đài 1022 đã tiếp nhận phản ánh, kiến nghị của ông (bà) gửi qua "
                        f"trang web, mã số {ticket.code}. Xin cảm ơn!")


async def test_given_form_without_files_when_sent_then_ticket_without_attachments(
        form: Form) -> None:
    status, _, location = await form.post()
    assert status == 303
    [ticket] = form.tickets()
    assert form.app[SERVICE].attachments(ticket.code, SUPERVISOR) == []
    assert ticket.code in location


# -- robots ---------------------------------------------------------------------------------------
async def test_given_honeypot_filled_when_sent_then_thanks_but_no_ticket_no_sms(
        form: Form) -> None:
    status, html, _ = await form.post({**FIELDS, "website": "http://spam.example"})
    assert status == 200
    assert "Cảm ơn ông (bà)" in html and "DN-" not in html
    assert form.tickets() == [] and form.sms() == []


async def test_given_form_sent_too_fast_when_sent_then_refused_then_accepted_on_retry(
        form: Form) -> None:
    token = await form.token()
    status, html, _ = await form.post(token=token, wait=2)
    assert status == 429 and "quá nhanh" in html
    assert value_of(html, "name") == "Nguyễn Thị Hoa"  # values kept
    assert form.tickets() == []
    again = token_of(html)
    assert again == token  # the same start time: pressing again a moment later works
    status, _, _ = await form.post(token=again, wait=4)
    assert status == 303 and len(form.tickets()) == 1


@pytest.mark.parametrize("token", ["", "1765076400.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
async def test_given_forged_or_missing_token_when_sent_then_403_fresh_token_no_ticket(
        form: Form, token: str) -> None:
    status, html, _ = await form.post(token=token)
    assert status == 403 and "Biểu mẫu không hợp lệ" in html
    assert token_of(html) != token and value_of(html, "phone") == "0912 345 678"
    assert form.tickets() == []


async def test_given_token_older_than_12h_when_sent_then_403_expired(form: Form) -> None:
    token = await form.token()
    status, html, _ = await form.post(token=token, wait=12 * 3600 + 1)
    assert status == 403 and "hết hiệu lực" in html and form.tickets() == []


# -- validation and files ------------------------------------------------------------------------
async def test_given_bad_fields_when_sent_then_errors_next_to_fields_values_kept(
        form: Form) -> None:
    status, html, _ = await form.post({**FIELDS, "phone": "02513822000", "field": "",
                                       "content": "ngắn"})
    assert status == 422
    assert 'id="phone-error"' in html and "di động không hợp lệ" in html
    assert 'id="field-error"' in html and 'id="content-error"' in html
    assert 'id="name-error"' not in html
    assert value_of(html, "phone") == "02513822000" and value_of(html, "name") == "Nguyễn Thị Hoa"
    assert ">ngắn</textarea>" in html
    assert '<option value="long_thanh.an_phuoc" selected>' in html
    assert form.tickets() == []


async def test_given_exe_named_jpg_when_sent_then_file_error_names_it(form: Form) -> None:
    status, html, _ = await form.post(files=[("anh.jpg", JPEG, "image/jpeg"),
                                             ("anh-hien-truong.jpg", support.EXE, "image/jpeg")])
    assert status == 422
    assert 'id="files-error"' in html and "«anh-hien-truong.jpg»" in html
    assert "chọn lại các tệp" in html  # the browser does not keep chosen files
    assert form.tickets() == [] and form.sms() == []


async def test_given_jpeg_named_png_when_sent_then_file_error_names_it(form: Form) -> None:
    status, html, _ = await form.post(files=[("ảnh chụp.png", JPEG, "image/png")])
    assert status == 422 and "«ảnh chụp.png»" in html and form.tickets() == []


async def test_given_pdf_when_sent_then_refused_photos_and_videos_only(form: Form) -> None:
    status, html, _ = await form.post(files=[("don.pdf", support.PDF, "application/pdf")])
    assert status == 422 and "«don.pdf»" in html and form.tickets() == []


async def test_given_photo_over_limit_when_sent_then_file_error_with_limit(form: Form) -> None:
    big = JPEG + b"\x00" * support.MAX_UPLOAD
    status, html, _ = await form.post(files=[("to.jpg", big, "image/jpeg")])
    assert status == 422
    assert "Tệp «to.jpg» quá lớn: hình ảnh tối đa 256 KB." in html
    assert form.tickets() == []


async def test_given_six_files_when_sent_then_at_most_five(form: Form) -> None:
    status, html, _ = await form.post(files=[(f"a{i}.jpg", JPEG, "image/jpeg")
                                             for i in range(6)])
    assert status == 422 and "tối đa 5 tệp" in html and form.tickets() == []


async def test_given_body_over_form_limit_when_sent_then_413_values_kept(form: Form) -> None:
    limit = form_limit(support.UPLOAD_LIMITS)
    huge = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * limit  # bigger than the whole form may be
    status, html, _ = await form.post(files=[("clip.mp4", huge, "video/mp4")])
    assert status == 413
    assert "Tổng dung lượng các tệp vượt quá" in html
    assert value_of(html, "name") == "Nguyễn Thị Hoa"
    assert form.tickets() == []


async def test_given_video_within_limit_when_sent_then_stored(form: Form) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (support.MAX_UPLOAD * 2)  # over photo size
    status, _, _ = await form.post(files=[("clip.mp4", clip, "video/mp4")])
    assert status == 303
    [ticket] = form.tickets()
    [att] = form.app[SERVICE].attachments(ticket.code, SUPERVISOR)
    assert (att.content_type, att.size) == ("video/mp4", len(clip))


# -- rate limits (Redis) ------------------------------------------------------------------------
async def test_given_two_from_one_phone_when_third_sent_then_429_until_a_day_passed(
        redis_form: Form) -> None:
    for i in range(2):
        status, _, _ = await redis_form.post(headers={"X-Forwarded-For": f"203.0.113.{i}"})
        assert status == 303
    status, html, _ = await redis_form.post(headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 429 and "Số điện thoại này đã gửi 2 phản ánh trong 24 giờ" in html
    assert value_of(html, "name") == "Nguyễn Thị Hoa"
    assert len(redis_form.tickets()) == 2
    # Counted in Redis (shared by app instances), under hashed keys: no number, no address.
    keys = [k.decode() for k in await redis_form.app[REDIS_KEY].keys("hotline:webform:*")]
    assert {k.split(":")[3] for k in keys} == {"address", "phone"}
    assert not any("0912345678" in k or "203.0.113" in k for k in keys)
    other = {**FIELDS, "phone": "0987654321"}
    status, _, _ = await redis_form.post(other, headers={"X-Forwarded-For": "203.0.113.10"})
    assert status == 303  # another number is not held back
    redis_form.clock.now += dt.timedelta(days=1)
    status, _, _ = await redis_form.post(headers={"X-Forwarded-For": "203.0.113.11"})
    assert status == 303 and len(redis_form.tickets()) == 4


async def test_given_three_from_one_address_when_fourth_sent_then_429_other_address_ok(
        redis_form: Form) -> None:
    xff = {"X-Forwarded-For": "198.51.100.7"}
    for i in range(3):
        status, _, _ = await redis_form.post({**FIELDS, "phone": f"091234560{i}"}, headers=xff)
        assert status == 303
    status, html, _ = await redis_form.post({**FIELDS, "phone": "0912345609"}, headers=xff)
    assert status == 429 and "từ địa chỉ mạng này trong một giờ qua" in html
    status, _, _ = await redis_form.post({**FIELDS, "phone": "0912345609"},
                                         headers={"X-Forwarded-For": "198.51.100.8"})
    assert status == 303 and len(redis_form.tickets()) == 4


async def test_given_refused_forms_when_counted_then_only_accepted_ones_count(
        redis_form: Form) -> None:
    """A citizen correcting mistakes is not held back: invalid forms are not counted."""
    for _ in range(3):
        status, _, _ = await redis_form.post({**FIELDS, "content": "ngắn"})
        assert status == 422
    for _ in range(2):
        status, _, _ = await redis_form.post()
        assert status == 303
