"""One database, one pool: stores opened on the process's Database share its engine."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from callcenter.callbacks.http import CALLBACKS
from callcenter.callbacks.store import CallbackStore
from callcenter.config.file import load_config
from callcenter.console.auth import USERS
from callcenter.console.call_pages import RECORDS
from callcenter.console.setup import setup_console
from callcenter.faq.store import FaqStore
from callcenter.sms.store import SmsOutbox
from callcenter.store.database import Database
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"


def _url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    return url


def test_given_shared_database_when_stores_used_and_closed_then_one_pool_kept_open(
        tmp_path: Path) -> None:
    db = Database(_url(tmp_path))
    stores = [CallRecordStore(db), UserStore(db), CallbackStore(db), FaqStore(db), SmsOutbox(db)]
    assert {id(s.engine) for s in stores} == {id(db.engine)}
    assert stores[0].count() == 0  # a connection is made and returned to the shared pool
    idle = db.engine.pool.checkedin()  # type: ignore[attr-defined]
    assert idle >= 1
    for s in stores:
        s.close()
    # A store closing does not close the pool the others still use: only the Database does.
    assert db.engine.pool.checkedin() == idle  # type: ignore[attr-defined]
    db.close()
    assert db.engine.pool.checkedin() == 0  # type: ignore[attr-defined]


def test_given_url_when_store_opened_then_its_own_engine_closed_with_it(tmp_path: Path) -> None:
    url = _url(tmp_path)
    a, b = CallRecordStore(url), CallRecordStore(url)
    assert a.engine is not b.engine
    assert a.count() == 0
    assert a.engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
    a.close()
    assert a.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    b.close()


async def test_given_console_without_database_when_started_then_its_stores_share_one_pool(
        tmp_path: Path) -> None:
    config = load_config(SHIPPED)
    app = web.Application()
    setup_console(app, database_url=_url(tmp_path), config=lambda: config,
                  files_dir=tmp_path / "files")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    try:
        engines = {id(app[USERS].engine), id(app[CALLBACKS].engine), id(app[RECORDS].engine)}
        assert len(engines) == 1
    finally:
        await server.close()


def test_given_login_shell_umask_when_sqlite_database_created_then_other_users_cannot_read_it(
        tmp_path: Path) -> None:
    import os

    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    old = os.umask(0o022)  # `runuser ... callcenter db upgrade` from a root shell
    try:
        upgrade_head(url)
        store = CallRecordStore(url)
        store.close()
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "var").iterdir() if p.name.startswith("hotline.db")]
    assert tmp_path / "var" / "hotline.db" in files
    for p in [tmp_path / "var", *files]:
        assert p.stat().st_mode & 0o007 == 0, (p, oct(p.stat().st_mode))


def test_given_burst_of_concurrent_threads_when_done_then_sqlite_keeps_two_connections_open(
        tmp_path: Path) -> None:
    """Soak (P9): every new high-water mark of threads in the database added a connection
    kept for good, each with a page cache of its own; only two are kept now, the last
    returned reused first."""
    import sqlalchemy as sa

    db = Database(_url(tmp_path))
    held = [db.engine.connect() for _ in range(6)]  # six threads at once
    raw = [c.connection.dbapi_connection for c in held]
    for c in held:
        c.execute(sa.text("SELECT 1"))
    assert db.engine.pool.checkedout() == 6  # type: ignore[attr-defined]
    for c in held:
        c.close()
    assert db.engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    with db.engine.connect() as c:
        assert c.connection.dbapi_connection is raw[1]  # last in, first out
    db.close()
