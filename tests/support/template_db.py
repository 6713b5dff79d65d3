"""Tests only: an empty database brought to head by copying one that the real migrations made.

Every adapter test gets its own empty database, and most of them (directly, through a fixture,
or through the app, which migrates at start) run ``callcenter.store.migrate.upgrade_head`` on
it: every migration, 0.3–0.7 s a test on SQLite, 0.35 s on PostgreSQL, minutes of the suite.
Here, once per test process, one database per backend is migrated by the real path (alembic,
every migration), and ``upgrade_head`` of an *empty* database then copies it instead:

* SQLite: the template's bytes are written into the empty file ``upgrade_head`` has just made
  (so the file keeps the mode and owner the product gives it);
* PostgreSQL: the empty database is dropped and made again from the template
  (``CREATE DATABASE ... TEMPLATE``), when nothing is connected to it; otherwise the real path.

Anything else takes the real path: a database that is not empty (a test that upgrades after a
downgrade, or twice), a revision other than head, a test marked ``real_migrations`` (the tests
of the migrations themselves). The result is the same schema and rows, made by the same
migrations minutes earlier in the same process.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command as alembic_command
from sqlalchemy.engine import URL

from callcenter.store import migrate
from callcenter.store.urls import ensure_sqlite_file, sqlite_file


class TemplateCommand:
    """Stands in for ``alembic.command`` inside ``callcenter.store.migrate`` (the only name
    ``upgrade_head`` calls through): ``upgrade(config, "head")`` of an empty database copies
    the template; everything else is alembic's own."""

    def __init__(self) -> None:
        self.enabled = True
        self.copies = 0
        self._sqlite: Path | None = None
        self._postgres: dict[tuple[str, int | None], str] = {}  # server -> template db name
        self._folder: Path | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(alembic_command, name)

    def upgrade(self, config: Any, revision: str, *args: Any, **kwargs: Any) -> None:
        url = config.attributes.get("database_url")
        if (self.enabled and revision == "head" and not args and not kwargs
                and isinstance(url, URL) and self._copy_into(url)):
            self.copies += 1
            return
        alembic_command.upgrade(config, revision, *args, **kwargs)

    # -- SQLite -------------------------------------------------------------------------------
    def _copy_into(self, url: URL) -> bool:
        path = sqlite_file(url)
        if path is not None:
            return self._sqlite_copy(path)
        if url.get_backend_name() == "postgresql":
            return self._postgres_copy(url)
        return False

    def _sqlite_copy(self, path: Path) -> bool:
        if not path.exists() or path.stat().st_size != 0:
            return False
        if any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal")):
            return False
        template = self._sqlite_template()
        with open(template, "rb") as src, open(path, "r+b") as dst:
            shutil.copyfileobj(src, dst)
        return True

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            folder = self._own_folder()
            path = folder / "template.db"
            url = sa.make_url(f"sqlite:///{path}")
            ensure_sqlite_file(url)
            alembic_command.upgrade(migrate.alembic_config(str(url)), "head")
            with sqlite3.connect(path) as conn:  # everything in the main file, no -wal left
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if Path(f"{path}-wal").exists() and Path(f"{path}-wal").stat().st_size:
                raise RuntimeError(f"template {path}: its WAL was not checkpointed")
            self._sqlite = path
        return self._sqlite

    def _own_folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hotline-template-db-"))
            atexit.register(shutil.rmtree, self._folder, True)
        return self._folder

    # -- PostgreSQL ---------------------------------------------------------------------------
    def _postgres_copy(self, url: URL) -> bool:
        name = url.database
        if not name:
            return False
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                objects = conn.execute(sa.text(
                    "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN "
                    "pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public') + (SELECT count(*) FROM pg_catalog.pg_proc p "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'public')")).scalar_one()
        finally:
            engine.dispose()
        if objects:
            return False
        template = self._postgres_template(url)
        admin = _admin(url)
        try:
            prep = admin.dialect.identifier_preparer
            with admin.connect() as conn:
                try:
                    conn.execute(sa.text(f"DROP DATABASE {prep.quote(name)}"))
                except sa.exc.DBAPIError:
                    return False  # connected to by someone: the real path instead
                conn.execute(sa.text(
                    f"CREATE DATABASE {prep.quote(name)} TEMPLATE {prep.quote(template)}"))
        finally:
            admin.dispose()
        return True

    def _postgres_template(self, url: URL) -> str:
        server = (url.host or "", url.port)
        if server not in self._postgres:
            name = f"hotline_template_{os.getpid()}_{secrets.token_hex(4)}"
            admin = _admin(url)
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(
                        f"CREATE DATABASE {admin.dialect.identifier_preparer.quote(name)}"))
            finally:
                admin.dispose()
            template_url = url.set(database=name)
            alembic_command.upgrade(
                migrate.alembic_config(template_url.render_as_string(hide_password=False)),
                "head")
            self._postgres[server] = name
            atexit.register(_drop, template_url, name)
        return self._postgres[server]


def _admin(url: URL) -> sa.Engine:
    """An AUTOCOMMIT engine on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                            poolclass=sa.pool.NullPool)


def _drop(url: URL, name: str) -> None:
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(
                f"DROP DATABASE IF EXISTS {admin.dialect.identifier_preparer.quote(name)} "
                "WITH (FORCE)"))
    except sa.exc.DBAPIError:
        pass  # the server is gone already: nothing to leave behind there
    finally:
        admin.dispose()


TEMPLATES = TemplateCommand()


def install() -> None:
    """Route ``callcenter.store.migrate``'s alembic calls through ``TEMPLATES``."""
    migrate.command = TEMPLATES  # type: ignore[assignment]
