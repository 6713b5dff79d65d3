"""The app's control routes (/api/pool, /api/ivr, /api/loop-lag, /api/reload) behind the console's
authentication, through aiohttp's test client: the real handlers and route table of
``callcenter.app``, a real line pool in a private redis-server, a real config file reloaded, a
real SQLite user store with tokens and console sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.app import CONFIG, IVR, LAG, POOL, add_control_routes
from callcenter.config.live import LiveConfig
from callcenter.config.model import HotlineConfig
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.faq.store import FaqStore
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.runtime import IvrRuntime
from callcenter.lines.fallback import ResilientPool
from callcenter.lines.redis import LinePool
from callcenter.runtime.loop_lag import LoopLag
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.users import UserStore, csrf_token_of
from tests.support import api as support
from tests.support.api import make_app, make_tokens

hotline_config = support.hotline_config

READ_ONLY = [("GET", "/api/pool"), ("GET", "/api/ivr"), ("GET", "/api/loop-lag")]
ADMIN_ONLY = [("POST", "/api/loop-lag"), ("POST", "/api/reload")]
PASSWORD = "Mật khẩu đúng 2026"


@dataclass
class Control:
    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]
    reloads: list[HotlineConfig] = field(default_factory=list)  # configs the reloads applied

    async def call(self, method: str, path: str, user: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = f"Bearer {self.tokens[user]}"
        async with self.client.request(method, path, headers=h) as r:
            return r.status, await r.json()

    async def log_in(self, name: str) -> str:
        """A console session for ``name`` (password set here); its CSRF token."""
        self.client.session.cookie_jar.clear()  # a fresh browser
        form = await (await self.client.get("/console/login")).text()
        nonce = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        resp = await self.client.post("/console/login", allow_redirects=False, data={
            "username": name, "password": PASSWORD, "csrf": nonce})
        assert resp.status == 303, await resp.text()
        session = next(c.value for c in self.client.session.cookie_jar
                       if c.key == "hotline_session")
        return csrf_token_of(session)


@pytest.fixture
async def control(redis_server: PrivateRedis, hotline_config: HotlineConfig,
                  tmp_path: Path) -> AsyncIterator[Control]:
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    app = make_app(database_url, hotline_config, tmp_path / "files")
    tokens = make_tokens(database_url)
    users = UserStore(database_url)
    hasher = app[PASSWORDS] = Passwords(TEST_PARAMS)
    for name in ("tdv.an", "giamsat.binh", "quantri"):
        users.set_password(name, hasher.hash(PASSWORD))
    users.close()
    reloads: list[HotlineConfig] = []

    async def applied(_old: HotlineConfig, new: HotlineConfig) -> None:
        reloads.append(new)

    live = app[CONFIG] = LiveConfig(tmp_path / "hotline.yaml", hotline_config, applied)
    redis = aioredis.Redis.from_url(redis_server.url)
    app[POOL] = ResilientPool(LinePool(redis, "control-test", "testpbx"))
    faq = FaqStore(database_url)
    app[IVR] = IvrRuntime(faq, PromptLibrary(tmp_path / "sounds", "/sounds", None), live)
    app[LAG] = LoopLag()
    add_control_routes(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    async with TestClient(server) as client:
        yield Control(client, tokens, reloads)
    faq.close()
    await redis.aclose()


@pytest.mark.parametrize(("method", "path"), READ_ONLY + ADMIN_ONLY)
async def test_given_no_credentials_when_control_route_called_then_401_and_nothing_done(
        control: Control, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer hl1_nosuchid_nosecret"}):
        status, body = await control.call(method, path, headers=headers)
        assert (status, body["error"]["id"]) == (401, "auth.required"), body
    assert control.reloads == []


@pytest.mark.parametrize(("method", "path"), READ_ONLY + ADMIN_ONLY)
async def test_given_operator_or_unit_token_when_control_route_called_then_403_and_nothing_done(
        control: Control, method: str, path: str) -> None:
    for user in ("tdv.an", "syt.dongnai"):
        status, body = await control.call(method, path, user)
        assert (status, body["error"]["id"]) == (403, "auth.forbidden"), body
    assert control.reloads == []


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_given_supervisor_token_when_reload_or_lag_reset_then_403_and_nothing_done(
        control: Control, method: str, path: str) -> None:
    status, body = await control.call(method, path, "giamsat.binh")
    assert (status, body["error"]["id"]) == (403, "auth.forbidden"), body
    assert control.reloads == []


async def test_given_supervisor_or_admin_token_when_read_only_control_routes_then_answered(
        control: Control) -> None:
    for user in ("giamsat.binh", "quantri"):
        status, pool = await control.call("GET", "/api/pool", user)
        assert status == 200 and [p["tenant"] for p in pool] == ["dongnai", "thanhhoa"]
        assert pool[0]["in_use"] == 0
        status, ivr = await control.call("GET", "/api/ivr", user)
        assert status == 200 and ivr[0] == {"tenant": "dongnai", "root": None, "nodes": 0,
                                            "faq_items": {}}
        status, lag = await control.call("GET", "/api/loop-lag", user)
        assert status == 200 and isinstance(lag, dict)


async def test_given_admin_token_when_reload_and_lag_reset_then_done(control: Control) -> None:
    status, body = await control.call("POST", "/api/reload", "quantri")
    assert (status, body) == (200, {"reloaded": True, "error": None})
    assert len(control.reloads) == 1
    status, lag = await control.call("POST", "/api/loop-lag", "quantri")
    assert status == 200 and isinstance(lag, dict)


async def test_given_console_sessions_when_control_routes_then_roles_and_csrf_apply(
        control: Control) -> None:
    await control.log_in("tdv.an")
    status, body = await control.call("GET", "/api/pool")
    assert (status, body["error"]["id"]) == (403, "auth.forbidden")
    await control.log_in("giamsat.binh")
    assert (await control.call("GET", "/api/pool"))[0] == 200
    csrf = await control.log_in("quantri")
    status, body = await control.call("POST", "/api/reload")  # another site's form: no token
    assert (status, body["error"]["id"]) == (403, "csrf.invalid")
    assert control.reloads == []
    status, body = await control.call("POST", "/api/reload", headers={"X-CSRF-Token": csrf})
    assert (status, body["reloaded"]) == (200, True) and len(control.reloads) == 1
