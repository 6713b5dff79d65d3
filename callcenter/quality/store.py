"""Quality reviews in SQL (migration 0014_quality): one review per call per reviewer (edited in
place), and the append-only ``quality_audit`` log of who played or downloaded which call's
recording and who scored or re-scored which call.

A review and its audit row are written in one transaction, so no score changes without its
trace. The audit log keeps the scores a review was given (before and after an edit), never the
citizen's number: the call id leads to the call record. Synchronous SQLAlchemy like the other
stores: run it in a thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.quality.rules import CallFacts, Period, ReviewFacts, Scores
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, CallRecord, JSONDocument, UTCDateTime

__all__ = ["AUDIT_ACTIONS", "QualityAudit", "QualityStore", "Review"]

AUDIT_ACTIONS: Final = ("play", "download", "review_create", "review_update")


class QualityReviewRow(Base):
    """One reviewer's scores of one call (editable: the audit log keeps every version)."""

    __tablename__ = "quality_reviews"
    __table_args__ = (
        sa.UniqueConstraint("call_id", "reviewer", name="uq_quality_reviews_call_reviewer"),
        sa.CheckConstraint("greeting BETWEEN 1 AND 5", name="greeting"),
        sa.CheckConstraint("accuracy BETWEEN 1 AND 5", name="accuracy"),
        sa.CheckConstraint("attitude BETWEEN 1 AND 5", name="attitude"),
        sa.Index("ix_quality_reviews_tenant_call_at", "tenant", "call_arrived_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String(32))
    call_id: Mapped[str] = mapped_column(sa.String(64))
    operator: Mapped[str] = mapped_column(sa.String(32))  # the call's operator (extension)
    call_arrived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # the report's period
    reviewer: Mapped[str] = mapped_column(sa.String(64))  # the console user's name
    greeting: Mapped[int] = mapped_column(sa.Integer)
    accuracy: Mapped[int] = mapped_column(sa.Integer)
    attitude: Mapped[int] = mapped_column(sa.Integer)
    no_buck_passing: Mapped[bool] = mapped_column(sa.Boolean)  # False: "đùn đẩy"
    notes: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class QualityAuditRow(Base):
    """One play, download or (re-)scoring; never updated or deleted."""

    __tablename__ = "quality_audit"
    __table_args__ = (
        sa.CheckConstraint(sa.column("action").in_(AUDIT_ACTIONS), name="action"),
        sa.Index("ix_quality_audit_tenant_at", "tenant", "at"),
        sa.Index("ix_quality_audit_call_id", "call_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    tenant: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(64))  # the console user's name
    role: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(16))
    call_id: Mapped[str] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


_REVIEWS = cast(sa.Table, QualityReviewRow.__table__)
_AUDIT = cast(sa.Table, QualityAuditRow.__table__)
_CALLS = cast(sa.Table, CallRecord.__table__)


@dataclass(frozen=True)
class Review:
    """One stored review."""

    id: int
    tenant: str
    call_id: str
    operator: str
    call_arrived_at: dt.datetime
    reviewer: str
    scores: Scores
    created_at: dt.datetime
    updated_at: dt.datetime

    def facts(self) -> ReviewFacts:
        """What the report rule needs."""
        return ReviewFacts(self.call_id, self.operator, self.reviewer, self.scores)


@dataclass(frozen=True)
class QualityAudit:
    """One audit entry as read back."""

    id: int
    at: dt.datetime
    tenant: str
    actor: str
    role: str
    action: str
    call_id: str
    detail: dict[str, Any] | None


def _review(row: Any) -> Review:
    return Review(id=row.id, tenant=row.tenant, call_id=row.call_id, operator=row.operator,
                  call_arrived_at=row.call_arrived_at, reviewer=row.reviewer,
                  scores=Scores(row.greeting, row.accuracy, row.attitude,
                                bool(row.no_buck_passing), row.notes),
                  created_at=row.created_at, updated_at=row.updated_at)


def _scores_json(s: Scores) -> dict[str, Any]:
    return {"greeting": s.greeting, "accuracy": s.accuracy, "attitude": s.attitude,
            "no_buck_passing": s.no_buck_passing, "notes": s.notes}


class QualityStore:
    """Reviews, the audit log, and the call records the sample draws from. Blocking."""

    def __init__(self, database: DatabaseRef) -> None:
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._owns_engine:
            self.engine.dispose()

    # --- the calls -----------------------------------------------------------------------

    def candidates(self, tenant: str, period: Period) -> list[CallFacts]:
        """The tenant's answered calls with a recording that arrived in ``period``."""
        q = (sa.select(_CALLS.c.id, _CALLS.c.operator, _CALLS.c.outcome, _CALLS.c.arrived_at,
                       _CALLS.c.recording)
             .where(_CALLS.c.tenant == tenant, _CALLS.c.arrived_at >= period.start,
                    _CALLS.c.arrived_at < period.end, _CALLS.c.outcome == "answered",
                    _CALLS.c.recording.is_not(None), _CALLS.c.operator.is_not(None)))
        with self.engine.connect() as conn:
            return [CallFacts(r.id, r.operator, r.outcome, r.arrived_at, r.recording)
                    for r in conn.execute(q)]

    # --- reviews ---------------------------------------------------------------------------

    def save_review(self, *, tenant: str, call_id: str, operator: str,
                    call_arrived_at: dt.datetime, reviewer: str, role: str, scores: Scores,
                    at: dt.datetime) -> tuple[Review, bool]:
        """Store ``reviewer``'s scores of the call (new, or replacing theirs) and audit it;
        the review and whether it was new."""
        values = {"greeting": scores.greeting, "accuracy": scores.accuracy,
                  "attitude": scores.attitude, "no_buck_passing": scores.no_buck_passing,
                  "notes": scores.notes, "updated_at": at}
        mine = (_REVIEWS.c.call_id == call_id) & (_REVIEWS.c.reviewer == reviewer)
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(_REVIEWS).where(mine).with_for_update()).first()
            if before is None:
                conn.execute(sa.insert(_REVIEWS).values(
                    tenant=tenant, call_id=call_id, operator=operator,
                    call_arrived_at=call_arrived_at, reviewer=reviewer, created_at=at,
                    **values))
                detail: dict[str, Any] = {"scores": _scores_json(scores)}
            else:
                conn.execute(sa.update(_REVIEWS).where(mine).values(**values))
                detail = {"before": _scores_json(_review(before).scores),
                          "scores": _scores_json(scores)}
            conn.execute(sa.insert(_AUDIT).values(
                at=at, tenant=tenant, actor=reviewer[:64], role=role[:16],
                action="review_create" if before is None else "review_update",
                call_id=call_id, detail=detail))
            row = conn.execute(sa.select(_REVIEWS).where(mine)).one()
        return _review(row), before is None

    def review(self, call_id: str, reviewer: str) -> Review | None:
        """``reviewer``'s review of the call, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_REVIEWS).where(
                _REVIEWS.c.call_id == call_id, _REVIEWS.c.reviewer == reviewer)).first()
        return None if row is None else _review(row)

    def reviews_of_call(self, call_id: str) -> list[Review]:
        """Every review of the call, oldest first."""
        with self.engine.connect() as conn:
            return [_review(r) for r in conn.execute(
                sa.select(_REVIEWS).where(_REVIEWS.c.call_id == call_id)
                .order_by(_REVIEWS.c.created_at, _REVIEWS.c.id))]

    def reviewed_calls(self, call_ids: Iterable[str]) -> dict[str, list[str]]:
        """For each of these calls that has reviews, who reviewed it."""
        ids = list(call_ids)
        out: dict[str, list[str]] = {}
        if not ids:
            return out
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(_REVIEWS.c.call_id, _REVIEWS.c.reviewer)
                                  .where(_REVIEWS.c.call_id.in_(ids))
                                  .order_by(_REVIEWS.c.reviewer)):
                out.setdefault(r.call_id, []).append(r.reviewer)
        return out

    def reviews_in(self, tenant: str, period: Period) -> list[Review]:
        """The tenant's reviews of calls that arrived in ``period``."""
        with self.engine.connect() as conn:
            return [_review(r) for r in conn.execute(
                sa.select(_REVIEWS).where(_REVIEWS.c.tenant == tenant,
                                          _REVIEWS.c.call_arrived_at >= period.start,
                                          _REVIEWS.c.call_arrived_at < period.end)
                .order_by(_REVIEWS.c.operator, _REVIEWS.c.call_arrived_at, _REVIEWS.c.id))]

    # --- the audit log -----------------------------------------------------------------------

    def audit(self, *, tenant: str, actor: str, role: str, action: str, call_id: str,
              at: dt.datetime, detail: dict[str, Any] | None = None) -> int:
        """Append one play or download; its id."""
        if action not in ("play", "download"):
            raise ValueError(f"quality audit: expected play or download, got {action!r}")
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(_AUDIT).values(
                at=at, tenant=tenant, actor=actor[:64], role=role[:16], action=action,
                call_id=call_id, detail=detail).returning(_AUDIT.c.id)).scalar_one())

    def audit_log(self, tenant: str | None = None, *, call_id: str | None = None,
                  limit: int = 200) -> list[QualityAudit]:
        """The latest entries first (of one tenant or one call, if given)."""
        q = sa.select(_AUDIT).order_by(_AUDIT.c.at.desc(), _AUDIT.c.id.desc())
        if tenant is not None:
            q = q.where(_AUDIT.c.tenant == tenant)
        if call_id is not None:
            q = q.where(_AUDIT.c.call_id == call_id)
        with self.engine.connect() as conn:
            return [QualityAudit(r.id, r.at, r.tenant, r.actor, r.role, r.action, r.call_id,
                                 r.detail) for r in conn.execute(q.limit(max(0, limit)))]
