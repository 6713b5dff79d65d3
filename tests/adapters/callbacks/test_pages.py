"""The console's callback list (SQLite and PostgreSQL): the tenant's open requests oldest first
in local time, the "Đã gọi lại" form (store checked, PRG, already closed, another tenant's,
CSRF, roles), the done/cancelled toggle, the xlsx export; and the Vietnamese 413 page for
console requests over the app's size limit (the API keeps its JSON error)."""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callcenter.callbacks.pages import ago
from callcenter.callbacks.store import CallbackRequest, CallbackStore
from callcenter.config.model import HotlineConfig
from callcenter.console.limits import size_in_mb
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from tests.adapters.test_call_pages import record
from tests.support import api as api_support
from tests.support import lists as support
from tests.support.lists import (
    PASSWORD,
    T0,
    Clock,
    Lists,
    csrf_of,
    xlsx_headers,
    xlsx_rows,
)

hotline_config = api_support.hotline_config
lists = support.lists

PAGE = "/console/callbacks"
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def callbacks(database_url: str, lists: Lists) -> Iterator[CallbackStore]:
    """The callback store on the console's (migrated) database."""
    store = CallbackStore(database_url)
    yield store
    store.close()


def ask(store: CallbackStore, n: int, at: dt.datetime, tenant: str = "dongnai",
        caller: str | None = None) -> CallbackRequest:
    """A callback request of call ``pbx1:1763800000.<n>``."""
    return store.request(tenant, f"pbx1:1763800000.{n}", caller or f"09{n:08d}", at)


def open_ids(page: str) -> list[int]:
    """The ids of the open list's rows, in order."""
    table = page.split('data-list="open"', 1)[1].split("</table>", 1)[0]
    return [int(i) for i in re.findall(r'<tr data-callback="(\d+)"', table)]


def closed_rows(page: str) -> list[tuple[int, str]]:
    """(id, status) of the closed list's rows, in order (none without the toggle)."""
    if 'data-list="closed"' not in page:
        return []
    table = page.split('data-list="closed"', 1)[1].split("</table>", 1)[0]
    return [(int(i), s) for i, s in
            re.findall(r'<tr data-callback="(\d+)" data-status="(\w+)"', table)]


def error_id(page: str) -> str | None:
    m = re.search(r'data-error-id="([^"]+)"', page)
    return m[1] if m else None


async def test_given_requests_of_two_tenants_when_operator_opens_list_then_own_oldest_first(
        lists: Lists, callbacks: CallbackStore, database_url: str) -> None:
    newer = ask(callbacks, 1, T0 - 5 * MIN)
    older = ask(callbacks, 2, T0 - 95 * MIN, caller="0251 3822 111")
    ask(callbacks, 3, T0 - 200 * MIN, tenant="thanhhoa", caller="0237999888")
    records = CallRecordStore(database_url)
    try:  # the older caller waited 125 s in the queue before pressing 1
        arrived = T0 - 98 * MIN
        records.insert_once(record(2, arrived, outcome="callback", operator=None,
                                   queued_at=arrived + dt.timedelta(seconds=10),
                                   bridged_at=None, talk_ended_at=None,
                                   ended_at=arrived + dt.timedelta(seconds=135),
                                   transfers=None, recording=None))
    finally:
        records.close()
    client = await lists.client("tdv.an")

    resp = await client.get(PAGE)
    page = await resp.text()
    assert resp.status == 200, page
    assert open_ids(page) == [older.id, newer.id]
    assert "0251 3822 111" in page and "0900000001" in page  # numbers in full
    assert "0237999888" not in page  # Thanh Hóa's caller is not Đồng Nai's
    # T0 is 12:00 in Đồng Nai (UTC+7): asked at 10:25 and 11:55, local.
    assert "23/11/2026 10:25" in page and "1 giờ 35 phút trước" in page
    assert "23/11/2026 11:55" in page and "5 phút trước" in page
    row = page.split(f'data-callback="{older.id}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>125</td>" in row and older.call_id in row
    assert row.startswith(' class="late"')  # waiting over 30 min: shown in red
    assert 'href="/console/callbacks" aria-current="page"' in page
    assert len(re.findall(r'action="/console/callbacks/\d+/done"', page)) == 2
    assert len(re.findall(r'action="/console/callbacks/\d+/dial"', page)) == 2  # "Gọi lại"
    assert closed_rows(page) == []


async def test_given_night_pool_full_requests_when_listed_then_first_and_marked(
        lists: Lists, callbacks: CallbackStore) -> None:
    queued = ask(callbacks, 1, T0 - 15 * 60 * MIN)  # yesterday afternoon, pressed 1 in queue
    night = callbacks.request("dongnai", "pbx1:1763800000.2", "0900000002", T0 - 5 * 60 * MIN,
                              source="pool_full")
    later = callbacks.request("dongnai", "pbx1:1763800000.3", "0900000003", T0 - 4 * 60 * MIN,
                              source="pool_full")
    client = await lists.client("tdv.an")
    page = await (await client.get(PAGE)).text()
    assert open_ids(page) == [night.id, later.id, queued.id]
    assert page.count('data-source="pool_full"') == 2


async def test_given_open_request_when_marked_done_then_stored_with_user_and_note_once(
        lists: Lists, callbacks: CallbackStore, caplog: pytest.LogCaptureFixture) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN, caller="0912345678")
    other = ask(callbacks, 2, T0 - 10 * MIN)
    client = await lists.client("tdv.an")
    token = await csrf_of(client, PAGE)
    lists.clock.now = T0 + 2 * MIN

    with caplog.at_level(logging.DEBUG):
        resp = await client.post(f"{PAGE}/{req.id}/done", allow_redirects=False, data={
            "csrf": token, "note": "Đã gọi, bà Hoa đã được hướng dẫn nộp hồ sơ."})
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"{PAGE}?done={req.id}"
    got = callbacks.get(req.id)
    assert got is not None
    assert (got.status, got.handled_by, got.handled_at, got.note) == (
        "done", "tdv.an", T0 + 2 * MIN, "Đã gọi, bà Hoa đã được hướng dẫn nộp hồ sơ.")
    infos = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.INFO and f"request {req.id} " in r.getMessage()]
    assert len(infos) == 1 and "tdv.an" in infos[0]
    assert not [r for r in caplog.records
                if r.levelno >= logging.INFO and "0912345678" in r.getMessage()]

    page = await (await client.get(resp.headers["Location"])).text()
    assert open_ids(page) == [other.id]
    assert f"yêu cầu số {req.id} đã được gọi lại" in page


async def test_given_closed_request_when_marked_done_again_then_message_and_nothing_changed(
        lists: Lists, callbacks: CallbackStore) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN)
    callbacks.done(req.id, "giamsat.binh", "gọi lần 1", at=T0 - MIN)
    before = callbacks.get(req.id)
    client = await lists.client("tdv.an")
    token = await csrf_of(client, PAGE)

    resp = await client.post(f"{PAGE}/{req.id}/done", allow_redirects=False,
                             data={"csrf": token, "note": "gọi lần 2"})
    page = await resp.text()
    assert resp.status == 409
    assert error_id(page) == "callback.closed"
    assert "đã được xử lý trước đó" in html.unescape(page) and "giamsat.binh" in page
    assert callbacks.get(req.id) == before


async def test_given_too_long_note_when_marked_done_then_field_error_and_still_open(
        lists: Lists, callbacks: CallbackStore) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN)
    client = await lists.client("tdv.an")
    token = await csrf_of(client, PAGE)

    resp = await client.post(f"{PAGE}/{req.id}/done", data={"csrf": token, "note": "x" * 2001})
    page = await resp.text()
    assert resp.status == 422 and 'data-error-field="note"' in page
    assert "Ghi chú dài quá 2000 ký tự" in page
    assert callbacks.get(req.id) == req


async def test_given_other_tenant_or_unknown_id_when_marked_done_then_404_nothing_changed(
        lists: Lists, callbacks: CallbackStore) -> None:
    theirs = ask(callbacks, 1, T0 - 20 * MIN, tenant="thanhhoa")
    client = await lists.client("tdv.an")
    token = await csrf_of(client, PAGE)

    for path in (f"{PAGE}/{theirs.id}/done", f"{PAGE}/{theirs.id + 1000}/done",
                 f"{PAGE}/abc/done"):
        resp = await client.post(path, data={"csrf": token})
        page = await resp.text()
        assert resp.status == 404, path
        assert error_id(page) == "callback.not_found"
    assert callbacks.get(theirs.id) == theirs


async def test_given_no_csrf_when_marked_done_then_403_and_still_open(
        lists: Lists, callbacks: CallbackStore) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN)
    client = await lists.client("tdv.an")

    resp = await client.post(f"{PAGE}/{req.id}/done", data={"note": "không có mã"})
    assert resp.status == 403 and error_id(await resp.text()) == "csrf.invalid"
    assert callbacks.get(req.id) == req


async def test_given_unit_user_when_opening_callbacks_then_403_page(
        lists: Lists, callbacks: CallbackStore) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN)
    client = await lists.client("syt.dongnai")
    token = await csrf_of(client, "/console/tickets")

    for resp in (await client.get(PAGE), await client.get(PAGE + ".xlsx"),
                 await client.post(f"{PAGE}/{req.id}/done", data={"csrf": token})):
        page = await resp.text()
        assert resp.status == 403 and error_id(page) == "auth.forbidden"
        assert "0900000001" not in page
    assert callbacks.get(req.id) == req


@pytest.mark.parametrize("name", ["giamsat.binh", "quantri"])
async def test_given_supervisor_or_admin_when_opening_callbacks_then_list(
        lists: Lists, callbacks: CallbackStore, name: str) -> None:
    req = ask(callbacks, 1, T0 - 20 * MIN)
    client = await lists.client(name)
    resp = await client.get(PAGE)
    assert resp.status == 200 and open_ids(await resp.text()) == [req.id]


async def test_given_no_session_when_opening_callbacks_then_login_and_back(
        lists: Lists) -> None:
    client = await lists.client(None)
    resp = await client.get(PAGE, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=/console/callbacks"


async def test_given_toggle_when_listed_then_last_week_done_and_cancelled_with_handler(
        lists: Lists, callbacks: CallbackStore) -> None:
    waiting = ask(callbacks, 1, T0 - 20 * MIN)
    done = ask(callbacks, 2, T0 - 3 * 60 * MIN)
    cancelled = ask(callbacks, 3, T0 - 2 * 60 * MIN)
    long_ago = ask(callbacks, 4, T0 - dt.timedelta(days=9))
    callbacks.done(done.id, "tdv.an", "Đã hướng dẫn", at=T0 - 60 * MIN)
    callbacks.cancel(cancelled.id, "giamsat.binh", "Gọi lại được phục vụ", at=T0 - 30 * MIN)
    callbacks.done(long_ago.id, "tdv.an", at=T0 - dt.timedelta(days=8))
    client = await lists.client("giamsat.binh")

    plain = await (await client.get(PAGE)).text()
    assert open_ids(plain) == [waiting.id] and closed_rows(plain) == []
    assert 'href="/console/callbacks?closed=1"' in plain

    page = await (await client.get(PAGE + "?closed=1")).text()
    assert open_ids(page) == [waiting.id]
    # Most recently handled first; the one handled 8 days ago is past the week.
    assert closed_rows(page) == [(cancelled.id, "cancelled"), (done.id, "done")]
    row = page.split(f'data-callback="{done.id}"', 1)[1].split("</tr>", 1)[0]
    assert "tdv.an" in row and "Đã gọi lại" in row and "Đã hướng dẫn" in row
    assert "23/11/2026 11:00" in row  # handled at 04:00 UTC, 11:00 local
    assert 'href="/console/callbacks.xlsx?closed=1"' in page


async def test_given_requests_when_exported_then_xlsx_rows_in_local_time(
        lists: Lists, callbacks: CallbackStore) -> None:
    older = ask(callbacks, 1, T0 - 95 * MIN, caller="0251 3822 111")
    newer = ask(callbacks, 2, T0 - 5 * MIN)
    handled = ask(callbacks, 3, T0 - 50 * MIN)
    callbacks.done(handled.id, "tdv.an", "Xong", at=T0 - 10 * MIN)
    ask(callbacks, 4, T0 - 5 * MIN, tenant="thanhhoa")
    client = await lists.client("tdv.an")

    resp = await client.get(PAGE + ".xlsx")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    data = await resp.read()
    headers = xlsx_headers(data)
    assert headers[:3] == ["STT", "Số cần gọi lại", "Yêu cầu lúc"]
    assert "Người xử lý" in headers and "Mã cuộc gọi" in headers
    rows = xlsx_rows(data)
    caller, asked, status = (headers.index(h) for h in
                             ("Số cần gọi lại", "Yêu cầu lúc", "Trạng thái"))
    assert [(r[0], r[caller], r[status]) for r in rows] == [
        (1, "0251 3822 111", "Đang chờ gọi lại"), (2, newer.caller, "Đang chờ gọi lại")]
    # Excel has no zones: the tenant's wall clock (10:25 in Đồng Nai for 03:25 UTC).
    assert rows[0][asked] == dt.datetime(2026, 11, 23, 10, 25)
    assert older.requested_at == dt.datetime(2026, 11, 23, 3, 25, tzinfo=dt.UTC)

    everything = xlsx_rows(await (await client.get(PAGE + ".xlsx?closed=1")).read())
    by = headers.index("Người xử lý")
    assert [(r[caller], r[status], r[by]) for r in everything][-1] == (
        handled.caller, "Đã gọi lại", "tdv.an")
    assert len(everything) == 3


@pytest.mark.parametrize(("minutes", "label"), [
    (0, "vừa xong"), (1, "1 phút trước"), (59, "59 phút trước"), (60, "1 giờ trước"),
    (95, "1 giờ 35 phút trước"), (24 * 60, "1 ngày trước"), (26 * 60 + 5, "1 ngày 2 giờ trước"),
    (-3, "vừa xong"),  # a clock a little behind the writer's: never a negative age
])
def test_given_age_when_labelled_then_vietnamese(minutes: int, label: str) -> None:
    assert ago(T0 - minutes * MIN, T0) == label


@pytest.mark.parametrize(("size", "label"), [
    (10 * 1024 * 1024 + 256 * 1024, "10,2"), (2 * 1024 * 1024, "2"),
    (1024 * 1024 + 1, "1")])
def test_given_byte_limit_when_shown_then_mb_rounded_down(size: int, label: str) -> None:
    assert size_in_mb(size) == label


# ---- over-size requests ----------------------------------------------------------------------
SMALL_LIMIT = 2 * 1024 * 1024 + 256 * 1024  # 2.25 MB: a test-sized copy of the app's 10.25


@pytest.fixture
async def small(database_url: str, hotline_config: HotlineConfig,
                tmp_path: Path) -> AsyncIterator[Lists]:
    """The console in an app that accepts bodies up to SMALL_LIMIT, users with passwords."""
    upgrade_head(database_url)
    clock = Clock(T0)
    app = web.Application(client_max_size=SMALL_LIMIT)
    setup_console(app, database_url=database_url, config=lambda: hotline_config,
                  files_dir=tmp_path / "files", clock=clock)
    app[PASSWORDS] = hasher = Passwords(TEST_PARAMS)
    users = UserStore(database_url)
    try:
        hashed = hasher.hash(PASSWORD)
        for name in ("tdv.an",):
            role, tenant, unit = api_support.USERS[name]
            users.add_user(name, role, tenant, unit, now=T0)
            users.set_password(name, hashed, now=T0)
    finally:
        users.close()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    holder = Lists(app, clock, server, [])
    try:
        yield holder
    finally:
        for c in holder.clients:
            await c.close()
        await server.close()


async def test_given_console_form_over_limit_when_posted_then_vietnamese_413_nothing_changed(
        small: Lists, database_url: str) -> None:
    store = CallbackStore(database_url)
    try:
        req = ask(store, 1, T0 - 20 * MIN)
        client = await small.client("tdv.an")
        token = await csrf_of(client, PAGE)
        big = "x" * (SMALL_LIMIT + 1)

        form = aiohttp.FormData()
        form.add_field("csrf", token)
        form.add_field("file", big.encode(), filename="bien-ban.pdf",
                       content_type="application/pdf")
        sent = [
            await client.post(f"{PAGE}/{req.id}/done", data={"csrf": token, "note": big}),
            await client.post(f"{PAGE}/{req.id}/done", data=form),
            # The token in the header: the handler, not the CSRF check, reads the body.
            await client.post(f"{PAGE}/{req.id}/done", data={"note": big},
                              headers={"X-CSRF-Token": token}),
        ]
        for resp in sent:
            page = await resp.text()
            assert resp.status == 413, page[:300]
            assert resp.headers["Content-Type"].startswith("text/html")
            assert error_id(page) == "request.too_large"
            assert "vượt quá giới hạn 2,2 MB" in page
            assert resp.headers["X-Frame-Options"] == "DENY"
        assert store.get(req.id) == req

        # Under the limit, the same form goes through.
        resp = await client.post(f"{PAGE}/{req.id}/done", allow_redirects=False,
                                 data={"csrf": token, "note": "ngắn"})
        assert resp.status == 303
    finally:
        store.close()


async def test_given_api_body_over_limit_when_posted_then_json_413(
        small: Lists, database_url: str) -> None:
    store = CallbackStore(database_url)
    try:
        req = ask(store, 1, T0 - 20 * MIN)
        client = await small.client("tdv.an")
        token = await csrf_of(client, PAGE)
        body = '{"note": "' + "x" * (SMALL_LIMIT + 1) + '"}'
        resp = await client.post(f"/api/v1/callbacks/{req.id}/done", data=body, headers={
            "Content-Type": "application/json", "X-CSRF-Token": token})
        assert resp.status == 413
        doc = await resp.json()
        assert doc["error"]["id"] == "request.too_large"
        assert store.get(req.id) == req
    finally:
        store.close()
