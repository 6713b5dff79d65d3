"""The SMS outbox: every text to a citizen or a unit is a row here before any gateway sees it.

Synchronous SQLAlchemy, like `CallRecordStore`: the dispatcher calls it from a thread.

Life of a message::

    queued -> sending -> sent -> delivered | failed      (delivery reports)
       ^         |  \\-> failed                          (gateway refused it: 4xx)
       +---------+                                       (gateway down or busy: retry later)
    queued -> expired                                    (expires_at passed before sending)

`enqueue` takes the caller's Connection (or Session), so a ticket's change and its SMS
commit together or not at all. `dedupe_key` is UNIQUE: enqueueing the same notice twice
(a retried request, two app instances) inserts one row.

`claim_due` moves due rows to "sending" in one statement, with a fresh claim token; on
PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so dispatchers of several app
instances never take the same row; SQLite has a single writer, and the statement is atomic.
Every later mark names the claim token: a dispatcher that lost its claim (requeued after a
timeout) cannot overwrite what another one did.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from callcenter.clock import utcnow
from callcenter.numbers import normalise_number
from callcenter.sms import billing as bl
from callcenter.sms.parts import MAX_PARTS, normalise_text, sms_parts
from callcenter.store import outbox
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime

STATUSES: Final = ("queued", "sending", "sent", "delivered", "failed", "expired")
FINAL_STATUSES: Final = ("delivered", "failed", "expired")
CODINGS: Final = ("gsm7", "ucs2")
BILLING_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # a month is a local calendar month

# Kannel's delivery-report types (the dlr-mask bits).
DLR_DELIVERED, DLR_UNDELIVERED, DLR_BUFFERED, DLR_SMSC_ACK, DLR_SMSC_REJECT = 1, 2, 4, 8, 16
DLR_TYPES: Final = (DLR_DELIVERED, DLR_UNDELIVERED, DLR_BUFFERED, DLR_SMSC_ACK, DLR_SMSC_REJECT)
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


class SmsMessage(Base):
    """One SMS in the outbox (possibly several billed parts)."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(STATUSES), name="status"),
        sa.CheckConstraint(sa.column("coding").in_(CODINGS), name="coding"),
        sa.Index("ix_sms_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String, index=True)
    to_number: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text)  # NFC, exactly as sent
    coding: Mapped[str] = mapped_column(sa.String(8))
    parts: Mapped[int] = mapped_column(sa.Integer)
    purpose: Mapped[str] = mapped_column(sa.String(32))  # resolve_notice, unit_notice, ...
    dedupe_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(sa.String(32))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    dlr_type: Mapped[int | None] = mapped_column(sa.Integer)  # last report: 1/2/4/8/16
    dlr_detail: Mapped[str | None] = mapped_column(sa.Text)  # the SMSC's words (%A)
    smsc_id: Mapped[str | None] = mapped_column(sa.String(64))  # which SMSC took it (%i)
    smsc_message_id: Mapped[str | None] = mapped_column(sa.String(128))  # its id there (%F)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    dlr_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


_TABLE = cast(sa.Table, SmsMessage.__table__)
_COLUMNS = tuple(c.name for c in _TABLE.columns)

# Statements run many times (and with many parameter sets at once): built once.
_C = _TABLE.c
_NOW = sa.bindparam("b_now", type_=UTCDateTime())
_SENT = (sa.update(_TABLE)
         .where(_C.id == sa.bindparam("b_id"), _C.status == "sending",
                _C.claim_token == sa.bindparam("b_token"))
         .values(status="sent", sent_at=_NOW, last_error=None))
# A delivery report may beat our own commit (Kannel answers, the SMSC acks at once): the
# row is already sent or final. Then only record when it left.
_SENT_LATE = (sa.update(_TABLE)
              .where(_C.id == sa.bindparam("b_id"), _C.claim_token == sa.bindparam("b_token"),
                     _C.status != "sending", _C.sent_at.is_(None))
              .values(sent_at=_NOW))
# A report for a message still "sending" (or already requeued after a timeout) proves the
# gateway took it: a crash between its answer and our mark_sent then causes no second send
# once the report is in. Final statuses are never touched again.
_REPORT = (sa.update(_TABLE)
           # OR of equalities, not IN: an expanding IN cannot run with many parameter sets.
           .where(_C.id == sa.bindparam("b_id"),
                  sa.or_(_C.status == "queued", _C.status == "sending", _C.status == "sent"))
           .values(status=sa.bindparam("b_status"), dlr_type=sa.bindparam("b_type"),
                   dlr_detail=sa.bindparam("b_detail"), dlr_at=_NOW,
                   sent_at=sa.func.coalesce(_C.sent_at, _NOW),
                   delivered_at=sa.func.coalesce(
                       sa.bindparam("b_delivered", type_=UTCDateTime()), _C.delivered_at),
                   smsc_id=sa.func.coalesce(sa.bindparam("b_smsc", type_=sa.String()),
                                            _C.smsc_id),
                   smsc_message_id=sa.func.coalesce(sa.bindparam("b_fid", type_=sa.String()),
                                                    _C.smsc_message_id)))
_DLR_STATUS = {DLR_DELIVERED: "delivered", DLR_UNDELIVERED: "failed", DLR_SMSC_REJECT: "failed",
               DLR_BUFFERED: "sent", DLR_SMSC_ACK: "sent"}


@dataclass(frozen=True)
class OutboxMessage:
    """A row of the outbox as the dispatcher, the CLI and the tests see it."""

    id: int
    tenant: str
    to_number: str
    text: str
    coding: str
    parts: int
    purpose: str
    dedupe_key: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    expires_at: dt.datetime | None
    claim_token: str | None
    claimed_at: dt.datetime | None
    last_error: str | None
    dlr_type: int | None
    dlr_detail: str | None
    smsc_id: str | None
    smsc_message_id: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    dlr_at: dt.datetime | None

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (times as ISO 8601)."""
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v
                for k, v in self.__dict__.items() if k != "claim_token"}


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery report from the gateway, about one outbox message."""

    msg_id: int
    dlr_type: int  # 1, 2, 4, 8 or 16
    detail: str | None = None  # the SMSC's words (%A)
    smsc_id: str | None = None  # which SMSC (%i)
    smsc_message_id: str | None = None  # its id for the message (%F)


@dataclass(frozen=True)
class BillingRow:
    """One tenant's SMS in a month: handed to the gateway, parts billed, and their outcome."""

    tenant: str
    messages: int
    parts: int
    delivered: int
    failed: int


def _message(row: sa.Row[Any]) -> OutboxMessage:
    return OutboxMessage(**{name: getattr(row, name) for name in _COLUMNS})


def clean_number(number: str) -> str:
    """A destination number as stored and sent: separators dropped, +84 as 0; else ValueError."""
    n = normalise_number(number)
    if not _NUMBER.fullmatch(n):
        raise ValueError(f"not a phone number: {number!r}")
    return n


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(_TABLE)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(_TABLE)
    raise NotImplementedError(f"SMS outbox on {conn.dialect.name}")


def enqueue(conn: sa.Connection | Session, *, tenant: str, to_number: str, text: str,
            purpose: str, dedupe_key: str, now: dt.datetime | None = None,
            expires_at: dt.datetime | None = None) -> int | None:
    """Queue one SMS in the caller's transaction; its id, or None if dedupe_key already exists."""
    if isinstance(conn, Session):
        conn = conn.connection()
    text = normalise_text(text)
    if not text.strip():
        raise ValueError("empty SMS text")
    enc = sms_parts(text)
    if enc.parts > MAX_PARTS:
        raise ValueError(f"SMS text needs {enc.parts} parts; at most {MAX_PARTS} are sent")
    if not dedupe_key:
        raise ValueError("dedupe_key is required (e.g. 'resolve:<ticket code>')")
    now = now or utcnow()
    # ON CONFLICT DO NOTHING, not a caught IntegrityError: on PostgreSQL an error would abort
    # the caller's whole transaction (the ticket change with it).
    stmt = _insert(conn).values(
        tenant=tenant, to_number=clean_number(to_number), text=text, coding=enc.coding,
        parts=enc.parts, purpose=purpose, dedupe_key=dedupe_key, status="queued", attempts=0,
        next_attempt_at=now, expires_at=expires_at, created_at=now,
    ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(_TABLE.c.id)
    new_id = conn.execute(stmt).scalar_one_or_none()
    return None if new_id is None else int(new_id)


def month_bounds(month: str, tz: ZoneInfo = BILLING_TZ) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants [start, end) of a local calendar month given as "YYYY-MM"."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=tz)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


class SmsOutbox:
    """The outbox in SQL (SQLite or PostgreSQL). Blocking: run it in a thread executor."""

    def __init__(self, database: DatabaseRef | sa.Engine):
        if isinstance(database, sa.Engine):
            self.engine, self._owns_engine = database, False
        else:
            self.engine, self._owns_engine = engine_for(database)
        # SQLite has one writer: our threads queue on a lock (in order, at once) instead of
        # meeting SQLite's busy handler, which sleeps 1, 2, 5 ... 100 ms between tries.
        self._write_lock = (threading.Lock() if self.engine.dialect.name == "sqlite"
                            else contextlib.nullcontext())

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction (behind the process's SQLite write lock)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    # -- writing ---------------------------------------------------------------------------

    def enqueue(self, *, tenant: str, to_number: str, text: str, purpose: str,
                dedupe_key: str, now: dt.datetime | None = None,
                expires_at: dt.datetime | None = None) -> int | None:
        """`enqueue` in a transaction of its own."""
        with self._writing() as conn:
            return enqueue(conn, tenant=tenant, to_number=to_number, text=text,
                           purpose=purpose, dedupe_key=dedupe_key, now=now,
                           expires_at=expires_at)

    def claim_due(self, now: dt.datetime, limit: int) -> list[OutboxMessage]:
        """Take up to `limit` due messages for sending (status "sending", attempts + 1)."""
        if limit <= 0:
            return []
        t = _TABLE.c
        with self._writing() as conn:
            conn.execute(sa.update(_TABLE)
                         .where(t.status == "queued", t.expires_at.is_not(None),
                                t.expires_at <= now)
                         .values(status="expired", claim_token=None))
            rows = outbox.claim_due(conn, _TABLE, now, limit, uuid.uuid4().hex)
        return sorted((_message(r) for r in rows), key=lambda m: (m.next_attempt_at, m.id))

    def _mark(self, msg_id: int, token: str, **values: Any) -> bool:
        with self._writing() as conn:
            return outbox.mark_claimed(conn, _TABLE, msg_id, token, **values)

    def mark_sent(self, msg_id: int, claim_token: str, now: dt.datetime) -> bool:
        """The gateway accepted it; False if the claim was lost or a report came first."""
        args = {"b_id": msg_id, "b_token": claim_token, "b_now": now}
        with self._writing() as conn:
            if conn.execute(_SENT, args).rowcount == 1:
                return True
            conn.execute(_SENT_LATE, args)
        return False

    def mark_sent_many(self, claims: list[tuple[int, str]], now: dt.datetime) -> None:
        """`mark_sent` for several (id, claim token) pairs in one transaction (one commit)."""
        if not claims:
            return
        args = [{"b_id": i, "b_token": token, "b_now": now} for i, token in claims]
        with self._writing() as conn:
            conn.execute(_SENT, args)
            conn.execute(_SENT_LATE, args)  # rows a report made "sent" or final first

    def mark_retry(self, msg_id: int, claim_token: str, now: dt.datetime,
                   backoff: dt.timedelta, error: str) -> bool:
        """Not accepted (gateway down, busy): back to queued, due again after `backoff`."""
        return self._mark(msg_id, claim_token, status="queued", next_attempt_at=now + backoff,
                          claim_token=None, last_error=error[:1000])

    def mark_failed(self, msg_id: int, claim_token: str, now: dt.datetime, error: str) -> bool:
        """Refused for good (the gateway rejected the request itself): failed, not retried."""
        return self._mark(msg_id, claim_token, status="failed", claim_token=None,
                          last_error=error[:1000])

    def note_unknown(self, msg_id: int, claim_token: str, error: str) -> bool:
        """The outcome of a request is unknown (timeout after sending): leave it "sending".

        `requeue_stuck` decides later, unless a delivery report proves it was sent first.
        """
        return self._mark(msg_id, claim_token, last_error=error[:1000])

    def release(self, msg_ids: list[int], claim_token: str) -> int:
        """Give claimed messages back unsent (the dispatcher is stopping): queued, as before."""
        with self._writing() as conn:
            return outbox.release(conn, _TABLE, msg_ids, claim_token)

    def requeue_stuck(self, now: dt.datetime, older_than: dt.timedelta) -> int:
        """Messages "sending" for longer than `older_than` (dispatcher died) go back to queued."""
        with self._writing() as conn:
            return outbox.requeue_stuck(conn, _TABLE, now, older_than)

    def mark_dlr(self, msg_id: int, dlr_type: int, now: dt.datetime, *,
                 detail: str | None = None, smsc_id: str | None = None,
                 smsc_message_id: str | None = None) -> str | None:
        """Apply a delivery report; the message's status afterwards, None if no such message.

        1 delivered and 2/16 failed are final; 4 (buffered at the SMSC) and 8 (SMSC took it)
        only confirm "sent". Reports arrive in any order (Kannel's fake SMSC sends 1 before
        8): a final status is never changed by a later report.
        """
        report = DeliveryReport(msg_id, dlr_type, detail, smsc_id, smsc_message_id)
        return self.apply_reports([report], now)[0]

    def apply_reports(self, reports: list[DeliveryReport],
                      now: dt.datetime) -> list[str | None]:
        """`mark_dlr` for several reports in one transaction; each message's status after."""
        if not reports:
            return []
        for r in reports:
            if r.dlr_type not in DLR_TYPES:
                raise ValueError(f"unknown delivery report type {r.dlr_type}")
        args = [{
            "b_id": r.msg_id, "b_type": r.dlr_type, "b_detail": r.detail, "b_now": now,
            "b_status": _DLR_STATUS[r.dlr_type], "b_smsc": r.smsc_id or None,
            "b_fid": r.smsc_message_id or None,
            "b_delivered": now if r.dlr_type == DLR_DELIVERED else None,
        } for r in reports]
        t = _TABLE.c
        with self._writing() as conn:
            conn.execute(_REPORT, args)
            ids = sorted({r.msg_id for r in reports})
            statuses = dict(conn.execute(sa.select(t.id, t.status).where(t.id.in_(ids))).all())
        return [None if statuses.get(r.msg_id) is None else str(statuses[r.msg_id])
                for r in reports]

    # -- reading ---------------------------------------------------------------------------

    def get(self, msg_id: int) -> OutboxMessage | None:
        """The message with this id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == msg_id)).first()
        return None if row is None else _message(row)

    def by_dedupe_key(self, dedupe_key: str) -> OutboxMessage | None:
        """The message queued under this key, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(_TABLE).where(_TABLE.c.dedupe_key == dedupe_key)).first()
        return None if row is None else _message(row)

    def recent(self, status: str | None = None, limit: int = 50,
             tenant: str | None = None) -> list[OutboxMessage]:
        """The newest messages first, optionally of one status and tenant."""
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(outbox.recent(_TABLE, status, limit, tenant))]

    def counts(self) -> dict[str, int]:
        """How many messages are in each status (statuses with none are left out)."""
        with self.engine.connect() as conn:
            return outbox.counts(conn, _TABLE)

    def report(self, month: str, tz: ZoneInfo = BILLING_TZ) -> list[BillingRow]:
        """Per tenant, the messages handed to the gateway in a local month (for billing).

        A message counts in the month its gateway accepted it (`sent_at`), with its parts;
        delivered and failed say what the delivery reports said about those messages so far.
        Messages never accepted (queued, refused, expired) are not billed and not counted.
        """
        start, end = month_bounds(month, tz)
        t = _TABLE.c
        q = (sa.select(t.tenant, sa.func.count(), sa.func.sum(t.parts),
                       sa.func.sum(sa.case((t.status == "delivered", 1), else_=0)),
                       sa.func.sum(sa.case((t.status == "failed", 1), else_=0)))
             .where(t.sent_at >= start, t.sent_at < end)
             .group_by(t.tenant).order_by(t.tenant))
        with self.engine.connect() as conn:
            return [BillingRow(str(tenant), int(n), int(parts or 0), int(ok or 0), int(bad or 0))
                    for tenant, n, parts, ok, bad in conn.execute(q)]

    def billing_groups(self, tenant: str, period: bl.BillingPeriod,
                       timezone: str) -> list[bl.OutboxGroup]:
        """A tenant's accepted messages per local month, purpose and status (count, parts)."""
        t = _TABLE.c
        out: list[bl.OutboxGroup] = []
        with self.engine.connect() as conn:
            for month in period.months:
                start, end = bl.month_utc_bounds(month, timezone)
                q = (sa.select(t.purpose, t.status, sa.func.count(), sa.func.sum(t.parts))
                     .where(t.tenant == tenant, t.sent_at >= start, t.sent_at < end,
                            t.status.in_(sorted(bl.ACCEPTED_STATUSES)))
                     .group_by(t.purpose, t.status).order_by(t.purpose, t.status))
                out += [bl.OutboxGroup(month, str(purpose), str(status), int(n), int(parts or 0))
                        for purpose, status, n, parts in conn.execute(q)]
        return out

    def billing_report(self, tenant: str, period: bl.BillingPeriod,
                       timezone: str) -> bl.BillingReport:
        """The tenant's SMS of a month or quarter per audience (see callcenter.sms.billing)."""
        return bl.billing_report(tenant, period, timezone,
                                 self.billing_groups(tenant, period, timezone))

    def close(self) -> None:
        """Close the pool's connections (when the outbox made its own engine)."""
        if self._owns_engine:
            self.engine.dispose()
