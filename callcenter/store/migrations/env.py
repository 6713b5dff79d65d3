"""Alembic environment of the hotline's database (SQLite by default, PostgreSQL in production).

The URL, first found wins: `config.attributes["database_url"]` (set by code, see
`callcenter.store.migrate`), the DATABASE_URL environment variable, `sqlalchemy.url` in
the config, then `sqlite:///var/hotline.db` relative to the current directory.
`postgresql://` URLs are run with psycopg 3.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

import callcenter.mail.store  # noqa: F401
import callcenter.mailin.store  # noqa: F401 - e-mail in: the messages taken
import callcenter.open311.store  # noqa: F401 - Open311 keys and requests
import callcenter.quality.store  # noqa: F401 - quality reviews and their audit
import callcenter.sms.store  # noqa: F401

# Every module that defines tables on Base.metadata (autogenerate compares against all).
import callcenter.store.config_audit  # noqa: F401
import callcenter.store.listen_audit  # noqa: F401 - listen-in audit table
import callcenter.store.user_audit  # noqa: F401 - user administration audit table
import callcenter.store.users  # noqa: F401
import callcenter.tickets.store  # noqa: F401
from callcenter.store.models import Base
from callcenter.store.urls import DEFAULT_DATABASE_URL, ensure_sqlite_file, normalise_url

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    # Only when run as `alembic ...` with alembic.ini; code calling upgrade keeps its logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata

# Two app instances (or nodes) starting together must not both create the tables: on
# PostgreSQL the upgrade holds this transaction-scoped advisory lock ("1022", the hotline).
MIGRATION_LOCK_KEY = 1022


def database_url() -> sa.URL:
    """The URL this run migrates, normalised for psycopg 3."""
    url = (config.attributes.get("database_url")
           or os.environ.get("DATABASE_URL")
           or config.get_main_option("sqlalchemy.url")
           or DEFAULT_DATABASE_URL)
    return normalise_url(url)


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations go through batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _migrate(connection: sa.Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL (alembic upgrade --sql) without a database."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate a live database: a connection given by code, else one made from the URL."""
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    url = database_url()
    ensure_sqlite_file(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
