"""Bring the database schema to the newest migration, from code (`alembic upgrade head`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from callcenter.store.urls import ensure_sqlite_file, normalise_url, sqlite_file

# The Alembic environment and migrations are package data (callcenter/store/migrations/):
# an installed wheel migrates from any folder, without alembic.ini.
SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic Config for `database_url`, independent of cwd and of alembic.ini."""
    if not (SCRIPT_LOCATION / "env.py").is_file():
        raise FileNotFoundError(f"Alembic environment not found: {SCRIPT_LOCATION}/env.py")
    cfg = Config()
    # ConfigParser interpolates "%": a path containing one would otherwise break.
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    # Handed over as an attribute, not a main option: URLs may hold "%"-escaped passwords.
    cfg.attributes["database_url"] = normalise_url(database_url)
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_head(database_url: str) -> None:
    """Run every pending migration against `database_url` (a no-op when already at head)."""
    ensure_sqlite_file(normalise_url(database_url))
    command.upgrade(alembic_config(database_url), "head")


def current_revisions(database_url: str) -> tuple[str, ...]:
    """The revisions the database is at (empty before its first migration)."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    url = normalise_url(database_url)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return ()  # not made yet; connecting would create an empty file
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return tuple(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def head_revisions() -> tuple[str, ...]:
    """The newest revisions the shipped migrations lead to."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
