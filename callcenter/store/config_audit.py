"""Audit log of configuration changes made from the console (migration 0009).

One row per changed field: who, when, which tenant, which shift and field, the value before
and after (as written in the file), the file's SHA-256 after the change and where the previous
version was kept. Append-only: the database refuses UPDATE and DELETE (triggers in the
migration). Synchronous SQLAlchemy like the other stores: the console calls it from a thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime

__all__ = ["ConfigAuditRow", "ConfigAuditStore", "ConfigChange"]

MAX_VALUE = 64


class ConfigAuditRow(Base):
    """One changed field of one shift; never updated or deleted."""

    __tablename__ = "config_audit"
    __table_args__ = (sa.Index("ix_config_audit_tenant_changed_at", "tenant", "changed_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    user_name: Mapped[str] = mapped_column(sa.String(64))
    tenant: Mapped[str] = mapped_column(sa.String(32))
    shift: Mapped[str] = mapped_column(sa.String(64))
    field: Mapped[str] = mapped_column(sa.String(16))
    old_value: Mapped[str] = mapped_column(sa.String(MAX_VALUE))
    new_value: Mapped[str] = mapped_column(sa.String(MAX_VALUE))
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    previous_copy: Mapped[str | None] = mapped_column(sa.String(500))


_TABLE = cast(sa.Table, ConfigAuditRow.__table__)


class ChangeLike(Protocol):
    """What ``record`` needs of a change (``callcenter.config.edit.FieldChange``)."""

    @property
    def shift(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def old(self) -> str: ...
    @property
    def new(self) -> str: ...


@dataclass(frozen=True)
class ConfigChange:
    """One audit entry as read back."""

    id: int
    changed_at: dt.datetime
    user: str
    tenant: str
    shift: str
    field: str
    old: str
    new: str
    file_sha256: str
    previous_copy: str | None


def _change(row: Any) -> ConfigChange:
    return ConfigChange(id=row.id, changed_at=row.changed_at, user=row.user_name,
                        tenant=row.tenant, shift=row.shift, field=row.field,
                        old=row.old_value, new=row.new_value, file_sha256=row.file_sha256,
                        previous_copy=row.previous_copy)


class ConfigAuditStore:
    """The config audit log in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef) -> None:
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._owns_engine:
            self.engine.dispose()

    def record(self, *, user: str, tenant: str, changes: Iterable[ChangeLike],
               at: dt.datetime, file_sha256: str,
               previous_copy: str | None) -> list[ConfigChange]:
        """Append one row per changed field, in one transaction; return them."""
        pending = [ConfigChange(id=0, changed_at=at, user=user[:64], tenant=tenant,
                                shift=c.shift[:64], field=c.field, old=c.old[:MAX_VALUE],
                                new=c.new[:MAX_VALUE], file_sha256=file_sha256,
                                previous_copy=previous_copy) for c in changes]
        out: list[ConfigChange] = []
        with self.engine.begin() as conn:
            for c in pending:
                new_id = conn.execute(sa.insert(_TABLE).values(
                    changed_at=c.changed_at, user_name=c.user, tenant=c.tenant, shift=c.shift,
                    field=c.field, old_value=c.old, new_value=c.new,
                    file_sha256=c.file_sha256, previous_copy=c.previous_copy,
                ).returning(_TABLE.c.id)).scalar_one()
                out.append(dataclasses.replace(c, id=new_id))
        return out

    def recent(self, tenant: str, limit: int = 20) -> list[ConfigChange]:
        """The tenant's latest changes, newest first."""
        query = (sa.select(_TABLE).where(_TABLE.c.tenant == tenant)
                 .order_by(_TABLE.c.changed_at.desc(), _TABLE.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [_change(r) for r in conn.execute(query)]
