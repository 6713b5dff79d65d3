"""SQLAlchemy models of the hotline's tables; `migrations/versions` holds their migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from callcenter.clock import utcnow
from callcenter.store.data import ID_MAX_LENGTH, OPERATOR_MAX_LENGTH, OUTCOMES

# Stable constraint/index names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite (and any backend without time zones) stores the
    naive UTC wall time, and reads it back as aware UTC. Naive input is refused.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give an aware (UTC) time")
        value = value.astimezone(dt.UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# JSONB on PostgreSQL (indexable, e.g. for ivr_path later); plain JSON text elsewhere.
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class CallRecord(Base):
    """One finished call: the row written once per call, keyed "<node>:<asterisk uniqueid>"."""

    __tablename__ = "call_records"
    __table_args__ = (
        sa.CheckConstraint(sa.column("outcome").in_(OUTCOMES), name="outcome"),
    )

    id: Mapped[str] = mapped_column(sa.String(ID_MAX_LENGTH), primary_key=True)
    node: Mapped[str] = mapped_column(sa.String)
    tenant: Mapped[str] = mapped_column(sa.String, index=True)
    dialled: Mapped[str] = mapped_column(sa.String)
    caller: Mapped[str] = mapped_column(sa.String)
    shift: Mapped[str | None] = mapped_column(sa.String)
    pool_limit: Mapped[int | None] = mapped_column(sa.Integer)
    arrived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(sa.String(16))
    cause: Mapped[str | None] = mapped_column(sa.String)  # e.g. "16 Normal Clearing"
    cause_code: Mapped[int | None] = mapped_column(sa.Integer)  # Q.850 cause
    linkedid: Mapped[str] = mapped_column(sa.String, index=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    # The caller's way through the IVR: [{"at", "event", "node"?, "digit"?, "faq"?, ...}]
    ivr_path: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    # The operators' part of the call (migration 0006).
    operator: Mapped[str | None] = mapped_column(sa.String(OPERATOR_MAX_LENGTH), index=True)
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    bridged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    talk_ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    wrap_up_s: Mapped[int | None] = mapped_column(sa.Integer)
    no_answers: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    recording: Mapped[str | None] = mapped_column(sa.String)  # relative to recordings/
    # Set when retention deleted the recording (then `recording` is NULL; migration 0011).
    recording_deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # [{"at", "by", "unit", "number", "kind", "answered", "result"}], oldest first
    transfers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=sa.func.now()
    )


CALLBACK_STATUSES: tuple[str, ...] = ("open", "done", "cancelled")


class Callback(Base):
    """A waiting caller asked to be called back (pressed 1): one row per call, at most."""

    __tablename__ = "callbacks"
    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(CALLBACK_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String(32), index=True)
    # The call record's id ("<node>:<uniqueid>"); unique: pressing 1 twice asks once.
    call_id: Mapped[str] = mapped_column(sa.String(ID_MAX_LENGTH), unique=True)
    caller: Mapped[str] = mapped_column(sa.String(64))  # the number to call back, in full
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    handled_by: Mapped[str | None] = mapped_column(sa.String(64))  # extension or user name
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(sa.Text)
    # Calls back from the console (migration 0019): tries, the last one's result, and the
    # call that reached the caller (its id and recording file).
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    last_result: Mapped[str | None] = mapped_column(sa.String(16))
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    dial_call_id: Mapped[str | None] = mapped_column(sa.String(128))
    recording: Mapped[str | None] = mapped_column(sa.String(255))
    # queue: pressed 1 after the maximum wait; pool_full: offered when every line was taken.
    source: Mapped[str] = mapped_column(sa.String(16), default="queue",
                                        server_default="queue")
    # The ticket this callback is about (a code of the same tenant, checked when linked;
    # migration 0021): its page shows the call back and the recording.
    ticket: Mapped[str | None] = mapped_column(sa.String(32), index=True)


class FaqVersion(Base):
    """One imported version of a tenant's FAQ for one field; exactly one is active."""

    __tablename__ = "faq_versions"
    __table_args__ = (sa.UniqueConstraint("tenant", "field", "version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String)
    field: Mapped[str] = mapped_column(sa.String)
    version: Mapped[int] = mapped_column(sa.Integer)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    imported_by: Mapped[str | None] = mapped_column(sa.String)
    source_name: Mapped[str] = mapped_column(sa.String)  # file name as given, no directories
    sha256: Mapped[str] = mapped_column(sa.String(64))  # of the imported file
    item_count: Mapped[int] = mapped_column(sa.Integer)


class FaqItem(Base):
    """One question and its answer, in one FAQ version."""

    __tablename__ = "faq_items"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("faq_versions.id", ondelete="CASCADE"), index=True)
    tenant: Mapped[str] = mapped_column(sa.String)
    field: Mapped[str] = mapped_column(sa.String)
    position: Mapped[int] = mapped_column(sa.Integer)  # order in the sheet, from 1
    # Stable across re-imports (hash of tenant, field and the normalised question), so the
    # counts of heard/yes/no survive a new version of the sheet.
    key: Mapped[str] = mapped_column(sa.String(16), index=True)
    code: Mapped[str | None] = mapped_column(sa.String)  # the sheet's own id, if it has one
    question: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str] = mapped_column(sa.Text)
    keywords: Mapped[str | None] = mapped_column(sa.Text)
    unit: Mapped[str | None] = mapped_column(sa.String)


class FaqEvent(Base):
    """A caller heard an FAQ answer, or said whether it answered their question."""

    __tablename__ = "faq_events"
    __table_args__ = (sa.CheckConstraint(sa.column("kind").in_(("heard", "yes", "no")),
                                         name="kind"),)

    call_id: Mapped[str] = mapped_column(sa.String(ID_MAX_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)  # step in the IVR path
    tenant: Mapped[str] = mapped_column(sa.String)
    item_key: Mapped[str] = mapped_column(sa.String(16), index=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
