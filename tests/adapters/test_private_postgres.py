"""The private PostgreSQL of `make cluster` (callcenter/runtime/postgres_server.py) against the
real server binaries: initdb once, a unix socket only, the hotline's migrations applied through
its URL, stopped by pid, its data kept for the next start."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.ops.accounts import ensure_service_account
from callcenter.ops.processes import RunAs
from callcenter.runtime.postgres_server import PostgresUnavailable, PrivatePostgres, server_bin
from callcenter.store.migrate import upgrade_head
from callcenter.store.urls import normalise_url


@pytest.fixture
def place() -> Iterator[Path]:
    try:
        server_bin()
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    path = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    path.chmod(0o701)  # the service account walks in (as in `make cluster`)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _account() -> RunAs | None:
    return ensure_service_account("hotline1022") if os.geteuid() == 0 else None


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_given_no_database_url_when_private_postgres_starts_then_migrated_over_socket_and_kept(
        place: Path) -> None:
    db = PrivatePostgres(place / "postgres", _account())
    db.start()
    try:
        assert db.proc is not None and db.proc.poll() is None
        upgrade_head(db.url)
        assert {"call_records", "callbacks"} <= _tables(db.url)
        # No TCP port: the server listens on its socket only, local trust only.
        assert (place / "postgres" / ".s.PGSQL.5432").is_socket()
        engine = sa.create_engine(normalise_url(db.url))
        try:
            with engine.connect() as c:
                assert c.execute(sa.text("SHOW listen_addresses")).scalar() == ""
                assert c.execute(sa.text("SELECT current_user")).scalar() == db.user
        finally:
            engine.dispose()
    finally:
        db.stop()
    assert db.proc.poll() is not None
    with pytest.raises(OSError):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(place / "postgres" / ".s.PGSQL.5432"))
        finally:
            s.close()
    again = PrivatePostgres(place / "postgres", _account())
    again.start()  # the data kept: no initdb, the tables still there
    try:
        assert {"call_records", "callbacks"} <= _tables(again.url)
        # Killed (SIGKILL, its lock file left behind): what `make cluster`'s supervisor does,
        # stop (releases the guard) and start, brings it back on the same data.
        assert again.proc is not None
        again.proc.send_signal(signal.SIGKILL)
        again.proc.wait(10)
        again.stop()
        again.start()
        assert {"call_records", "callbacks"} <= _tables(again.url)
    finally:
        again.stop()
