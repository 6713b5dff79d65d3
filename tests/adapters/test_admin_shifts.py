"""Administrators edit shifts at /console/admin/shifts (SQLite and PostgreSQL, aiohttp's test
client, a real config file and LiveConfig): the file is patched (comments kept), the previous
version kept, the running config reloaded, an audit row written; invalid values and stale
forms change nothing; only admins of the tenant, only with the session's CSRF token."""

from __future__ import annotations

import datetime as dt
import difflib
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.edit import HISTORY_DIR, sha256_of
from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.store.config_audit import ConfigAuditStore
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import UserStore
from tests.support.schema import model_diff

T0 = dt.datetime(2026, 11, 26, 12, 30, tzinfo=dt.UTC)  # 19:30 in Đồng Nai: the night shift
PASSWORD = "Mật khẩu đúng 2026"
PATH = "/console/admin/shifts"
LIVE = web.AppKey("test_live_config", LiveConfig)

CONFIG = """\
# Test hotline: comments must survive every edit from the console.
tenants:
  - id: dongnai
    name: "Đồng Nai"
    timezone: "Asia/Ho_Chi_Minh"   # shift times are local
    numbers: ["1022", "02511022"]
    shifts:
      - {name: day, start: "07:00", end: "18:00", lines: 15}    # office hours
      - {name: night, start: "18:00", end: "07:00", lines: 2}   # on call
    overrides:
      - name: "Tết Nguyên Đán 2027"
        from: "2027-02-05"
        to: "2027-02-10"
        shifts:
          - {name: tet-day, start: "07:00", end: "18:00", lines: 6}
          - {name: tet-night, start: "18:00", end: "07:00", lines: 2}
  - id: thanhhoa
    name: "Thanh Hóa"
    numbers: ["02371022"]
    shifts:
      - {name: all-day, start: "00:00", end: "24:00", lines: 4}
"""

USERS = {
    "quantri": ("admin", "dongnai"),
    "quantri.th": ("admin", "thanhhoa"),
    "giamsat.binh": ("supervisor", "dongnai"),
    "tdv.an": ("operator", "dongnai"),
}


class Clock:
    """A fixed clock."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    live: LiveConfig
    path: Path
    database_url: str

    async def login(self, name: str) -> None:
        page = await (await self.client.get("/console/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        resp = await self.client.post("/console/login", data={
            "username": name, "password": PASSWORD, "csrf": token[1]}, allow_redirects=False)
        assert resp.status == 303, await resp.text()

    async def form(self) -> tuple[str, dict[str, str]]:
        resp = await self.client.get(PATH, allow_redirects=False)
        text = await resp.text()
        assert resp.status == 200, text
        return text, fields_of(text)

    async def submit(self, values: dict[str, str], **changes: str) -> tuple[int, str]:
        data = dict(values)
        data.update({k.replace("_", "-"): v for k, v in changes.items()})
        resp = await self.client.post(PATH, data=data, allow_redirects=False)
        return resp.status, await resp.text()

    def audit(self) -> list[tuple[str, str, str, str, str, str]]:
        store = ConfigAuditStore(self.database_url)
        try:
            return [(c.user, c.tenant, c.shift, c.field, c.old, c.new)
                    for c in store.recent("dongnai")]
        finally:
            store.close()


def fields_of(page: str) -> dict[str, str]:
    """Every named input of the page and its value."""
    return {m[1]: html.unescape(m[2])
            for m in re.finditer(r'name="([^"]+)" value="([^"]*)"', page)}


def error_of(page: str, field: str) -> str | None:
    m = re.search(rf'data-error-field="{re.escape(field)}">([^<]*)<', page)
    return html.unescape(m[1]) if m else None


def error_ids(page: str) -> list[str]:
    return re.findall(r'data-error-id="([^"]+)"', page)


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "hotline.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    upgrade_head(database_url)
    live = LiveConfig(path, load_config(path))
    app = web.Application()
    app[LIVE] = live
    setup_console(app, database_url=database_url, config=live, files_dir=tmp_path / "files",
                  clock=Clock(T0), live_config=LIVE)
    app[PASSWORDS] = hasher = Passwords(TEST_PARAMS)
    users = UserStore(database_url)
    for name, (role, tenant) in USERS.items():
        users.add_user(name, role, tenant, None, now=T0)
        users.set_password(name, hasher.hash(PASSWORD), now=T0)
    users.close()
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Console(client, live, path, database_url)
    finally:
        await client.close()


async def test_given_admin_when_night_lines_lowered_then_written_kept_reloaded_audited(
        console: Console) -> None:
    await console.login("quantri")
    page, form = await console.form()
    assert "Ca trực và số line — Đồng Nai" in page
    assert 'data-timezone="Asia/Ho_Chi_Minh"' in page and "UTC+07:00" in page
    assert "19:30 ngày 26/11/2026" in page  # the clock, in the tenant's time zone
    assert 'data-active-shift="night"' in page
    assert "Tết Nguyên Đán 2027" in page and "05/02/2027" in page  # overrides, read-only
    assert "tet-day" in page and 'name="start-2"' not in page
    assert (form["name-1"], form["start-1"], form["end-1"], form["lines-1"]) == \
        ("night", "18:00", "07:00", "2")
    before = console.path.read_bytes()
    assert form["sha256"] == sha256_of(before)

    status, page = await console.submit(form, lines_1="1")

    assert status == 200, page
    assert "Đã lưu" in page and 'data-change="night.lines"' in page
    assert re.search(r"Ca night: số line\s+2 → 1", page)
    after = console.path.read_text(encoding="utf-8")
    changed = [line for line in difflib.unified_diff(before.decode().splitlines(),
                                                      after.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        '-      - {name: night, start: "18:00", end: "07:00", lines: 2}   # on call',
        '+      - {name: night, start: "18:00", end: "07:00", lines: 1}   # on call',
    ]
    kept = list((console.path.parent / HISTORY_DIR).iterdir())
    assert [p.read_bytes() for p in kept] == [before]
    assert kept[0].name == "hotline.yaml.20261126T123000Z"
    assert console.live().tenants[0].shifts[1].lines == 1  # in force, no restart
    assert console.live.current.tenants[0].shifts[0].lines == 15
    assert console.audit() == [("quantri", "dongnai", "night", "lines", "2", "1")]
    assert 'data-history="true"' in page and "26/11/2026 19:30" in page
    assert fields_of(page)["lines-1"] == "1"
    assert fields_of(page)["sha256"] == sha256_of(console.path.read_bytes())


async def test_given_admin_when_times_moved_then_both_shifts_change_together(
        console: Console) -> None:
    await console.login("quantri")
    _, form = await console.form()
    status, page = await console.submit(form, end_0="19:00", start_1="19:00")
    assert status == 200, page
    day, night = console.live().tenants[0].shifts
    assert (day.end, night.start) == (dt.time(19), dt.time(19))
    assert sorted(console.audit()) == [
        ("quantri", "dongnai", "day", "end", "18:00", "19:00"),
        ("quantri", "dongnai", "night", "start", "18:00", "19:00")]
    assert "# office hours" in console.path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"lines_1": "-1"}, "lines-1", "Số line phải là số nguyên từ 0 đến 1000."),
    ({"lines_0": "mười"}, "lines-0", "Số line phải là số nguyên từ 0 đến 1000."),
    ({"start_1": "25:00"}, "start-1", 'Giờ bắt đầu phải có dạng "HH:MM", từ 00:00 đến 23:59.'),
    ({"start_1": "17:00"}, "shifts", "chồng lấn 17:00–18:00"),
    ({"end_0": "17:00"}, "shifts", "còn trống 17:00–18:00 sau ca day"),
])
async def test_given_invalid_value_when_submitted_then_field_error_and_nothing_changes(
        console: Console, changes: dict[str, str], field: str, message: str) -> None:
    await console.login("quantri")
    _, form = await console.form()
    before = console.path.read_bytes()
    in_force = console.live()

    status, page = await console.submit(form, **changes)

    assert status == 422, page
    error = error_of(page, field)
    assert error is not None and message in error, page
    assert "config.invalid" in error_ids(page)
    assert "Tệp cấu hình không bị thay đổi" in page
    key = field if field != "shifts" else next(iter(changes)).replace("_", "-")
    assert fields_of(page)[key] == next(iter(changes.values()))  # the input is kept
    assert console.path.read_bytes() == before
    assert not (console.path.parent / HISTORY_DIR).exists()
    assert console.live() is in_force
    assert console.audit() == []


async def test_given_file_changed_by_hand_when_stale_form_submitted_then_refused(
        console: Console) -> None:
    await console.login("quantri")
    _, form = await console.form()
    text = console.path.read_text(encoding="utf-8")
    console.path.write_text(text.replace("lines: 15}", "lines: 14}"), encoding="utf-8")
    by_hand = console.path.read_bytes()

    status, page = await console.submit(form, lines_1="1")

    assert status == 409, page
    assert "config.stale" in error_ids(page)
    assert "đã thay đổi kể từ khi bạn mở biểu mẫu" in page
    assert console.path.read_bytes() == by_hand
    assert console.audit() == []
    # Not reloaded yet (no watcher here): the page shows what is in force and says so.
    assert 'data-notice="file-differs"' in page
    assert fields_of(page)["sha256"] == sha256_of(by_hand)

    assert await console.live.reload("test: hand edit")
    page, form = await console.form()
    assert form["lines-0"] == "14" and 'data-notice="file-differs"' not in page
    status, page = await console.submit(form, lines_1="1")
    assert status == 200, page
    assert [s.lines for s in console.live().tenants[0].shifts] == [14, 1]


async def test_given_broken_file_on_disk_when_page_opened_then_in_force_shown_with_error(
        console: Console) -> None:
    await console.login("quantri")
    console.path.write_text(CONFIG.replace("lines: 15}", "lines: -3}"), encoding="utf-8")
    assert not await console.live.reload("test: broken by hand")
    page, form = await console.form()
    assert form["lines-0"] == "15"  # still in force
    assert "config.file_refused" in error_ids(page)
    assert "tenants[0].shifts[0].lines" in page


async def test_given_other_roles_or_no_session_when_opening_then_refused(
        console: Console) -> None:
    resp = await console.client.get(PATH, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=/console/admin/shifts"

    await console.login("giamsat.binh")
    resp = await console.client.get(PATH, allow_redirects=False)
    assert resp.status == 403
    assert "auth.forbidden" in error_ids(await resp.text())
    home = await (await console.client.get("/console/")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', home)
    assert csrf is not None
    before = console.path.read_bytes()
    resp = await console.client.post(PATH, data={
        "csrf": csrf[1], "tenant": "dongnai", "sha256": sha256_of(before), "count": "2",
        "name-1": "night", "seen-lines-1": "2", "lines-1": "0"}, allow_redirects=False)
    assert resp.status == 403
    assert console.path.read_bytes() == before


async def test_given_admin_of_other_tenant_when_posting_for_dongnai_then_403(
        console: Console) -> None:
    await console.login("quantri.th")
    page, form = await console.form()
    assert "Thanh Hóa" in page and form["name-0"] == "all-day"
    before = console.path.read_bytes()
    status, page = await console.submit(form, tenant="dongnai", name_0="night",
                                        seen_lines_0="2", lines_0="0")
    assert status == 403 and "auth.forbidden" in error_ids(page)
    assert console.path.read_bytes() == before
    status, page = await console.submit(form, lines_0="3")
    assert status == 200, page
    assert console.live().tenants[1].shifts[0].lines == 3
    assert console.live().tenants[0].shifts[1].lines == 2


async def test_given_no_or_wrong_csrf_when_posting_then_403_and_nothing_written(
        console: Console) -> None:
    await console.login("quantri")
    _, form = await console.form()
    before = console.path.read_bytes()
    for token in (None, "x" * 43):
        data = {k: v for k, v in form.items() if k != "csrf"}
        if token is not None:
            data["csrf"] = token
        data["lines-1"] = "1"
        resp = await console.client.post(PATH, data=data, allow_redirects=False)
        assert resp.status == 403
        assert "csrf.invalid" in error_ids(await resp.text())
    assert console.path.read_bytes() == before
    assert console.audit() == []


async def test_given_unchanged_form_when_submitted_then_nothing_written(
        console: Console) -> None:
    await console.login("quantri")
    _, form = await console.form()
    before = console.path.read_bytes()
    status, page = await console.submit(form, start_0="7:00")  # same time, written otherwise
    assert status == 200 and 'data-unchanged="true"' in page
    assert console.path.read_bytes() == before
    assert console.audit() == []


async def test_page_headers_private_and_no_framing(console: Console) -> None:
    await console.login("quantri")
    resp = await console.client.get(PATH)
    assert resp.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_given_migrated_database_then_config_audit_matches_model_and_is_append_only(
        database_url: str) -> None:
    assert model_diff(database_url, ["config_audit"]) == []
    store = ConfigAuditStore(database_url)
    try:
        @dataclass
        class Change:
            shift: str
            field: str
            old: str
            new: str

        [row] = store.record(user="quantri", tenant="dongnai",
                             changes=[Change("night", "lines", "2", "1")], at=T0,
                             file_sha256="0" * 64, previous_copy="/x/.history/h")
        assert store.recent("dongnai") == [row]
        assert row.changed_at == T0 and row.id > 0
        table = sa.table("config_audit", sa.column("id"), sa.column("new_value"))
        for statement in (sa.update(table).values(new_value="9"), sa.delete(table)):
            with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as conn:
                conn.execute(statement)
        assert store.recent("dongnai") == [row]
        assert store.recent("thanhhoa") == []
    finally:
        store.close()
