"""A database outage never loses a call record: the journal keeps it until PostgreSQL is back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from callcenter.store.urls import normalise_url
from tests.e2e.stack import Stack, wait_until

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def outage_db(hotline: Stack) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh PostgreSQL database the app writes to; the test can cut it off."""
    try:
        admin = sa.create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:  # noqa: BLE001 - any failure means: no PostgreSQL here
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {e}")
    name = f"hotline_outage_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f'create database "{name}"'))  # noqa: S608 - generated name
    url = str(normalise_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    hotline.kill_app()
    hotline.start_app(DATABASE_URL=url)
    try:
        yield name, admin
    finally:
        hotline.kill_app()
        with admin.connect() as c:
            c.execute(sa.text(f'alter database "{name}" allow_connections true'))
            c.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity "
                              "where datname = :n"), {"n": name})
            c.execute(sa.text(f'drop database if exists "{name}"'))
        admin.dispose()
        hotline.start_app()


def _rows(admin: sa.Engine, name: str, caller: str) -> int:
    url = admin.url.set(database=name)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(sa.text("select count(*) from call_records where caller = :c"),
                                 {"c": caller}).scalar_one())
    finally:
        engine.dispose()


def test_given_database_down_when_call_ends_then_record_journaled_and_written_once_later(
        hotline: Stack, outage_db: tuple[str, sa.Engine]) -> None:
    name, admin = outage_db
    with admin.connect() as c:  # cut the database off: no new connections, old ones killed
        c.execute(sa.text(f'alter database "{name}" allow_connections false'))
        c.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity "
                          "where datname = :n"), {"n": name})
    phone = hotline.phone("1022", caller="0988000777")
    assert phone.wait_for("answered", 1)
    (result,) = phone.finish()
    assert result["final_code"] == 200  # the outage does not stop the hotline answering
    assert wait_until(lambda: hotline.health().get("journal_pending") == 1, 5)
    assert len(list((hotline.state / "journal").glob("*.json"))) == 1
    with admin.connect() as c:
        c.execute(sa.text(f'alter database "{name}" allow_connections true'))
    assert wait_until(lambda: hotline.health().get("journal_pending") == 0, 40), (
        hotline.app_log_tail())
    assert _rows(admin, name, "0988000777") == 1
