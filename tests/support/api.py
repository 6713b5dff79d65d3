"""Shared fixtures of the API tests (no tests here): a config with two provinces, an app built
with ``setup_console`` on a real TicketService and UserStore, users of every role and their
tokens, and helpers for requests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.setup import setup_console
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import UserStore
from callcenter.tickets.files import UploadLimits

MAX_UPLOAD = 256 * 1024  # documents and photos: small, so "too large" is quick to send
MAX_VIDEO_UPLOAD = 2 * 1024 * 1024  # videos: over aiohttp's default body limit, still quick
UPLOAD_LIMITS = UploadLimits(document=MAX_UPLOAD, image=MAX_UPLOAD, video=MAX_VIDEO_UPLOAD)

CONFIG = """
tenants:
  - id: dongnai
    name: "Đồng Nai"
    numbers: ["1022", "02511022"]
    shifts:
      - {name: day, start: "07:00", end: "18:00", lines: 15}
      - {name: night, start: "18:00", end: "07:00", lines: 2}
    units:
      - {id: vp_ubnd_tinh, name: "Văn phòng UBND tỉnh", kind: department,
         focal_persons: [{name: "Đầu mối VP", phone: "0900000101"}]}
      - {id: so_y_te, name: "Sở Y tế", kind: department,
         focal_persons: [{name: "Đầu mối Sở Y tế", phone: "0900000102"}]}
      - {id: ubnd_long_thanh, name: "UBND huyện Long Thành", kind: district,
         places: [long_thanh],
         focal_persons: [{name: "Đầu mối Long Thành", phone: "0900000203"}]}
    places:
      - id: long_thanh
        name: "Huyện Long Thành"
        communes:
          - {id: long_thanh.an_phuoc, name: "Xã An Phước"}
      - {id: bien_hoa, name: "Thành phố Biên Hòa"}
    tickets:
      code_prefix: DN
      fallback_unit: vp_ubnd_tinh
      routing:
        - {field: health, unit: so_y_te}
  - id: thanhhoa
    name: "Thanh Hóa"
    numbers: ["02371022"]
    shifts:
      - {name: day, start: "07:00", end: "18:00", lines: 4}
      - {name: night, start: "18:00", end: "07:00", lines: 2}
    units:
      - {id: so_y_te, name: "Sở Y tế Thanh Hóa", kind: department,
         focal_persons: [{name: "Đầu mối", phone: "0900000402"}]}
    tickets:
      code_prefix: TH
      fallback_unit: so_y_te
"""

# name -> (role, tenant, unit)
USERS: dict[str, tuple[str, str, str | None]] = {
    "tdv.an": ("operator", "dongnai", None),
    "giamsat.binh": ("supervisor", "dongnai", None),
    "quantri": ("admin", "dongnai", None),
    "syt.dongnai": ("unit", "dongnai", "so_y_te"),
    "ubnd.longthanh": ("unit", "dongnai", "ubnd_long_thanh"),
    "tdv.thanhhoa": ("operator", "thanhhoa", None),
}

# A minimal, real PDF (one empty page).
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


@pytest.fixture
def hotline_config(tmp_path: Path) -> HotlineConfig:
    """Đồng Nai and Thanh Hóa, with units, places and routing."""
    path = tmp_path / "hotline.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


def make_app(database_url: str, config: HotlineConfig, files_dir: Path) -> web.Application:
    """An app with only the console wired, as build_app wires it (after the migration)."""
    upgrade_head(database_url)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config, files_dir=files_dir,
                  upload_limits=UPLOAD_LIMITS)
    return app


def make_tokens(database_url: str) -> dict[str, str]:
    """A user of every role (and one of another tenant), and a token for each."""
    store = UserStore(database_url)
    try:
        tokens = {}
        for name, (role, tenant, unit) in USERS.items():
            store.add_user(name, role, tenant, unit)
            tokens[name] = store.issue_token(name)[1]
        return tokens
    finally:
        store.close()


@dataclass
class Api:
    """A test client with the users' tokens."""

    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def call(self, method: str, path: str, user: str | None = None,
                   expect: int | None = None, **kwargs: Any) -> Any:
        """Send a request; check the status if ``expect``; the JSON answer (or the text)."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers |= self.auth(user)
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body: Any = (await resp.json() if resp.content_type == "application/json"
                     else await resp.text())
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return body

    async def open_ticket(self, user: str = "tdv.an", **fields: Any) -> dict[str, Any]:
        body = {"channel": "phone", "content": "Trạm y tế xã An Phước không có thuốc hạ sốt.",
                "field": "health", "place": "long_thanh.an_phuoc",
                "citizen_name": "Nguyễn Thị Hoa", "citizen_phone": "0912345678"} | fields
        result: dict[str, Any] = await self.call("POST", "/api/v1/tickets", user, 201,
                                                 json=body)
        return result

    async def act(self, code: str, user: str, action: str, version: int,
                  expect: int = 200, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", f"/api/v1/tickets/{code}/actions", user, expect,
            json={"action": action, "version": version, **fields})
        return result


@pytest.fixture
async def api(database_url: str, hotline_config: HotlineConfig,
              tmp_path: Path) -> AsyncIterator[Api]:
    """The console app on a migrated database (SQLite and PostgreSQL), with users."""
    app = make_app(database_url, hotline_config, tmp_path / "files")
    tokens = make_tokens(database_url)
    server = TestServer(app, host="127.0.0.1")
    # No access log, as `callcenter.app.serve` runs it: a caller's number is in some paths.
    await server.start_server(access_log=None)
    async with TestClient(server) as client:
        yield Api(client, tokens)


@contextlib.contextmanager
def live_server(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 from a thread with its own event loop (for synchronous
    clients such as schemathesis); the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port.append(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, name="live-console", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
