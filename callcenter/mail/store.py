"""The mail outbox: every mail is a row here (with its attachments) before any server sees it.

Synchronous SQLAlchemy, like the SMS outbox (``callcenter/sms/store.py``): the dispatcher and
the scheduler call it from a thread.

Life of a mail::

    queued -> sending -> sent
       ^         |  \\-> failed       (the server refused it for good: 5xx, or MAX_ATTEMPTS)
       +---------+                   (server down or busy, 4xx: due again after a back-off)

``dedupe_key`` is UNIQUE: a report (``report:daily:dongnai:2026-12-06``) enqueued by two app
instances, or by a scheduler that runs twice, is one row. ``claim_due`` takes due rows to
"sending" in one statement with a fresh claim token (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite has one writer), so two dispatchers never send the same row; every later
mark names the token.

API for other slices (a unit chaser, a notice)::

    box = MailOutbox(database)                       # Database, URL or Engine
    mail_id = box.enqueue(tenant="dongnai", to=["a@x.gov.vn"], subject="...", body="...",
                          attachments=[Attachment("x.xlsx", XLSX, data)],
                          purpose="unit_chase", dedupe_key="chase:DN-20261206-0001:1",
                          now=utcnow())              # None: that key was queued before
    # or inside the caller's transaction: enqueue(conn, tenant=..., ...)

The running app's dispatcher sends it (``MailDispatcher.wake()`` sends at once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from callcenter.clock import utcnow
from callcenter.mail.rules import MAX_RECIPIENTS, is_address
from callcenter.store import outbox
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime

STATUSES: Final = ("queued", "sending", "sent", "failed")
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_SUBJECT = 300
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024  # most mail servers refuse more than 20-25 MB


class MailMessage(Base):
    """One mail in the outbox."""

    __tablename__ = "mail_messages"
    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(STATUSES), name="status"),
        sa.Index("ix_mail_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String, index=True)
    to_addrs: Mapped[str] = mapped_column(sa.Text)  # JSON list of addresses
    subject: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT))
    body: Mapped[str] = mapped_column(sa.Text)  # plain text, UTF-8
    purpose: Mapped[str] = mapped_column(sa.String(32))  # report, unit_chase, test ...
    dedupe_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(sa.String(32))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class MailAttachment(Base):
    """A file sent with a mail (the report's xlsx)."""

    __tablename__ = "mail_attachments"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    mail_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("mail_messages.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    filename: Mapped[str] = mapped_column(sa.String(200))
    content_type: Mapped[str] = mapped_column(sa.String(200))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


_TABLE = cast(sa.Table, MailMessage.__table__)
_FILES = cast(sa.Table, MailAttachment.__table__)
_COLUMNS = tuple(c.name for c in _TABLE.columns)


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the recipient sees it, MIME type and bytes."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutboxMail:
    """A row of the outbox as the dispatcher, the CLI and the tests see it (no attachments)."""

    id: int
    tenant: str
    to: tuple[str, ...]
    subject: str
    body: str
    purpose: str
    dedupe_key: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    claim_token: str | None
    claimed_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (times as ISO 8601)."""
        return {k: (v.isoformat() if isinstance(v, dt.datetime)
                    else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items() if k != "claim_token"}


def _mail(row: sa.Row[Any]) -> OutboxMail:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values["to"] = tuple(json.loads(values.pop("to_addrs")))
    return OutboxMail(**values)


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(_TABLE)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(_TABLE)
    raise NotImplementedError(f"mail outbox on {conn.dialect.name}")


def _check(to: Sequence[str], subject: str, body: str, attachments: Sequence[Attachment],
           dedupe_key: str) -> list[str]:
    addrs = [a.strip() for a in ([to] if isinstance(to, str) else to)]
    if not addrs:
        raise ValueError("a mail needs at least one recipient")
    if len(addrs) > MAX_RECIPIENTS:
        raise ValueError(f"{len(addrs)} recipients: at most {MAX_RECIPIENTS}")
    for addr in addrs:
        if not is_address(addr):
            raise ValueError(f"not a mail address: {addr!r}")
    if not subject.strip() or len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise ValueError(f"subject: expected one line of 1..{MAX_SUBJECT} characters")
    if not body.strip():
        raise ValueError("empty mail body")
    if not dedupe_key:
        raise ValueError("dedupe_key is required (e.g. 'report:daily:dongnai:2026-12-06')")
    if sum(len(a.data) for a in attachments) > MAX_ATTACHMENT_BYTES:
        raise ValueError(f"attachments larger than {MAX_ATTACHMENT_BYTES} bytes")
    for a in attachments:
        if not a.filename or "/" in a.filename or "\n" in a.filename:
            raise ValueError(f"attachment name {a.filename!r}: expected a plain file name")
    return addrs


def enqueue(conn: sa.Connection | Session, *, tenant: str, to: Sequence[str], subject: str,
            body: str, purpose: str, dedupe_key: str,
            attachments: Sequence[Attachment] = (),
            now: dt.datetime | None = None) -> int | None:
    """Queue one mail in the caller's transaction; its id, or None if dedupe_key exists."""
    if isinstance(conn, Session):
        conn = conn.connection()
    addrs = _check(to, subject, body, attachments, dedupe_key)
    now = now or utcnow()
    # ON CONFLICT DO NOTHING, not a caught IntegrityError: on PostgreSQL an error would abort
    # the caller's whole transaction.
    stmt = _insert(conn).values(
        tenant=tenant, to_addrs=json.dumps(addrs), subject=subject, body=body,
        purpose=purpose, dedupe_key=dedupe_key, status="queued", attempts=0,
        next_attempt_at=now, created_at=now,
    ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(_TABLE.c.id)
    new_id = conn.execute(stmt).scalar_one_or_none()
    if new_id is None:
        return None
    if attachments:
        conn.execute(sa.insert(_FILES), [
            {"mail_id": new_id, "position": i, "filename": a.filename,
             "content_type": a.content_type, "data": a.data}
            for i, a in enumerate(attachments)])
    return int(new_id)


class MailOutbox:
    """The mail outbox in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef | sa.Engine):
        if isinstance(database, sa.Engine):
            self.engine, self._owns_engine = database, False
        else:
            self.engine, self._owns_engine = engine_for(database)
        self._write_lock = (threading.Lock() if self.engine.dialect.name == "sqlite"
                            else contextlib.nullcontext())

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    # -- writing ---------------------------------------------------------------------------
    def enqueue(self, tenant: str, to: str | Sequence[str], subject: str, body: str,
                attachments: Sequence[Attachment] = (), *, purpose: str, dedupe_key: str,
                now: dt.datetime | None = None) -> int | None:
        """`enqueue` in a transaction of its own: the new id, or None if the key exists.
        One address (a unit's chase e-mail, ``tickets.service.MailSender``) or several."""
        if isinstance(to, str):
            to = [to]
        with self._writing() as conn:
            return enqueue(conn, tenant=tenant, to=to, subject=subject, body=body,
                           purpose=purpose, dedupe_key=dedupe_key, attachments=attachments,
                           now=now)

    def claim_due(self, now: dt.datetime, limit: int,
                  ids: Sequence[int] | None = None) -> list[OutboxMail]:
        """Take up to `limit` due mails (of `ids` only, if given) for sending (status
        "sending", attempts + 1)."""
        if limit <= 0:
            return []
        only = [_TABLE.c.id.in_(list(ids))] if ids is not None else []
        with self._writing() as conn:
            rows = outbox.claim_due(conn, _TABLE, now, limit, uuid.uuid4().hex, *only)
        return sorted((_mail(r) for r in rows), key=lambda m: (m.next_attempt_at, m.id))

    def _mark(self, mail_id: int, token: str, **values: Any) -> bool:
        with self._writing() as conn:
            return outbox.mark_claimed(conn, _TABLE, mail_id, token, **values)

    def mark_sent(self, mail_id: int, claim_token: str, now: dt.datetime) -> bool:
        """The server took it; False if the claim was lost meanwhile."""
        return self._mark(mail_id, claim_token, status="sent", sent_at=now, claim_token=None,
                          last_error=None)

    def mark_retry(self, mail_id: int, claim_token: str, now: dt.datetime,
                   backoff: dt.timedelta, error: str) -> bool:
        """Not taken (server down, busy, 4xx): queued again, due after `backoff`."""
        return self._mark(mail_id, claim_token, status="queued", next_attempt_at=now + backoff,
                          claim_token=None, last_error=error[:1000])

    def mark_failed(self, mail_id: int, claim_token: str, error: str) -> bool:
        """Refused for good: failed, not retried."""
        return self._mark(mail_id, claim_token, status="failed", claim_token=None,
                          last_error=error[:1000])

    def release(self, mail_ids: list[int], claim_token: str) -> int:
        """Give claimed mails back unsent (the dispatcher is stopping)."""
        with self._writing() as conn:
            return outbox.release(conn, _TABLE, mail_ids, claim_token)

    def requeue_stuck(self, now: dt.datetime, older_than: dt.timedelta) -> int:
        """Mails "sending" for longer than `older_than` (their dispatcher died) are queued."""
        with self._writing() as conn:
            return outbox.requeue_stuck(conn, _TABLE, now, older_than)

    # -- reading ---------------------------------------------------------------------------
    def get(self, mail_id: int) -> OutboxMail | None:
        """The mail with this id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == mail_id)).first()
        return None if row is None else _mail(row)

    def by_dedupe_key(self, dedupe_key: str) -> OutboxMail | None:
        """The mail queued under this key, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(_TABLE).where(_TABLE.c.dedupe_key == dedupe_key)).first()
        return None if row is None else _mail(row)

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these dedupe keys are in the outbox already."""
        if not keys:
            return set()
        with self.engine.connect() as conn:
            return {str(k) for k in conn.execute(
                sa.select(_TABLE.c.dedupe_key).where(_TABLE.c.dedupe_key.in_(list(keys))))
                .scalars()}

    def attachments(self, mail_id: int) -> list[Attachment]:
        """The mail's files, in order."""
        f = _FILES.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(f.filename, f.content_type, f.data)
                                .where(f.mail_id == mail_id).order_by(f.position)).all()
        return [Attachment(r.filename, r.content_type, bytes(r.data)) for r in rows]

    def recent(self, status: str | None = None, limit: int = 50,
               tenant: str | None = None) -> list[OutboxMail]:
        """The newest mails first, optionally of one status and tenant."""
        with self.engine.connect() as conn:
            return [_mail(r) for r in conn.execute(outbox.recent(_TABLE, status, limit, tenant))]

    def counts(self) -> dict[str, int]:
        """How many mails are in each status (statuses with none are left out)."""
        with self.engine.connect() as conn:
            return outbox.counts(conn, _TABLE)

    def close(self) -> None:
        """Close the pool's connections (when the outbox made its own engine)."""
        if self._owns_engine:
            self.engine.dispose()
