"""Shared fixtures of the list page tests (no tests here): the console app on a real store with
a fixed clock, users of every role with passwords, a logged-in client per user."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.model import HotlineConfig
from callcenter.console.context import SERVICE
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import UserStore
from callcenter.tickets.rules import Actor, Forward, Ticket
from callcenter.tickets.service import TicketService
from tests.support.api import UPLOAD_LIMITS, USERS

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)  # 12:00 in Đồng Nai (UTC+7)
PASSWORD = "Mật khẩu đúng 2026"
OPERATOR = Actor("tdv.an", "operator")


class Clock:
    """A clock the test moves."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Lists:
    """The console app, its clock and a way to log users in (one client each)."""

    app: web.Application
    clock: Clock
    server: TestServer
    clients: list[TestClient[web.Request, web.Application]]

    @property
    def service(self) -> TicketService:
        return self.app[SERVICE]

    async def client(self, name: str | None) -> TestClient[web.Request, web.Application]:
        """A client of its own (its own cookies), logged in as ``name`` unless None."""
        client: TestClient[web.Request, web.Application] = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        if name is not None:
            page = await (await client.get("/console/login")).text()
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            assert token is not None
            resp = await client.post("/console/login", data={
                "username": name, "password": PASSWORD, "csrf": token[1]},
                allow_redirects=False)
            assert resp.status == 303, await resp.text()
        return client

    def ticket(self, *, at: dt.datetime, field: str = "health", unit: str | None = "so_y_te",
               content: str = "Trạm y tế xã An Phước không có thuốc hạ sốt.",
               phone: str = "0912345678") -> Ticket:
        """A ticket received at ``at`` and (with ``unit``) forwarded to it a minute later."""
        t = self.service.open("dongnai", OPERATOR, channel="phone", content=content,
                              field=field, citizen_name="Nguyễn Thị Hoa",
                              citizen_phone=phone, at=at)
        if unit is not None:
            t = self.service.act(t.code, OPERATOR, Forward(at + dt.timedelta(minutes=1),
                                                           OPERATOR, unit))
        return t


async def csrf_of(client: TestClient[web.Request, web.Application], path: str) -> str:
    """The CSRF token a console page carries."""
    page = await (await client.get(path)).text()
    m = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert m is not None, page
    return m[1]


def codes_in(page: str) -> list[str]:
    """The ticket codes of a list page's rows, in order."""
    return re.findall(r'<tr data-code="([^"]+)"', page)


def field_error(page: str, field: str) -> str | None:
    """The text of the page's error for a form field."""
    m = re.search(rf'data-error-field="{re.escape(field)}">([^<]*)<', page)
    return html.unescape(m[1]) if m else None


def xlsx_rows(data: bytes) -> list[tuple[Any, ...]]:
    """The data rows (below the title, subtitle and header) of an xlsx's first sheet."""
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(data)).worksheets[0]
    return [tuple(r) for r in ws.iter_rows(min_row=5, values_only=True)]


def xlsx_headers(data: bytes) -> list[Any]:
    """The header row of an xlsx's first sheet."""
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(data)).worksheets[0]
    return [c.value for c in ws[4]]


@pytest.fixture
async def lists(database_url: str, hotline_config: HotlineConfig,
                tmp_path: Path) -> AsyncIterator[Lists]:
    """The console on a migrated database (SQLite and PostgreSQL), users with passwords."""
    upgrade_head(database_url)
    clock = Clock(T0)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: hotline_config,
                  files_dir=tmp_path / "files", upload_limits=UPLOAD_LIMITS,
                  clock=clock)
    app[PASSWORDS] = hasher = Passwords(TEST_PARAMS)
    store = UserStore(database_url)
    try:
        hashed = hasher.hash(PASSWORD)
        for name, (role, tenant, unit) in USERS.items():
            store.add_user(name, role, tenant, unit, now=T0)
            store.set_password(name, hashed, now=T0)
    finally:
        store.close()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    holder = Lists(app, clock, server, [])
    try:
        yield holder
    finally:
        for c in holder.clients:
            await c.close()
        await server.close()
