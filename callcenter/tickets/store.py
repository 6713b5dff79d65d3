"""Petition tickets in SQL: tickets, their call links, audit log, attachments, code sequences.

Synchronous SQLAlchemy Core, like the other stores; ``callcenter.tickets.service`` drives it
(and owns the rules). Functions here take a Connection so that one ticket change, its audit
entries, its call links and its SMS (``callcenter.sms.store.enqueue``) commit together.

Tables (migration ``callcenter/store/migrations/versions/0004_tickets.py``):

* ``tickets``: every field of ``callcenter.tickets.rules.Ticket`` except ``call_ids``, plus
  the scheduling columns the deadline job reads (``remind_at``, ``chase_at``; ``late_at`` and
  ``forward_late_at``: when the job found a clock run out, reset when the due time moves) and
  ``version`` for optimistic locking (``update_ticket`` writes only ``WHERE version = old``).
* ``ticket_calls``: ticket code <-> call record id, both ways (no foreign key to
  ``call_records``: a ticket is often linked while its call is still up, and call records
  reach the database later, through the journal).
* ``ticket_units``: every unit that has held a ticket (a unit's users may read what they held).
  What a unit oversees (``oversees`` in the config) is no table: ``overseen`` turns the
  tenant's scopes into a WHERE clause on ``field``, ``district`` and ``commune``.
* ``ticket_audit``: append-only (triggers refuse UPDATE and DELETE on both backends).
* ``ticket_attachments``: reply documents and other files, content-addressed on disk.
* ``ticket_sequences``: the last code sequence number per tenant and local day.
* ``ticket_surveys`` (migration ``0016_survey``): one row per resolve SMS that asked the
  satisfaction question, with the citizen's answer once it comes; ``ticket_survey_replies``:
  every SMS a citizen sent back (Kannel's MO), unique by Kannel's message id, with what it
  meant (``callcenter.tickets.survey``).

Code allocation is one statement, ``INSERT .. ON CONFLICT (tenant, day) DO UPDATE SET
last_seq = last_seq + n RETURNING last_seq`` (``allocate_seq``): atomic on both backends (a row
lock on PostgreSQL; SQLite has one writer at a time, and the service begins its SQLite write
transactions with BEGIN IMMEDIATE), so two openings never get the same number. Run in the
opening's transaction (SQLite), a failed opening gives its number back; the service runs it in
a short transaction of its own on PostgreSQL (see ``TicketService._reserve``: openings then
do not queue behind each other's commits; a failure leaves a gap, never a duplicate).

SQLite connections made by ``make_ticket_engine`` run with ``synchronous=FULL`` (every commit
fsyncs the WAL: a committed ticket survives a power cut) and enforce foreign keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.data import ID_MAX_LENGTH
from callcenter.store.database import make_engine
from callcenter.store.models import Base, CallRecord, UTCDateTime
from callcenter.store.urls import sqlite_file
from callcenter.tickets.rules import (
    OPEN,
    Actor,
    AuditEntry,
    OversightScope,
    Ticket,
    TicketState,
)
from callcenter.tickets.survey import OUTCOMES, SurveyAsk

STATES: tuple[str, ...] = tuple(s.value for s in TicketState)
OPEN_STATES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN))
CODE_LENGTH = 32


class TicketRow(Base):
    """One petition (see ``callcenter.tickets.rules.Ticket``)."""

    __tablename__ = "tickets"
    __table_args__ = (
        sa.CheckConstraint(sa.column("state").in_(STATES), name="state"),
        sa.Index("ix_tickets_tenant_received", "tenant", "received_at"),
        sa.Index("ix_tickets_unit_state", "unit", "state"),
        sa.Index("ix_tickets_state_resolve_due", "state", "resolve_due"),
        sa.Index("ix_tickets_citizen_phone", "citizen_phone"),
        sa.Index("ix_tickets_state_chase_at", "state", "chase_at"),
    )

    code: Mapped[str] = mapped_column(sa.String(CODE_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(32))
    channel: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(sa.Text)
    field: Mapped[str] = mapped_column(sa.String(32))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(sa.String(16))
    citizen_name: Mapped[str | None] = mapped_column(sa.String(200))
    citizen_phone: Mapped[str | None] = mapped_column(sa.String(16))  # national form
    district: Mapped[str | None] = mapped_column(sa.String(64))
    commune: Mapped[str | None] = mapped_column(sa.String(64))
    urgent: Mapped[bool] = mapped_column(sa.Boolean)
    unit: Mapped[str | None] = mapped_column(sa.String(32))
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    returned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    forward_due: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolve_due: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    remind_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    chase_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # next chase slot
    chased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    late_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    forward_late_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(sa.Text)
    reply_document: Mapped[str | None] = mapped_column(sa.String(64))
    faq_item: Mapped[str | None] = mapped_column(sa.String(128))
    returned_by: Mapped[str | None] = mapped_column(sa.String(32))
    return_reason: Mapped[str | None] = mapped_column(sa.Text)
    reopen_reason: Mapped[str | None] = mapped_column(sa.Text)
    close_reason: Mapped[str | None] = mapped_column(sa.Text)
    publishable: Mapped[bool] = mapped_column(sa.Boolean)
    # Disclosure review: what the public reads (edited), or why it was declined.
    public_question: Mapped[str | None] = mapped_column(sa.Text)
    public_answer: Mapped[str | None] = mapped_column(sa.Text)
    decline_reason: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TicketCall(Base):
    """A call record the ticket came from (or a later call about it)."""

    __tablename__ = "ticket_calls"
    __table_args__ = (sa.Index("ix_ticket_calls_call_id", "call_id"),)

    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), primary_key=True)
    call_id: Mapped[str] = mapped_column(sa.String(ID_MAX_LENGTH), primary_key=True)
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TicketUnit(Base):
    """A unit that has held the ticket (its users may still read it)."""

    __tablename__ = "ticket_units"
    __table_args__ = (sa.Index("ix_ticket_units_unit", "unit"),)

    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), primary_key=True)
    unit: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TicketTransfer(Base):
    """A call about the ticket transferred to a unit that answered (``rules.TransferCall``):
    the unit's users may read the ticket; its console lists the recent ones."""

    __tablename__ = "ticket_transfers"
    __table_args__ = (sa.Index("ix_ticket_transfers_unit_at", "unit", "at"),)

    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), primary_key=True)
    unit: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(sa.String(ID_MAX_LENGTH), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TicketAuditRow(Base):
    """One audit entry; never updated or deleted (triggers in the migration refuse it)."""

    __tablename__ = "ticket_audit"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), index=True)
    actor_id: Mapped[str] = mapped_column(sa.String(64))
    actor_role: Mapped[str] = mapped_column(sa.String(16))
    actor_unit: Mapped[str | None] = mapped_column(sa.String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(sa.String(32))
    from_state: Mapped[str | None] = mapped_column(sa.String(16))
    to_state: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.Text)


class TicketAttachmentRow(Base):
    """A file attached to a ticket; the bytes live under the service's files folder."""

    __tablename__ = "ticket_attachments"
    __table_args__ = (sa.UniqueConstraint("code", "sha256",
                                          name="uq_ticket_attachments_code_sha256"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), index=True)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int] = mapped_column(sa.Integer)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    stored_path: Mapped[str] = mapped_column(sa.String(300))  # relative to the files folder
    uploaded_by: Mapped[str] = mapped_column(sa.String(120))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TicketSequence(Base):
    """The last code sequence number given out per tenant and local day."""

    __tablename__ = "ticket_sequences"

    tenant: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.Integer)


class TicketSurveyRow(Base):
    """A resolve SMS that asked the satisfaction question, and the citizen's answer."""

    __tablename__ = "ticket_surveys"
    __table_args__ = (
        sa.UniqueConstraint("code", "asked_at", name="uq_ticket_surveys_code_asked_at"),
        sa.CheckConstraint(sa.column("answer").in_(("satisfied", "not_resolved")),
                           name="answer"),
        sa.Index("ix_ticket_surveys_phone_asked_at", "phone", "asked_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), index=True)
    tenant: Mapped[str] = mapped_column(sa.String(32))
    unit: Mapped[str | None] = mapped_column(sa.String(32))  # the unit that resolved it
    phone: Mapped[str] = mapped_column(sa.String(16))  # national form
    asked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    answer: Mapped[str | None] = mapped_column(sa.String(16))
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class TicketSurveyReplyRow(Base):
    """An SMS a citizen sent to the hotline's number, and what it meant."""

    __tablename__ = "ticket_survey_replies"
    __table_args__ = (
        sa.UniqueConstraint("message_id", name="uq_ticket_survey_replies_message_id"),
        sa.CheckConstraint(sa.column("outcome").in_(OUTCOMES), name="outcome"),
        sa.Index("ix_ticket_survey_replies_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str | None] = mapped_column(sa.String(64))  # Kannel's (a UUID)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    from_number: Mapped[str] = mapped_column(sa.String(32))
    to_number: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    code: Mapped[str | None] = mapped_column(sa.String(CODE_LENGTH))  # the ticket it concerns
    survey_id: Mapped[int | None] = mapped_column(sa.Integer)


TICKETS = cast(sa.Table, TicketRow.__table__)
CALLS = cast(sa.Table, TicketCall.__table__)
UNITS = cast(sa.Table, TicketUnit.__table__)
TRANSFERS = cast(sa.Table, TicketTransfer.__table__)
AUDIT = cast(sa.Table, TicketAuditRow.__table__)
ATTACHMENTS = cast(sa.Table, TicketAttachmentRow.__table__)
SEQUENCES = cast(sa.Table, TicketSequence.__table__)
SURVEYS = cast(sa.Table, TicketSurveyRow.__table__)
REPLIES = cast(sa.Table, TicketSurveyReplyRow.__table__)

# Ticket fields stored as columns of the same name (all but code-level extras and call_ids).
_TICKET_FIELDS: tuple[str, ...] = (
    "code", "tenant", "channel", "content", "field", "received_at", "state", "citizen_name",
    "citizen_phone", "district", "commune", "urgent", "unit", "forwarded_at", "accepted_at",
    "resolved_at", "closed_at", "returned_at", "reopened_at", "forward_due", "resolve_due",
    "reminded_at", "chased_at", "escalated_at", "result", "reply_document", "faq_item",
    "returned_by", "return_reason", "reopen_reason", "close_reason", "publishable",
    "public_question", "public_answer", "decline_reason", "version",
)
_MUTABLE_FIELDS = tuple(f for f in _TICKET_FIELDS if f not in ("code", "tenant", "channel",
                                                                "received_at"))


@dataclass(frozen=True)
class StoredTicket:
    """A ticket as stored: the domain ticket and the deadline job's columns."""

    ticket: Ticket
    remind_at: dt.datetime | None
    late_at: dt.datetime | None
    forward_late_at: dt.datetime | None
    updated_at: dt.datetime
    chase_at: dt.datetime | None = None  # when the unit is next due a chase (deadlines)


@dataclass(frozen=True)
class Attachment:
    """A file attached to a ticket (a reply document, a scan the citizen sent ...)."""

    id: int
    code: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    stored_path: str  # relative to the service's files folder: <tenant>/<sha[:2]>/<sha>
    uploaded_by: str  # the actor, as "role:user@unit"
    uploaded_at: dt.datetime

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (the stored path is internal and left out)."""
        return {"id": self.id, "code": self.code, "file_name": self.file_name,
                "content_type": self.content_type, "size": self.size, "sha256": self.sha256,
                "uploaded_by": self.uploaded_by,
                "uploaded_at": self.uploaded_at.isoformat()}


# ---- engine and transactions ---------------------------------------------------------------
def make_ticket_engine(database_url: str) -> sa.Engine:
    """``make_engine`` plus, on SQLite: synchronous=FULL, foreign keys, our own BEGIN.

    pysqlite's legacy transaction handling begins a transaction only at the first write, so a
    read-then-write transaction can fail at once with "database is locked" when another
    connection wrote meanwhile. Here every transaction begins explicitly: ``BEGIN IMMEDIATE``
    for connections marked ``execution_options(ticket_write=True)`` (the write lock is taken
    first, waiting up to the busy timeout), plain ``BEGIN`` for readers (a consistent snapshot
    in WAL mode, never blocking the writer).
    """
    engine = make_engine(database_url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see make_ticket_engine)
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: durable
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get("ticket_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class TicketDatabase:
    """The engine and transaction helpers the ticket service and reports share."""

    def __init__(self, database: str | sa.Engine):
        self.engine = make_ticket_engine(database) if isinstance(database, str) else database
        self._owns_engine = isinstance(database, str)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_file_sqlite = self.is_sqlite and sqlite_file(self.engine.url) is not None
        # SQLite has one writer: this process's threads queue here, in order, instead of
        # sleeping in SQLite's busy handler (other processes still wait on the busy timeout).
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext())

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """One write transaction: committed when the block ends, rolled back on an error."""
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(ticket_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read-only connection (a snapshot on SQLite; rolled back at the end)."""
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        """Close the pool's connections (when this object made the engine)."""
        if self._owns_engine:
            self.engine.dispose()


def _upsert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"tickets on {conn.dialect.name}")


# ---- codes ----------------------------------------------------------------------------------
def _allocate_statement(dialect: str) -> Any:
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"tickets on {dialect}")
    ins = insert(SEQUENCES)
    return ins.values(tenant=sa.bindparam("b_tenant"), day=sa.bindparam("b_day"),
                      last_seq=sa.bindparam("b_n")).on_conflict_do_update(
        index_elements=["tenant", "day"],
        set_={"last_seq": SEQUENCES.c.last_seq + ins.excluded.last_seq},
    ).returning(SEQUENCES.c.last_seq)


# Built once per backend: opening a ticket runs it every time (building it cost more than
# running it).
_ALLOCATE = {name: _allocate_statement(name) for name in ("postgresql", "sqlite")}


def allocate_seq(conn: sa.Connection, tenant: str, day: dt.date, n: int = 1) -> int:
    """Reserve ``n`` consecutive sequence numbers for (tenant, day); the first of them."""
    if n < 1:
        raise ValueError("allocate at least one sequence number")
    stmt = _ALLOCATE.get(conn.dialect.name)
    if stmt is None:
        raise NotImplementedError(f"tickets on {conn.dialect.name}")
    last = int(conn.execute(stmt, {"b_tenant": tenant, "b_day": day, "b_n": n}).scalar_one())
    return last - n + 1


# ---- rows <-> tickets -----------------------------------------------------------------------
def ticket_values(ticket: Ticket) -> dict[str, Any]:
    """The ``tickets`` columns of a domain ticket."""
    values = {name: getattr(ticket, name) for name in _TICKET_FIELDS}
    values["state"] = ticket.state.value
    return values


def _ticket(row: Any, call_ids: Sequence[str]) -> Ticket:
    values = {name: getattr(row, name) for name in _TICKET_FIELDS}
    values["state"] = TicketState(values["state"])
    values["urgent"] = bool(values["urgent"])
    values["publishable"] = bool(values["publishable"])
    return Ticket(call_ids=tuple(call_ids), **values)


def _stored(row: Any, call_ids: Sequence[str]) -> StoredTicket:
    return StoredTicket(_ticket(row, call_ids), row.remind_at, row.late_at,
                        row.forward_late_at, row.updated_at, row.chase_at)


def calls_by_code(conn: sa.Connection, codes: Sequence[str]) -> dict[str, list[str]]:
    """The call ids linked to each of ``codes`` (in link order)."""
    found: dict[str, list[str]] = {c: [] for c in codes}
    if not codes:
        return found
    c = CALLS.c
    for start in range(0, len(codes), 500):
        chunk = list(codes[start:start + 500])
        q = (sa.select(c.code, c.call_id).where(c.code.in_(chunk))
             .order_by(c.code, c.linked_at, c.call_id))
        for code, call_id in conn.execute(q):
            found[code].append(call_id)
    return found


def call_arrivals(conn: sa.Connection, tenant: str,
                  call_ids: Collection[str]) -> dict[str, dt.datetime]:
    """When each of these call records of ``tenant`` arrived; ids without a record are absent
    (the call is still up, or its record is still in the journal)."""
    table = cast(sa.Table, CallRecord.__table__)
    ids = sorted(call_ids)
    found: dict[str, dt.datetime] = {}
    for start in range(0, len(ids), 500):
        q = (sa.select(table.c.id, table.c.arrived_at)
             .where(table.c.id.in_(ids[start:start + 500]), table.c.tenant == tenant))
        found.update((cid, arrived) for cid, arrived in conn.execute(q))
    return found


def load(conn: sa.Connection, code: str, *, for_update: bool = False) -> StoredTicket | None:
    """The stored ticket with this code, or None (``for_update``: row-locked on PostgreSQL)."""
    q = sa.select(TICKETS).where(TICKETS.c.code == code)
    if for_update:
        q = q.with_for_update()  # nothing on SQLite: the write transaction already excludes
    row = conn.execute(q).first()
    if row is None:
        return None
    return _stored(row, calls_by_code(conn, [code])[code])


def tickets_from(conn: sa.Connection, query: sa.Select[Any]) -> list[StoredTicket]:
    """Run a SELECT of ``tickets`` rows; the stored tickets with their call links."""
    rows = conn.execute(query).all()
    calls = calls_by_code(conn, [r.code for r in rows])
    return [_stored(r, calls[r.code]) for r in rows]


# ---- writing --------------------------------------------------------------------------------
_COPY_FROM_ROWS = 16  # PostgreSQL: COPY from this many rows on, plain INSERTs below


def _bulk_insert(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                 rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert positional rows already in the driver's form (see ``_to_driver``).

    Opening tickets in bulk (intake, imports, P6) spent most of its time in SQLAlchemy's
    per-value bind processing; the driver takes these values as they are. SQLite: one
    executemany of a prepared statement. PostgreSQL: COPY for a batch (about a fifth cheaper
    for the server than as many INSERTs, measured with two writers on two CPUs), executemany
    (psycopg pipelines it) for a few rows; both inside the caller's transaction.
    """
    if not rows:
        return
    q = conn.dialect.identifier_preparer.quote
    names = ", ".join(q(c) for c in columns)
    # Identifiers come from our own table metadata, values are bound or copied as data.
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM_ROWS:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {q(table.name)} ({names}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        return
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    marks = ", ".join([mark] * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {q(table.name)} ({names}) VALUES ({marks})",  # noqa: S608
                         list(rows))


def _to_driver(conn: sa.Connection) -> tuple[Any, Any]:
    """(time, bool) converters to what ``UTCDateTime``/``Boolean`` would bind on this backend."""
    if conn.dialect.name == "sqlite":
        def sqlite_time(v: dt.datetime | None) -> str | None:
            # SQLAlchemy's SQLite DATETIME form of the naive UTC time UTCDateTime stores.
            return (None if v is None else
                    _utc(v).replace(tzinfo=None).isoformat(" ", "microseconds"))
        return sqlite_time, int

    def pg_time(v: dt.datetime | None) -> dt.datetime | None:
        return None if v is None else _utc(v)
    return pg_time, bool


def _utc(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"naive datetime {v!r}: give an aware (UTC) time")
    return v.astimezone(dt.UTC)


_INSERT_COLUMNS = (*_TICKET_FIELDS, "remind_at", "late_at", "forward_late_at", "updated_at")
_TIME_COLUMNS = frozenset(c.name for c in TicketRow.__table__.columns
                          if isinstance(c.type, UTCDateTime))
_BOOL_COLUMNS = frozenset({"urgent", "publishable"})


def insert_tickets(conn: sa.Connection, items: Sequence[tuple[Ticket, dt.datetime | None]],
                   now: dt.datetime) -> None:
    """Insert new tickets, each with its ``remind_at`` (and their call links)."""
    if not items:
        return
    time, boolean = _to_driver(conn)
    kinds = [("t" if c in _TIME_COLUMNS else "b" if c in _BOOL_COLUMNS else "")
             for c in _INSERT_COLUMNS]
    stamp = time(now)
    rows = []
    links = []
    for ticket, remind_at in items:
        values = ticket_values(ticket)
        values.update(remind_at=remind_at, late_at=None, forward_late_at=None)
        row = [time(values[c]) if k == "t" else boolean(values[c]) if k == "b" else values[c]
               for c, k in zip(_INSERT_COLUMNS[:-1], kinds[:-1], strict=True)]
        row.append(stamp)
        rows.append(tuple(row))
        links += [(ticket.code, cid, stamp) for cid in ticket.call_ids]
    _bulk_insert(conn, TICKETS, _INSERT_COLUMNS, rows)
    _bulk_insert(conn, CALLS, ("code", "call_id", "linked_at"), links)


def update_ticket(conn: sa.Connection, old: StoredTicket, new: Ticket,
                  remind_at: dt.datetime | None, now: dt.datetime, *,
                  chase_at: dt.datetime | None = None) -> bool:
    """Write ``new`` over ``old``; False if the row's version is no longer ``old``'s."""
    values = {k: v for k, v in ticket_values(new).items() if k in _MUTABLE_FIELDS}
    values.update(remind_at=remind_at, chase_at=chase_at, updated_at=now)
    # A clock that moved (reopened, reclassified, forwarded under a from-forwarded rule) may
    # run out again: the job marks it anew.
    if new.resolve_due != old.ticket.resolve_due:
        values["late_at"] = None
    if new.forward_due != old.ticket.forward_due:
        values["forward_late_at"] = None
    t = TICKETS.c
    done = conn.execute(sa.update(TICKETS)
                        .where(t.code == new.code, t.version == old.ticket.version)
                        .values(**values))
    if done.rowcount != 1:
        return False
    added = [cid for cid in new.call_ids if cid not in old.ticket.call_ids]
    if added:
        link_calls(conn, new.code, added, now)
    return True


def link_calls(conn: sa.Connection, code: str, call_ids: Iterable[str],
               now: dt.datetime) -> None:
    """Link call records to a ticket (a link that exists already is kept as it was)."""
    rows = [{"code": code, "call_id": cid, "linked_at": now} for cid in call_ids]
    if rows:
        conn.execute(_upsert(conn, CALLS).on_conflict_do_nothing(
            index_elements=["code", "call_id"]), rows)


def add_holders(conn: sa.Connection, rows: Sequence[tuple[str, str]],
                now: dt.datetime) -> None:
    """Record that these units held these tickets: (code, unit) pairs."""
    if rows:
        conn.execute(_upsert(conn, UNITS).on_conflict_do_nothing(
            index_elements=["code", "unit"]),
            [{"code": code, "unit": unit, "first_at": now} for code, unit in rows])


def overseen(scopes: Mapping[str, OversightScope]) -> sa.ColumnElement[bool] | None:
    """Tickets some tenant's scope covers (``OversightScope.covers`` in SQL); None: none.

    Per tenant, because unit ids (and so what a unit oversees) are only unique within one.
    """
    t = TICKETS.c
    parts: list[sa.ColumnElement[bool]] = []
    for tenant, scope in sorted(scopes.items()):
        if not scope:
            continue
        which: list[sa.ColumnElement[bool]] = []
        if scope.fields:
            which.append(t.field.in_(sorted(scope.fields)))
        if scope.districts:
            which.append(t.district.in_(sorted(scope.districts)))
        if scope.communes:
            which.append(t.commune.in_(sorted(scope.communes)))
        parts.append(sa.and_(t.tenant == tenant, sa.or_(*which)))
    return sa.or_(*parts) if parts else None


def held_by(unit: str) -> sa.ColumnElement[bool]:
    """Tickets ``unit`` holds or has held."""
    held = sa.select(UNITS.c.code).where(UNITS.c.unit == unit)
    return sa.or_(TICKETS.c.unit == unit, TICKETS.c.code.in_(held))


def has_held(conn: sa.Connection, code: str, unit: str) -> bool:
    """True if ``unit`` holds or has held the ticket."""
    u = UNITS.c
    return conn.execute(sa.select(sa.literal(1)).where(u.code == code, u.unit == unit)
                        ).first() is not None


def has_transfer(conn: sa.Connection, code: str, unit: str, call_id: str | None = None) -> bool:
    """True if a call (``call_id``, or any) about the ticket was transferred to ``unit``."""
    x = TRANSFERS.c
    where = [x.code == code, x.unit == unit]
    if call_id is not None:
        where.append(x.call_id == call_id)
    return conn.execute(sa.select(sa.literal(1)).where(*where)).first() is not None


def add_transfer(conn: sa.Connection, code: str, unit: str, call_id: str,
                 at: dt.datetime) -> None:
    """Record a call about the ticket transferred to ``unit`` (once per call and unit)."""
    conn.execute(_upsert(conn, TRANSFERS).on_conflict_do_nothing(
        index_elements=["code", "unit", "call_id"]),
        [{"code": code, "unit": unit, "call_id": call_id, "at": at}])


def transfers_to(conn: sa.Connection, unit: str, tenant: str, since: dt.datetime,
                 limit: int) -> list[tuple[Ticket, str, dt.datetime]]:
    """The tenant's tickets with a call transferred to ``unit`` at ``since`` or later:
    (ticket, call record id, when), newest transfer first."""
    x = TRANSFERS.c
    q = (sa.select(x.code, x.call_id, x.at).join(TICKETS, TICKETS.c.code == x.code)
         .where(x.unit == unit, x.at >= since, TICKETS.c.tenant == tenant)
         .order_by(x.at.desc(), x.code.desc()).limit(limit))
    rows = conn.execute(q).all()
    tickets = {s.ticket.code: s.ticket for s in tickets_from(
        conn, sa.select(TICKETS).where(TICKETS.c.code.in_({r.code for r in rows})))}
    return [(tickets[r.code], r.call_id, r.at) for r in rows if r.code in tickets]


_AUDIT_COLUMNS = ("code", "actor_id", "actor_role", "actor_unit", "at", "event", "from_state",
                  "to_state", "detail")


def add_audit(conn: sa.Connection, entries: Sequence[AuditEntry]) -> None:
    """Append audit entries."""
    time, _ = _to_driver(conn)
    _bulk_insert(conn, AUDIT, _AUDIT_COLUMNS, [(
        e.code, e.actor.user_id, e.actor.role, e.actor.unit, time(e.at), e.event,
        e.from_state.value if e.from_state is not None else None, e.to_state.value, e.detail,
    ) for e in entries])


def audit_of(conn: sa.Connection, code: str) -> list[AuditEntry]:
    """A ticket's audit entries, oldest first."""
    a = AUDIT.c
    rows = conn.execute(sa.select(AUDIT).where(a.code == code).order_by(a.id)).all()
    return [AuditEntry(
        code=r.code, actor=Actor(r.actor_id, r.actor_role, r.actor_unit), at=r.at,
        event=r.event,
        from_state=TicketState(r.from_state) if r.from_state is not None else None,
        to_state=TicketState(r.to_state), detail=r.detail,
    ) for r in rows]


# ---- attachments ----------------------------------------------------------------------------
def _attachment(row: Any) -> Attachment:
    return Attachment(row.id, row.code, row.file_name, row.content_type, row.size, row.sha256,
                      row.stored_path, row.uploaded_by, row.uploaded_at)


def add_attachment(conn: sa.Connection, *, code: str, file_name: str, content_type: str,
                   size: int, sha256: str, stored_path: str, uploaded_by: str,
                   uploaded_at: dt.datetime) -> tuple[Attachment, bool]:
    """Record an attachment; (it, True) if new, (the one stored before, False) if the same
    bytes were attached to the ticket already."""
    new_id = conn.execute(_upsert(conn, ATTACHMENTS).values(
        code=code, file_name=file_name, content_type=content_type, size=size, sha256=sha256,
        stored_path=stored_path, uploaded_by=uploaded_by, uploaded_at=uploaded_at,
    ).on_conflict_do_nothing(index_elements=["code", "sha256"])
        .returning(ATTACHMENTS.c.id)).scalar_one_or_none()
    a = ATTACHMENTS.c
    row = conn.execute(sa.select(ATTACHMENTS).where(a.code == code, a.sha256 == sha256)).one()
    return _attachment(row), new_id is not None


def attachments_of(conn: sa.Connection, code: str) -> list[Attachment]:
    """A ticket's attachments, oldest first."""
    a = ATTACHMENTS.c
    return [_attachment(r) for r in
            conn.execute(sa.select(ATTACHMENTS).where(a.code == code).order_by(a.id))]


def find_attachment(conn: sa.Connection, code: str, ref: str) -> Attachment | None:
    """The ticket's attachment named by ``ref``: its id, or its sha256 (or a prefix of >= 8)."""
    a = ATTACHMENTS.c
    q = sa.select(ATTACHMENTS).where(a.code == code)
    if ref.isdigit() and len(ref) < 12:
        q = q.where(a.id == int(ref))
    elif len(ref) >= 8 and all(ch in "0123456789abcdef" for ch in ref.lower()):
        q = q.where(a.sha256.startswith(ref.lower(), autoescape=True))
    else:
        return None
    rows = conn.execute(q.limit(2)).all()
    return _attachment(rows[0]) if len(rows) == 1 else None


# ---- satisfaction survey --------------------------------------------------------------------
def add_survey_ask(conn: sa.Connection, *, code: str, tenant: str, unit: str | None,
                   phone: str, asked_at: dt.datetime, until: dt.datetime) -> None:
    """Record that a resolve SMS asked the question (once per ticket and notice time)."""
    conn.execute(_upsert(conn, SURVEYS).values(
        code=code, tenant=tenant, unit=unit, phone=phone, asked_at=asked_at, until=until,
    ).on_conflict_do_nothing(index_elements=["code", "asked_at"]))


def _ask(row: Any) -> SurveyAsk:
    return SurveyAsk(row.id, row.code, row.tenant, row.phone, row.asked_at, row.until,
                     row.answer)


def asks_of_phone(conn: sa.Connection, phone: str, since: dt.datetime) -> list[SurveyAsk]:
    """The asks sent to ``phone`` whose reply window ends at ``since`` or later."""
    s = SURVEYS.c
    rows = conn.execute(sa.select(SURVEYS).where(s.phone == phone, s.until >= since)
                        .order_by(s.asked_at, s.id)).all()
    return [_ask(r) for r in rows]


def asks_of(conn: sa.Connection, code: str) -> list[SurveyAsk]:
    """A ticket's asks, oldest first."""
    s = SURVEYS.c
    rows = conn.execute(sa.select(SURVEYS).where(s.code == code).order_by(s.asked_at, s.id))
    return [_ask(r) for r in rows]


def set_survey_answer(conn: sa.Connection, ask_id: int, answer: str, at: dt.datetime) -> bool:
    """Record the answer to an ask that has none yet; False if it had one (first one wins)."""
    s = SURVEYS.c
    done = conn.execute(sa.update(SURVEYS).where(s.id == ask_id, s.answer.is_(None))
                        .values(answer=answer, answered_at=at))
    return bool(done.rowcount == 1)


def add_reply(conn: sa.Connection, *, message_id: str | None, received_at: dt.datetime,
              from_number: str, to_number: str, text: str) -> int | None:
    """Record a received SMS (outcome "unrecognised" until judged); None if its message id
    was recorded before (Kannel delivered it again)."""
    stmt = _upsert(conn, REPLIES).values(
        message_id=message_id, received_at=received_at, from_number=from_number,
        to_number=to_number, text=text, outcome="unrecognised",
    ).on_conflict_do_nothing(index_elements=["message_id"]).returning(REPLIES.c.id)
    new_id = conn.execute(stmt).scalar_one_or_none()
    return None if new_id is None else int(new_id)


def judge_reply(conn: sa.Connection, reply_id: int, outcome: str, code: str | None,
                survey_id: int | None) -> None:
    """Write what a recorded reply meant."""
    conn.execute(sa.update(REPLIES).where(REPLIES.c.id == reply_id)
                 .values(outcome=outcome, code=code, survey_id=survey_id))


def reply_by_message_id(conn: sa.Connection, message_id: str) -> tuple[str, str | None] | None:
    """The outcome and ticket of the reply with this Kannel message id, or None."""
    r = REPLIES.c
    row = conn.execute(sa.select(r.outcome, r.code).where(r.message_id == message_id)).first()
    return None if row is None else (str(row.outcome), row.code)
