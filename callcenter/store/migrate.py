"""Bring the database schema to the newest migration, from code (`alembic upgrade head`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from callcenter.store.urls import ensure_sqlite_parent, normalise_url

# The Alembic environment lives in the repository's sql/ folder, next to the package.
SCRIPT_LOCATION = Path(__file__).resolve().parents[2] / "sql"


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
    ensure_sqlite_parent(normalise_url(database_url))
    command.upgrade(alembic_config(database_url), "head")
