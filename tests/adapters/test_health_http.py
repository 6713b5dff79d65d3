"""/healthz and /readyz against real parts: a private redis-server (stopped for real in one test),
a real SQLite database (missing in another), a real journal folder, a PostgreSQL URL whose
port refuses or never answers; only the ARI connection flag and the config's last error are
plain values. The handlers run in the console's app (real user store, real tokens)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.model import HotlineConfig
from callcenter.console.health import (
    JOURNAL_BACKLOG_WARN,
    DatabaseProbe,
    ReadinessParts,
    add_health_routes,
    check_journal,
    check_redis,
)
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.journal import RecordJournal
from callcenter.store.recorder import WriterStatus
from callcenter.store.users import UserStore
from tests.adapters.test_metrics_http import fake_peer, record
from tests.support import api as support
from tests.support.api import make_app, make_tokens

hotline_config = support.hotline_config
OUTSIDE = "192.0.2.10"
CHECKS = ("ari", "redis", "database", "journal", "config")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test alone, so the test may stop it."""
    server = PrivateRedis(tmp_path / "own-redis" / "redis.sock")
    server.start()
    yield server
    server.stop()


@dataclass
class World:
    """What the app would hand to /readyz; tests change one part at a time."""

    redis: aioredis.Redis
    database_url: str
    journal: RecordJournal
    ari_connected: bool = True
    calls: int = 2
    config_error: str | None = None
    fallback: dict[str, Any] | None = None
    writer: WriterStatus | None = None

    def parts(self, _app: web.Application) -> ReadinessParts:
        return ReadinessParts(ari_connected=self.ari_connected, calls=self.calls,
                              redis=self.redis, database_url=self.database_url,
                              journal=self.journal, config_error=self.config_error,
                              fallback=self.fallback, writer=self.writer)


@dataclass
class Http:
    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]
    world: World

    async def get(self, path: str = "/readyz", *, peer: str | None = None,
                  user: str | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        h = dict(headers or {})
        if peer:
            h["X-Test-Peer"] = peer
        if user:
            h["Authorization"] = f"Bearer {self.tokens[user]}"
        async with self.client.get(path, headers=h) as r:
            assert r.headers["Cache-Control"] == "no-store"
            return r.status, await r.json()


@pytest.fixture
async def http(own_redis: PrivateRedis, hotline_config: HotlineConfig,
               tmp_path: Path) -> AsyncIterator[Http]:
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    app = make_app(database_url, hotline_config, tmp_path / "files")
    app.middlewares.insert(0, fake_peer)
    tokens = make_tokens(database_url)
    users = UserStore(database_url)
    users.add_user("giamsat.th", "supervisor", "thanhhoa")
    tokens["giamsat.th"] = users.issue_token("giamsat.th")[1]
    users.close()
    client = aioredis.Redis.from_url(own_redis.url)
    world = World(client, database_url, RecordJournal(tmp_path / "journal"))
    add_health_routes(app, world.parts)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    async with TestClient(server) as c:
        yield Http(c, tokens, world)
    await client.aclose()


def failing(body: dict[str, Any]) -> set[str]:
    return {name for name, c in body["checks"].items() if not c["ok"]}


# ---- liveness --------------------------------------------------------------------------------
async def test_given_anyone_when_get_healthz_then_ok_and_nothing_else(http: Http) -> None:
    http.world.ari_connected = False  # liveness ignores every dependency
    http.world.database_url = "sqlite:////nonexistent-dir/x.db"
    for peer in (None, OUTSIDE):
        assert await http.get("/healthz", peer=peer) == (200, {"status": "ok"})


# ---- readiness: all up, then each check failing on its own -----------------------------------
async def test_given_everything_up_when_loopback_get_readyz_then_ready_with_details(
        http: Http) -> None:
    http.world.journal.append(record(1))
    status, body = await http.get()
    assert status == 200 and body["status"] == "ready" and body["degraded"] == []
    assert tuple(body["checks"]) == CHECKS and failing(body) == set()
    checks = body["checks"]
    assert checks["ari"] == {"ok": True, "critical": True, "error": None, "calls": 2}
    assert not checks["redis"]["critical"] and checks["redis"]["seconds"] < 1
    assert not checks["database"]["critical"] and checks["database"]["seconds"] < 2
    assert checks["journal"] == {"ok": True, "critical": False, "error": None, "pending": 1,
                                 "warn_above": JOURNAL_BACKLOG_WARN}
    assert checks["config"] == {"ok": True, "critical": False, "error": None}


async def test_given_redis_stopped_when_get_readyz_then_ready_and_redis_degraded_alone(
        http: Http, own_redis: PrivateRedis) -> None:
    assert (await http.get())[0] == 200
    own_redis.stop()
    # The app's line pool counts locally meanwhile (lines/fallback.py): its figures shown.
    http.world.fallback = {"degraded_s": 1.5, "lines_here": {"dongnai": 2}}
    status, body = await http.get()
    assert status == 200 and body["status"] == "ready" and body["degraded"] == ["redis"]
    assert failing(body) == {"redis"} and "DEGRADED" in body["checks"]["redis"]["error"]
    assert body["checks"]["redis"]["fallback"] == {"degraded_s": 1.5,
                                                   "lines_here": {"dongnai": 2}}
    own_redis.start()  # back: no longer degraded, on the same client
    http.world.fallback = None
    assert await _eventually_ready(http)
    assert (await http.get())[1]["degraded"] == []


async def _eventually_ready(http: Http) -> bool:
    for _ in range(20):
        if (await http.get())[0] == 200:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_given_redis_that_never_answers_when_checked_then_timeout_not_a_hang(
        tmp_path: Path) -> None:
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    sock = tmp_path / "mute.sock"
    server = await asyncio.start_unix_server(mute, path=str(sock))
    stuck = aioredis.Redis.from_url(f"unix://{sock}")
    loop = asyncio.get_running_loop()
    t = loop.time()
    check = await check_redis(stuck, timeout_s=0.3)
    elapsed = loop.time() - t
    for w in held:
        w.close()
    server.close()
    await stuck.aclose()
    assert not check.ok and check.error == "no answer to PING within 0.3 s"
    assert 0.25 <= elapsed < 1.5


async def test_given_sqlite_file_missing_when_get_readyz_then_ready_but_database_degraded(
        http: Http, tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "hotline.db"
    http.world.database_url = f"sqlite:///{missing}"
    status, body = await http.get()
    assert status == 200 and body["status"] == "ready"  # calls go on; records wait
    assert failing(body) == {"database"} and body["degraded"] == ["database"]
    assert "unable to open database file" in body["checks"]["database"]["error"]
    assert not missing.parent.exists()  # the probe never creates a database


async def test_given_postgres_port_refusing_when_get_readyz_then_database_error_fast(
        http: Http) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http.world.database_url = f"postgresql://hotline:x@127.0.0.1:{port}/hotline"
    status, body = await http.get()
    assert status == 200 and failing(body) == {"database"}
    assert "OperationalError" in body["checks"]["database"]["error"]


async def test_given_database_that_never_answers_when_probed_then_timeout_and_one_probe(
        ) -> None:
    accepted: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            accepted.append(conn)  # say nothing: the client waits for the server's greeting

    acceptor = asyncio.create_task(accept())
    port = listener.getsockname()[1]
    probe = DatabaseProbe(f"postgresql://hotline:x@127.0.0.1:{port}/hotline")
    try:
        t = loop.time()
        a, b = await asyncio.gather(probe.check(timeout_s=0.3), probe.check(timeout_s=0.3))
        elapsed = loop.time() - t
        assert not a.ok and a.error == "no answer to SELECT 1 within 0.3 s" and b == a
        assert elapsed < 1.5
        await asyncio.sleep(0.1)
        assert len(accepted) == 1  # the second probe joined the first, no new connection
    finally:
        probe.close()
        acceptor.cancel()
        for conn in accepted:
            conn.close()
        listener.close()


async def test_given_ari_not_connected_when_get_readyz_then_503_ari_failing_alone(
        http: Http) -> None:
    http.world.ari_connected = False
    status, body = await http.get()
    assert status == 503 and body["status"] == "not_ready" and failing(body) == {"ari"}
    assert "ARI" in body["checks"]["ari"]["error"]


async def test_given_config_reload_refused_when_get_readyz_then_ready_config_degraded(
        http: Http) -> None:
    http.world.config_error = "config/hotline.yaml: tenants[0].shifts: overlap at 07:00"
    status, body = await http.get()
    assert status == 200 and failing(body) == {"config"} and body["degraded"] == ["config"]
    assert body["checks"]["config"]["error"] == (
        "last reload refused, previous config in force: "
        "config/hotline.yaml: tenants[0].shifts: overlap at 07:00")


async def test_given_journal_backlog_above_threshold_when_checked_then_reported_not_critical(
        tmp_path: Path) -> None:
    journal = RecordJournal(tmp_path / "journal")
    for n in range(3):
        journal.append(record(n))
    assert (await check_journal(journal, warn_above=3)).ok
    journal.append(record(3))
    check = await check_journal(journal, warn_above=3)
    assert not check.ok and not check.critical and check.figures["pending"] == 4
    assert "4 call records wait for the database" in (check.error or "")


async def test_given_records_held_in_memory_when_get_readyz_then_journal_degraded_still_ready(
        http: Http) -> None:
    """Journal and database failing (fault 3): the instance still answers calls, so it stays
    ready, but the journal check fails and says how many records only memory holds."""
    http.world.writer = WriterStatus(held=3, not_journalled=5, dropped=0,
                                     journal_error="OSError: [Errno 28] No space left on device")
    status, body = await http.get()
    assert status == 200 and body["status"] == "ready" and "journal" in body["degraded"]
    journal = body["checks"]["journal"]
    assert journal["held_in_memory"] == 3 and journal["not_journalled"] == 5
    assert "3 call records held in memory only" in journal["error"]
    assert "No space left on device" in journal["error"]
    # Written straight to the database, nothing held: still degraded (unprotected records).
    http.world.writer = WriterStatus(held=0, not_journalled=5, dropped=0,
                                     journal_error="OSError: [Errno 30] Read-only file system")
    _, body = await http.get()
    assert "journal" in body["degraded"] and "unwritable" in body["checks"]["journal"]["error"]
    http.world.writer = WriterStatus(held=0, not_journalled=5, dropped=0, journal_error=None)
    _, body = await http.get()
    assert body["checks"]["journal"]["ok"]


# ---- who sees the details --------------------------------------------------------------------
async def test_given_outside_peer_or_proxy_when_get_readyz_then_bare_status_only(
        http: Http) -> None:
    assert await http.get(peer=OUTSIDE) == (200, {"status": "ready"})
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert await http.get(headers={header: "198.51.100.7"}) == (200, {"status": "ready"})
    assert await http.get(peer=OUTSIDE, headers={"Authorization": "Bearer nope"}) == \
        (200, {"status": "ready"})
    assert await http.get(peer=OUTSIDE, user="tdv.an") == (200, {"status": "ready"})
    http.world.ari_connected = False
    assert await http.get(peer=OUTSIDE) == (503, {"status": "not_ready"})


async def test_given_admin_or_supervisor_token_from_outside_when_get_readyz_then_details(
        http: Http) -> None:
    for user in ("quantri", "giamsat.th"):
        status, body = await http.get(peer=OUTSIDE, user=user)
        assert status == 200 and tuple(body["checks"]) == CHECKS, user
