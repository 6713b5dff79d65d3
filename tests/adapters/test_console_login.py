"""Console browser login on SQLite and PostgreSQL, through aiohttp's test client: passwords,
the growing wait after wrong passwords with an injected clock, the session cookie's flags,
CSRF bound to the session, expiry, logout, the per-address and per-account rate limits, the
client's address and scheme behind trusted proxies only, HTTPS served by the app itself, role
landing links, the first-admin CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import logging
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alembic import command

from callcenter.cli import main
from callcenter.config.model import ConsoleConfig, HotlineConfig
from callcenter.config.tls import server_ssl_context
from callcenter.console.context import CONFIG, CONSOLE_PREFIX, ConsoleApps, sub_path
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.proxies import HSTS, client_address, is_https
from callcenter.console.sessions import (
    PASSWORDS,
    POLICY,
    SessionPolicy,
    console_csrf,
    require_console_role,
)
from callcenter.console.setup import setup_console
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.urls import normalise_url
from callcenter.store.users import UserStore
from tests.support import api as support
from tests.support.config_files import config_text
from tests.support.schema import model_diff
from tests.support.tls import make_cert

hotline_config = support.hotline_config

T0 = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.UTC)  # 08:00 in Đồng Nai
PASSWORD = "Mật khẩu đúng 2026"
USERS = {
    "tdv.an": ("operator", None),
    "giamsat.binh": ("supervisor", None),
    "quantri": ("admin", None),
    "syt.dongnai": ("unit", "so_y_te"),
}


class Clock:
    """A clock the test moves."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    clock: Clock
    store: UserStore

    async def login_page(self, path: str = "/console/login") -> tuple[int, str, str]:
        resp = await self.client.get(path, allow_redirects=False)
        text = await resp.text()
        m = re.search(r'name="csrf" value="([^"]+)"', text)
        return resp.status, text, m[1] if m else ""

    async def login(self, name: str, password: str = PASSWORD, *,
                    next_path: str | None = None, csrf: str | None = None,
                    open_form: bool = True,
                    headers: dict[str, str] | None = None):  # noqa: ANN201
        token = (await self.login_page())[2] if open_form else ""
        url = "/console/login" + (f"?next={next_path}" if next_path else "")
        return await self.client.post(url, data={
            "username": name, "password": password,
            "csrf": token if csrf is None else csrf}, allow_redirects=False, headers=headers)

    def plant_session_cookie(self, value: str) -> None:
        """Set ``hotline_session`` as the server's own would be (same host, Path=/)."""
        self.client.session.cookie_jar.update_cookies(
            {"hotline_session": value}, response_url=self.client.make_url("/"))

    def session_cookie(self) -> str | None:
        for c in self.client.session.cookie_jar:
            if c.key == "hotline_session":
                return c.value
        return None

    async def home(self) -> tuple[int, str, str]:
        resp = await self.client.get("/console/", allow_redirects=False)
        return resp.status, await resp.text(), resp.headers.get("Location", "")


async def _probe(request: web.Request) -> web.StreamResponse:
    """A later page: supervisors and admins only."""
    user = require_console_role(request, ("supervisor", "admin"))
    return web.Response(text=f"wallboard of {user.name}; csrf={console_csrf(request)}")


async def _change(request: web.Request) -> web.StreamResponse:
    """A later state-changing form."""
    require_console_role(request, ("admin",))
    form = await request.post()
    return web.Response(text=f"changed {form.get('lines')}")


def _app(database_url: str, config: HotlineConfig, tmp_path: Path, clock: Clock,
         policy: SessionPolicy | None = None,
         redis: web.AppKey[aioredis.Redis] | None = None) -> web.Application:
    upgrade_head(database_url)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config,
                  files_dir=tmp_path / "files", clock=clock, redis=redis,
                  extra_routes=[_add_probe])
    app[PASSWORDS] = Passwords(TEST_PARAMS)
    if policy is not None:
        app[POLICY] = policy
    return app


def _add_probe(apps: ConsoleApps) -> None:
    """/console/probe on the console sub-app, behind its middlewares."""
    apps.console.router.add_get(sub_path(CONSOLE_PREFIX, "/console/probe"), _probe)
    apps.console.router.add_post(sub_path(CONSOLE_PREFIX, "/console/probe"), _change)


def _users(database_url: str) -> UserStore:
    store = UserStore(database_url)
    hasher = Passwords(TEST_PARAMS)
    for name, (role, unit) in USERS.items():
        store.add_user(name, role, "dongnai", unit, full_name=f"Người dùng {name}", now=T0)
        store.set_password(name, hasher.hash(PASSWORD), now=T0)
    return store


@contextlib.asynccontextmanager
async def _serving(database_url: str, config: HotlineConfig,
                   tmp_path: Path) -> AsyncIterator[Console]:
    """The console app of ``config`` on a test server, its clock at T0 and its user store."""
    clock = Clock(T0)
    app = _app(database_url, config, tmp_path, clock)
    store = _users(database_url)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Console(client, clock, store)
    finally:
        await client.close()
        store.close()


@pytest.fixture
async def console(database_url: str, hotline_config: HotlineConfig,
                  tmp_path: Path) -> AsyncIterator[Console]:
    async with _serving(database_url, hotline_config, tmp_path) as c:
        yield c


def _error_id(text: str) -> str | None:
    m = re.search(r'data-error-id="([^"]+)"', text)
    return m[1] if m else None


# ---- schema ---------------------------------------------------------------------------------
def test_given_migrated_database_when_compared_to_session_models_then_no_difference(
        database_url: str) -> None:
    assert model_diff(database_url, {"console_sessions", "users"}) == []


def test_given_head_when_downgraded_to_0006_and_upgraded_then_sessions_go_and_come_back(
        database_url: str) -> None:
    upgrade_head(database_url)
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "0006")
    engine = sa.create_engine(normalise_url(database_url))
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert "console_sessions" not in names and "users" in names
        command.upgrade(cfg, "head")
        assert "console_sessions" in set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


# ---- login ----------------------------------------------------------------------------------
async def test_given_login_page_then_vietnamese_form_with_nonce_cookie(
        console: Console) -> None:
    status, text, token = await console.login_page()
    assert status == 200
    for label in ("Đăng nhập", "Tên đăng nhập", "Mật khẩu"):
        assert label in text
    assert len(token) == 43
    nonce = [c for c in console.client.session.cookie_jar if c.key == "hotline_login_csrf"]
    assert nonce and nonce[0]["path"] == "/console/login" and nonce[0]["httponly"]


async def test_given_right_password_when_login_then_session_cookie_with_safe_flags(
        console: Console, database_url: str) -> None:
    resp = await console.login("giamsat.binh")
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = resp.cookies["hotline_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain http in this test; see the https test
    assert "Strict-Transport-Security" not in resp.headers
    assert cookie["max-age"] == str(8 * 3600)
    raw = cookie.value
    # Only hashes in the database: neither the id nor its CSRF token.
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.text(
                "SELECT id_sha256, csrf_sha256, user_agent FROM console_sessions"))]
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0][0] == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(rows)
    status, text, _ = await console.home()
    assert status == 200 and 'data-user="giamsat.binh"' in text and "Giám sát viên" in text


async def test_given_secure_policy_when_login_then_cookie_is_secure(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    app = _app(database_url, hotline_config, tmp_path, Clock(T0), SessionPolicy(secure=True))
    _users(database_url).close()
    async with TestClient(TestServer(app)) as client:
        c = Console(client, Clock(T0), UserStore(database_url))
        try:
            status, _, token = await c.login_page()
            # The client keeps Secure cookies for https only: hand the login nonce back.
            nonce = [m for m in client.session.cookie_jar if m.key == "hotline_login_csrf"]
            assert status == 200 and nonce and nonce[0]["secure"]
            resp = await client.post("/console/login", data={
                "username": "quantri", "password": PASSWORD, "csrf": token},
                cookies={"hotline_login_csrf": token}, allow_redirects=False)
            assert resp.status == 303
            assert resp.cookies["hotline_session"]["secure"] is True
            assert "Secure" in resp.headers.getall("Set-Cookie")[0]
        finally:
            c.store.close()


@pytest.mark.parametrize("name", ["tdv.an", "nobody"])
async def test_given_wrong_password_or_unknown_user_when_login_then_same_refusal(
        console: Console, name: str) -> None:
    resp = await console.login(name, "sai mật khẩu rồi")
    text = await resp.text()
    assert resp.status == 401 and _error_id(text) == "login.invalid"
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in text
    assert "hotline_session" not in resp.cookies
    assert (await console.home())[2].startswith("/console/login")


async def test_given_disabled_user_when_login_then_refused_like_a_wrong_password(
        console: Console) -> None:
    console.store.set_active("tdv.an", False)
    resp = await console.login("tdv.an")
    assert resp.status == 401 and _error_id(await resp.text()) == "login.invalid"


def _failures(console: Console, name: str) -> int:
    with console.store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT failed_logins FROM users WHERE name = :n"),
                                {"n": name}).scalar_one())


async def test_given_three_wrong_passwords_when_next_attempt_inside_the_wait_then_429_unchecked(
        console: Console) -> None:
    for _ in range(3):
        resp = await console.login("tdv.an", "sai mật khẩu rồi")
        assert resp.status == 401 and _error_id(await resp.text()) == "login.invalid"
    # The third failure starts a 1 s wait: inside it even the right password is not checked,
    # and a wrong one is not counted.
    resp = await console.login("tdv.an")
    text = await resp.text()
    assert resp.status == 429 and _error_id(text) == "login.rate_limited"
    assert "Vui lòng thử lại sau 1 giây." in text and resp.headers["Retry-After"] == "1"
    assert "hotline_session" not in resp.cookies
    assert (await console.login("tdv.an", "sai mật khẩu rồi")).status == 429
    assert _failures(console, "tdv.an") == 3
    # After the wait one more wrong password doubles it (2 s), the next (4 s) ...
    console.clock.advance(seconds=1)
    assert (await console.login("tdv.an", "sai mật khẩu rồi")).status == 401
    console.clock.advance(seconds=1.9)
    assert (await console.login("tdv.an")).status == 429
    console.clock.advance(seconds=0.1)
    assert (await console.login("tdv.an", "sai mật khẩu rồi")).status == 401
    resp = await console.login("tdv.an")
    assert resp.status == 429 and resp.headers["Retry-After"] == "4"


# Issue, item 8: five guesses by anyone used to lock the owner out for 15 minutes.
async def test_given_guesses_by_anyone_when_owner_logs_in_after_the_delay_then_in(
        console: Console) -> None:
    waited = dt.timedelta()
    for n in range(1, 13):  # an attacker guessing as fast as the account lets them
        resp = await console.login("tdv.an", f"đoán sai lần {n}")
        assert resp.status == 401, n
        wait = 0 if n < 3 else 2 ** (n - 3)
        console.clock.advance(seconds=wait)  # the next guess comes right at the end of it
        waited += dt.timedelta(seconds=wait)
    assert waited == dt.timedelta(seconds=1023)  # 12 guesses took the attacker 17 minutes
    resp = await console.login("tdv.an", "đoán sai lần 13")
    assert resp.status == 401
    resp = await console.login("tdv.an")  # the owner, right after guess 13: a capped wait
    text = await resp.text()
    assert resp.status == 429 and resp.headers["Retry-After"] == "900"
    assert "Vui lòng thử lại sau 15 phút." in text
    console.clock.advance(minutes=15)  # the owner waits it out: in, and the count is gone
    resp = await console.login("tdv.an")
    assert resp.status == 303 and "hotline_session" in resp.cookies
    assert _failures(console, "tdv.an") == 0
    assert console.store.login_wait("tdv.an", now=console.clock.now) is None


async def test_given_failures_then_success_when_counted_then_count_starts_again(
        console: Console) -> None:
    for _ in range(3):
        assert (await console.login("tdv.an", "sai mật khẩu rồi")).status == 401
    console.clock.advance(seconds=1)
    assert (await console.login("tdv.an")).status == 303
    console.client.session.cookie_jar.clear()
    for _ in range(3):  # three free failures again, not a doubled wait
        assert (await console.login("tdv.an", "sai mật khẩu rồi")).status == 401
    console.clock.advance(seconds=1)
    assert (await console.login("tdv.an")).status == 303


async def test_given_wait_after_failures_when_admin_sets_new_password_then_no_wait(
        console: Console) -> None:
    for _ in range(5):
        await console.login("tdv.an", "sai mật khẩu rồi")
    assert (await console.login("tdv.an")).status == 429
    console.store.set_password("tdv.an", Passwords(TEST_PARAMS).hash("Mật khẩu mới 2026"))
    assert (await console.login("tdv.an", "Mật khẩu mới 2026")).status == 303


async def test_given_eleven_attempts_in_a_minute_when_login_then_429_then_allowed_again(
        console: Console) -> None:
    for i in range(10):
        resp = await console.login(f"nobody{i}", "sai mật khẩu rồi")
        assert resp.status == 401, i
    resp = await console.login("quantri")  # even the right password
    assert resp.status == 429 and _error_id(await resp.text()) == "login.rate_limited"
    assert int(resp.headers["Retry-After"]) == 60
    assert "hotline_session" not in resp.cookies
    console.clock.advance(seconds=60)
    assert (await console.login("quantri")).status == 303


REDIS_KEY = web.AppKey("test_redis", aioredis.Redis)


async def test_given_two_instances_on_one_redis_when_logins_then_attempts_counted_together(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path,
        redis_server: PrivateRedis) -> None:
    clock = Clock(T0)
    apps = [_app(database_url, hotline_config, tmp_path / f"i{i}", clock, redis=REDIS_KEY)
            for i in range(2)]  # two app instances in front of one Redis
    store = _users(database_url)
    consoles = []
    redis_client = aioredis.Redis.from_url(redis_server.url)
    await redis_client.flushall()
    try:
        for app in apps:
            app[REDIS_KEY] = redis_client
            client = TestClient(TestServer(app))
            await client.start_server()
            consoles.append(Console(client, clock, store))
        for i in range(10):
            assert (await consoles[i % 2].login(f"nobody{i}", "sai")).status == 401
        for c in consoles:  # each instance saw only 5, together they saw 10
            resp = await c.login("quantri")
            assert resp.status == 429 and int(resp.headers["Retry-After"]) == 60
        clock.advance(seconds=60)
        assert (await consoles[1].login("quantri")).status == 303
    finally:
        for c in consoles:
            await c.client.close()
        await redis_client.aclose()
        store.close()


async def test_given_redis_down_when_logins_then_still_limited_in_this_process(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T0)
    app = _app(database_url, hotline_config, tmp_path, clock, redis=REDIS_KEY)
    store = _users(database_url)
    app[REDIS_KEY] = aioredis.Redis.from_url("unix:///nonexistent/redis.sock")
    console = Console(TestClient(TestServer(app)), clock, store)
    await console.client.start_server()
    try:
        for i in range(10):
            assert (await console.login(f"nobody{i}", "sai")).status == 401
        assert (await console.login("quantri")).status == 429
        assert "login attempts counted in this process only" in caplog.text
    finally:
        await console.client.close()
        await app[REDIS_KEY].aclose()
        store.close()


# ---- the client's address and scheme: proxies, HTTPS, HSTS ------------------------------------
def _behind(config: HotlineConfig, *networks: str) -> HotlineConfig:
    """``config`` with ``console.trusted_proxies`` set (the test client comes from 127.0.0.1)."""
    return dataclasses.replace(config, console=ConsoleConfig(trusted_proxies=networks))


@pytest.fixture
async def proxied(database_url: str, hotline_config: HotlineConfig,
                  tmp_path: Path) -> AsyncIterator[Console]:
    """The console behind a reverse proxy on loopback (``console.trusted_proxies``)."""
    async with _serving(database_url, _behind(hotline_config, "127.0.0.0/8"), tmp_path) as c:
        yield c


# An attacker rotating X-Forwarded-For would get a fresh address, so a fresh rate limit, for
# every guess, if the header were believed from anyone.
async def test_given_forged_x_forwarded_for_from_untrusted_peer_when_logging_in_then_own_address_counted(  # noqa: E501
        console: Console) -> None:
    for i in range(10):
        resp = await console.login(f"nobody{i}", "sai mật khẩu rồi",
                                   headers={"X-Forwarded-For": f"203.0.113.{i}"})
        assert resp.status == 401, i
    resp = await console.login("quantri", headers={"X-Forwarded-For": "203.0.113.99"})
    assert resp.status == 429 and _error_id(await resp.text()) == "login.rate_limited"


async def test_given_forged_x_forwarded_proto_from_untrusted_peer_then_no_secure_nor_hsts(
        console: Console) -> None:
    resp = await console.login("quantri", headers={"X-Forwarded-Proto": "https"})
    assert resp.status == 303 and not resp.cookies["hotline_session"]["secure"]
    assert "Strict-Transport-Security" not in resp.headers


async def test_given_trusted_proxy_when_clients_log_in_then_each_client_counted_apart(
        proxied: Console) -> None:
    for i in range(10):
        resp = await proxied.login(f"nobody{i}", "sai mật khẩu rồi",
                                   headers={"X-Forwarded-For": "198.51.100.7"})
        assert resp.status == 401, i
    # The same client, writing its own X-Forwarded-For in front of what the proxy appends:
    # the right-most address the proxy did not vouch for is still its own.
    resp = await proxied.login("quantri", headers={
        "X-Forwarded-For": "10.9.8.7, 198.51.100.7"})
    assert resp.status == 429
    resp = await proxied.login("quantri", headers={"X-Forwarded-For": "198.51.100.8"})
    assert resp.status == 303  # another client behind the same proxy


async def test_given_trusted_proxy_says_https_when_login_then_secure_cookie_and_hsts(
        proxied: Console) -> None:
    https = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
    _, _, token = await proxied.login_page()
    resp = await proxied.client.post("/console/login", data={
        "username": "quantri", "password": PASSWORD, "csrf": token}, headers=https,
        cookies={"hotline_login_csrf": token}, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies["hotline_session"]
    assert cookie["secure"] is True and cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert resp.headers["Strict-Transport-Security"] == HSTS
    # The proxy says the client came over plain http: no HSTS (it is the proxy's to redirect).
    resp = await proxied.client.get("/console/login", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in resp.headers


async def _whoami(request: web.Request) -> web.StreamResponse:
    return web.Response(text=f"{client_address(request)} {is_https(request)}")


@pytest.mark.parametrize(("trusted", "headers", "seen"), [
    ((), {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}, "127.0.0.1 False"),
    (("10.0.0.0/8",), {"X-Forwarded-For": "203.0.113.5"}, "127.0.0.1 False"),  # peer not one
    (("127.0.0.0/8",), {}, "127.0.0.1 False"),
    (("127.0.0.0/8",), {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5 False"),
    (("127.0.0.0/8",), {"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}, "203.0.113.5 False"),
    (("127.0.0.0/8", "10.0.0.0/8"), {"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.1.2.3"},
     "203.0.113.5 False"),  # two proxies: the first untrusted from the right
    (("127.0.0.0/8",), {"X-Forwarded-For": "not-an-address"}, "127.0.0.1 False"),
    (("127.0.0.0/8",), {"X-Forwarded-Proto": "http, https"}, "127.0.0.1 True"),
    (("127.0.0.0/8",), {"X-Forwarded-Proto": "https, http"}, "127.0.0.1 False"),
])
async def test_given_peer_and_forwarded_headers_when_read_then_only_trusted_proxies_believed(
        hotline_config: HotlineConfig, trusted: tuple[str, ...], headers: dict[str, str],
        seen: str) -> None:
    app = web.Application()
    config = _behind(hotline_config, *trusted)
    app[CONFIG] = lambda: config
    app.router.add_get("/whoami", _whoami)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/whoami", headers=headers)
        assert await resp.text() == seen


# Many addresses (a botnet) guessing one account at once, faster than its wait can be written.
async def test_given_guesses_from_many_addresses_when_over_the_account_limit_then_429(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    clock = Clock(T0)
    app = _app(database_url, _behind(hotline_config, "127.0.0.0/8"), tmp_path, clock,
               SessionPolicy(free_failures=1000))  # no wait: only the account's window
    store = _users(database_url)
    async with TestClient(TestServer(app)) as client:
        c = Console(client, clock, store)
        try:
            for i in range(10):
                resp = await c.login("tdv.an", f"đoán {i}",
                                     headers={"X-Forwarded-For": f"198.51.100.{i}"})
                assert resp.status == 401, i
            resp = await c.login("tdv.an", headers={"X-Forwarded-For": "198.51.100.200"})
            text = await resp.text()
            assert resp.status == 429 and _error_id(text) == "login.rate_limited"
            assert "tài khoản này" in text and resp.headers["Retry-After"] == "60"
            # Another account from the same address is not held up by it.
            resp = await c.login("quantri", headers={"X-Forwarded-For": "198.51.100.200"})
            assert resp.status == 303
            clock.advance(seconds=60)
            client.session.cookie_jar.clear()
            resp = await c.login("tdv.an", headers={"X-Forwarded-For": "198.51.100.201"})
            assert resp.status == 303
        finally:
            store.close()


async def test_given_tls_cert_when_served_then_https_secure_cookie_and_hsts(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    pair = make_cert(tmp_path / "tls")
    config = dataclasses.replace(hotline_config, console=ConsoleConfig(
        tls_cert=str(pair.cert), tls_key=str(pair.key)))
    app = _app(database_url, config, tmp_path, Clock(T0))
    _users(database_url).close()
    runner = web.AppRunner(app)
    await runner.setup()
    # What app.serve does with console.tls_cert/tls_key.
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(config.console))
    await site.start()
    port = runner.addresses[0][1]
    trust = ssl.create_default_context(cafile=str(pair.cert))
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=trust),
                cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: an IP host
            base = f"https://127.0.0.1:{port}"
            async with http.get(f"{base}/console/login") as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"] == HSTS
                assert resp.cookies["hotline_login_csrf"]["secure"] is True
                m = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
                assert m is not None
            async with http.post(f"{base}/console/login", allow_redirects=False, data={
                    "username": "quantri", "password": PASSWORD, "csrf": m[1]}) as resp:
                assert resp.status == 303
                cookie = resp.cookies["hotline_session"]
                assert cookie["secure"] is True and cookie["httponly"] is True
                assert cookie["samesite"] == "Strict"
                assert resp.headers["Strict-Transport-Security"] == HSTS
            async with http.get(f"{base}/console/", allow_redirects=False) as resp:
                assert resp.status == 200  # the Secure cookie came back over TLS
                assert 'data-user="quantri"' in await resp.text()
            # Plain HTTP on the HTTPS port gets no page.
            with pytest.raises(aiohttp.ClientError):
                async with aiohttp.ClientSession() as plain:
                    async with plain.get(f"http://127.0.0.1:{port}/console/login") as resp:
                        await resp.read()
    finally:
        await runner.cleanup()


async def test_given_passwords_when_logging_in_then_never_in_the_log(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await console.login("tdv.an", "sai mật khẩu bí mật")
    await console.login("tdv.an")
    assert "tdv.an" in caplog.text
    assert "bí mật" not in caplog.text and PASSWORD not in caplog.text


async def test_given_old_hash_params_when_login_then_hash_upgraded(console: Console) -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PASSWORD)
    console.store.set_password("tdv.an", old)
    assert (await console.login("tdv.an")).status == 303
    with console.store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users WHERE name = 'tdv.an'")
                              ).scalar_one()
    assert stored != old and stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


# ---- CSRF -----------------------------------------------------------------------------------
@pytest.mark.parametrize("csrf", ["", "A" * 43])
async def test_given_login_without_matching_nonce_then_403(console: Console,
                                                           csrf: str) -> None:
    resp = await console.login("quantri", csrf=csrf)
    assert resp.status == 403 and _error_id(await resp.text()) == "csrf.invalid"
    assert "hotline_session" not in resp.cookies


async def test_given_session_when_post_without_or_with_wrong_csrf_then_403(
        console: Console) -> None:
    assert (await console.login("quantri")).status == 303
    for data in ({"lines": "3"}, {"lines": "3", "csrf": ""}, {"lines": "3", "csrf": "x" * 43}):
        resp = await console.client.post("/console/probe", data=data, allow_redirects=False)
        assert resp.status == 403 and _error_id(await resp.text()) == "csrf.invalid"
    resp = await console.client.post("/console/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await console.home())[0] == 200  # still logged in


async def test_given_session_when_post_with_its_csrf_then_accepted(console: Console) -> None:
    assert (await console.login("quantri")).status == 303
    page = await (await console.client.get("/console/probe")).text()
    token = page.rsplit("csrf=", 1)[1]
    resp = await console.client.post("/console/probe", data={"lines": "3", "csrf": token})
    assert resp.status == 200 and await resp.text() == "changed 3"
    resp = await console.client.post("/console/probe", data={"lines": "4"},
                                     headers={"X-CSRF-Token": token})
    assert resp.status == 200 and await resp.text() == "changed 4"


async def test_given_token_of_another_session_when_post_then_403(console: Console) -> None:
    assert (await console.login("quantri")).status == 303
    first = (await (await console.client.get("/console/probe")).text()).rsplit("csrf=", 1)[1]
    console.client.session.cookie_jar.clear()
    assert (await console.login("quantri")).status == 303
    resp = await console.client.post("/console/probe", data={"lines": "3", "csrf": first},
                                     allow_redirects=False)
    assert resp.status == 403 and _error_id(await resp.text()) == "csrf.invalid"


async def test_given_no_session_when_post_then_403(console: Console) -> None:
    resp = await console.client.post("/console/probe", data={"csrf": "x"},
                                     allow_redirects=False)
    assert resp.status == 403


# ---- expiry and logout ------------------------------------------------------------------------
async def test_given_session_when_idle_30_min_then_back_to_login(console: Console) -> None:
    assert (await console.login("tdv.an")).status == 303
    for _ in range(3):  # requests every 29 minutes keep it alive
        console.clock.advance(minutes=29)
        assert (await console.home())[0] == 200
    console.clock.advance(minutes=30)
    status, _, location = await console.home()
    assert status == 303 and location == "/console/login"


async def test_given_active_session_when_8_hours_pass_then_it_ends(console: Console) -> None:
    assert (await console.login("tdv.an")).status == 303
    for _ in range(23):  # busy all day: 23 x 20 min = 7 h 40 min
        console.clock.advance(minutes=20)
        assert (await console.home())[0] == 200
    console.clock.advance(minutes=19, seconds=59)
    assert (await console.home())[0] == 200
    console.clock.advance(seconds=1)
    assert (await console.home())[0] == 303


async def test_given_session_when_logout_then_cookie_cleared_and_id_dead(
        console: Console) -> None:
    assert (await console.login("tdv.an")).status == 303
    raw = console.session_cookie()
    assert raw is not None
    page = (await console.home())[1]
    token = re.findall(r'name="csrf" value="([^"]+)"', page)[-1]
    resp = await console.client.post("/console/logout", data={"csrf": token},
                                     allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert resp.cookies["hotline_session"]["max-age"] == "0"
    assert console.session_cookie() is None
    # The old id, replayed, opens nothing.
    resp = await console.client.get("/console/", allow_redirects=False,
                                    cookies={"hotline_session": raw})
    assert resp.status == 303


async def test_given_session_when_user_disabled_or_password_changed_then_it_ends(
        console: Console) -> None:
    assert (await console.login("tdv.an")).status == 303
    console.store.set_active("tdv.an", False)
    assert (await console.home())[0] == 303
    console.store.set_active("tdv.an", True)
    console.client.session.cookie_jar.clear()
    assert (await console.login("tdv.an")).status == 303
    console.store.set_password("tdv.an", Passwords(TEST_PARAMS).hash("Mật khẩu mới 2026"))
    assert (await console.home())[0] == 303


async def test_given_forged_cookie_then_not_logged_in(console: Console) -> None:
    for value in ("x", "A" * 43, "../../etc"):
        resp = await console.client.get("/console/", allow_redirects=False,
                                        cookies={"hotline_session": value})
        assert resp.status == 303


# Issue 15, fault 8a: session fixation. An attacker who can set a cookie in the victim's browser
# (a sibling subdomain, a shared computer) plants a session id before the victim logs in.
async def test_given_cookie_planted_before_login_when_logged_in_then_new_id_planted_dead(
        console: Console) -> None:
    planted = secrets.token_urlsafe(32)  # well formed: 43 characters, like a real id
    console.plant_session_cookie(planted)
    assert console.session_cookie() == planted
    assert (await console.login("giamsat.binh")).status == 303
    after = console.session_cookie()
    assert after is not None and after != planted
    assert (await console.home())[0] == 200  # the new cookie is the session
    # The planted value, replayed alone, authenticates nowhere: pages nor API.
    console.client.session.cookie_jar.clear()
    resp = await console.client.get("/console/", allow_redirects=False,
                                    cookies={"hotline_session": planted})
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    resp = await console.client.get("/api/v1/tickets", cookies={"hotline_session": planted})
    assert resp.status == 401


async def test_given_live_session_planted_when_another_user_logs_in_then_it_is_closed(
        console: Console) -> None:
    # The attacker's own live session id, planted: after the victim's login it is no session
    # at all (so nothing the victim does can happen under an id the attacker knows).
    assert (await console.login("tdv.an")).status == 303
    planted = console.session_cookie()
    assert planted is not None
    console.client.session.cookie_jar.clear()
    # The victim has the login form open (its nonce) when the cookie is planted; opened
    # afterwards, the form would show the attacker's session instead (a different attack).
    _, _, nonce = await console.login_page()
    console.plant_session_cookie(planted)
    assert (await console.login("giamsat.binh", csrf=nonce, open_form=False)).status == 303
    after = console.session_cookie()
    assert after is not None and after != planted
    resp = await console.client.get("/console/probe", allow_redirects=False)
    assert resp.status == 200 and "wallboard of giamsat.binh" in await resp.text()
    console.client.session.cookie_jar.clear()
    resp = await console.client.get("/console/", allow_redirects=False,
                                    cookies={"hotline_session": planted})
    assert resp.status == 303


# ---- the API with the console session (the pages' scripts) ------------------------------------
async def _page_csrf(console: Console) -> str:
    page = await (await console.client.get("/console/probe")).text()
    return page.rsplit("csrf=", 1)[1]


async def test_given_console_session_when_api_read_then_the_sessions_user_is_used(
        console: Console) -> None:
    assert (await console.client.get("/api/v1/tickets")).status == 401  # no session yet
    assert (await console.login("giamsat.binh")).status == 303
    resp = await console.client.get("/api/v1/tickets")
    assert resp.status == 200 and (await resp.json())["total"] == 0
    assert (await console.client.get("/api/v1/agents/101")).status in (403, 404)


async def test_given_console_session_when_api_write_without_csrf_header_then_403(
        console: Console) -> None:
    assert (await console.login("giamsat.binh")).status == 303
    body = {"channel": "phone", "content": "Hỏi về BHYT", "field": "health"}
    for headers in ({}, {"X-CSRF-Token": "x" * 43}):
        resp = await console.client.post("/api/v1/tickets", json=body, headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["id"] == "csrf.invalid"
    assert (await (await console.client.get("/api/v1/tickets")).json())["total"] == 0


async def test_given_console_session_when_api_write_with_its_csrf_header_then_done_as_user(
        console: Console) -> None:
    assert (await console.login("giamsat.binh")).status == 303
    token = await _page_csrf(console)
    body = {"channel": "phone", "content": "Hỏi về BHYT", "field": "health"}
    resp = await console.client.post("/api/v1/tickets", json=body,
                                     headers={"X-CSRF-Token": token})
    assert resp.status == 201, await resp.text()
    code = (await resp.json())["code"]
    audit = await (await console.client.get(f"/api/v1/tickets/{code}/audit")).json()
    assert audit["entries"][0]["actor"]["user"] == "giamsat.binh"


async def test_given_ended_or_forged_session_when_api_called_then_401(console: Console) -> None:
    assert (await console.login("giamsat.binh")).status == 303
    token = await _page_csrf(console)
    assert (await console.client.post("/console/logout", data={"csrf": token},
                                      allow_redirects=False)).status == 303
    assert (await console.client.get("/api/v1/tickets")).status == 401
    console.client.session.cookie_jar.update_cookies({"hotline_session": "forged" * 7})
    assert (await console.client.get("/api/v1/tickets")).status == 401


# ---- roles ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "links", "absent"), [
    ("tdv.an", ["/console/desk", "/console/callbacks"],
     ["/console/wallboard", "/console/admin/shifts", "/console/tickets", "/console/quality"]),
    ("giamsat.binh", ["/console/wallboard", "/console/callbacks", "/console/quality"],
     ["/console/admin/shifts", "/console/desk"]),
    ("quantri", ["/console/wallboard", "/console/admin/shifts", "/console/callbacks",
                 "/console/quality"], ["/console/desk"]),
    ("syt.dongnai", ["/console/tickets"], ["/console/wallboard", "/console/admin/shifts",
                                           "/console/desk", "/console/callbacks",
                                           "/console/quality"]),
])
async def test_given_role_when_home_opened_then_only_its_links(
        console: Console, name: str, links: list[str], absent: list[str]) -> None:
    assert (await console.login(name)).status == 303
    status, text, _ = await console.home()
    assert status == 200 and f'data-user="{name}"' in text
    assert f'data-role="{USERS[name][0]}"' in text
    for href in links:
        assert f'href="{href}"' in text
    for href in absent:
        assert f'href="{href}"' not in text


async def test_given_no_session_when_page_opened_then_login_and_back_after(
        console: Console) -> None:
    resp = await console.client.get("/console/probe", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login?next=/console/probe"
    resp = await console.login("giamsat.binh", next_path="/console/probe")
    assert resp.status == 303 and resp.headers["Location"] == "/console/probe"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/api/v1/tickets", "/console/login"])
async def test_given_foreign_next_when_login_then_home_instead(console: Console,
                                                               target: str) -> None:
    resp = await console.login("quantri", next_path=target)
    assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_given_unit_user_when_wallboard_opened_then_403(console: Console) -> None:
    assert (await console.login("syt.dongnai")).status == 303
    resp = await console.client.get("/console/probe", allow_redirects=False)
    text = await resp.text()
    assert resp.status == 403 and _error_id(text) == "auth.forbidden"
    assert "Không có quyền truy cập" in text


async def test_given_console_pages_then_private_headers(console: Console) -> None:
    resp = await console.client.get("/console/login")
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


# ---- CLI ------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    config = tmp_path / "hotline.yaml"
    config.write_text(config_text("one_province_one_unit.yaml"), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def cli_store(cli_env: str) -> Iterator[UserStore]:
    upgrade_head(cli_env)
    store = UserStore(cli_env)
    yield store
    store.close()


@functools.cache
def _default_passwords() -> Passwords:
    return Passwords()  # the CLI hashes with the production parameters


def _login_ok(store: UserStore, name: str, password: str) -> bool:
    result = store.login(name, password, passwords=_default_passwords(), now=T0,
                         free_failures=3, max_delay=dt.timedelta(minutes=15))
    return result.outcome == "ok"


def test_given_cli_when_first_admin_created_then_it_logs_in_and_second_refused(
        cli_store: UserStore, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Quản trị Đồng Nai 2026\n"))
    assert main(["user", "create-admin", "quantri", "--tenant", "dongnai",
                 "--password-stdin"]) == 0
    out = capsys.readouterr()
    assert "Quản trị Đồng Nai 2026" not in out.out + out.err
    assert _login_ok(cli_store, "quantri", "Quản trị Đồng Nai 2026")
    assert not _login_ok(cli_store, "quantri", "Quản trị Đồng Nai 2026\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("Một mật khẩu khác 2026\n"))
    assert main(["user", "create-admin", "quantri2", "--tenant", "dongnai"]) == 1
    assert "admin exists" in capsys.readouterr().err
    assert cli_store.get_user("quantri2") is None


def test_given_cli_when_passwd_then_new_password_works_and_wait_cleared(
        cli_store: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Mật khẩu đầu tiên 1\n"))
    assert main(["user", "add", "tdv.an", "--role", "operator", "--tenant", "dongnai",
                 "--password-stdin"]) == 0
    assert _login_ok(cli_store, "tdv.an", "Mật khẩu đầu tiên 1")
    for _ in range(5):
        _login_ok(cli_store, "tdv.an", "sai mật khẩu rồi")
    assert not _login_ok(cli_store, "tdv.an", "Mật khẩu đầu tiên 1")  # waiting (T0 stands)
    monkeypatch.setattr("sys.stdin", io.StringIO("Mật khẩu thứ hai 2\n"))
    assert main(["user", "passwd", "tdv.an"]) == 0  # stdin is not a terminal: read it
    assert _login_ok(cli_store, "tdv.an", "Mật khẩu thứ hai 2")
    assert not _login_ok(cli_store, "tdv.an", "Mật khẩu đầu tiên 1")


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["user", "passwd", "tdv.an"], "ngắn\n", "password.too_short"),
    (["user", "passwd", "nobody"], "Mật khẩu đủ dài 123\n", "user.not_found"),
    (["user", "add", "x1", "--role", "operator", "--tenant", "dongnai", "--password-stdin"],
     "x1\n", "password.too_short"),
])
def test_given_cli_when_password_refused_then_exit_1_and_nothing_changed(
        cli_store: UserStore, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str,
        message: str) -> None:
    cli_store.add_user("tdv.an", "operator", "dongnai")
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not cli_store.has_password("tdv.an")
    assert cli_store.get_user("x1") is None


def test_given_cli_when_unlock_then_login_works_again(cli_store: UserStore,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    cli_store.add_user("tdv.an", "operator", "dongnai")
    cli_store.set_password("tdv.an", Passwords().hash("Mật khẩu đầu tiên 1"))
    for _ in range(5):
        _login_ok(cli_store, "tdv.an", "sai mật khẩu rồi")
    assert main(["user", "unlock", "tdv.an"]) == 0
    assert _login_ok(cli_store, "tdv.an", "Mật khẩu đầu tiên 1")
