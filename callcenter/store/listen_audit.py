"""Audit log of supervisors listening in on live calls (listen, whisper, barge; migration 0008).

One row per use: who asked (console user), from which softphone, which call and operator,
the mode, when it was asked for, when the supervisor's phone was connected (None: never
answered) and when and why it ended. No citizen's number is stored here: the call id leads to
the call record. Synchronous SQLAlchemy like the other stores: run it in a thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime

LISTEN_MODES: Final = ("listen", "whisper", "barge")


class ListenAuditRow(Base):
    """One supervisor's listen-in on one call."""

    __tablename__ = "listen_audit"
    __table_args__ = (sa.CheckConstraint(sa.column("mode").in_(LISTEN_MODES), name="mode"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String(32), index=True)
    node: Mapped[str | None] = mapped_column(sa.String(64))  # the Asterisk node of the call
    call_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    supervisor: Mapped[str] = mapped_column(sa.String(64))  # the console user's name
    extension: Mapped[str] = mapped_column(sa.String(32))  # the supervisor's softphone
    operator: Mapped[str | None] = mapped_column(sa.String(32))  # whose call it was
    mode: Mapped[str] = mapped_column(sa.String(8))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(sa.String(64))


_TABLE = cast(sa.Table, ListenAuditRow.__table__)


@dataclass(frozen=True)
class ListenUse:
    """One audit entry."""

    id: int
    tenant: str
    node: str | None
    call_id: str
    supervisor: str
    extension: str
    operator: str | None
    mode: str
    requested_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    end_reason: str | None

    def to_json_dict(self) -> dict[str, Any]:
        """For the API: times ISO 8601 with offset."""
        def iso(t: dt.datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {"id": self.id, "tenant": self.tenant, "node": self.node,
                "call_id": self.call_id, "supervisor": self.supervisor,
                "extension": self.extension, "operator": self.operator, "mode": self.mode,
                "requested_at": iso(self.requested_at), "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at), "end_reason": self.end_reason}


def _use(row: Any) -> ListenUse:
    return ListenUse(id=row.id, tenant=row.tenant, node=row.node, call_id=row.call_id,
                     supervisor=row.supervisor, extension=row.extension, operator=row.operator,
                     mode=row.mode, requested_at=row.requested_at, started_at=row.started_at,
                     ended_at=row.ended_at, end_reason=row.end_reason)


class ListenAuditStore:
    """The listen-in audit log in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef):
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Close the pool's connections."""
        if self._owns_engine:
            self.engine.dispose()

    def requested(self, *, tenant: str, node: str | None, call_id: str, supervisor: str,
                  extension: str, operator: str | None, mode: str,
                  at: dt.datetime) -> int:
        """Record a listen-in asked for (the supervisor's phone rings now); its id."""
        if mode not in LISTEN_MODES:
            raise ValueError(f"listen mode: expected one of {LISTEN_MODES}, got {mode!r}")
        with self.engine.begin() as conn:
            return int(conn.execute(
                sa.insert(_TABLE).values(tenant=tenant, node=node, call_id=call_id,
                                         supervisor=supervisor, extension=extension,
                                         operator=operator, mode=mode, requested_at=at)
                .returning(_TABLE.c.id)).scalar_one())

    def started(self, id: int, at: dt.datetime) -> None:
        """The supervisor answered and is connected (first time only)."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(_TABLE).where(_TABLE.c.id == id,
                                                 _TABLE.c.started_at.is_(None))
                         .values(started_at=at))

    def ended(self, id: int, at: dt.datetime, reason: str) -> None:
        """The listen-in is over (first end only), and why."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(_TABLE).where(_TABLE.c.id == id, _TABLE.c.ended_at.is_(None))
                         .values(ended_at=at, end_reason=reason[:64]))

    def get(self, id: int) -> ListenUse | None:
        """The entry with this id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == id)).first()
        return None if row is None else _use(row)

    def recent(self, tenant: str | None = None, *, call_id: str | None = None,
               limit: int = 200) -> list[ListenUse]:
        """The latest entries first (of one tenant or one call, if given)."""
        q = sa.select(_TABLE).order_by(_TABLE.c.requested_at.desc(), _TABLE.c.id.desc())
        if tenant is not None:
            q = q.where(_TABLE.c.tenant == tenant)
        if call_id is not None:
            q = q.where(_TABLE.c.call_id == call_id)
        with self.engine.connect() as conn:
            return [_use(r) for r in conn.execute(q.limit(max(0, limit)))]
