"""Recording retention in SQL: which records still name a recording, marking one deleted, and
the append-only audit log of deletions (migration 0011).

A deletion is one transaction: the record's ``recording`` becomes NULL and its
``recording_deleted_at`` is set, on condition that it still names that file, and one audit row
is appended only when that update matched. Two app instances running the job at once thus
audit each deletion exactly once. Synchronous SQLAlchemy like the other stores: run it in a
thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.recordings.retention import Recorded, cutoff
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, CallRecord, UTCDateTime

__all__ = ["RecordingAuditRow", "RecordingDeletion", "RecordingStore"]


class RecordingAuditRow(Base):
    """One recording deleted under retention; never updated or deleted."""

    __tablename__ = "recording_audit"
    __table_args__ = (
        sa.Index("ix_recording_audit_tenant_deleted_at", "tenant", "deleted_at"),
        sa.Index("ix_recording_audit_call_id", "call_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(sa.String(64))  # "retention-job" or the CLI
    tenant: Mapped[str] = mapped_column(sa.String(32))
    call_id: Mapped[str] = mapped_column(sa.String(64))
    recording: Mapped[str] = mapped_column(sa.String(255))  # the file name it had
    call_ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    keep_days: Mapped[int] = mapped_column(sa.Integer)  # the limit that applied
    file_found: Mapped[bool] = mapped_column(sa.Boolean)  # False: the file was already gone
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)


_AUDIT = cast(sa.Table, RecordingAuditRow.__table__)
_CALLS = cast(sa.Table, CallRecord.__table__)
_ENDED = sa.func.coalesce(_CALLS.c.ended_at, _CALLS.c.arrived_at)


@dataclass(frozen=True)
class RecordingDeletion:
    """One audit entry as read back."""

    id: int
    deleted_at: dt.datetime
    actor: str
    tenant: str
    call_id: str
    recording: str
    call_ended_at: dt.datetime
    keep_days: int
    file_found: bool
    size_bytes: int | None


def _deletion(row: Any) -> RecordingDeletion:
    return RecordingDeletion(id=row.id, deleted_at=row.deleted_at, actor=row.actor,
                             tenant=row.tenant, call_id=row.call_id, recording=row.recording,
                             call_ended_at=row.call_ended_at, keep_days=row.keep_days,
                             file_found=row.file_found, size_bytes=row.size_bytes)


class RecordingStore:
    """Records' recordings and their deletion audit (SQLite or PostgreSQL). Blocking."""

    def __init__(self, database: DatabaseRef) -> None:
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._owns_engine:
            self.engine.dispose()

    def ended_before(self, keep_days: int, now: dt.datetime, *,
                     tenants: Collection[str] | None = None,
                     other_than: Collection[str] | None = None) -> list[Recorded]:
        """Records naming a recording whose call ended ``keep_days`` or more before ``now``
        (of ``tenants`` only, or of every tenant but ``other_than``)."""
        edge = cutoff(keep_days, now)  # coalesce() is typed UTCDateTime: bound as UTC
        query = (sa.select(_CALLS.c.id, _CALLS.c.tenant, _CALLS.c.recording,
                           _CALLS.c.ended_at, _CALLS.c.arrived_at)
                 .where(_CALLS.c.recording.is_not(None), _ENDED <= edge)
                 .order_by(_CALLS.c.arrived_at))
        if tenants is not None:
            query = query.where(_CALLS.c.tenant.in_(list(tenants)))
        if other_than:
            query = query.where(_CALLS.c.tenant.not_in(list(other_than)))
        with self.engine.connect() as conn:
            return [Recorded(call_id=r.id, tenant=r.tenant, recording=r.recording,
                             ended_at=r.ended_at or r.arrived_at)
                    for r in conn.execute(query)]

    def named_recordings(self) -> set[str]:
        """Every file name a record still names (to find files no record names)."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(
                sa.select(_CALLS.c.recording).where(_CALLS.c.recording.is_not(None)))}

    def mark_deleted(self, rec: Recorded, *, at: dt.datetime, actor: str, keep_days: int,
                     file_found: bool, size_bytes: int | None) -> bool:
        """Mark the record's recording deleted and audit it; False if another run did it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(_CALLS)
                .where(_CALLS.c.id == rec.call_id, _CALLS.c.recording == rec.recording)
                .values(recording=None, recording_deleted_at=at)).rowcount
            if done != 1:
                return False
            conn.execute(sa.insert(_AUDIT).values(
                deleted_at=at, actor=actor[:64], tenant=rec.tenant[:32], call_id=rec.call_id,
                recording=rec.recording[:255], call_ended_at=rec.ended_at,
                keep_days=keep_days, file_found=file_found, size_bytes=size_bytes))
        return True

    def recent(self, tenant: str | None = None, limit: int = 100) -> list[RecordingDeletion]:
        """The latest deletions first (of one tenant, if given)."""
        query = sa.select(_AUDIT).order_by(_AUDIT.c.deleted_at.desc(), _AUDIT.c.id.desc())
        if tenant is not None:
            query = query.where(_AUDIT.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_deletion(r) for r in conn.execute(query.limit(max(0, limit)))]
