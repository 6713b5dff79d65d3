"""Fixtures for the adapter tests. Store: every test gets its own empty database, SQLite and
PostgreSQL (a fresh `hotline_test_<random>` database, dropped afterwards)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.data import CallRecordData
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.urls import normalise_url

TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
T0 = dt.datetime(2025, 11, 3, 0, 30, tzinfo=dt.UTC)  # 07:30 in Đồng Nai: the day shift opens

MakeRecord = Callable[..., CallRecordData]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on TEST_POSTGRES_URL (CREATE/DROP DATABASE); skips if unreachable."""
    url = normalise_url(TEST_POSTGRES_URL)
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "3"})
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(1))
    except sa.exc.DBAPIError as e:
        engine.dispose()
        where = url.render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL not reachable at {where} (set TEST_POSTGRES_URL): "
                    f"{str(e.orig).strip().splitlines()[0] if e.orig else e}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_database(postgres_admin: sa.Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"hotline_test_{secrets.token_hex(6)}"
    # DDL takes no bind parameters; the name is ours (hex) and quoted by the dialect.
    quoted = postgres_admin.dialect.identifier_preparer.quote(name)
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    try:
        yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with postgres_admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'hotline.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[CallRecordStore]:
    """A CallRecordStore on a migrated database."""
    upgrade_head(database_url)
    s = CallRecordStore(database_url)
    yield s
    s.close()


@pytest.fixture
def make_record() -> MakeRecord:
    """A factory of valid call records; keyword arguments override fields."""

    def make(n: int = 1, **overrides: Any) -> CallRecordData:
        arrived = overrides.pop("arrived_at", T0 + dt.timedelta(minutes=n))
        values: dict[str, Any] = {
            "id": f"pbx1:1762129800.{n}",
            "node": "pbx1",
            "tenant": "dongnai",
            "dialled": "1022",
            "caller": f"09{n:08d}",
            "shift": "day",
            "pool_limit": 15,
            "arrived_at": arrived,
            "answered_at": arrived + dt.timedelta(seconds=4),
            "ended_at": arrived + dt.timedelta(seconds=95),
            "outcome": "answered",
            "cause": "16 Normal Clearing",
            "cause_code": 16,
            "linkedid": f"1762129800.{n}",
            "extra": None,
        }
        values.update(overrides)
        return CallRecordData(**values)

    return make


# SMS tests: a real Kannel, an outbox, a delivery-report server (see kannel_fixtures.py).
from tests.support.kannel import (  # noqa: E402, F401
    dlr_server,
    kannel,
    own_kannel,
    sms_outbox,
)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A private redis-server on a unix socket, for the module's tests."""
    server = PrivateRedis(Path(tmp_path_factory.mktemp("redis")) / "redis.sock")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def two_clients(
        redis_server: PrivateRedis) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two clients of the module's private Redis (two app instances), emptied first."""
    a = aioredis.Redis.from_url(redis_server.url)
    b = aioredis.Redis.from_url(redis_server.url)
    await a.flushall()
    yield a, b
    await a.aclose()
    await b.aclose()
