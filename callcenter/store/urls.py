"""Database URLs as operators write them, made into what SQLAlchemy and psycopg 3 expect."""

from __future__ import annotations

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


def ensure_sqlite_parent(url: URL) -> None:
    """Create the folder of a SQLite file (SQLite creates the file, never its folder)."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
