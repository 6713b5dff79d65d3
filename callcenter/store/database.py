"""The database of one process: one connection pool that every store shares.

The composition root builds one ``Database`` and hands it to every store (call records,
users, callbacks, the FAQ, SMS outbox, audits); a store given a URL instead (the CLI, tests)
makes and owns its own engine. The ticket store keeps its own stricter engine on the same
URL (``tickets.store.make_ticket_engine``: synchronous=FULL, explicit BEGIN IMMEDIATE on
SQLite), so a process holds two pools, not one per store.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from callcenter.store.urls import ensure_sqlite_file, normalise_url, sqlite_file

# A PostgreSQL host that drops packets would otherwise hang the writer thread for minutes;
# the journal keeps the record meanwhile, so failing fast and retrying is the better deal.
CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_S = 15
SQLITE_POOL_SIZE = 2


def make_engine(database_url: str) -> sa.Engine:
    """An engine for the store's tables: fast-failing connects, SQLite in WAL mode."""
    url = normalise_url(database_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    pool_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        # Each SQLite connection keeps its own page cache (up to ~2 MiB); a pool that cycled
        # through five (the default, first in first out) warmed every one of them. Two are
        # kept, the last returned reused first; a burst's extra connections close on return.
        # (Their descriptors stay: SQLite keeps a closed connection's file open while others
        # of the process hold locks on it, and reuses it for the next connection.)
        if sqlite_file(url) is not None:  # in-memory databases have a pool of their own kind
            pool_args = {"pool_size": SQLITE_POOL_SIZE, "pool_use_lifo": True}
    # pre_ping: after a PostgreSQL restart the pool's old connections are dead; test first.
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool_args)
    if sqlite_file(url) is not None:
        ensure_sqlite_file(url)  # SQLite would create it by the umask
        sa.event.listen(engine, "connect", _sqlite_wal)
    return engine


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL: the console and `callcenter calls` read while the writer thread commits.
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    finally:
        cur.close()


class Database:
    """One database URL and the one engine (connection pool) the process's stores share."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def close(self) -> None:
        """Close the pool's connections (after every store using it is done)."""
        self.engine.dispose()


DatabaseRef = Database | str  # what a store is opened on: the shared database, or a URL


def engine_for(database: DatabaseRef) -> tuple[sa.Engine, bool]:
    """The engine a store uses, and whether the store owns it (and so disposes of it)."""
    if isinstance(database, Database):
        return database.engine, False
    return make_engine(database), True
