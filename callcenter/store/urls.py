"""Database URLs as operators write them, made into what SQLAlchemy and psycopg 3 expect."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

DEFAULT_DATABASE_URL = "sqlite:///var/hotline.db"  # relative to the current directory


def normalise_url(url: str | URL) -> URL:
    """`postgresql://` and `postgres://` mean psycopg 3 here (psycopg2 is not installed)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def shown_url(url: str | URL) -> str:
    """The URL as logs and messages show it: never its password (unparsable: a placeholder)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - whatever it held stays out of the message
        return "(unparsable database URL)"


def sqlite_file(url: URL) -> Path | None:
    """The database file of a file-backed SQLite URL, else None (memory or other backends)."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def ensure_sqlite_file(url: URL) -> None:
    """Create the folder (0750) and the empty file (0640) of a SQLite database that is not
    there yet: SQLite never creates the folder, and would create the file by the process's
    umask (0644 under a login shell's 022: call records readable by every local user). Its
    -wal and -shm files take the database file's mode."""
    path = sqlite_file(url)
    if path is None:
        return
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    try:  # a stricter umask (0077) still applies
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640))
    except FileExistsError:
        pass
