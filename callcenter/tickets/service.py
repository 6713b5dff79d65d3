"""The ticket service: the pure state machine (callcenter.tickets.rules) over the SQL store.

Synchronous and thread-safe: the app calls it from a thread (``asyncio.to_thread``); one
instance serves every request. Every change (a ticket, its audit entries, its call links, the
SMS it causes, its clocks) commits in ONE transaction, or not at all.

Public API (stable; the HTTP API in ``callcenter.console`` is built on it)::

    svc = TicketService(database_url, config, files_dir, *,
                        upload_limits=UploadLimits(), clock=utcnow, mail=None)
    # mail: a MailSender (e.g. the mail outbox) for the chase and escalation e-mails
    # config: Callable[[], HotlineConfig] (the app's LiveConfig); read at every call, so a
    # reloaded config (units, deadlines, SMS texts) applies to the next action.

    svc.open(tenant, actor, *, channel, content, field, place=None, citizen_name=None,
             citizen_phone=None, urgent=False, call_ids=(), publishable=None, at=None,
             answer=None, faq_item=None, live_arrivals=None) -> Ticket
        # at None: now. answer given: answered at level 1 from the FAQ, closed at once.
        # Opened from calls (call_ids): received when the earliest of them arrived, from its
        # call record, else from live_arrivals (record id -> arrival of a call still up, read
        # by the caller from the live state), else at.
    svc.open_many(tenant, actor, requests: Sequence[NewTicket]) -> list[Ticket]
        # one transaction for many (intake of web/e-mail forms, imports, the benchmark)
    svc.open_with_files(tenant, actor, request: NewTicket, files, *, receipt=False,
                        categories=None) -> tuple[Ticket, list[Attachment]]
        # one ticket, its files and (receipt) the citizen's receipt SMS in one transaction
        # (the public web form, callcenter.intake.webform)
    svc.act(code, actor, event, *, expected_version=None) -> Ticket
        # event: Answer | Forward | Accept | Resolve | Return | Close | Reopen | Reclassify
        #        | SetPublishable | Publish | Decline | Remind | LinkCall,
        #        with event.actor == actor.
        # Resolve.reply_document: an attachment of the ticket (its id or sha256); stored as
        # the attachment id.
    svc.get(code, actor) -> Ticket
    svc.list(actor, tenant=None, state=None, unit=None, late=None, field=None, since=None,
             until=None, limit=50, offset=0) -> list[Ticket]   # newest received first
        # state: a state (str or TicketState) or several; late: open and past resolve_due;
        # since/until: received_at bounds (aware), until exclusive; limit at most 1000.
    svc.count(actor, <same filters>) -> int                      # for paging
    svc.audit(code, actor) -> list[AuditEntry]                   # oldest first
    svc.access(code, actor) -> "all" | "holder" | "held" | "transferred" | "overseer"
    svc.oversight(actor, tenant, unit=None) -> OversightOverview
        # what a unit oversees: late tickets (most overdue first), counts by state and holder
    svc.attach(code, actor, file_name, content_type, data: bytes) -> Attachment
    svc.resolve_with_document(code, actor, resolve, file_name, content_type, data, *,
                              expected_version=None) -> Ticket
        # the reply document stored and the result recorded in one transaction (both or none)
    svc.attachments(code, actor) -> list[Attachment]
    svc.attachment_file(code, ref, actor) -> tuple[Attachment, Path]   # ref: id or sha256
    svc.open_for_caller(tenant, phone) -> list[Ticket]           # open tickets of a number
    svc.link_call(code, call_id, actor) -> Ticket
    svc.transfer_call(code, unit, call_id, actor) -> bool
        # a call about the ticket was transferred to ``unit``, which answered (TransferCall):
        # the unit may read the ticket; once per (call, unit): False the second time
    svc.transferred_to(actor, tenant, *, hours=24, limit=20) -> list[TransferredTicket]
        # a unit user's tickets whose calls were transferred to its unit lately, newest first
    svc.tickets_of_call(call_id) -> list[Ticket]
    svc.public_feed(tenant, field=None, unit=None, month=None, *, limit=200, offset=0)
        -> list[dict]    # month "YYYY-MM" (local); personal data redacted; reviewed texts
    svc.review_list(actor, tenant, status="pending", *, limit=50, offset=0) -> list[Ticket]
        # the disclosure review (supervisor, admin): pending, published or declined
    svc.sweep(now=None) -> SweepResult                           # the deadline job's work
    svc.policy(tenant) -> TicketPolicy
    svc.tenant(tenant) -> Tenant
    svc.reports -> TicketReports                                 # callcenter.tickets.reports
    svc.close()
    ticket_dict(ticket, now) -> dict                             # JSON view with clocks
    caller_number(phone) -> str                                  # the stored form of a number

Errors are ``TicketError`` with a stable ``id``: the domain's (``ticket.illegal_transition``
409, ``ticket.forbidden`` 403, ``ticket.unknown_*``, ``ticket.invalid_*``, ``ticket.bad_code``
...) and the service's own:

================================  =====================================================
``ticket.not_found``              no ticket with that code (404)
``ticket.conflict``               ``expected_version`` is not the ticket's version (409)
``ticket.unknown_tenant``         a tenant the config does not have (404)
``ticket.unknown_attachment``     a reply document that is not an attachment of the ticket
``ticket.upload_too_large``       an attachment over its category's ``upload_limits`` (413)
``ticket.upload_type``            an attachment that is no accepted document, photo or video
                                  (``callcenter.tickets.files``) (415)
================================  =====================================================

Visibility: a ``unit`` actor reads only tickets its unit holds or has held (``ticket_units``),
took a call about (``ticket_transfers``: read only, like an overseer's) or oversees
(``oversees`` in the config: ``rules.read_access``), anything else is
``ticket.forbidden``; other roles read every ticket. An overseer acts on none of the tickets
it only oversees (``ticket.forbidden`` in every state; ``access`` tells which it holds).
Actors carry no tenant: the HTTP layer, which knows a user's tenant, passes ``tenant=`` to
``list`` and checks ``ticket.tenant`` after ``get`` (unit ids are only unique within a tenant).

SMS: ``NotifyUnit`` and ``NotifyCitizen`` effects go to the outbox (``callcenter.sms.store``)
in the same transaction, dedupe key ``f"{code}:{template}:{at.isoformat()}"`` (plus
``f":{phone}"`` for a unit's focal persons), purpose ``unit_notice`` (forwarded),
``reminder``, ``resolve_notice``, ``web_receipt`` (``open_with_files`` with ``receipt``) or
``reopen_notice`` (the citizen answered "not resolved").
A text the outbox refuses (too many parts) does not undo the ticket's change: it is logged
and written to the audit log as ``sms_refused``. A resolve notice that asks the satisfaction
question (``tickets.survey``) is recorded in ``ticket_surveys`` with it; ``citizen_reply``
takes the citizen's answer (Kannel's MO, ``callcenter.tickets.replies``).

Chasing (``tickets.chasing``): ``sweep`` applies a versioned ``Chase`` event to each ticket
whose ``chase_at`` (next chase slot, ``deadlines.next_chase_at``) has come; its SMS keys are
``f"{code}:chase:{slot}:{phone}"`` and ``f"{code}:escalation:{slot}:{phone}"`` (purposes
``chase`` and ``escalation``), the same for every instance and sweep that finds the slot.
E-mails (``SendEmail`` effects) are recorded in the audit log (``email``) with the ticket's
change and handed to ``mail.enqueue`` after the commit (the outbox may share the database,
whose SQLite write lock the transaction holds); the dedupe key makes a retry harmless. Without
a ``mail`` sender they are audited as ``email_unsent``; a sender that raises is audited as
``email_failed`` and logged.

Audit events beyond the domain's: ``late`` and ``forward_late`` (the deadline job found a
clock run out), ``attach`` (a file was attached), ``sms_refused``, ``survey_reply`` (a
citizen's answer the ticket could no longer take: reopened meanwhile). They do not change the
ticket's version: a user's ``expected_version`` stays valid while the job works.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig, Tenant
from callcenter.numbers import mask_number, normalise_number, vietnamese_phone
from callcenter.sms.store import enqueue, month_bounds
from callcenter.store.data import ID_MAX_LENGTH
from callcenter.tickets import deadlines as dl
from callcenter.tickets import store as st
from callcenter.tickets.config import TicketPolicy, policy_of, ticket_tenant
from callcenter.tickets.files import DEFAULT_UPLOAD_LIMITS, UploadLimits, check_upload
from callcenter.tickets.redact import redact
from callcenter.tickets.rules import (
    AT_UNIT,
    LEVEL1,
    OPEN,
    Access,
    Actor,
    Answer,
    AuditEntry,
    Chase,
    Effect,
    Event,
    GrantTransferRead,
    LinkCall,
    NotifyCitizen,
    NotifyUnit,
    OversightScope,
    Remind,
    Reopen,
    Resolve,
    ReviewStatus,
    Satisfied,
    SendEmail,
    Ticket,
    TicketError,
    TicketState,
    TransferCall,
    apply,
    code_date,
    is_public,
    open_ticket,
    oversight_scope,
    parse_ticket_code,
    read_access,
    receipt_notice,
    review_status,
    ticket_code,
)
from callcenter.tickets.survey import MAX_REPLY_TEXT, REOPEN_REASON, match_reply

if TYPE_CHECKING:
    from callcenter.tickets.reports import TicketReports

log = logging.getLogger("callcenter.tickets")

SYSTEM = Actor("deadline-job", "system")
# The citizen answering the resolve SMS's question (tickets.survey): acts through the system.
CITIZEN_SMS = Actor("citizen-sms", "system")
MAX_LIST = 1000
SMS_PURPOSES = {"forwarded": "unit_notice", "reminder": "reminder", "resolved": "resolve_notice",
                "reopened": "reopen_notice",
                "chase": "chase", "escalation": "escalation", "web_receipt": "web_receipt"}
_S = TicketState


class MailSender(Protocol):
    """Where chase and escalation e-mails go (the mail outbox): queue one, at most once."""

    def enqueue(self, tenant: str, to: str, subject: str, body: str,
                attachments: Sequence[Any] = (), *, purpose: str, dedupe_key: str,
                now: dt.datetime) -> object:
        """Queue one e-mail; a second call with the same ``dedupe_key`` queues nothing."""
        ...


@dataclass(frozen=True)
class NewTicket:
    """One ticket to open with ``open_many`` (the keyword arguments of ``open``)."""

    channel: str
    content: str
    field: str
    place: str | None = None
    citizen_name: str | None = None
    citizen_phone: str | None = None
    urgent: bool = False
    call_ids: tuple[str, ...] = ()
    publishable: bool | None = None
    at: dt.datetime | None = None  # None: now
    answer: str | None = None  # answered at level 1 (FAQ): closed at once
    faq_item: str | None = None
    # Arrival of linked calls still up (record id -> arrival), read from the live state; a
    # call record in the store wins.
    live_arrivals: Mapping[str, dt.datetime] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ReplyResult:
    """What a citizen's SMS did: a survey outcome (tickets.survey.Outcome) or "duplicate"
    (this Kannel message was handled before), and the ticket it concerned."""

    outcome: str
    code: str | None = None
    reopened: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"outcome": self.outcome, "code": self.code, "reopened": self.reopened}


def _printable(text: str) -> str:
    """A citizen's text as stored: control characters (NUL: PostgreSQL refuses it) replaced."""
    return "".join("\ufffd" if ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) < 0xA0
                   else c for c in text[:MAX_REPLY_TEXT])


@dataclass(frozen=True)
class LateMark:
    """A ticket the deadline job found late (one log line each)."""

    code: str
    tenant: str
    unit: str | None
    clock: dl.ClockName
    due: dt.datetime
    days_late: int

    def __str__(self) -> str:
        holder = self.unit or "level 1"
        return (f"ticket {self.code} ({self.tenant}, {holder}) is late: {self.clock} deadline "
                f"{self.due.isoformat()} passed ({self.days_late} day(s) late)")


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did."""

    late: tuple[LateMark, ...] = ()  # resolve clock ran out (marked now)
    forward_late: tuple[LateMark, ...] = ()  # forward clock ran out (marked now)
    reminded: tuple[str, ...] = ()  # codes whose unit was reminded
    failed: tuple[str, ...] = ()  # "code: why" for reminders (or chases) that could not be sent
    chased: tuple[str, ...] = ()  # codes whose late unit was chased
    escalated: tuple[str, ...] = ()  # codes whose unit's head and province office were told


@dataclass(frozen=True)
class HolderCounts:
    """An overseen unit's share: its tickets by state and how many of them are late."""

    unit: str | None  # None: level 1 (not forwarded, or answered there)
    by_state: Mapping[str, int]
    late: int

    @property
    def total(self) -> int:
        """Every ticket of the holder in the scope."""
        return sum(self.by_state.values())


@dataclass(frozen=True)
class OversightOverview:
    """What an overseeing unit follows: late tickets first, then counts (``oversight``)."""

    tenant: str
    unit: str
    scope: OversightScope
    late: tuple[Ticket, ...]  # open and past resolve_due, the most overdue first
    late_total: int
    by_state: Mapping[str, int]  # every state, 0 included
    by_holder: tuple[HolderCounts, ...]  # most late first, then most tickets

    @property
    def total(self) -> int:
        """Every ticket in the scope."""
        return sum(self.by_state.values())


_T = TypeVar("_T")


@dataclass(frozen=True)
class TransferredTicket:
    """A ticket whose call was transferred to a unit (``TicketService.transferred_to``)."""

    ticket: Ticket
    call_id: str  # the call record id
    at: dt.datetime  # when the unit answered


def _recoded(obj: _T, code: str) -> _T:
    """A copy of a frozen ticket or effect with another code.

    ``dataclasses.replace`` re-runs ``__init__`` over the ticket's ~35 fields, which was a
    tenth of the cost of opening a ticket in bulk; these dataclasses have no ``__post_init__``
    and no slots, so copying their ``__dict__`` is the same object, 20 times faster.
    """
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    object.__setattr__(new, "code", code)
    return new


def _not_found(code: str) -> TicketError:
    return TicketError("ticket.not_found", f"no ticket {code}")


def _call_id(call_id: str) -> str:
    cid = (call_id or "").strip()
    if not cid or len(cid) > ID_MAX_LENGTH:
        raise TicketError("ticket.invalid_text",
                          f"call record id {call_id!r}: expected 1-{ID_MAX_LENGTH} characters")
    return cid


def caller_number(phone: str) -> str:
    """A caller's number as tickets store it: national form (+84/84/0, dots, spaces)."""
    n = normalise_number(phone or "")
    # Some trunks deliver the national number without its leading 0.
    if n.isdigit() and not n.startswith("0") and len(n) in (9, 10):
        fixed = vietnamese_phone("0" + n)
        if fixed is not None:
            return fixed
    return vietnamese_phone(n) or n


def _phone_pattern(national: str) -> re.Pattern[str]:
    """The citizen's own number in any common spelling (0.., +84.., 84..; dots, spaces)."""
    digits = national[1:]
    sep = r"[\s.\-]*"
    body = sep.join(re.escape(d) for d in digits)
    return re.compile(rf"(?:\+?\s*84|0){sep}(?:\(\s*)?{body}(?!\d)")


def scrub(text: str, citizen_name: str | None, citizen_phone: str | None) -> str:
    """Text for the public: ``redact`` with the citizen's name known, and their number gone."""
    out = redact(text, [citizen_name] if citizen_name else [])
    if citizen_phone and len(citizen_phone) >= 9:
        out = _phone_pattern(citizen_phone).sub("[số điện thoại]", out)
    return out


def ticket_dict(ticket: Ticket, now: dt.datetime) -> dict[str, Any]:
    """A ticket as plain JSON values, with its clocks at ``now`` (time left, late, days late)."""
    d: dict[str, Any] = {}
    for f in dataclasses.fields(ticket):
        v = getattr(ticket, f.name)
        if isinstance(v, dt.datetime):
            v = v.isoformat()
        elif isinstance(v, TicketState):
            v = v.value
        elif isinstance(v, tuple):
            v = list(v)
        d[f.name] = v
    left = dl.time_left(ticket, now)
    d["time_left_s"] = int(left.total_seconds()) if left is not None else None
    d["late"] = dl.is_late(ticket, now)
    d["days_late"] = dl.days_late(ticket, now)
    d["forward_late"] = dl.is_forward_late(ticket, now)
    d["open"] = ticket.state in OPEN
    d["review"] = review_status(ticket)
    return d


class TicketService:
    """Petition tickets: open, act on, read, attach, sweep deadlines. Blocking (see module)."""

    def __init__(self, database_url: str | sa.Engine, config: Callable[[], HotlineConfig],
                 files_dir: Path, *, upload_limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
                 clock: Callable[[], dt.datetime] = utcnow, mail: MailSender | None = None):
        self.db = st.TicketDatabase(database_url)
        self.mail = mail
        self.config = config
        self.files_dir = Path(files_dir)
        self.upload_limits = upload_limits
        self.clock = clock
        self._reports: TicketReports | None = None

    def close(self) -> None:
        """Close the database connections."""
        self.db.close()

    @property
    def reports(self) -> TicketReports:
        """Daily/weekly statistics, lists and the league table on the same database."""
        if self._reports is None:
            from callcenter.tickets.reports import TicketReports

            self._reports = TicketReports(self.db, self.config, clock=self.clock)
        return self._reports

    # -- config ----------------------------------------------------------------------------
    def tenant(self, tenant: str) -> Tenant:
        """The tenant's config; TicketError ``ticket.unknown_tenant``."""
        return ticket_tenant(self.config(), tenant)

    def policy(self, tenant: str) -> TicketPolicy:
        """The tenant's ticket policy (units, places, deadlines, SMS texts) as configured now."""
        return policy_of(self.tenant(tenant))

    def _now(self) -> dt.datetime:
        now = self.clock()
        dl.require_aware(now, "the service clock")
        return now.astimezone(dt.UTC)

    # -- opening ---------------------------------------------------------------------------
    def open(self, tenant: str, actor: Actor, *, channel: str, content: str, field: str,
             place: str | None = None, citizen_name: str | None = None,
             citizen_phone: str | None = None, urgent: bool = False,
             call_ids: Sequence[str] = (), publishable: bool | None = None,
             at: dt.datetime | None = None, answer: str | None = None,
             faq_item: str | None = None,
             live_arrivals: Mapping[str, dt.datetime] | None = None) -> Ticket:
        """Record a new ticket (answered and closed at once when ``answer`` is given)."""
        req = NewTicket(channel=channel, content=content, field=field, place=place,
                        citizen_name=citizen_name, citizen_phone=citizen_phone, urgent=urgent,
                        call_ids=tuple(call_ids), publishable=publishable, at=at,
                        answer=answer, faq_item=faq_item, live_arrivals=live_arrivals or {})
        return self.open_many(tenant, actor, [req])[0]

    def open_many(self, tenant: str, actor: Actor,
                  requests: Sequence[NewTicket]) -> builtins.list[Ticket]:
        """Record several tickets in one transaction (all or none); codes in request order.

        The tickets are built and checked first, under a provisional code; only then does the
        transaction take the day's sequence numbers (a row lock on PostgreSQL, held until
        commit), so other openings of the tenant wait for the inserts and the commit only.
        """
        if not requests:
            return []
        policy, now, built = self._build_openings(tenant, actor, requests)
        reserved = self._reserve_codes(tenant, built)
        with self.db.writing() as conn:
            opened, audit = self._insert_openings(conn, tenant, policy, built, reserved, now)
        self._log(audit)
        return opened

    def open_with_files(self, tenant: str, actor: Actor, request: NewTicket,
                        files: Sequence[tuple[str, str | None, bytes]], *,
                        receipt: bool = False,
                        categories: Collection[str] | None = None,
                        also: Callable[[sa.Connection, Ticket], None] | None = None,
                        ) -> tuple[Ticket, builtins.list[st.Attachment]]:
        """Open one ticket with the citizen's files (``(name, declared type, bytes)``) and,
        with ``receipt``, the citizen's receipt SMS (``sms.web_receipt``) — ONE transaction.

        Each file is checked as ``attach`` checks it (``ticket.upload_*``; ``categories``: only
        these, e.g. photos and videos) before anything is stored; the files are written first
        (a row never names a missing file) and removed again if the transaction fails.
        ``also(conn, ticket)`` runs last in the same transaction (e-mail in: its record of the
        message and the automatic reply in the mail outbox).
        """
        checked = []
        for name, declared, data in files:
            c = check_upload(name, declared, data, self.upload_limits)
            if categories is not None and c.kind.category not in categories:
                raise TicketError("ticket.upload_type",
                                  f"{c.file_name} is a {c.kind.category}; expected "
                                  f"{' or '.join(sorted(categories))}")
            checked.append((c, data, hashlib.sha256(data).hexdigest()))
        policy, now, built = self._build_openings(tenant, actor, [request])
        written: builtins.list[Path] = []
        try:
            rels = []
            for _, data, digest in checked:
                rel = Path(tenant) / digest[:2] / digest
                if self._write_file(self.files_dir / rel, data):
                    written.append(rel)
                rels.append(rel)
            reserved = self._reserve_codes(tenant, built)
            with self.db.writing() as conn:
                opened, audit = self._insert_openings(conn, tenant, policy, built, reserved,
                                                      now)
                ticket = opened[0]
                attachments = []
                for (c, data, digest), rel in zip(checked, rels, strict=True):
                    att, entry = self._add_attachment(conn, ticket, actor, c.file_name,
                                                      c.content_type, data, digest, rel, now)
                    attachments.append(att)
                    audit += [entry] if entry is not None else []
                notice = receipt_notice(policy, ticket, now) if receipt else None
                if notice is not None:
                    audit += self._carry_out(conn, tenant, [notice], now)
                if also is not None:
                    also(conn, ticket)
        except BaseException:
            for rel in written:
                self._drop_unused_file(rel)
            raise
        self._log(audit)
        return ticket, attachments

    def _build_openings(self, tenant: str, actor: Actor, requests: Sequence[NewTicket],
                        ) -> tuple[TicketPolicy, dt.datetime,
                                   builtins.list[tuple[dt.date, Ticket, builtins.list[Effect]]]]:
        """The tenant's policy, now, and each request's ticket (provisional code) and effects."""
        policy = self.policy(tenant)
        now = self._now()
        stored = self._call_arrivals(tenant, requests)
        built: builtins.list[tuple[dt.date, Ticket, builtins.list[Effect]]] = []
        for r in requests:
            at = r.at or now
            dl.require_aware(at, "the time of receipt")
            call_ids = tuple(_call_id(c) for c in r.call_ids)
            arrivals = [a for a in (stored.get(c) or r.live_arrivals.get(c) for c in call_ids)
                        if a is not None]
            day = code_date(dl.receipt_time(at, arrivals), policy.timezone)
            ticket, fx = open_ticket(
                policy, code=ticket_code(policy.code_prefix, day, 1), tenant=tenant,
                channel=r.channel, content=r.content, field=r.field, at=at, actor=actor,
                place=r.place, citizen_name=r.citizen_name, citizen_phone=r.citizen_phone,
                urgent=r.urgent, call_ids=call_ids, publishable=r.publishable,
                call_arrivals=arrivals)
            if r.answer is not None:
                ticket, more = apply(ticket, Answer(at, actor, r.answer, r.faq_item), policy)
                fx += more
            # Opening texts nobody: the provisional code appears in no rendered message.
            assert not any(isinstance(e, (NotifyUnit, NotifyCitizen)) for e in fx)
            built.append((day, ticket, fx))
        return policy, now, built

    @staticmethod
    def _days_needed(built: Sequence[tuple[dt.date, Ticket, Sequence[Effect]]],
                     ) -> dict[dt.date, int]:
        need: dict[dt.date, int] = {}
        for day, _, _ in built:
            need[day] = need.get(day, 0) + 1
        return need

    def _reserve_codes(self, tenant: str,
                       built: Sequence[tuple[dt.date, Ticket, Sequence[Effect]]],
                       ) -> dict[dt.date, int] | None:
        """PostgreSQL: the code numbers, taken before the opening's transaction (``_reserve``)."""
        return None if self.db.is_sqlite else self._reserve(tenant, self._days_needed(built))

    def _insert_openings(self, conn: sa.Connection, tenant: str, policy: TicketPolicy,
                         built: Sequence[tuple[dt.date, Ticket, Sequence[Effect]]],
                         reserved: dict[dt.date, int] | None, now: dt.datetime,
                         ) -> tuple[builtins.list[Ticket], builtins.list[AuditEntry]]:
        """Inside the caller's transaction: final codes, the tickets and their effects."""
        need = self._days_needed(built)
        next_seq = reserved or {d: st.allocate_seq(conn, tenant, d, need[d])
                                for d in sorted(need)}
        opened: builtins.list[Ticket] = []
        effects: builtins.list[Effect] = []
        for day, ticket, fx in built:
            code = ticket_code(policy.code_prefix, day, next_seq[day])
            next_seq[day] += 1
            opened.append(_recoded(ticket, code))
            effects += [_recoded(e, code) for e in fx]
        st.insert_tickets(conn, [(t, dl.reminder_at(policy, t)) for t in opened], now)
        return opened, self._carry_out(conn, tenant, effects, now)

    def _call_arrivals(self, tenant: str,
                       requests: Sequence[NewTicket]) -> dict[str, dt.datetime]:
        """Arrival times of the tenant's call records the requests name (one read, if any)."""
        ids = {_call_id(c) for r in requests for c in r.call_ids}
        if not ids:
            return {}
        with self.db.reading() as conn:
            return st.call_arrivals(conn, tenant, ids)

    def _reserve(self, tenant: str, need: dict[dt.date, int]) -> dict[dt.date, int]:
        """PostgreSQL: take code numbers in a short transaction of their own.

        Inside the opening's transaction the sequence row would stay locked until its commit,
        and every opening of the tenant's day would wait for the one before (with its inserts
        and its fsync). Here the lock lasts one statement. The commit is asynchronous
        (``synchronous_commit = off``), which is safe: the opening's own commit is synchronous
        and PostgreSQL's WAL is flushed in order, so once a ticket is durable the numbers it
        took are too; a crash before that may give the numbers out again, to tickets that
        were never stored. An opening that fails after this leaves a gap in the day's numbers,
        never a duplicate. (SQLite has one writer at a time: it allocates in the opening's
        transaction, without gaps.) Days in order, so two batches never wait on each other.
        """
        with self.db.writing() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return {d: st.allocate_seq(conn, tenant, d, need[d]) for d in sorted(need)}

    # -- acting ----------------------------------------------------------------------------
    def act(self, code: str, actor: Actor, event: Event, *,
            expected_version: int | None = None) -> Ticket:
        """Apply one domain event; persist the ticket, audit, SMS and clocks together."""
        event = self._own_event(actor, event)
        now = self._now()
        emails: builtins.list[SendEmail] = []
        with self.db.writing() as conn:
            new, audit = self._act_in(conn, code, actor, event, expected_version, now, emails)
        self._log(audit)
        self._send_emails(new, emails, now)
        return new

    def resolve_with_document(self, code: str, actor: Actor, event: Resolve, file_name: str,
                              content_type: str | None, data: bytes, *,
                              expected_version: int | None = None) -> Ticket:
        """Store the reply document and record the result in ONE transaction: both or neither.

        The file is written first (a row never names a missing file); if the transaction
        fails (a concurrent change, an illegal transition, a refused text) the row is rolled
        back and a file this call wrote is removed unless another attachment names it.
        """
        self._own_event(actor, event)
        checked = check_upload(file_name, content_type, data, self.upload_limits)
        digest = hashlib.sha256(data).hexdigest()
        ticket = self._attach_target(code, actor)
        rel = Path(ticket.tenant) / digest[:2] / digest
        wrote = self._write_file(self.files_dir / rel, data)
        now = self._now()
        try:
            with self.db.writing() as conn:
                current = st.load(conn, code, for_update=True)
                if current is None:
                    raise _not_found(code)
                att, entry = self._add_attachment(conn, current.ticket, actor, checked.file_name,
                                                  checked.content_type, data, digest, rel, now)
                event = replace(event, reply_document=str(att.id))
                new, audit = self._act_in(conn, code, actor, event, expected_version, now)
        except BaseException:
            if wrote:
                self._drop_unused_file(rel)
            raise
        self._log(([entry] if entry is not None else []) + audit)
        return new

    @staticmethod
    def _own_event(actor: Actor, event: Event) -> Event:
        if event.actor != actor:
            raise TicketError("ticket.forbidden", f"{actor} may not act as {event.actor}")
        if isinstance(event, LinkCall):
            event = replace(event, call_id=_call_id(event.call_id))
        return event

    def _act_in(self, conn: sa.Connection, code: str, actor: Actor, event: Event,
                expected_version: int | None, now: dt.datetime,
                emails: builtins.list[SendEmail] | None = None,
                ) -> tuple[Ticket, builtins.list[AuditEntry]]:
        """Apply ``event`` inside the caller's write transaction; the ticket and its audit.

        E-mails the event causes are appended to ``emails`` (sent after the commit).
        """
        stored = st.load(conn, code, for_update=True)
        if stored is None:
            raise _not_found(code)
        old = stored.ticket
        access = self._access(conn, old, actor)
        if access in ("overseer", "transferred"):
            # Before the state machine, so the refusal is the same in every state.
            why = "oversees" if access == "overseer" else "took a call about"
            raise TicketError("ticket.forbidden", f"{actor} {why} ticket {code} and may only "
                                                  f"read it: it is with {old.unit or 'level 1'}")
        if expected_version is not None and old.version != expected_version:
            raise TicketError("ticket.conflict",
                              f"ticket {code} is at version {old.version}, not "
                              f"{expected_version}: someone changed it; reload and retry")
        policy = self.policy(old.tenant)
        if isinstance(event, Resolve) and event.reply_document:
            found = st.find_attachment(conn, code, event.reply_document.strip())
            if found is None:
                raise TicketError("ticket.unknown_attachment",
                                  f"{event.reply_document!r} is not an attachment of {code}; "
                                  "attach the reply document first")
            event = replace(event, reply_document=str(found.id))
        new, effects = apply(old, event, policy)
        if not st.update_ticket(conn, stored, new, dl.reminder_at(policy, new), now,
                                chase_at=dl.next_chase_at(policy, new)):
            raise TicketError("ticket.conflict", f"ticket {code} changed meanwhile; retry")
        if new.unit is not None and new.unit != old.unit:
            st.add_holders(conn, [(code, new.unit)], now)
        return new, self._carry_out(conn, new.tenant, effects, now, emails)

    def transfer_call(self, code: str, unit: str, call_id: str, actor: Actor) -> bool:
        """Record that a call about the ticket (``call_id``: its call record) was transferred
        to ``unit``, which answered (``TransferCall``): the unit's users may read the ticket
        from now on, and its console lists it. The same call and unit again changes nothing
        and returns False (a retry, or another instance's report)."""
        call_id = _call_id(call_id)
        now = self._now()
        event = TransferCall(now, actor, unit, call_id)
        with self.db.writing() as conn:
            if st.load(conn, code, for_update=True) is None:
                raise _not_found(code)
            if st.has_transfer(conn, code, unit, call_id):
                return False
            _, audit = self._act_in(conn, code, actor, event, None, now)
        self._log(audit)
        return True

    def transferred_to(self, actor: Actor, tenant: str, *, hours: int = 24,
                       limit: int = 20) -> builtins.list[TransferredTicket]:
        """The tickets whose calls were transferred to the actor's unit in the last ``hours``
        (newest transfer first): what the unit's console shows as "Cuộc gọi chuyển đến"."""
        if actor.role != "unit" or actor.unit is None:
            raise TicketError("ticket.forbidden", f"{actor} is no unit's user")
        since = self._now() - dt.timedelta(hours=hours)
        with self.db.reading() as conn:
            rows = st.transfers_to(conn, actor.unit, tenant, since, max(0, min(limit, MAX_LIST)))
        return [TransferredTicket(t, call_id, at) for t, call_id, at in rows]

    def link_call(self, code: str, call_id: str, actor: Actor) -> Ticket:
        """Link a call record to the ticket (a later call about the same petition)."""
        return self.act(code, actor, LinkCall(self._now(), actor, call_id))

    def _carry_out(self, conn: sa.Connection, tenant: str, effects: Sequence[Effect],
                   now: dt.datetime,
                   emails: builtins.list[SendEmail] | None = None) -> builtins.list[AuditEntry]:
        """Audit entries and SMS of ``effects`` into this transaction; the audit entries.

        Clocks need nothing more here: their due times are the ticket's columns, and the
        reminder time (``remind_at``) is written with the ticket. ``SendEmail`` effects go
        to ``emails`` for sending after the commit (without a mail sender: audited unsent).
        """
        audit = [e for e in effects if isinstance(e, AuditEntry)]
        for e in effects:
            if isinstance(e, GrantTransferRead):
                st.add_transfer(conn, e.code, e.unit, e.call_id, e.at)
                continue
            if isinstance(e, SendEmail):
                server = self.config().mail
                mail_on = server is not None and server.enabled
                if self.mail is not None and emails is not None and mail_on:
                    emails.append(e)
                else:
                    why = ("no mail outbox" if self.mail is None or emails is None
                           else "no mail server (the config's mail: section)")
                    to = next((a.to_state for a in reversed(audit) if a.code == e.code), _S.NEW)
                    audit.append(AuditEntry(e.code, SYSTEM, now, "email_unsent", to, to,
                                            f"{e.purpose} e-mail to {e.to}: {why} "
                                            f"configured (key {e.dedupe_key})"))
            texts: builtins.list[tuple[str, str, str]] = []  # (phone, key, purpose)
            if isinstance(e, NotifyUnit):
                key = f"{e.code}:{e.template}:{e.at.isoformat()}"
                texts = [(p, f"{key}:{p}", SMS_PURPOSES[e.template]) for p in e.phones]
            elif isinstance(e, NotifyCitizen):
                texts = [(e.phone, f"{e.code}:{e.template}:{e.at.isoformat()}",
                          SMS_PURPOSES[e.template])]
            else:
                continue
            for phone, key, purpose in texts:
                try:
                    enqueue(conn, tenant=tenant, to_number=phone, text=e.text,
                            purpose=purpose, dedupe_key=key, now=now)
                    if isinstance(e, NotifyCitizen) and e.survey_until is not None:
                        # The question went out with the notice: a reply can now match it.
                        st.add_survey_ask(conn, code=e.code, tenant=tenant, unit=e.unit,
                                          phone=phone, asked_at=e.at, until=e.survey_until)
                except ValueError as err:  # checked before any SQL: the transaction is fine
                    log.error("ticket %s: SMS %s to %s refused by the outbox: %s", e.code,
                              purpose, mask_number(phone), err)
                    to = next((a.to_state for a in reversed(audit) if a.code == e.code),
                              _S.NEW)
                    audit.append(AuditEntry(e.code, SYSTEM, now, "sms_refused", to, to,
                                            f"{purpose} to {mask_number(phone)}: {err}"))
        st.add_audit(conn, audit)
        return audit

    def _send_emails(self, ticket: Ticket, emails: Sequence[SendEmail],
                     now: dt.datetime) -> None:
        """Hand committed e-mails to the mail sender; a failure is logged and audited."""
        if self.mail is None:
            return
        failed: builtins.list[AuditEntry] = []
        for e in emails:
            try:
                self.mail.enqueue(ticket.tenant, e.to, e.subject, e.body, (),
                                  purpose=e.purpose, dedupe_key=e.dedupe_key, now=now)
            except Exception as err:  # the ticket's change is committed: record, don't undo
                log.error("ticket %s: %s e-mail to %s not queued: %s", e.code, e.purpose,
                          e.to, err)
                failed.append(AuditEntry(e.code, SYSTEM, now, "email_failed", ticket.state,
                                         ticket.state, f"{e.purpose} e-mail to {e.to}: "
                                                       f"{str(err)[:300]} (key {e.dedupe_key})"))
        if failed:
            with self.db.writing() as conn:
                st.add_audit(conn, failed)
            self._log(failed)

    # -- the citizen's reply to the resolve SMS (tickets.survey) ---------------------------
    def citizen_reply(self, *, message_id: str | None, from_number: str, to_number: str,
                      text: str) -> ReplyResult:
        """Record an SMS a citizen sent (Kannel's MO) and act on a survey answer, at once.

        "1" records satisfaction (audit ``satisfied``); "2" reopens the ticket as the citizen
        (``CITIZEN_SMS``), which tells the unit that resolved it. Everything else is recorded
        with its outcome and changes nothing. The same ``message_id`` a second time (Kannel
        retrying) returns "duplicate" and changes nothing; a second answer to one notice is
        ``already_answered`` (the first one counts).
        """
        now = self._now()
        phone = caller_number(from_number)
        audit: builtins.list[AuditEntry] = []
        reopened = False
        with self.db.writing() as conn:
            if message_id:
                seen = st.reply_by_message_id(conn, message_id)
                if seen is not None:
                    return ReplyResult("duplicate", seen[1])
            reply_id = st.add_reply(conn, message_id=message_id or None, received_at=now,
                                    from_number=_printable(from_number)[:32],
                                    to_number=_printable(to_number)[:32],
                                    text=_printable(text))
            if reply_id is None:  # the same message recorded meanwhile (another instance)
                return ReplyResult("duplicate", None)
            asks = st.asks_of_phone(conn, phone, now) if phone else []
            match = match_reply(text, asks, now)
            ask = match.ask
            if ask is not None and match.outcome in ("satisfied", "not_resolved"):
                st.set_survey_answer(conn, ask.id, match.outcome, now)
                event: Event = (Satisfied(now, CITIZEN_SMS) if match.outcome == "satisfied"
                                else Reopen(now, CITIZEN_SMS, REOPEN_REASON))
                try:
                    new, audit = self._act_in(conn, ask.code, CITIZEN_SMS, event, None, now)
                    reopened = isinstance(event, Reopen)
                except TicketError as err:
                    # The ticket moved on since the notice (an operator reopened or it was
                    # resolved again): the answer is recorded, the ticket is left as it is.
                    stored = st.load(conn, ask.code)
                    state = stored.ticket.state if stored is not None else _S.RESOLVED
                    audit = [AuditEntry(ask.code, CITIZEN_SMS, now, "survey_reply", state, state,
                                        f"the citizen replied {match.outcome}; ticket left "
                                        f"as it is ({err.id})")]
                    st.add_audit(conn, audit)
            st.judge_reply(conn, reply_id, match.outcome, ask.code if ask else None,
                           ask.id if ask else None)
        self._log(audit)
        log.info("SMS reply from %s: %s%s", mask_number(phone or from_number), match.outcome,
                 f" (ticket {ask.code})" if ask else "")
        return ReplyResult(match.outcome, ask.code if ask else None, reopened)

    def survey_asks(self, code: str, actor: Actor) -> builtins.list[Any]:
        """The ticket's satisfaction questions and answers (``SurveyAsk``), oldest first."""
        with self.db.reading() as conn:
            self._stored_visible(conn, code, actor)
            return st.asks_of(conn, code)

    @staticmethod
    def _log(audit: Sequence[AuditEntry]) -> None:
        for entry in audit:
            log.info("%s", entry)

    # -- reading ---------------------------------------------------------------------------
    def _reading_policy(self, tenant: str) -> TicketPolicy:
        """The tenant's policy for visibility; none (nothing overseen) for a tenant gone."""
        found = self.config().tenant(tenant)
        return policy_of(found) if found is not None else TicketPolicy()

    def _access(self, conn: sa.Connection, ticket: Ticket, actor: Actor) -> Access:
        """How ``actor`` may read ``ticket`` (``rules.read_access``); ticket.forbidden: not."""
        other = actor.role == "unit" and actor.unit is not None and ticket.unit != actor.unit
        held = other and actor.unit is not None and st.has_held(conn, ticket.code, actor.unit)
        transferred = (other and not held and actor.unit is not None
                       and st.has_transfer(conn, ticket.code, actor.unit))
        access = read_access(self._reading_policy(ticket.tenant), actor, ticket, held=held,
                             transferred=transferred)
        if access is None:
            raise TicketError("ticket.forbidden", f"{actor} may not see ticket {ticket.code}: "
                                                  "it is not with that unit")
        return access

    def _check_visible(self, conn: sa.Connection, ticket: Ticket, actor: Actor) -> None:
        self._access(conn, ticket, actor)

    def access(self, code: str, actor: Actor) -> Access:
        """How the actor may read the ticket: all, holder, held or overseer (read only)."""
        with self.db.reading() as conn:
            stored = self._stored_visible(conn, code, actor)
            return self._access(conn, stored.ticket, actor)

    def _scopes(self, unit: str, tenant: str | None) -> dict[str, OversightScope]:
        """What ``unit`` oversees, per tenant (only ``tenant`` when given)."""
        found: dict[str, OversightScope] = {}
        for t in self.config().tenants:
            if tenant is None or t.id == tenant:
                scope = oversight_scope(policy_of(t), unit)
                if scope:
                    found[t.id] = scope
        return found

    def _stored_visible(self, conn: sa.Connection, code: str, actor: Actor) -> st.StoredTicket:
        parse_ticket_code(code)  # ticket.bad_code for something that is no code at all
        stored = st.load(conn, code)
        if stored is None:
            raise _not_found(code)
        self._check_visible(conn, stored.ticket, actor)
        return stored

    def get(self, code: str, actor: Actor) -> Ticket:
        """The ticket; ``ticket.not_found``, or ``ticket.forbidden`` for another unit's."""
        with self.db.reading() as conn:
            return self._stored_visible(conn, code, actor).ticket

    def audit(self, code: str, actor: Actor) -> builtins.list[AuditEntry]:
        """The ticket's audit log, oldest first (same visibility as ``get``)."""
        with self.db.reading() as conn:
            self._stored_visible(conn, code, actor)
            return st.audit_of(conn, code)

    def _filtered(self, actor: Actor, tenant: str | None, state: Any, unit: str | None,
                  late: bool | None, field: str | None, since: dt.datetime | None,
                  until: dt.datetime | None) -> builtins.list[sa.ColumnElement[bool]]:
        t = st.TICKETS.c
        where: builtins.list[sa.ColumnElement[bool]] = []
        if actor.role == "unit":
            if actor.unit is None:
                raise TicketError("ticket.forbidden", f"{actor} belongs to no unit")
            overseen = st.overseen(self._scopes(actor.unit, tenant))
            mine = st.held_by(actor.unit)
            where.append(mine if overseen is None else sa.or_(mine, overseen))
        if tenant is not None:
            where.append(t.tenant == tenant)
        if state is not None:
            states = [state] if isinstance(state, (str, TicketState)) else builtins.list(state)
            values = [TicketState(s).value for s in states]
            where.append(t.state.in_(values))
        if unit is not None:
            where.append(t.unit == unit)
        if field is not None:
            where.append(t.field == field)
        if since is not None:
            dl.require_aware(since, "since")
            where.append(t.received_at >= since)
        if until is not None:
            dl.require_aware(until, "until")
            where.append(t.received_at < until)
        if late is not None:
            overdue = sa.and_(t.state.in_(st.OPEN_STATES), t.resolve_due < self._now())
            where.append(overdue if late else sa.not_(overdue))
        return where

    def list(self, actor: Actor, tenant: str | None = None,
             state: str | TicketState | Collection[str | TicketState] | None = None,
             unit: str | None = None, late: bool | None = None, field: str | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             limit: int = 50, offset: int = 0) -> builtins.list[Ticket]:
        """Tickets the actor may see, newest received first (``late``: open past due)."""
        where = self._filtered(actor, tenant, state, unit, late, field, since, until)
        t = st.TICKETS.c
        q = (sa.select(st.TICKETS).where(*where)
             .order_by(t.received_at.desc(), t.code.desc())
             .limit(max(0, min(limit, MAX_LIST))).offset(max(0, offset)))
        with self.db.reading() as conn:
            return [s.ticket for s in st.tickets_from(conn, q)]

    def count(self, actor: Actor, tenant: str | None = None,
              state: str | TicketState | Collection[str | TicketState] | None = None,
              unit: str | None = None, late: bool | None = None, field: str | None = None,
              since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        """How many tickets ``list`` would give without limit and offset."""
        where = self._filtered(actor, tenant, state, unit, late, field, since, until)
        q = sa.select(sa.func.count()).select_from(st.TICKETS).where(*where)
        with self.db.reading() as conn:
            return int(conn.execute(q).scalar_one())

    def oversight(self, actor: Actor, tenant: str, unit: str | None = None, *,
                  late_limit: int = 200) -> OversightOverview:
        """The overview of what ``unit`` oversees in ``tenant`` (a unit user: its own unit).

        Supervisors and admins choose the unit; a unit user sees its own (``unit`` another
        is ``ticket.forbidden``); operators are refused. A unit that oversees nothing gets an
        empty overview. Late: open and past the holder's resolve deadline.
        """
        if actor.role == "unit":
            if actor.unit is None or unit not in (None, actor.unit):
                raise TicketError("ticket.forbidden",
                                  f"{actor} may see only its own unit's oversight")
            unit = actor.unit
        elif actor.role not in ("supervisor", "admin"):
            raise TicketError("ticket.forbidden", f"{actor} may not see oversight overviews")
        policy = self.policy(tenant)
        if unit is None or policy.unit(unit) is None:
            raise TicketError("ticket.unknown_unit", f"unknown unit {unit!r} in {tenant}")
        scope = oversight_scope(policy, unit)
        by_state = {s.value: 0 for s in TicketState}
        empty = OversightOverview(tenant, unit, scope, (), 0, by_state, ())
        clause = st.overseen({tenant: scope})
        if clause is None:
            return empty
        t = st.TICKETS.c
        now = self._now()
        overdue = sa.and_(t.state.in_(st.OPEN_STATES), t.resolve_due < now)
        late_q = (sa.select(st.TICKETS).where(clause, overdue)
                  .order_by(t.resolve_due, t.code).limit(max(0, min(late_limit, MAX_LIST))))
        count_q = (sa.select(t.unit, t.state, sa.func.count(),
                             sa.func.sum(sa.case((overdue, 1), else_=0)))
                   .where(clause).group_by(t.unit, t.state))
        with self.db.reading() as conn:
            late = tuple(s.ticket for s in st.tickets_from(conn, late_q))
            rows = conn.execute(count_q).all()
        holders: dict[str | None, tuple[dict[str, int], builtins.list[int]]] = {}
        for holder, state, n, n_late in rows:
            states, late_n = holders.setdefault(holder, ({}, [0]))
            states[state] = int(n)
            late_n[0] += int(n_late or 0)
            by_state[state] = by_state.get(state, 0) + int(n)
        by_holder = sorted((HolderCounts(h, states, n[0]) for h, (states, n) in holders.items()),
                           key=lambda c: (-c.late, -c.total, c.unit or ""))
        late_total = sum(c.late for c in by_holder)
        return OversightOverview(tenant, unit, scope, late, late_total, by_state,
                                 tuple(by_holder))

    def open_for_caller(self, tenant: str, phone: str) -> builtins.list[Ticket]:
        """The open tickets of a caller's number (any of +84/84/0 forms, dots, spaces)."""
        number = caller_number(phone)
        if not number:
            return []
        t = st.TICKETS.c
        q = (sa.select(st.TICKETS)
             .where(t.citizen_phone == number, t.tenant == tenant,
                    t.state.in_(st.OPEN_STATES))
             .order_by(t.received_at.desc(), t.code.desc()).limit(MAX_LIST))
        with self.db.reading() as conn:
            return [s.ticket for s in st.tickets_from(conn, q)]

    def tickets_of_call(self, call_id: str) -> builtins.list[Ticket]:
        """The tickets a call record is linked to (oldest first)."""
        t = st.TICKETS.c
        q = (sa.select(st.TICKETS).join(st.CALLS, st.CALLS.c.code == t.code)
             .where(st.CALLS.c.call_id == call_id).order_by(t.received_at, t.code))
        with self.db.reading() as conn:
            return [s.ticket for s in st.tickets_from(conn, q)]

    # -- attachments -----------------------------------------------------------------------
    def attach(self, code: str, actor: Actor, file_name: str, content_type: str | None,
               data: bytes) -> st.Attachment:
        """Store a file for the ticket (type by its bytes, size checked, kept under its hash).

        Who may: level 1, supervisors, admins, the system, and the unit holding the ticket.
        The same bytes attached twice to one ticket give the first attachment back.
        """
        checked = check_upload(file_name, content_type, data, self.upload_limits)
        digest = hashlib.sha256(data).hexdigest()
        ticket = self._attach_target(code, actor)
        rel = Path(ticket.tenant) / digest[:2] / digest
        # The file first (content-addressed, so a retry or a twin is harmless); the row next.
        # A row never names a file that is not on disk; a crash in between leaves an orphan.
        self._write_file(self.files_dir / rel, data)
        now = self._now()
        with self.db.writing() as conn:
            current = st.load(conn, code)
            assert current is not None
            att, entry = self._add_attachment(conn, current.ticket, actor, checked.file_name,
                                              checked.content_type, data, digest, rel, now)
        if entry is not None:
            self._log([entry])
        return att

    def note_with_files(self, code: str, actor: Actor, event: str, detail: str,
                        files: Sequence[tuple[str, str | None, bytes]],
                        also: Callable[[sa.Connection, Ticket], None] | None = None,
                        ) -> builtins.list[st.Attachment]:
        """Add a line ``event`` (e.g. ``citizen_mail``: the citizen wrote again) to the ticket's
        audit trail with files (checked as ``attach`` checks them), state unchanged; ``also``
        runs in the same transaction. The actor is the system (no visibility check)."""
        checked = [(check_upload(name, declared, data, self.upload_limits), data,
                    hashlib.sha256(data).hexdigest()) for name, declared, data in files]
        with self.db.reading() as conn:
            found = st.load(conn, code)
        if found is None:
            raise _not_found(code)
        tenant = found.ticket.tenant
        written: builtins.list[Path] = []
        now = self._now()
        try:
            rels = []
            for _, data, digest in checked:
                rel = Path(tenant) / digest[:2] / digest
                if self._write_file(self.files_dir / rel, data):
                    written.append(rel)
                rels.append(rel)
            with self.db.writing() as conn:
                current = st.load(conn, code, for_update=True)
                assert current is not None
                ticket = current.ticket
                text = "".join("\ufffd" if ord(c) < 0x20 and c not in "\n\t"
                               or 0x7F <= ord(c) < 0xA0 else c for c in detail)
                audit = [AuditEntry(code, actor, now, event, ticket.state, ticket.state, text)]
                st.add_audit(conn, audit)
                atts = []
                for (c, data, digest), rel in zip(checked, rels, strict=True):
                    att, entry = self._add_attachment(conn, ticket, actor, c.file_name,
                                                      c.content_type, data, digest, rel, now)
                    atts.append(att)
                    audit += [entry] if entry is not None else []
                if also is not None:
                    also(conn, ticket)
        except BaseException:
            for rel in written:
                self._drop_unused_file(rel)
            raise
        self._log(audit)
        return atts

    def _attach_target(self, code: str, actor: Actor) -> Ticket:
        """The ticket a file is for, if the actor may attach to it (a unit: while it holds it)."""
        with self.db.reading() as conn:
            ticket = self._stored_visible(conn, code, actor).ticket
        if actor.role == "unit" and ticket.unit != actor.unit:
            raise TicketError("ticket.forbidden", f"{actor} may not attach files to {code}: "
                                                  f"it is with {ticket.unit or 'level 1'}")
        return ticket

    @staticmethod
    def _add_attachment(conn: sa.Connection, ticket: Ticket, actor: Actor, file_name: str,
                        content_type: str, data: bytes, digest: str, rel: Path,
                        now: dt.datetime) -> tuple[st.Attachment, AuditEntry | None]:
        """The attachment row and its audit entry (None: the same bytes were there already)."""
        att, new = st.add_attachment(
            conn, code=ticket.code, file_name=file_name, content_type=content_type,
            size=len(data), sha256=digest, stored_path=rel.as_posix(),
            uploaded_by=str(actor), uploaded_at=now)
        if not new:
            return att, None
        entry = AuditEntry(ticket.code, actor, now, "attach", ticket.state, ticket.state,
                           f"{att.file_name} ({att.content_type}, {att.size} bytes, "
                           f"sha256 {digest[:12]}, attachment {att.id})")
        st.add_audit(conn, [entry])
        return att, entry

    def _drop_unused_file(self, rel: Path) -> None:
        """Remove a stored file no attachment row names (after a rolled-back attach)."""
        a = st.ATTACHMENTS.c
        with self.db.reading() as conn:
            used = conn.execute(sa.select(a.id).where(a.stored_path == rel.as_posix())
                                .limit(1)).first()
        if used is None:
            (self.files_dir / rel).unlink(missing_ok=True)

    @staticmethod
    def _write_file(path: Path, data: bytes) -> bool:
        """Write ``data`` at ``path`` durably; False if the same file was there already."""
        if path.exists() and path.stat().st_size == len(data):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before the row that names it commits
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True

    def attachments(self, code: str, actor: Actor) -> builtins.list[st.Attachment]:
        """The ticket's attachments, oldest first (same visibility as ``get``)."""
        with self.db.reading() as conn:
            self._stored_visible(conn, code, actor)
            return st.attachments_of(conn, code)

    def attachment_file(self, code: str, ref: str,
                        actor: Actor) -> tuple[st.Attachment, Path]:
        """An attachment (by id or sha256) and the path of its bytes, for downloading."""
        with self.db.reading() as conn:
            self._stored_visible(conn, code, actor)
            att = st.find_attachment(conn, code, ref)
        if att is None:
            raise TicketError("ticket.unknown_attachment", f"no attachment {ref!r} of {code}")
        return att, self.files_dir / att.stored_path

    # -- public disclosure -----------------------------------------------------------------
    def review_list(self, actor: Actor, tenant: str, status: ReviewStatus = "pending", *,
                    limit: int = 50, offset: int = 0) -> builtins.list[Ticket]:
        """Tickets of the disclosure review in ``status`` (pending: waiting for a decision),
        the oldest answer first; supervisors and admins only (``ticket.forbidden``)."""
        if actor.role not in ("supervisor", "admin"):
            raise TicketError("ticket.forbidden", f"{actor} may not review what is published")
        t = st.TICKETS.c
        where = [t.tenant == tenant, t.result.is_not(None),
                 t.state.in_([_S.ANSWERED.value, _S.RESOLVED.value, _S.CLOSED.value])]
        if status == "published":
            where.append(t.publishable.is_(True))
        elif status == "declined":
            where += [t.publishable.is_(False), t.decline_reason.is_not(None)]
        elif status == "pending":
            where += [t.publishable.is_(False), t.decline_reason.is_(None)]
        else:
            raise TicketError("ticket.invalid_text", f"review status {status!r}: expected "
                                                     "pending, published or declined")
        q = (sa.select(st.TICKETS).where(*where)
             .order_by(sa.func.coalesce(t.resolved_at, t.closed_at, t.received_at), t.code)
             .limit(max(0, min(limit, MAX_LIST))).offset(max(0, offset)))
        with self.db.reading() as conn:
            return [s.ticket for s in st.tickets_from(conn, q)]

    def public_feed(self, tenant: str, field: str | None = None, unit: str | None = None,
                    month: str | None = None, *, limit: int = 200,
                    offset: int = 0) -> builtins.list[dict[str, Any]]:
        """Answered/resolved tickets marked publishable, personal data removed, newest first.

        Each item: code, field, field_name, unit, unit_name, received_date and answered_date
        (local days, YYYY-MM-DD), question and answer: the texts the review published
        (``public_question``/``public_answer``), else the original's; redacted either way (the
        citizen's name and number never appear).
        """
        policy = self.policy(tenant)
        zone = ZoneInfo(policy.timezone)
        t = st.TICKETS.c
        where = [t.tenant == tenant, t.publishable.is_(True), t.result.is_not(None),
                 t.state.in_([_S.ANSWERED.value, _S.RESOLVED.value, _S.CLOSED.value])]
        if field is not None:
            where.append(t.field == field)
        if unit is not None:
            where.append(t.unit == unit)
        if month is not None:
            try:
                start, end = month_bounds(month, zone)
            except ValueError as e:
                raise TicketError("ticket.invalid_text", str(e)) from None
            where += [t.received_at >= start, t.received_at < end]
        q = (sa.select(st.TICKETS).where(*where)
             .order_by(t.received_at.desc(), t.code.desc())
             .limit(max(0, min(limit, MAX_LIST))).offset(max(0, offset)))
        with self.db.reading() as conn:
            tickets = [s.ticket for s in st.tickets_from(conn, q)]
        items = []
        for tk in tickets:
            if not is_public(tk) or tk.result is None:
                continue
            holder = policy.unit(tk.unit) if tk.unit is not None else None
            answered = tk.resolved_at or tk.closed_at
            items.append({
                "code": tk.code,
                "field": tk.field,
                "field_name": policy.field_name(tk.field) or tk.field,
                "unit": tk.unit,
                "unit_name": holder.name if holder is not None else "Tổng đài 1022",
                "received_date": tk.received_at.astimezone(zone).date().isoformat(),
                "answered_date": (answered.astimezone(zone).date().isoformat()
                                  if answered is not None else None),
                "question": scrub(tk.public_question or tk.content, tk.citizen_name,
                                  tk.citizen_phone),
                "answer": scrub(tk.public_answer or tk.result, tk.citizen_name,
                                tk.citizen_phone),
            })
        return items

    # -- deadlines -------------------------------------------------------------------------
    def sweep(self, now: dt.datetime | None = None) -> SweepResult:
        """Mark tickets whose clocks ran out and send due reminders; safe to run any time.

        Idempotent: a ticket is marked late once per due time (``late_at``,
        ``forward_late_at``; reset when its due time moves) and reminded once per forwarding.
        Reminders go only while the deadline is still ahead (after it, the ticket is late).
        Then the units of late tickets are chased (``tickets.chasing``): once per chase slot,
        with the escalation once per forwarding (``deadlines.chase_due``).
        """
        now = (now or self._now()).astimezone(dt.UTC)
        late = self._mark_late(now, "resolve")
        forward_late = self._mark_late(now, "forward")
        reminded: builtins.list[str] = []
        failed: builtins.list[str] = []
        t = st.TICKETS.c
        q = (sa.select(t.code).where(
            t.state.in_([s.value for s in AT_UNIT]), t.remind_at <= now,
            t.reminded_at.is_(None), t.resolve_due > now).order_by(t.remind_at))
        with self.db.reading() as conn:
            due = [r.code for r in conn.execute(q)]
        for code in due:
            try:
                self.act(code, SYSTEM, Remind(now, SYSTEM))
                reminded.append(code)
            except TicketError as e:
                if e.id == "ticket.reminder_not_due":
                    self._reschedule_reminder(code)  # the config changed since it was set
                else:
                    failed.append(f"{code}: {e}")
                    log.warning("reminder for ticket %s not sent: %s", code, e)
        chased, escalated = self._chase_late(now, failed)
        return SweepResult(tuple(late), tuple(forward_late), tuple(reminded), tuple(failed),
                           tuple(chased), tuple(escalated))

    def _chase_late(self, now: dt.datetime, failed: builtins.list[str],
                    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Chase the units of late tickets whose next chase slot has come (see ``sweep``)."""
        t = st.TICKETS.c
        # Tickets forwarded before chasing was switched on (or before this schema) have no
        # chase_at yet: late ones of a chasing tenant never chased are looked at too.
        chasing = [tn.id for tn in self.config().tenants if policy_of(tn).chasing is not None]
        unscheduled = sa.and_(t.chase_at.is_(None), t.chased_at.is_(None),
                              t.resolve_due <= now, t.tenant.in_(chasing))
        q = (sa.select(t.code).where(t.state.in_([s.value for s in AT_UNIT]),
                                     sa.or_(t.chase_at <= now, unscheduled))
             .order_by(t.resolve_due))
        with self.db.reading() as conn:
            due = [r.code for r in conn.execute(q)]
        chased: builtins.list[str] = []
        escalated: builtins.list[str] = []
        for code in due:
            try:
                new = self.act(code, SYSTEM, Chase(now, SYSTEM))
                chased.append(code)
                if new.escalated_at == now:  # this chase escalated (rules._chase stamps it)
                    escalated.append(code)
            except TicketError as e:
                if e.id in ("ticket.chase_not_due", "ticket.conflict"):
                    self._reschedule_chase(code)  # another instance chased it, or the config
                else:                             # changed since the slot was set
                    failed.append(f"{code}: {e}")
                    log.warning("chase for ticket %s not sent: %s", code, e)
        return chased, escalated

    def _reschedule_chase(self, code: str) -> None:
        self._reschedule(code, "chase_at", dl.next_chase_at)

    def _reschedule(self, code: str, column: str,
                    when: Callable[[TicketPolicy, Ticket], dt.datetime | None]) -> None:
        """Set the ticket's next job time (``remind_at``, ``chase_at``) afresh from the rules
        (another instance acted first, or the config changed since it was set)."""
        with self.db.writing() as conn:
            stored = st.load(conn, code, for_update=True)
            if stored is None:
                return
            at = when(self.policy(stored.ticket.tenant), stored.ticket)
            if at != getattr(stored, column):
                conn.execute(sa.update(st.TICKETS).where(st.TICKETS.c.code == code)
                             .values({column: at}))

    def _mark_late(self, now: dt.datetime, clock: dl.ClockName) -> builtins.list[LateMark]:
        t = st.TICKETS.c
        if clock == "resolve":
            due_col, mark_col, states, event = t.resolve_due, t.late_at, OPEN, "late"
        else:
            due_col, mark_col, states, event = t.forward_due, t.forward_late_at, LEVEL1, \
                "forward_late"
        stmt = (sa.update(st.TICKETS)
                .where(t.state.in_([s.value for s in states]), due_col < now,
                       mark_col.is_(None))
                .values({mark_col.name: now})
                .returning(t.code, t.tenant, t.unit, t.state, due_col))
        marks: builtins.list[LateMark] = []
        with self.db.writing() as conn:
            rows = conn.execute(stmt).all()
            entries = []
            for code, tenant, unit, state, due in rows:  # due: aware UTC (UTCDateTime)
                days = max(1, -(-(now - due) // dt.timedelta(days=1)))  # started days
                marks.append(LateMark(code, tenant, unit, clock, due, days))
                entries.append(AuditEntry(
                    code, SYSTEM, now, event, TicketState(state), TicketState(state),
                    f"{clock} deadline {due.isoformat()} passed"
                    + (f"; with {unit}" if unit else "; at level 1")))
            st.add_audit(conn, entries)
        for m in marks:
            log.info("%s", m)
        return marks

    def _reschedule_reminder(self, code: str) -> None:
        self._reschedule(code, "remind_at", dl.reminder_at)
