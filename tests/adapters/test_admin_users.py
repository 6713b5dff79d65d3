"""Administrators manage their province's users at /console/admin/users (SQLite and PostgreSQL,
aiohttp's test client, the real UserStore and Passwords): create with field errors and nothing
saved on a refusal, edit, disable (sessions and tokens die), reset password, unlock, the
self/last-admin guards, stale forms, tenant isolation, role and CSRF checks, the audit log and
its append-only table, the xlsx export, migration 0010 down and up."""

from __future__ import annotations

import datetime as dt
import functools
import html
import io
import logging
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alembic import command

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.admin_users import (
    Filters,
    UserForm,
    check_user_form,
    parse_filters,
    password_error,
)
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.urls import normalise_url
from callcenter.store.user_audit import UserAuditStore
from callcenter.store.users import UserError, UserStore, admin_guard
from tests.support import api as support
from tests.support.concurrency import run_together
from tests.support.schema import model_diff

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 09:00 in Đồng Nai
PASSWORD = "Mật khẩu đúng 2026"
NEW_PASSWORD = "Mật khẩu mới 2026!"
PATH = "/console/admin/users"

# The API tests' two provinces, and softphone extensions 101 and 102 for Đồng Nai.
CONFIG = support.CONFIG.replace(
    '    numbers: ["1022", "02511022"]\n',
    '    numbers: ["1022", "02511022"]\n'
    '    operators:\n'
    '      - {extension: "101", name: "Nguyễn Thị Lan", secret_env: HOTLINE_OP_101}\n'
    '      - {extension: "102", name: "Trần Văn Minh", secret_env: HOTLINE_OP_102}\n', 1)

USERS = {  # name -> (role, tenant, unit)
    "quantri": ("admin", "dongnai", None),
    "giamsat.binh": ("supervisor", "dongnai", None),
    "101": ("operator", "dongnai", None),
    "syt.dongnai": ("unit", "dongnai", "so_y_te"),
    "quantri.th": ("admin", "thanhhoa", None),
    "tdv.thanhhoa": ("operator", "thanhhoa", None),
}


class Clock:
    """A clock the test moves."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Console:
    app: web.Application
    clock: Clock
    store: UserStore
    database_url: str
    clients: list[TestClient[web.Request, web.Application]]

    async def client(self, name: str | None = None,
                     password: str = PASSWORD) -> TestClient[web.Request, web.Application]:
        """A new browser (own cookie jar), logged in as ``name`` if given."""
        server = self.clients[0].server if self.clients else TestServer(self.app)
        client = TestClient(server)
        await client.start_server()
        self.clients.append(client)
        if name is not None:
            resp = await login(client, name, password)
            assert resp.status == 303, await resp.text()
        return client

    def audit(self, target: str | None = None) -> list[tuple[str, str, str, str | None,
                                                             str | None, str | None]]:
        store = UserAuditStore(self.database_url)
        try:
            return [(c.actor, c.target, c.action, c.field, c.old, c.new)
                    for c in reversed(store.recent("dongnai", target))]
        finally:
            store.close()


async def login(client: TestClient[web.Request, web.Application], name: str,
                password: str) -> web.Response:
    page = await (await client.get("/console/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    return await client.post("/console/login", data={  # type: ignore[return-value]
        "username": name, "password": password, "csrf": token[1]}, allow_redirects=False)


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert m is not None, page
    return m[1]


def version_of_page(page: str) -> str:
    m = re.search(r'data-version="([0-9a-f]+)"', page)
    assert m is not None, page
    return m[1]


def error_ids(page: str) -> list[str]:
    return re.findall(r'data-error-id="([^"]+)"', page)


def field_errors(page: str) -> dict[str, str]:
    return {m[1]: html.unescape(m[2]).strip() for m in re.finditer(
        r'data-error-field="([^"]+)">([^<]*)<', page)}


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    path = tmp_path / "hotline.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config: HotlineConfig = load_config(path)
    upgrade_head(database_url)
    clock = Clock(T0)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config,
                  files_dir=tmp_path / "files", clock=clock)
    app[PASSWORDS] = Passwords(TEST_PARAMS)
    store = UserStore(database_url)
    hasher = Passwords(TEST_PARAMS)
    for name, (role, tenant, unit) in USERS.items():
        store.add_user(name, role, tenant, unit, full_name=f"Người dùng {name}", now=T0)
        store.set_password(name, hasher.hash(PASSWORD), now=T0)
    c = Console(app, clock, store, database_url, [])
    try:
        yield c
    finally:
        for client in reversed(c.clients):
            await client.close()
        store.close()


async def admin_page(client: TestClient[web.Request, web.Application],
                     path: str = PATH) -> str:
    resp = await client.get(path, allow_redirects=False)
    text = await resp.text()
    assert resp.status == 200, text
    return text


async def create(client: TestClient[web.Request, web.Application], **fields: str
                 ) -> tuple[int, str, str]:
    page = await admin_page(client)
    data = {"csrf": csrf_of(page), "name": "", "full_name": "", "role": "", "unit": "",
            "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    data.update(fields)
    resp = await client.post(PATH, data=data, allow_redirects=False)
    return resp.status, await resp.text(), resp.headers.get("Location", "")


async def act(client: TestClient[web.Request, web.Application], name: str, action: str,
              version: str | None = None, **fields: str) -> tuple[int, str, str]:
    page = await admin_page(client, f"{PATH}/{name}")
    data = {"csrf": csrf_of(page), "action": action,
            "version": version or version_of_page(page)}
    data.update(fields)
    resp = await client.post(f"{PATH}/{name}", data=data, allow_redirects=False)
    return resp.status, await resp.text(), resp.headers.get("Location", "")


# ---- pure parts -----------------------------------------------------------------------------
def test_given_query_when_filters_parsed_then_valid_kept_invalid_reported() -> None:
    assert parse_filters({"role": "unit", "active": "0"}) == (Filters("unit", False), {})
    assert parse_filters({}) == (Filters(), {})
    f, errors = parse_filters({"role": "boss", "active": "maybe"})
    assert f == Filters() and set(errors) == {"role", "active"}
    assert Filters("admin", True).query() == "role=admin&active=1"


@pytest.mark.parametrize(("password", "again", "expected"), [
    ("ngắn", "ngắn", "ít nhất 10"), (" " * 12, " " * 12, "dấu cách"),
    ("tdv.binh.x", "tdv.binh.x", "trùng"), (NEW_PASSWORD, NEW_PASSWORD + "x", "không khớp"),
    (NEW_PASSWORD, NEW_PASSWORD, None),
])
def test_given_password_pair_then_vietnamese_error_or_none(
        password: str, again: str, expected: str | None) -> None:
    problem = password_error(password, again, "tdv.binh.x")
    assert (problem is None) if expected is None else (problem and expected in problem)


@pytest.mark.parametrize(("form", "errors", "warned"), [
    (UserForm("syt2", "", "unit", ""), {"unit"}, False),
    (UserForm("syt2", "", "unit", "so_khong_co"), {"unit"}, False),
    (UserForm("gs2", "", "supervisor", "so_y_te"), {"unit"}, False),
    (UserForm("Hoa Le", "", "supervisor", ""), {"name"}, False),
    (UserForm("gs2", "x" * 201, "", ""), {"full_name", "role"}, False),
    (UserForm("103", "", "operator", ""), set(), True),
    (UserForm("101", "", "operator", ""), set(), False),
    (UserForm("syt2", "", "unit", "so_y_te"), set(), False),
])
def test_given_form_when_checked_then_field_errors_and_extension_warning(
        form: UserForm, errors: set[str], warned: bool) -> None:
    check_user_form(form, units=["so_y_te"], operator_extensions=["101", "102"])
    assert set(form.errors) == errors
    assert bool(form.warnings) == warned


@pytest.mark.parametrize(("actor", "target", "role", "active", "new_role", "new_active",
                          "others", "expected"), [
    ("a", "a", "admin", True, "supervisor", True, 3, "user.self"),
    ("a", "a", "admin", True, "admin", False, 3, "user.self"),
    ("a", "a", "admin", True, "admin", True, 0, None),  # editing one's own name
    ("a", "b", "admin", True, "supervisor", True, 0, "user.last_admin"),
    ("a", "b", "admin", True, "admin", False, 1, None),
    ("a", "b", "admin", False, "supervisor", False, 0, None),  # not an active admin anyway
    ("a", "b", "supervisor", True, "supervisor", False, 0, None),
])
def test_admin_guard(actor: str, target: str, role: str, active: bool, new_role: str,
                     new_active: bool, others: int, expected: str | None) -> None:
    assert admin_guard(actor=actor, target=target, role=role, active=active,
                       new_role=new_role, new_active=new_active,
                       other_active_admins=others) == expected


# ---- schema ---------------------------------------------------------------------------------
def test_given_migrated_database_then_user_audit_matches_model_and_is_append_only(
        database_url: str) -> None:
    assert model_diff(database_url, ["user_audit"]) == []
    store = UserStore(database_url)
    audit = UserAuditStore(database_url)
    try:
        store.add_user("gs", "supervisor", "dongnai", now=T0, actor="quantri")
        [row] = audit.recent("dongnai")
        assert (row.actor, row.target, row.action, row.field, row.new) == \
            ("quantri", "gs", "create", "role", "supervisor")
        table = sa.table("user_audit", sa.column("id"), sa.column("new_value"))
        for statement in (sa.update(table).values(new_value="admin"), sa.delete(table)):
            with pytest.raises(sa.exc.DBAPIError), audit.engine.begin() as conn:
                conn.execute(statement)
        assert audit.recent("dongnai") == [row]
        assert audit.recent("thanhhoa") == []
    finally:
        store.close()
        audit.close()


def test_given_head_when_downgraded_to_0009_and_upgraded_then_user_audit_goes_and_comes_back(
        database_url: str) -> None:
    upgrade_head(database_url)
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "0009")
    engine = sa.create_engine(normalise_url(database_url))
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert "user_audit" not in names and {"users", "config_audit"} <= names
        command.upgrade(cfg, "head")
        assert "user_audit" in set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert model_diff(database_url, ["user_audit"]) == []


# ---- who may open the pages -----------------------------------------------------------------
async def test_given_no_session_then_login_and_other_roles_then_403(console: Console) -> None:
    anonymous = await console.client()
    resp = await anonymous.get(PATH, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    for name in ("giamsat.binh", "101", "syt.dongnai"):
        client = await console.client(name)
        for path in (PATH, PATH + ".xlsx", f"{PATH}/quantri"):
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 403, (name, path)
            assert "auth.forbidden" in await resp.text()
        home = await (await client.get("/console/")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', home)  # the logout form's
        assert token is not None
        resp = await client.post(PATH, data={
            "csrf": token[1], "name": "hacker", "role": "admin", "password": NEW_PASSWORD,
            "password2": NEW_PASSWORD}, allow_redirects=False)
        assert resp.status == 403
    assert console.store.get_user("hacker") is None


async def test_given_post_without_csrf_then_403_and_nothing_changed(console: Console) -> None:
    client = await console.client("quantri")
    resp = await client.post(PATH, data={"name": "gs2", "role": "supervisor",
                                         "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
                             allow_redirects=False)
    assert resp.status == 403 and "csrf.invalid" in await resp.text()
    resp = await client.post(f"{PATH}/giamsat.binh", data={"action": "disable",
                                                           "version": "0" * 16,
                                                           "csrf": "wrong"})
    assert resp.status == 403
    assert console.store.get_user("gs2") is None
    assert console.store.get_user("giamsat.binh").active  # type: ignore[union-attr]


# ---- list and export ------------------------------------------------------------------------
async def test_given_admin_when_listing_then_own_tenant_only_with_vietnamese_roles_and_filters(
        console: Console) -> None:
    client = await console.client("quantri")
    page = await admin_page(client)
    listed = re.findall(r'data-user-row="([^"]+)"', page)
    assert listed == sorted(n for n, (_, t, _) in USERS.items() if t == "dongnai")
    assert "Đơn vị xử lý" in page and "Sở Y tế" in page and "Điện thoại viên" in page
    page = await admin_page(client, PATH + "?role=unit")
    assert re.findall(r'data-user-row="([^"]+)"', page) == ["syt.dongnai"]
    console.store.set_active("giamsat.binh", False, now=T0)
    page = await admin_page(client, PATH + "?active=0")
    assert re.findall(r'data-user-row="([^"]+)"', page) == ["giamsat.binh"]
    page = await admin_page(client, PATH + "?role=boss")
    assert "filter.invalid" in error_ids(page)
    assert len(re.findall(r'data-user-row="([^"]+)"', page)) == 4
    # Another tenant's user is unknown here: not listed, not shown, not changeable.
    resp = await client.get(f"{PATH}/quantri.th", allow_redirects=False)
    assert resp.status == 404 and "user.not_found" in await resp.text()
    page = await admin_page(client, f"{PATH}/quantri")
    resp = await client.post(f"{PATH}/tdv.thanhhoa", data={
        "csrf": csrf_of(page), "action": "disable", "version": version_of_page(page)},
        allow_redirects=False)
    assert resp.status == 404
    assert console.store.get_user("tdv.thanhhoa").active  # type: ignore[union-attr]


async def test_given_admin_when_exporting_then_xlsx_lists_users_without_hashes(
        console: Console) -> None:
    from openpyxl import load_workbook

    client = await console.client("quantri")
    resp = await client.get(PATH + ".xlsx")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert "attachment" in resp.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(await resp.read())).active
    rows = list(ws.iter_rows(values_only=True))
    header = rows[3]
    assert header[:3] == ("Tên đăng nhập", "Họ tên", "Vai trò")
    assert not any("hash" in str(h).lower() or "mật khẩu" == str(h).lower() for h in header)
    names = [r[0] for r in rows[4:]]
    assert names == sorted(n for n, (_, t, _) in USERS.items() if t == "dongnai")
    flat = " ".join(str(v) for r in rows for v in r if v is not None)
    assert "argon2" not in flat
    # The "sessions" column counts the admin's own session.
    by_name = {r[0]: r for r in rows[4:]}
    assert by_name["quantri"][header.index("Phiên đăng nhập còn hạn")] == 1
    assert by_name["syt.dongnai"][header.index("Vai trò")] == "Đơn vị xử lý"
    resp = await client.get(PATH + ".xlsx?role=unit")
    ws = load_workbook(io.BytesIO(await resp.read())).active
    assert [r[0] for r in ws.iter_rows(min_row=5, values_only=True)] == ["syt.dongnai"]


# ---- create ---------------------------------------------------------------------------------
async def test_given_unit_user_form_when_unit_missing_or_unknown_then_refused_then_created(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    client = await console.client("quantri")
    status, page, _ = await create(client, name="syt.moi", full_name="Sở Y tế — văn thư",
                                   role="unit", unit="")
    assert status == 422 and "unit" in field_errors(page)
    assert 'value="syt.moi"' in page and "Sở Y tế — văn thư" in page  # typed values kept
    assert NEW_PASSWORD not in page
    status, page, _ = await create(client, name="syt.moi", role="unit", unit="so_khong_co")
    assert status == 422 and "unit" in field_errors(page)
    assert console.store.get_user("syt.moi") is None
    caplog.set_level(logging.INFO, logger="callcenter.console.admin_users")
    status, _, location = await create(client, name="syt.moi", full_name="Văn thư Sở Y tế",
                                       role="unit", unit="so_y_te")
    assert status == 303 and location == f"{PATH}/syt.moi?done=create"
    created = console.store.get_user("syt.moi")
    assert created is not None and (created.role, created.unit, created.tenant) == \
        ("unit", "so_y_te", "dongnai")
    page = await admin_page(client, location)
    assert 'data-done="create"' in page and "Văn thư Sở Y tế" in page
    assert console.audit("syt.moi") == [
        ("quantri", "syt.moi", "create", "role", None, "unit"),
        ("quantri", "syt.moi", "create", "unit", None, "so_y_te"),
        ("quantri", "syt.moi", "create", "full_name", None, "Văn thư Sở Y tế"),
        ("quantri", "syt.moi", "create", "password", None, "set")]
    assert 'data-audit="create"' in page
    lines = [r.getMessage() for r in caplog.records if "syt.moi" in r.getMessage()
             and "created" in r.getMessage()]
    assert len(lines) == 1 and "quantri" in lines[0]
    assert all(NEW_PASSWORD not in r.getMessage() for r in caplog.records)
    fresh = await console.client()
    assert (await login(fresh, "syt.moi", NEW_PASSWORD)).status == 303


async def test_given_operator_when_created_then_extension_warning_only_if_not_configured(
        console: Console) -> None:
    client = await console.client("quantri")
    status, _, location = await create(client, name="102", role="operator")
    assert status == 303
    assert "data-warning" not in await admin_page(client, location)
    status, _, location = await create(client, name="109", role="operator")
    assert status == 303  # saved all the same: see the module doc of admin_users
    page = await admin_page(client, location)
    assert "data-warning" in page and "Máy lẻ 109" in page
    assert console.store.get_user("109").role == "operator"  # type: ignore[union-attr]


async def test_given_taken_name_weak_or_mismatched_password_then_field_errors_nothing_saved(
        console: Console) -> None:
    client = await console.client("quantri")
    before = console.store.list_users("dongnai")
    status, page, _ = await create(client, name="giamsat.binh", role="supervisor")
    assert status == 409 and "name" in field_errors(page)
    # The name of another tenant's user is taken as well (names are global).
    status, page, _ = await create(client, name="tdv.thanhhoa", role="supervisor")
    assert status == 409 and "name" in field_errors(page)
    status, page, _ = await create(client, name="gs.moi", role="supervisor",
                                   password="ngắn", password2="ngắn")
    assert status == 422 and "10" in field_errors(page)["password"]
    assert 'value="ngắn"' not in page
    status, page, _ = await create(client, name="gs.moi", role="supervisor",
                                   password2=NEW_PASSWORD + "x")
    assert status == 422 and "không khớp" in field_errors(page)["password"]
    status, page, _ = await create(client, name="Gs Mới!", role="supervisor")
    assert status == 422 and "name" in field_errors(page)
    status, page, _ = await create(client, name="gs.moi", role="")
    assert status == 422 and "role" in field_errors(page)
    assert 'aria-invalid="true"' in page and "user.invalid" in error_ids(page)
    assert console.store.list_users("dongnai") == before
    assert console.audit() == []


# ---- edit, disable, reset, unlock -----------------------------------------------------------
async def test_given_edit_when_role_changed_then_saved_audited_and_stale_form_refused(
        console: Console) -> None:
    client = await console.client("quantri")
    page = await admin_page(client, f"{PATH}/giamsat.binh")
    old_version = version_of_page(page)
    status, _, location = await act(client, "giamsat.binh", "update", full_name="Lê Văn Bình",
                                    role="admin", unit="")
    assert status == 303 and location.endswith("done=update")
    user = console.store.get_user("giamsat.binh")
    assert user is not None and (user.role, user.full_name) == ("admin", "Lê Văn Bình")
    assert console.audit("giamsat.binh") == [
        ("quantri", "giamsat.binh", "update", "full_name", "Người dùng giamsat.binh",
         "Lê Văn Bình"),
        ("quantri", "giamsat.binh", "update", "role", "supervisor", "admin")]
    page = await admin_page(client, location)
    assert "Giám sát viên → Quản trị viên" in page
    # The form shown before the change comes back: nothing written, current values shown.
    status, page, _ = await act(client, "giamsat.binh", "update", version=old_version,
                                full_name="Tên cũ", role="supervisor", unit="")
    assert status == 409 and "user.stale" in error_ids(page)
    assert 'value="Lê Văn Bình"' in page
    assert console.store.get_user("giamsat.binh").role == "admin"  # type: ignore[union-attr]
    # A unit without the unit role, and the unit role without a unit, are refused.
    status, page, _ = await act(client, "giamsat.binh", "update", full_name="x",
                                role="supervisor", unit="so_y_te")
    assert status == 422 and "unit" in field_errors(page)
    status, page, _ = await act(client, "giamsat.binh", "update", full_name="x", role="unit")
    assert status == 422 and "unit" in field_errors(page)
    status, _, _ = await act(client, "giamsat.binh", "update", full_name="Lê Văn Bình",
                             role="unit", unit="ubnd_long_thanh")
    assert status == 303
    user = console.store.get_user("giamsat.binh")
    assert user is not None and (user.role, user.unit) == ("unit", "ubnd_long_thanh")
    status, _, location = await act(client, "giamsat.binh", "update", full_name="Lê Văn Bình",
                                    role="unit", unit="ubnd_long_thanh")
    assert status == 303 and location.endswith("done=unchanged")


async def test_given_user_disabled_then_session_gone_token_refused_and_enable_restores(
        console: Console) -> None:
    _, token = console.store.issue_token("giamsat.binh", now=T0)
    target = await console.client("giamsat.binh")
    assert (await target.get("/console/", allow_redirects=False)).status == 200
    api = await console.client()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/v1/tickets", headers=auth)).status == 200
    admin = await console.client("quantri")
    status, _, location = await act(admin, "giamsat.binh", "disable")
    assert status == 303 and location.endswith("done=disable")
    resp = await target.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert (await api.get("/api/v1/tickets", headers=auth)).status == 401
    assert (await login(await console.client(), "giamsat.binh", PASSWORD)).status != 303
    page = await admin_page(admin, f"{PATH}/giamsat.binh")
    assert 'data-fact="sessions">0<' in page and 'data-action="enable"' in page
    status, _, _ = await act(admin, "giamsat.binh", "enable")
    assert status == 303
    assert (await login(await console.client(), "giamsat.binh", PASSWORD)).status == 303
    assert [a[2:] for a in console.audit("giamsat.binh")] == [
        ("disable", "active", "yes", "no"), ("enable", "active", "no", "yes")]


async def test_given_password_reset_then_old_fails_new_works_and_sessions_end(
        console: Console) -> None:
    target = await console.client("101")
    admin = await console.client("quantri")
    status, page, _ = await act(admin, "101", "reset_password", password="ngắn",
                                password2="ngắn")
    assert status == 422 and "password" in field_errors(page)
    assert (await target.get("/console/", allow_redirects=False)).status == 200
    status, page, _ = await act(admin, "101", "reset_password", password=NEW_PASSWORD,
                                password2=NEW_PASSWORD)
    assert status == 303
    resp = await target.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert (await login(await console.client(), "101", PASSWORD)).status == 401
    assert (await login(await console.client(), "101", NEW_PASSWORD)).status == 303
    assert console.audit("101") == [("quantri", "101", "reset_password", None, None, None)]


async def test_given_five_wrong_passwords_when_admin_unlocks_then_login_works(
        console: Console) -> None:
    browser = await console.client()
    for _ in range(5):
        await login(browser, "syt.dongnai", "sai mật khẩu rồi")
    assert (await login(browser, "syt.dongnai", PASSWORD)).status == 429  # the wait
    admin = await console.client("quantri")
    page = await admin_page(admin, f"{PATH}/syt.dongnai")
    assert 'data-action="unlock"' in page and 'class="late"' in page
    status, _, _ = await act(admin, "syt.dongnai", "unlock")
    assert status == 303
    assert (await login(browser, "syt.dongnai", PASSWORD)).status == 303
    assert [a[2] for a in console.audit("syt.dongnai")] == ["unlock"]


async def test_given_admin_when_disabling_or_demoting_self_then_refused(
        console: Console) -> None:
    admin = await console.client("quantri")
    status, page, _ = await act(admin, "quantri", "disable")
    assert status == 409 and "user.self" in error_ids(page)
    status, page, _ = await act(admin, "quantri", "update", full_name="Quản trị",
                                role="supervisor")
    assert status == 409 and "user.self" in error_ids(page)
    user = console.store.get_user("quantri")
    assert user is not None and user.active and user.role == "admin"
    # Renaming oneself is fine.
    status, _, _ = await act(admin, "quantri", "update", full_name="Quản trị viên tỉnh",
                             role="admin")
    assert status == 303
    assert console.audit("quantri") == [("quantri", "quantri", "update", "full_name",
                                         "Người dùng quantri", "Quản trị viên tỉnh")]


async def test_given_two_admins_then_one_may_demote_the_other_but_not_the_last(
        console: Console) -> None:
    console.store.add_user("quantri2", "admin", "dongnai", now=T0)
    admin = await console.client("quantri")
    status, _, _ = await act(admin, "quantri2", "update", full_name="", role="supervisor")
    assert status == 303
    # Now quantri is the last active admin of Đồng Nai: no actor may take that away (the
    # page cannot even try, since an admin cannot demote themselves; the store refuses it
    # for any actor, e.g. a second app instance acting on an older view).
    with pytest.raises(UserError) as refused:
        console.store.update_user("quantri", full_name=None, role="supervisor", unit=None,
                                  now=T0, actor="quantri2", tenant="dongnai")
    assert refused.value.id == "user.last_admin"
    with pytest.raises(UserError) as refused:
        console.store.set_active("quantri", False, now=T0, actor="quantri2", tenant="dongnai")
    assert refused.value.id == "user.last_admin"
    assert console.store.count_admins() == 2  # quantri and quantri.th (Thanh Hóa)


def _demote_the_other(store: UserStore, tenant: str, jobs: list[tuple[str, str]],
                      lock: threading.Lock) -> None:
    with lock:
        actor, target = jobs.pop()
    store.update_user(target, full_name=None, role="supervisor", unit=None, now=T0,
                      actor=actor, tenant=tenant)


def test_given_two_admins_when_demoting_each_other_at_once_then_one_admin_stays(
        database_url: str) -> None:
    upgrade_head(database_url)
    store = UserStore(database_url)
    try:
        for round_ in range(4):
            a, b = f"qt{round_}a", f"qt{round_}b"
            tenant = f"t{round_}"
            store.add_user(a, "admin", tenant, now=T0)
            store.add_user(b, "admin", tenant, now=T0)
            demote = functools.partial(_demote_the_other, store, tenant, [(a, b), (b, a)],
                                       threading.Lock())
            errors = run_together(demote, 2)
            # The second waits for the first (row locks on PostgreSQL, BEGIN IMMEDIATE on
            # SQLite), then sees one admin left and is refused. Never both.
            assert len(errors) == 1, errors
            assert isinstance(errors[0], UserError) and errors[0].id == "user.last_admin"
            admins = [u.name for u in store.list_users(tenant) if u.role == "admin"]
            assert len(admins) == 1, admins
    finally:
        store.close()


async def test_given_unknown_action_or_missing_version_then_400_nothing_changed(
        console: Console) -> None:
    admin = await console.client("quantri")
    page = await admin_page(admin, f"{PATH}/giamsat.binh")
    for data in ({"action": "delete", "version": version_of_page(page)},
                 {"action": "disable", "version": ""}):
        resp = await admin.post(f"{PATH}/giamsat.binh", data={"csrf": csrf_of(page), **data})
        assert resp.status == 400
    assert console.store.get_user("giamsat.binh").active  # type: ignore[union-attr]
    assert console.audit() == []


async def test_given_unknown_or_other_tenants_user_then_404_page_with_private_headers(
        console: Console) -> None:
    client = await console.client("quantri")
    page = await admin_page(client)
    for resp in (await client.get(f"{PATH}/khong.co"),
                 await client.get(f"{PATH}/quantri.th"),  # Thanh Hoá's: as if unknown
                 await client.post(f"{PATH}/khong.co", data={
                     "csrf": csrf_of(page), "action": "unlock", "version": "1"})):
        text = await resp.text()
        assert resp.status == 404, text
        assert error_ids(text) == ["user.not_found"]
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_given_edit_refused_by_a_guard_then_typed_values_kept_but_stale_shows_current(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = await console.client("quantri")
    status, page, _ = await act(admin, "quantri", "update", full_name="Quản trị viên mới gõ",
                                role="supervisor", unit="")
    assert status == 409 and "user.self" in error_ids(page)
    assert 'value="Quản trị viên mới gõ"' in page
    assert re.search(r'<option value="supervisor" selected>', page)
    assert console.store.get_user("quantri").full_name == "Người dùng quantri"  # type: ignore[union-attr]

    # The last admin: only a race reaches it from the page (the store decides), so the store
    # refuses here as it would when another admin was disabled meanwhile.
    def last_admin(*args: object, **kwargs: object) -> None:
        raise UserError("user.last_admin", "the tenant's last active admin")

    monkeypatch.setattr(console.store.__class__, "update_user", last_admin)
    status, page, _ = await act(admin, "giamsat.binh", "update", full_name="Tên gõ lần hai",
                                role="unit", unit="so_y_te")
    assert status == 409 and "user.last_admin" in error_ids(page)
    assert 'value="Tên gõ lần hai"' in page
    assert re.search(r'<option value="unit" selected>', page)
    assert re.search(r'<option value="so_y_te"\s+selected>', page)


async def test_given_idle_expired_session_then_not_counted_in_list_detail_or_store(
        console: Console) -> None:
    minute = dt.timedelta(minutes=1)
    lifetime = dt.timedelta(hours=8)
    # Both within their 8 hours; the older one is past the 30 minutes without a request.
    console.store.open_session("giamsat.binh", now=T0 - 31 * minute, lifetime=lifetime)
    console.store.open_session("giamsat.binh", now=T0 - 29 * minute, lifetime=lifetime)
    client = await console.client("quantri")
    page = await admin_page(client)
    row = re.search(r'data-user-row="giamsat.binh".*?<td>(\d+)</td></tr>', page, re.S)
    assert row is not None and row[1] == "1", page
    page = await admin_page(client, f"{PATH}/giamsat.binh")
    assert 'data-fact="sessions">1<' in page
    idle = 30 * minute
    listed = {u.name: u.sessions for u in console.store.user_details("dongnai", now=T0,
                                                                      idle=idle)}
    assert listed["giamsat.binh"] == 1 and listed["quantri"] == 1
    detail = console.store.user_detail("giamsat.binh", now=T0, idle=idle)
    assert detail is not None and detail.sessions == 1
    later = console.store.user_detail("giamsat.binh", now=T0 + minute, idle=idle)
    assert later is not None and later.sessions == 0  # the second one went idle too


@pytest.mark.parametrize("name,ok", [("101", True), ("syt.dongnai", True), ("a", False),
                                     ("Quantri", False), (".an", False), ("tên", False),
                                     ("x" * 64, True), ("x" * 65, False)])
def test_given_login_name_then_one_rule_for_the_store_and_the_form(name: str, ok: bool) -> None:
    from callcenter.store.users import check_user_fields, check_user_name

    outcomes = []
    for check in (lambda: check_user_name(name),
                  lambda: check_user_fields(name, "admin", "dongnai", None)):
        try:
            check()
            outcomes.append(True)
        except UserError as e:
            assert e.id == "user.invalid_name"
            outcomes.append(False)
    form = check_user_form(UserForm(name=name, role="supervisor"), units=[],
                           operator_extensions=[])
    assert outcomes == [ok, ok] and ("name" not in form.errors) == ok
