"""Audit log of user administration from the console (migration 0010).

One row per change: when, who (the admin), the tenant, the target user, the action
(``USER_ACTIONS``) and, for a changed field, the field with its value before and after. A
password or its hash is never written here: a password reset is recorded as the action alone.
Append-only: the database refuses UPDATE and DELETE (triggers in the migration).

``append`` writes on the caller's connection, so ``UserStore`` records a change in the same
transaction as the change itself (no change without its row, no row without its change).
Synchronous SQLAlchemy like the other stores: the console calls it from a thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime

__all__ = ["USER_ACTIONS", "UserAuditRow", "UserAuditStore", "UserChange", "append"]

USER_ACTIONS: Final = ("create", "update", "disable", "enable", "reset_password", "unlock")
MAX_VALUE: Final = 200


class UserAuditRow(Base):
    """One administrative change of one user; never updated or deleted."""

    __tablename__ = "user_audit"
    __table_args__ = (
        sa.CheckConstraint(sa.column("action").in_(USER_ACTIONS), name="action"),
        sa.Index("ix_user_audit_tenant_changed_at", "tenant", "changed_at"),
        sa.Index("ix_user_audit_tenant_target", "tenant", "target"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(sa.String(64))  # the admin's user name
    tenant: Mapped[str] = mapped_column(sa.String(32))
    target: Mapped[str] = mapped_column(sa.String(64))  # the changed user's name
    action: Mapped[str] = mapped_column(sa.String(16))
    field: Mapped[str | None] = mapped_column(sa.String(16))
    old_value: Mapped[str | None] = mapped_column(sa.String(MAX_VALUE))
    new_value: Mapped[str | None] = mapped_column(sa.String(MAX_VALUE))


_TABLE = cast(sa.Table, UserAuditRow.__table__)


@dataclass(frozen=True)
class UserChange:
    """One audit entry (``id`` 0 until written)."""

    id: int
    changed_at: dt.datetime
    actor: str
    tenant: str
    target: str
    action: str
    field: str | None = None
    old: str | None = None
    new: str | None = None


def _change(row: Any) -> UserChange:
    return UserChange(id=row.id, changed_at=row.changed_at, actor=row.actor, tenant=row.tenant,
                      target=row.target, action=row.action, field=row.field,
                      old=row.old_value, new=row.new_value)


def _cut(value: str | None) -> str | None:
    return None if value is None else value[:MAX_VALUE]


def append(conn: sa.Connection, changes: Sequence[UserChange]) -> None:
    """Insert the rows on ``conn`` (inside the caller's transaction)."""
    for c in changes:
        if c.action not in USER_ACTIONS:
            raise ValueError(f"unknown user audit action {c.action!r}")
        conn.execute(sa.insert(_TABLE).values(
            changed_at=c.changed_at, actor=c.actor[:64], tenant=c.tenant, target=c.target[:64],
            action=c.action, field=c.field, old_value=_cut(c.old), new_value=_cut(c.new)))


class UserAuditStore:
    """The user audit log in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef) -> None:
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._owns_engine:
            self.engine.dispose()

    def recent(self, tenant: str, target: str | None = None,
               limit: int = 50) -> list[UserChange]:
        """The tenant's latest changes (of one user, if given), newest first."""
        query = sa.select(_TABLE).where(_TABLE.c.tenant == tenant)
        if target is not None:
            query = query.where(_TABLE.c.target == target)
        query = query.order_by(_TABLE.c.changed_at.desc(), _TABLE.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_change(r) for r in conn.execute(query)]
