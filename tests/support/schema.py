"""The migrated database against the SQLAlchemy models: what autogenerate would still change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import callcenter.mail.store  # noqa: F401 - mail outbox
import callcenter.mailin.store  # noqa: F401 - e-mail in: the messages taken
import callcenter.open311.store  # noqa: F401 - Open311 keys and requests
import callcenter.quality.store  # noqa: F401 - quality reviews and their audit
import callcenter.recordings.audit  # noqa: F401 - recording retention audit table
import callcenter.sms.store  # noqa: F401 - every table module, so Base.metadata is complete
import callcenter.store.config_audit  # noqa: F401
import callcenter.store.listen_audit  # noqa: F401 - listen-in audit table
import callcenter.store.user_audit  # noqa: F401 - user administration audit table
import callcenter.store.users  # noqa: F401
import callcenter.tickets.store  # noqa: F401
from callcenter.store.migrate import upgrade_head
from callcenter.store.models import Base
from callcenter.store.urls import normalise_url


def model_diff(database_url: str, tables: Iterable[str] | None = None) -> list[Any]:
    """Upgrade to head, then the differences to the models (only those naming ``tables``)."""
    upgrade_head(database_url)
    names = list(tables) if tables is not None else None
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    if names is None:
        return list(diff)
    return [d for d in diff if any(n in repr(d) for n in names)]
