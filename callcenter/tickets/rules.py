"""A petition ticket (phản ánh, kiến nghị) as a pure state machine: (ticket, event) -> effects.

``open_ticket`` records a ticket; ``apply(ticket, event, policy)`` returns the new ticket and
the effects the adapters carry out (audit entries, SMS to the unit or the citizen, clocks to
schedule). Nothing here does I/O or reads the clock: every event carries its ``at`` and its
``actor``. A refused event raises ``TicketError`` with a stable ``id``:

================================  =====================================================
``ticket.illegal_transition``     the event cannot happen in the ticket's state (409)
``ticket.forbidden``              the actor's role or unit may not do it (403)
``ticket.unknown_unit``           Forward to a unit the tenant does not have
``ticket.unknown_field``          a field the tenant does not have
``ticket.unknown_place``          a place id the tenant does not have
``ticket.unknown_channel``        a channel outside CHANNELS
``ticket.invalid_phone``          the citizen's phone is not a Vietnamese number
``ticket.invalid_text``           empty or too long content, result, answer or reason
``ticket.bad_code``               a ticket code not of the form DN-20261123-0042
``ticket.same_unit``              forwarding a ticket to the unit that already holds it
``ticket.reminder_not_due``       Remind before its time, or a second time
``ticket.chase_not_due``          Chase when no chase slot is due (deadlines.chase_due)
``ticket.naive_time``             a time without a UTC offset
``ticket.time_order``             an event dated before the ticket was received
``ticket.personal_data``          a reviewed public text with the citizen's number or name
================================  =====================================================

States: ``new`` → ``answered`` (answered at level 1 from the FAQ: closed at once with the
answer) or ``forwarded`` → ``in_progress`` → ``resolved`` → ``closed``; a unit may send a
ticket back (``returned``, with a reason) to level 1, which forwards it again, answers it
or (a supervisor) closes it; an answered, resolved or closed ticket may be ``reopened``
(with a reason) and goes back to level 1. ``TRANSITIONS`` is the full table; roles:

* operators (and supervisors, admins) open, answer, forward, reclassify, reopen, and close
  a resolved ticket once its result is checked;
* only the unit holding a ticket (or a supervisor or admin) accepts, resolves or returns it;
* supervisors and admins re-forward a ticket a unit holds, close one that was never handled
  (duplicate, not a petition) and choose what is published (also when opening one:
  ``publishable=True`` from anyone else is ``ticket.forbidden``);
* the ``system`` role (jobs, intake of web/Zalo/e-mail forms) opens tickets, sends reminders
  and chases, and links call records; it also speaks for the citizen who answers the
  satisfaction question of the resolve SMS (``callcenter.tickets.survey``): ``Satisfied``
  records a "1", ``Reopen`` a "2" (and, by ``system`` only, tells the unit that had resolved
  it: ``NotifyUnit`` ``reopened``).

Who may read a ticket (``read_access``): every role but ``unit`` reads all of its tenant's; a
unit's users read what their unit holds, has held, took a call about (``TransferCall``: an
operator's attended transfer to the unit's hotline, the ticket announced to it), or oversees
(``oversees`` in the tenant's units: a lead department's fields, a district's places;
``OversightScope``) — reading is all such a unit may do: every event above still needs the
holder or a level-1/oversight role (the operator forwards the ticket as usual).

Disclosure after review ("rà soát, công khai … theo quy định"). A ticket with an answer or a
result (answered, resolved, or closed after one) waits for review (``review_status``
"pending"); a supervisor or admin reads its masked text and either ``Publish``es it, with the
question and answer the public will read (``public_question``/``public_answer``, stored apart:
``content`` and ``result`` are never changed; None shows the masked original), or
``Decline``s it with a reason. Publishing again replaces the edited texts; a declined ticket
may still be published, a published one declined (withdrawn). Reopening a ticket withdraws it
and clears its review: the new result is reviewed afresh. The edited texts may not carry the
citizen's phone number or name (``ticket.personal_data``). ``SetPublishable`` (older API)
publishes without edits (True) or sends the ticket back to review (False). A tenant with
``public_by_default: true`` marks tickets published when they are opened (no review).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from callcenter.numbers import vietnamese_mobile, vietnamese_phone
from callcenter.tickets import deadlines as dl
from callcenter.tickets.config import Level2Unit, TicketPolicy
from callcenter.tickets.config import TicketError as TicketError
from callcenter.tickets.routing import explain_route, resolve_place


class TicketState(enum.Enum):
    NEW = "new"
    ANSWERED = "answered"  # answered at level 1 (FAQ): closed with the answer
    FORWARDED = "forwarded"  # with a level-2 unit, not yet taken up
    IN_PROGRESS = "in_progress"  # the unit accepted it
    RESOLVED = "resolved"  # the unit recorded the result; the citizen was texted
    CLOSED = "closed"
    RETURNED = "returned"  # the unit sent it back to level 1 with a reason
    REOPENED = "reopened"  # back at level 1 after an answer, result or closing


S = TicketState
LEVEL1 = frozenset({S.NEW, S.RETURNED, S.REOPENED})  # states in which level 1 holds the ticket
AT_UNIT = frozenset({S.FORWARDED, S.IN_PROGRESS})  # states in which a unit holds it
OPEN = LEVEL1 | AT_UNIT

# open311: a third-party app through Open311 GeoReport v2 (callcenter.open311)
Channel = Literal["phone", "web", "email", "zalo", "facebook", "walk_in", "open311"]
CHANNELS: tuple[Channel, ...] = ("phone", "web", "email", "zalo", "facebook", "walk_in",
                                 "open311")
Role = Literal["operator", "supervisor", "admin", "unit", "system"]
ROLES: tuple[Role, ...] = ("operator", "supervisor", "admin", "unit", "system")
MAX_CONTENT = 10_000
MAX_REASON = 2_000
_CODE = re.compile(r"([A-Z][A-Z0-9]{0,9})-([0-9]{8})-([0-9]{4,6})")
MAX_SEQ = 999_999


@dataclass(frozen=True)
class Actor:
    """Who does something: a user id and role; users of the ``unit`` role belong to a unit."""

    user_id: str
    role: Role
    unit: str | None = None

    def __str__(self) -> str:
        return f"{self.role}:{self.user_id}" + (f"@{self.unit}" if self.unit else "")


@dataclass(frozen=True)
class Ticket:
    """One petition and everything that happened to it (the audit log holds the history)."""

    code: str  # DN-20261123-0042
    tenant: str
    channel: Channel
    content: str
    field: str
    received_at: dt.datetime
    state: TicketState = S.NEW
    citizen_name: str | None = None
    citizen_phone: str | None = None  # national form, 0xxxxxxxxx / 02xxxxxxxxx
    district: str | None = None
    commune: str | None = None
    urgent: bool = False
    call_ids: tuple[str, ...] = ()  # call records it came from
    unit: str | None = None  # the unit holding it (or that resolved it)
    forwarded_at: dt.datetime | None = None  # the latest forwarding
    accepted_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None  # result recorded (or answered at level 1)
    closed_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None  # the latest return
    reopened_at: dt.datetime | None = None  # the latest reopening
    forward_due: dt.datetime | None = None  # UTC; see callcenter.tickets.deadlines
    resolve_due: dt.datetime | None = None
    reminded_at: dt.datetime | None = None  # reminder sent for the current forwarding
    chased_at: dt.datetime | None = None  # slot of the latest chase for the current forwarding
    escalated_at: dt.datetime | None = None  # the unit's head and province office were told
    result: str | None = None  # the unit's result or level 1's answer
    reply_document: str | None = None  # reference to the stored reply document
    faq_item: str | None = None  # the FAQ item level 1 answered from
    returned_by: str | None = None  # the unit that last sent it back
    return_reason: str | None = None
    reopen_reason: str | None = None
    close_reason: str | None = None
    publishable: bool = False  # published (after review, or the tenant's default)
    public_question: str | None = None  # the question as the public reads it (edited)
    public_answer: str | None = None  # the answer as the public reads it (edited)
    decline_reason: str | None = None  # why review kept it off the public page
    version: int = 0  # +1 per applied event: optimistic locking for the store

    @property
    def place(self) -> str | None:
        """The most precise place id known: the commune, else the district."""
        return self.commune or self.district


# ---- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """Level 1 answers the citizen itself (from the FAQ): the ticket is closed with the answer."""

    at: dt.datetime
    actor: Actor
    answer: str
    faq_item: str | None = None


@dataclass(frozen=True)
class Forward:
    """Send the ticket to a level-2 unit (the rules' suggestion or the operator's choice)."""

    at: dt.datetime
    actor: Actor
    unit: str
    note: str | None = None


@dataclass(frozen=True)
class Accept:
    """The unit takes the ticket up."""

    at: dt.datetime
    actor: Actor


@dataclass(frozen=True)
class Resolve:
    """The unit records the result (and a reply document when one is needed)."""

    at: dt.datetime
    actor: Actor
    result: str
    reply_document: str | None = None


@dataclass(frozen=True)
class Return:
    """The unit sends the ticket back to level 1 (not its competence, details missing ...)."""

    at: dt.datetime
    actor: Actor
    reason: str


@dataclass(frozen=True)
class Close:
    """Close a resolved ticket, or (supervisor) one never handled, with a reason."""

    at: dt.datetime
    actor: Actor
    reason: str | None = None


@dataclass(frozen=True)
class Reopen:
    """The citizen is not satisfied, or the result was wrong: back to level 1."""

    at: dt.datetime
    actor: Actor
    reason: str


@dataclass(frozen=True)
class Satisfied:
    """The citizen answered the resolve SMS's question with "satisfied" (the state stays)."""

    at: dt.datetime
    actor: Actor


@dataclass(frozen=True)
class Reclassify:
    """Level 1 corrects the field, place or urgency (the clocks follow)."""

    at: dt.datetime
    actor: Actor
    field: str
    place: str | None
    urgent: bool


@dataclass(frozen=True)
class SetPublishable:
    """Mark the ticket for the public feed, or withdraw it."""

    at: dt.datetime
    actor: Actor
    publishable: bool


@dataclass(frozen=True)
class Publish:
    """Review: publish the ticket with the texts the public reads (None: keep the current)."""

    at: dt.datetime
    actor: Actor
    question: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class Decline:
    """Review: keep the ticket off the public page, with the reason."""

    at: dt.datetime
    actor: Actor
    reason: str


@dataclass(frozen=True)
class Remind:
    """The reminder job found the unit's deadline near (see deadlines.reminder_at)."""

    at: dt.datetime
    actor: Actor


@dataclass(frozen=True)
class Chase:
    """The deadline job found a late ticket's chase slot due (see deadlines.chase_due)."""

    at: dt.datetime
    actor: Actor


@dataclass(frozen=True)
class LinkCall:
    """A call record (a later call about the same petition) is linked to the ticket."""

    at: dt.datetime
    actor: Actor
    call_id: str


@dataclass(frozen=True)
class TransferCall:
    """A call about the ticket was transferred to a unit's hotline, and the unit answered
    (attended transfer, callcenter.transfers): that unit may READ the ticket from now on
    (``read_access`` "transferred"); it acts on it only once it is forwarded to it."""

    at: dt.datetime
    actor: Actor
    unit: str
    call_id: str


Event = (Answer | Forward | Accept | Resolve | Return | Close | Reopen | Reclassify
         | SetPublishable | Publish | Decline | Remind | Chase | LinkCall | Satisfied
         | TransferCall)

EVENT_NAMES: dict[type[Event], str] = {
    Answer: "answer", Forward: "forward", Accept: "accept", Resolve: "resolve",
    Return: "return", Close: "close", Reopen: "reopen", Reclassify: "reclassify",
    SetPublishable: "set_publishable", Publish: "publish", Decline: "decline",
    Remind: "remind", Chase: "chase", LinkCall: "link_call", Satisfied: "satisfied",
    TransferCall: "transfer_call",
}


# ---- effects ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who, when, from -[event]-> to, and a short detail."""

    code: str
    actor: Actor
    at: dt.datetime
    event: str
    from_state: TicketState | None  # None when the ticket was opened
    to_state: TicketState
    detail: str = ""

    def __str__(self) -> str:
        start = self.from_state.value if self.from_state is not None else "-"
        tail = f": {self.detail}" if self.detail else ""
        return (f"{self.code} {start} -[{self.event}]-> {self.to_state.value} by {self.actor} "
                f"at {self.at.isoformat()}{tail}")


@dataclass(frozen=True)
class NotifyUnit:
    """SMS about a unit's ticket (template already filled): its focal persons (``forwarded``,
    ``reminder``, ``chase``, ``reopened``), or its head and the province office
    (``escalation``)."""

    code: str
    unit: str
    template: Literal["forwarded", "reminder", "chase", "escalation", "reopened"]
    phones: tuple[str, ...]
    text: str
    # With code and template a key against sending twice: the event's time, or for chases
    # and escalations the chase slot (the same for every instance and sweep that finds it).
    at: dt.datetime


@dataclass(frozen=True)
class SendEmail:
    """E-mail someone about a late ticket (chase or escalation); sent after the commit."""

    code: str
    purpose: Literal["chase", "escalation"]
    to: str
    to_name: str
    subject: str
    body: str
    dedupe_key: str  # code, purpose, chase slot and address: never sent twice


@dataclass(frozen=True)
class NotifyCitizen:
    """SMS the citizen (the ``resolved`` notice, the ``web_receipt``); only for a mobile number.

    ``survey_until``: the text asks the satisfaction question, and a reply counts until then
    (the adapter records the question with the SMS); with it, ``unit`` is the unit that
    resolved the ticket (the answer counts for it in the reports).
    """

    code: str
    template: Literal["resolved", "web_receipt"]
    phone: str
    text: str
    at: dt.datetime
    survey_until: dt.datetime | None = None
    unit: str | None = None


@dataclass(frozen=True)
class StartClock:
    """A clock starts or its due time (or the unit to remind) changed: (re)schedule it."""

    code: str
    clock: dl.ClockName
    due: dt.datetime
    remind_at: dt.datetime | None = None


@dataclass(frozen=True)
class StopClock:
    """A clock stopped: cancel what was scheduled for it."""

    code: str
    clock: dl.ClockName


@dataclass(frozen=True)
class GrantTransferRead:
    """Record that ``unit`` took a call about the ticket (``TransferCall``): it may read it."""

    code: str
    unit: str
    call_id: str
    at: dt.datetime


Effect = (AuditEntry | NotifyUnit | NotifyCitizen | SendEmail | StartClock | StopClock
          | GrantTransferRead)

# ---- the table ----------------------------------------------------------------------------------
_ALL = frozenset(S)
# event -> (states it may happen in, state it leads to; None: the state stays).
TRANSITIONS: dict[type[Event], tuple[frozenset[TicketState], TicketState | None]] = {
    Answer: (LEVEL1, S.ANSWERED),
    Forward: (LEVEL1 | AT_UNIT, S.FORWARDED),
    Accept: (frozenset({S.FORWARDED}), S.IN_PROGRESS),
    Resolve: (AT_UNIT, S.RESOLVED),
    Return: (AT_UNIT, S.RETURNED),
    Close: (LEVEL1 | {S.RESOLVED}, S.CLOSED),
    Reopen: (frozenset({S.ANSWERED, S.RESOLVED, S.CLOSED}), S.REOPENED),
    Reclassify: (LEVEL1, None),
    SetPublishable: (_ALL, None),
    Publish: (frozenset({S.ANSWERED, S.RESOLVED, S.CLOSED}), None),
    Decline: (frozenset({S.ANSWERED, S.RESOLVED, S.CLOSED}), None),
    Remind: (AT_UNIT, None),
    Chase: (AT_UNIT, None),
    LinkCall: (_ALL, None),
    TransferCall: (_ALL, None),
    Satisfied: (frozenset({S.RESOLVED, S.CLOSED}), None),
}
_LEVEL1_ROLES = frozenset({"operator", "supervisor", "admin"})
_OVERSIGHT = frozenset({"supervisor", "admin"})


# ---- codes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TicketCode:
    """A ticket code's parts."""

    prefix: str
    date: dt.date  # local date of receipt in the tenant's zone
    seq: int  # per tenant per local day, from 1


def ticket_code(prefix: str, local_date: dt.date, seq: int) -> str:
    """``DN-20261123-0042``: prefix, local date of receipt, per-day sequence (4-6 digits)."""
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", prefix):
        raise TicketError("ticket.bad_code", f"prefix {prefix!r}: expected 1-10 characters "
                                             "A-Z 0-9 starting with a letter")
    if not 1 <= seq <= MAX_SEQ:
        raise TicketError("ticket.bad_code", f"sequence {seq}: expected 1..{MAX_SEQ}")
    return f"{prefix}-{local_date:%Y%m%d}-{seq:04d}"


def parse_ticket_code(code: str) -> TicketCode:
    """The parts of a ticket code; TicketError ``ticket.bad_code`` if it is not one."""
    m = _CODE.fullmatch(code)
    if m is None:
        raise TicketError("ticket.bad_code", f"{code!r}: expected a code such as "
                                             "DN-20261123-0042")
    try:
        date = dt.datetime.strptime(m[2], "%Y%m%d").date()
    except ValueError:
        raise TicketError("ticket.bad_code", f"{code!r}: {m[2]} is not a date") from None
    seq = int(m[3])
    if seq < 1:
        raise TicketError("ticket.bad_code", f"{code!r}: the sequence starts at 1")
    return TicketCode(m[1], date, seq)


def code_date(received_at: dt.datetime, timezone: str) -> dt.date:
    """The local date a ticket's code carries (the sequence restarts each local day)."""
    return dl.local(received_at, timezone).date()


# ---- helpers ----------------------------------------------------------------------------------
def _text(value: str | None, what: str, max_len: int) -> str:
    if value is None or not value.strip():
        raise TicketError("ticket.invalid_text", f"{what} must not be empty")
    if len(value) > max_len:
        raise TicketError("ticket.invalid_text",
                          f"{what} has {len(value)} characters; expected at most {max_len}")
    return value.strip()


def _optional_text(value: str | None, what: str, max_len: int) -> str | None:
    return None if value is None or not value.strip() else _text(value, what, max_len)


def _place_text(policy: TicketPolicy, ticket: Ticket) -> str:
    district, commune = resolve_place(policy, ticket.place)
    if commune is not None and district is not None:
        return f"{commune.name}, {district.name}"
    return district.name if district is not None else "chưa rõ địa bàn"


def render_sms(template: str, policy: TicketPolicy, ticket: Ticket,
               now: dt.datetime | None = None) -> str:
    """Fill an SMS template's placeholders for a ticket (texts validated by ticket_config).

    ``{days_late}`` counts at ``now`` (0 without it).
    """
    unit = policy.unit(ticket.unit) if ticket.unit is not None else None
    values = {
        "code": ticket.code,
        "field": policy.field_name(ticket.field) or ticket.field,
        "place": _place_text(policy, ticket),
        "unit": unit.name if unit is not None else "",
        "deadline": (dl.format_local(ticket.resolve_due, policy.timezone)
                     if ticket.resolve_due is not None else "không quy định"),
        "received": dl.format_local(ticket.received_at, policy.timezone),
        "days_late": str(dl.days_late(ticket, now) if now is not None else 0),
    }
    return template.format(**values)


def _with_deadlines(policy: TicketPolicy, ticket: Ticket) -> Ticket:
    d = dl.ticket_deadlines(policy, ticket)
    return replace(ticket, forward_due=d.forward_due, resolve_due=d.resolve_due)


def _clock_effects(policy: TicketPolicy, old: Ticket | None, new: Ticket) -> list[Effect]:
    before = dl.running_clocks(old) if old is not None else {}
    after = dl.running_clocks(new)
    effects: list[Effect] = [StopClock(new.code, c) for c in before if c not in after]
    for clock, due in after.items():
        unit_changed = old is not None and clock == "resolve" and old.unit != new.unit
        if before.get(clock) != due or unit_changed:
            remind = dl.reminder_at(policy, new) if clock == "resolve" else None
            effects.append(StartClock(new.code, clock, due, remind))
    return effects


def _check_time(ticket: Ticket | None, at: dt.datetime, received_at: dt.datetime) -> None:
    dl.require_aware(at, "the event's time")
    if at < received_at:
        code = f" of {ticket.code}" if ticket is not None else ""
        raise TicketError("ticket.time_order", f"{at.isoformat()} is before the receipt{code} "
                                               f"({received_at.isoformat()})")


def _forbidden(actor: Actor, what: str) -> TicketError:
    return TicketError("ticket.forbidden", f"{actor} may not {what}")


def _check_role(ticket: Ticket, event: Event) -> None:
    actor, role, state = event.actor, event.actor.role, ticket.state
    if isinstance(event, (Accept, Resolve, Return)):
        holder = role == "unit" and actor.unit is not None and actor.unit == ticket.unit
        if not (holder or role in _OVERSIGHT):
            raise _forbidden(actor, f"{EVENT_NAMES[type(event)]} a ticket held by "
                                    f"{ticket.unit}; only that unit, a supervisor or an admin")
    elif isinstance(event, Forward):
        allowed = _LEVEL1_ROLES if state in LEVEL1 else _OVERSIGHT
        if role not in allowed:
            raise _forbidden(actor, f"forward a ticket in state {state.value}")
    elif isinstance(event, Close):
        allowed = _LEVEL1_ROLES if state is S.RESOLVED else _OVERSIGHT
        if role not in allowed:
            raise _forbidden(actor, f"close a ticket in state {state.value}")
    elif isinstance(event, Reopen):
        # system: the citizen's "not resolved" reply to the resolve SMS (tickets.survey).
        if role not in _LEVEL1_ROLES | {"system"}:
            raise _forbidden(actor, "reopen a ticket")
    elif isinstance(event, Satisfied):
        if role not in _OVERSIGHT | {"system"}:
            raise _forbidden(actor, "record the citizen's satisfaction")
    elif isinstance(event, (Answer, Reclassify)):
        if role not in _LEVEL1_ROLES:
            raise _forbidden(actor, f"{EVENT_NAMES[type(event)]} a ticket")
    elif isinstance(event, (SetPublishable, Publish, Decline)):
        if role not in _OVERSIGHT:
            raise _forbidden(actor, "choose what is published")
    elif isinstance(event, (Remind, Chase)):
        if role not in _OVERSIGHT | {"system"}:
            raise _forbidden(actor, "send reminders")
    elif isinstance(event, LinkCall) and role not in _LEVEL1_ROLES | {"system"}:
        raise _forbidden(actor, "link call records")
    elif isinstance(event, TransferCall) and role not in _LEVEL1_ROLES | {"system"}:
        raise _forbidden(actor, "record a call transferred to a unit")


REVIEWABLE = frozenset({S.ANSWERED, S.RESOLVED, S.CLOSED})
ReviewStatus = Literal["not_ready", "pending", "published", "declined"]
REVIEW_STATUSES: tuple[ReviewStatus, ...] = ("not_ready", "pending", "published", "declined")


def is_reviewable(ticket: Ticket) -> bool:
    """True if the ticket has an answer or result to disclose (answered, resolved, closed)."""
    return ticket.result is not None and ticket.state in REVIEWABLE


def review_status(ticket: Ticket) -> ReviewStatus:
    """Where the ticket stands in the disclosure review (see the module's docs)."""
    if not is_reviewable(ticket):
        return "not_ready"
    if ticket.publishable:
        return "published"
    return "declined" if ticket.decline_reason is not None else "pending"


# ---- who may read ------------------------------------------------------------------------------
Access = Literal["all", "holder", "held", "transferred", "overseer"]


@dataclass(frozen=True)
class OversightScope:
    """The tickets a unit oversees, in the terms tickets are stored in (for the store query)."""

    fields: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()  # every ticket of these districts (and communes)
    communes: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.fields or self.districts or self.communes)

    def covers(self, ticket: Ticket) -> bool:
        """True if the ticket's field or place is one this scope follows."""
        return (ticket.field in self.fields
                or (ticket.district is not None and ticket.district in self.districts)
                or (ticket.commune is not None and ticket.commune in self.communes))


def oversight_scope(policy: TicketPolicy, unit_id: str | None) -> OversightScope:
    """What ``unit_id`` oversees in this tenant (empty: nothing, or no such unit)."""
    unit = policy.unit(unit_id) if unit_id is not None else None
    if unit is None or unit.oversees is None:
        return OversightScope()
    districts: set[str] = set()
    communes: set[str] = set()
    for pid in unit.oversees.places:
        found = policy.place(pid)
        if found is None:
            continue  # the config checked it; a place gone since is simply not followed
        district, commune = found
        if commune is not None:
            communes.add(commune.id)
        else:
            districts.add(district.id)
    return OversightScope(frozenset(unit.oversees.fields), frozenset(districts),
                          frozenset(communes))


def read_access(policy: TicketPolicy, actor: Actor, ticket: Ticket, *,
                held: bool, transferred: bool = False) -> Access | None:
    """How the actor may read the ticket (None: not at all); ``held``: its unit held it once;
    ``transferred``: a call about it was transferred to its unit (``TransferCall``).

    ``holder`` is the only unit access that may act (the events' own checks decide what);
    ``held``, ``transferred`` and ``overseer`` read only. Tenants are the caller's business
    (actors carry none).
    """
    if actor.role != "unit":
        return "all"
    if actor.unit is None:
        return None
    if ticket.unit == actor.unit:
        return "holder"
    if held:
        return "held"
    if transferred:
        return "transferred"
    if oversight_scope(policy, actor.unit).covers(ticket):
        return "overseer"
    return None


def is_public(ticket: Ticket) -> bool:
    """True if the ticket belongs in the public feed (published, with an answer or result)."""
    return ticket.publishable and is_reviewable(ticket)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def check_public_text(ticket: Ticket, text: str, what: str) -> None:
    """``ticket.personal_data`` if an edited public text carries the citizen's number or name."""
    phone = ticket.citizen_phone
    if phone:
        national = _digits(phone)
        digits = _digits(text)
        if national in digits or (national.startswith("0") and "84" + national[1:] in digits):
            raise TicketError("ticket.personal_data",
                              f"{what} contains the citizen's phone number")
    name = (ticket.citizen_name or "").strip()
    if name and " ".join(name.split()).casefold() in " ".join(text.split()).casefold():
        raise TicketError("ticket.personal_data", f"{what} contains the citizen's name")


def _quoted(text: str, limit: int = 300) -> str:
    one_line = " ".join(text.split())
    return f"«{one_line if len(one_line) <= limit else one_line[:limit - 1] + '…'}»"


# ---- opening ----------------------------------------------------------------------------------
def open_ticket(policy: TicketPolicy, *, code: str, tenant: str, channel: str, content: str,
                field: str, at: dt.datetime, actor: Actor, place: str | None = None,
                citizen_name: str | None = None, citizen_phone: str | None = None,
                urgent: bool = False, call_ids: tuple[str, ...] = (),
                publishable: bool | None = None,
                call_arrivals: Sequence[dt.datetime] = ()) -> tuple[Ticket, list[Effect]]:
    """Record a new ticket, recorded at ``at``; its clocks start at its receipt.

    The receipt is ``at``, or the earliest of ``call_arrivals`` (when the calls the ticket came
    from arrived; see ``deadlines.receipt_time``): the clocks start when the citizen called.
    ``place`` is a district or commune id; ``publishable`` None takes the tenant's default.
    Only a supervisor or an admin may ask for ``publishable=True`` (``ticket.forbidden``
    otherwise, as for ``SetPublishable``); anyone opening may keep a ticket off the public
    page with ``False``, which publishes nothing.
    A ticket answered at once from the FAQ: open it, then ``apply`` an ``Answer``.
    """
    _check_time(None, at, at)
    if actor.role not in _LEVEL1_ROLES and actor.role != "system":
        raise _forbidden(actor, "record a ticket")
    if publishable is True and actor.role not in _OVERSIGHT:
        raise TicketError("ticket.forbidden", "Chỉ giám sát viên hoặc quản trị viên được chọn "
                                              "công khai phản ánh trên trang công khai; "
                                              f"{actor} không có quyền này.")
    parsed = parse_ticket_code(code)
    if parsed.prefix != policy.code_prefix:
        raise TicketError("ticket.bad_code", f"{code!r}: expected the tenant's prefix "
                                             f"{policy.code_prefix}")
    found_channel = next((c for c in CHANNELS if c == channel), None)
    if found_channel is None:
        raise TicketError("ticket.unknown_channel",
                          f"unknown channel {channel!r}: expected one of {', '.join(CHANNELS)}")
    if policy.field_name(field) is None:
        raise TicketError("ticket.unknown_field", f"unknown field {field!r}: expected one of "
                                                  f"{', '.join(f.id for f in policy.fields)}")
    district, commune = resolve_place(policy, place)
    phone: str | None = None
    if citizen_phone is not None and citizen_phone.strip():
        phone = vietnamese_phone(citizen_phone)
        if phone is None:
            raise TicketError("ticket.invalid_phone", f"{citizen_phone!r} is not a Vietnamese "
                                                      "mobile or fixed-line number")
    ticket = Ticket(
        code=code, tenant=tenant, channel=found_channel,
        content=_text(content, "the content", MAX_CONTENT), field=field,
        received_at=dl.receipt_time(at, call_arrivals),
        citizen_name=_optional_text(citizen_name, "the citizen's name", 200),
        citizen_phone=phone,
        district=district.id if district is not None else None,
        commune=commune.id if commune is not None else None,
        urgent=urgent, call_ids=tuple(dict.fromkeys(call_ids)),
        publishable=policy.public_by_default if publishable is None else publishable,
    )
    ticket = _with_deadlines(policy, ticket)
    detail = f"{found_channel}, field {field}" + (", urgent" if urgent else "")
    if ticket.received_at != at:
        detail += f", received {ticket.received_at.isoformat()} (the call's arrival)"
    effects: list[Effect] = [AuditEntry(code, actor, at.astimezone(dt.UTC), "open", None, S.NEW,
                                        detail)]
    return ticket, effects + _clock_effects(policy, None, ticket)


def receipt_notice(policy: TicketPolicy, ticket: Ticket,
                   at: dt.datetime) -> NotifyCitizen | None:
    """The citizen's receipt with the ticket's final code (``sms.web_receipt``), for a petition
    sent through the web form; None without a mobile number. Built after the code is given
    (``open_ticket`` works under a provisional one), in the opening's transaction."""
    mobile = vietnamese_mobile(ticket.citizen_phone) if ticket.citizen_phone else None
    if mobile is None:
        return None
    return NotifyCitizen(ticket.code, "web_receipt", mobile,
                         render_sms(policy.sms.web_receipt, policy, ticket),
                         at.astimezone(dt.UTC))


# ---- transitions ------------------------------------------------------------------------------
def apply(ticket: Ticket, event: Event,
          policy: TicketPolicy) -> tuple[Ticket, list[Effect]]:
    """Apply one event; return the new ticket and exactly the effects to carry out."""
    kind = type(event)
    name = EVENT_NAMES[kind]
    states, target = TRANSITIONS[kind]
    if ticket.state not in states:
        raise TicketError("ticket.illegal_transition",
                          f"cannot {name} ticket {ticket.code} in state {ticket.state.value}; "
                          f"{name} is allowed in: "
                          f"{', '.join(sorted(s.value for s in states))}")
    _check_time(ticket, event.at, ticket.received_at)
    _check_role(ticket, event)
    at = event.at.astimezone(dt.UTC)
    new, detail, extra = _transition(ticket, event, policy, at)
    new = replace(new, state=target or ticket.state, version=ticket.version + 1)
    effects: list[Effect] = [AuditEntry(ticket.code, event.actor, at, name, ticket.state,
                                        new.state, detail)]
    effects += _clock_effects(policy, ticket, new)
    effects += extra
    return new, effects


def _transition(t: Ticket, e: Event, policy: TicketPolicy,
                at: dt.datetime) -> tuple[Ticket, str, list[Effect]]:
    """The ticket after ``e`` (state aside), the audit detail and the notifications."""
    if isinstance(e, Answer):
        answer = _text(e.answer, "the answer", MAX_CONTENT)
        new = replace(t, result=answer, faq_item=e.faq_item, resolved_at=at, closed_at=at)
        return new, f"answered at level 1{f' from FAQ {e.faq_item}' if e.faq_item else ''}", []
    if isinstance(e, Forward):
        return _forward(t, e, policy, at)
    if isinstance(e, Accept):
        return replace(t, accepted_at=at), f"accepted by {t.unit}", []
    if isinstance(e, Resolve):
        result = _text(e.result, "the result", MAX_CONTENT)
        new = replace(t, result=result, reply_document=e.reply_document, resolved_at=at)
        late = dl.is_late(new, at)
        detail = (f"result recorded by {t.unit}" + (" with a reply document"
                                                    if e.reply_document else "")
                  + (f", {dl.days_late(new, at)} day(s) late" if late else ", on time"))
        effects: list[Effect] = []
        mobile = vietnamese_mobile(t.citizen_phone) if t.citizen_phone else None
        if mobile is not None:
            text = render_sms(policy.sms.resolved, policy, new)
            until = None
            if policy.survey.enabled:
                text = f"{text} {policy.survey.question}"
                until = at + dt.timedelta(days=policy.survey.reply_days)
            effects.append(NotifyCitizen(t.code, "resolved", mobile, text, at, until,
                                         t.unit if until is not None else None))
        return new, detail, effects
    if isinstance(e, Return):
        reason = _text(e.reason, "the reason", MAX_REASON)
        new = _with_deadlines(policy, replace(
            t, unit=None, returned_at=at, returned_by=t.unit, return_reason=reason,
            accepted_at=None, reminded_at=None, chased_at=None, escalated_at=None))
        return new, f"returned by {t.unit}: {reason}", []
    if isinstance(e, Close):
        why: str | None
        if t.state is S.RESOLVED:
            why = _optional_text(e.reason, "the reason", MAX_REASON)
        else:
            why = _text(e.reason, "the reason for closing a ticket never handled", MAX_REASON)
        return (replace(t, closed_at=at, close_reason=why),
                f"closed{': ' + why if why else ''}", [])
    if isinstance(e, Reopen):
        reason = _text(e.reason, "the reason", MAX_REASON)
        new = _with_deadlines(policy, replace(
            t, unit=None, reopened_at=at, reopen_reason=reason, resolved_at=None,
            closed_at=None, accepted_at=None, reminded_at=None, chased_at=None,
            escalated_at=None, result=None,
            reply_document=None, faq_item=None, close_reason=None,
            publishable=False, public_question=None, public_answer=None,
            decline_reason=None))
        withdrawn = "; withdrawn from publication" if t.publishable else ""
        tell: list[Effect] = []
        unit = policy.unit(t.unit) if t.unit is not None else None
        if e.actor.role == "system" and unit is not None:
            # The citizen says the unit's result did not solve it: the unit hears it at once
            # (the ticket itself goes back to level 1, which forwards it again).
            tell.append(NotifyUnit(t.code, unit.id, "reopened",
                                   _focal_phones(policy, unit, t.field),
                                   render_sms(policy.sms.reopened, policy, t), at))
        return new, f"reopened: {reason}{withdrawn}", tell
    if isinstance(e, Satisfied):
        return t, "the citizen replied: satisfied (hài lòng)", []
    if isinstance(e, Reclassify):
        if policy.field_name(e.field) is None:
            raise TicketError("ticket.unknown_field", f"unknown field {e.field!r}")
        district, commune = resolve_place(policy, e.place)
        new = _with_deadlines(policy, replace(
            t, field=e.field, urgent=e.urgent,
            district=district.id if district is not None else None,
            commune=commune.id if commune is not None else None))
        changes = [f"{what} {a} -> {b}" for what, a, b in (
            ("field", t.field, new.field), ("place", t.place, new.place),
            ("urgent", t.urgent, new.urgent)) if a != b]
        return new, ", ".join(changes) or "no change", []
    if isinstance(e, SetPublishable):
        return (replace(t, publishable=e.publishable, decline_reason=None),
                "published" if e.publishable else "withdrawn from publication", [])
    if isinstance(e, Publish):
        return _publish(t, e)
    if isinstance(e, Decline):
        if not is_reviewable(t):
            raise TicketError("ticket.illegal_transition",
                              f"{t.code} has no answer or result to review")
        reason = _text(e.reason, "the reason", MAX_REASON)
        was = "withdrawn and declined" if t.publishable else "declined"
        return (replace(t, publishable=False, decline_reason=reason),
                f"{was} for publication: {reason}", [])
    if isinstance(e, Remind):
        if not dl.reminder_due(policy, t, at):
            when = dl.reminder_at(policy, t)
            why = ("already sent for this forwarding" if t.reminded_at is not None
                   else f"due at {when.isoformat()}" if when is not None
                   else "no reminder applies")
            raise TicketError("ticket.reminder_not_due", f"no reminder for {t.code}: {why}")
        assert t.unit is not None
        unit = policy.unit(t.unit)
        phones = _focal_phones(policy, unit, t.field) if unit is not None else ()
        new = replace(t, reminded_at=at)
        return new, f"reminded {t.unit}", [
            NotifyUnit(t.code, t.unit, "reminder", phones,
                       render_sms(policy.sms.reminder, policy, new), at)]
    if isinstance(e, Chase):
        return _chase(t, e, policy, at)
    if isinstance(e, TransferCall):
        unit = policy.unit(e.unit)
        if unit is None:
            raise TicketError("ticket.unknown_unit",
                              f"unknown unit {e.unit!r}: expected one of "
                              f"{', '.join(u.id for u in policy.units)}")
        call_id = _text(e.call_id, "the call record id", 128)
        return t, f"call {call_id} transferred to {unit.id}", [
            GrantTransferRead(t.code, unit.id, call_id, at)]
    # LinkCall
    call_id = _text(e.call_id, "the call record id", 128)
    if call_id in t.call_ids:
        return t, f"call {call_id} already linked", []
    return replace(t, call_ids=(*t.call_ids, call_id)), f"call {call_id} linked", []


def _publish(t: Ticket, e: Publish) -> tuple[Ticket, str, list[Effect]]:
    """Publish with the reviewed texts; the audit says what the public reads from now on."""
    if not is_reviewable(t):
        raise TicketError("ticket.illegal_transition",
                          f"{t.code} has no answer or result to publish")
    question = _optional_text(e.question, "the public question", MAX_CONTENT)
    answer = _optional_text(e.answer, "the public answer", MAX_CONTENT)
    if question is not None:
        check_public_text(t, question, "the public question")
    if answer is not None:
        check_public_text(t, answer, "the public answer")
    new = replace(t, publishable=True, decline_reason=None,
                  public_question=question if question is not None else t.public_question,
                  public_answer=answer if answer is not None else t.public_answer)
    parts = ["published again" if t.publishable else "published"]
    for what, before, after in (("question", t.public_question, new.public_question),
                                ("answer", t.public_answer, new.public_answer)):
        if after is None:
            parts.append(f"{what}: masked original")
        elif after != before:
            parts.append(f"{what} edited: {_quoted(after)}")
        else:
            parts.append(f"{what} unchanged")
    return new, "; ".join(parts), []


def _forward(t: Ticket, e: Forward, policy: TicketPolicy,
             at: dt.datetime) -> tuple[Ticket, str, list[Effect]]:
    unit = policy.unit(e.unit)
    if unit is None:
        raise TicketError("ticket.unknown_unit", f"unknown unit {e.unit!r}: expected one of "
                                                 f"{', '.join(u.id for u in policy.units)}")
    if t.unit == unit.id:
        raise TicketError("ticket.same_unit", f"ticket {t.code} is already with {unit.id}")
    note = _optional_text(e.note, "the note", MAX_REASON)
    suggested = explain_route(policy, t.field, t.place)
    new = _with_deadlines(policy, replace(t, unit=unit.id, forwarded_at=at, accepted_at=None,
                                          reminded_at=None, chased_at=None, escalated_at=None))
    how = (f"as routed ({suggested.describe()})" if suggested.unit == unit.id
           else f"override: the rules give {suggested.unit} ({suggested.describe()})")
    detail = f"to {unit.id} " + how
    if t.unit is not None:
        detail = f"from {t.unit} " + detail
    if note:
        detail += f"; {note}"
    notify = NotifyUnit(t.code, unit.id, "forwarded", _focal_phones(policy, unit, t.field),
                        render_sms(policy.sms.forwarded, policy, new), at)
    return new, detail, [notify]


def _focal_phones(policy: TicketPolicy, unit: Level2Unit, field: str) -> tuple[str, ...]:
    """The phones of the unit's focal persons for this field (Level2Unit.focal_for)."""
    return tuple(p.phone for p in unit.focal_for(field, policy.field_group(field)))


def _email_text(policy: TicketPolicy, t: Ticket, at: dt.datetime,
                escalation: bool) -> tuple[str, str]:
    """Subject and body of a chase or escalation e-mail (Vietnamese: officials read it)."""
    unit = policy.unit(t.unit) if t.unit is not None else None
    unit_name = unit.name if unit is not None else (t.unit or "")
    days = dl.days_late(t, at)
    due = dl.format_local(t.resolve_due, policy.timezone) if t.resolve_due else ""
    if escalation:
        subject = f"Tổng đài 1022: phản ánh {t.code} giao {unit_name} đã trễ hạn {days} ngày"
        lead = (f"Phản ánh {t.code} giao {unit_name} xử lý đã trễ hạn {days} ngày (hạn "
                f"{due}) và chưa có kết quả. Đề nghị chỉ đạo đơn vị khẩn trương xử lý.")
    else:
        subject = f"Tổng đài 1022 đôn đốc: phản ánh {t.code} đã quá hạn xử lý"
        lead = (f"Phản ánh {t.code} đã quá hạn xử lý ({due}), trễ {days} ngày. Đề nghị "
                f"{unit_name} khẩn trương xử lý và cập nhật kết quả trên hệ thống Tổng đài 1022.")
    body = "\n".join([
        lead, "",
        f"Mã phản ánh: {t.code}",
        f"Lĩnh vực: {policy.field_name(t.field) or t.field}",
        f"Địa bàn: {_place_text(policy, t)}",
        f"Tiếp nhận: {dl.format_local(t.received_at, policy.timezone)}",
        f"Hạn xử lý: {due}",
        f"Đơn vị xử lý: {unit_name}", "",
        "Thư này do hệ thống Tổng đài 1022 gửi tự động.",
    ])
    return subject, body


def _chase(t: Ticket, e: Chase, policy: TicketPolicy,
           at: dt.datetime) -> tuple[Ticket, str, list[Effect]]:
    """SMS (and e-mail) the late unit; with ``escalate``, its head and the province office."""
    due = dl.chase_due(policy, t, at)
    if due is None:
        raise TicketError("ticket.chase_not_due", f"no chase for {t.code} at {at.isoformat()}: "
                                                  "not late at a unit, or this slot was chased")
    assert t.unit is not None
    unit = policy.unit(t.unit)
    new = replace(t, chased_at=due.slot,
                  escalated_at=at if due.escalate else t.escalated_at)
    days = dl.days_late(t, at)
    slot = due.slot.isoformat()
    effects: list[Effect] = []
    emails: list[tuple[str, str, str]] = []  # (purpose, address, name)
    persons = unit.focal_for(t.field, policy.field_group(t.field)) if unit is not None else ()
    if persons:
        effects.append(NotifyUnit(t.code, t.unit, "chase", tuple(p.phone for p in persons),
                                  render_sms(policy.sms.chase, policy, new, at), due.slot))
    if unit is not None and unit.email:
        emails.append(("chase", unit.email, unit.name))
    emails += [("chase", p.email, p.name) for p in persons if p.email]
    told: list[str] = []
    if due.escalate:
        contacts = [c for c in ((unit.head if unit is not None else None),
                                policy.province_office) if c is not None]
        phones = tuple(dict.fromkeys(c.phone for c in contacts if c.phone))
        if phones:
            effects.append(NotifyUnit(t.code, t.unit, "escalation", phones,
                                      render_sms(policy.sms.escalation, policy, new, at),
                                      due.slot))
        emails += [("escalation", c.email, c.name) for c in contacts if c.email]
        told = [c.name for c in contacts]
        effects.append(AuditEntry(
            t.code, e.actor, at, "escalate", t.state, t.state,
            f"{t.unit} {days} day(s) late: told " + (", ".join(told) or "nobody (no head or "
                                                     "province office configured)")))
    seen: set[tuple[str, str]] = set()
    for purpose, address, name in emails:
        if (purpose, address.lower()) in seen:
            continue
        seen.add((purpose, address.lower()))
        subject, body = _email_text(policy, new, at, purpose == "escalation")
        key = f"{t.code}:{purpose}:{slot}:{address.lower()}"
        effects.append(SendEmail(t.code, "escalation" if purpose == "escalation" else "chase",
                                 address, name, subject, body, key))
        effects.append(AuditEntry(t.code, e.actor, at, "email", t.state, t.state,
                                  f"{purpose} e-mail to {name} <{address}>: {subject} "
                                  f"(key {key})"))
    detail = (f"chased {t.unit} ({days} day(s) late, slot {slot}): SMS to "
              f"{len(persons)} focal person(s)" + ("; escalated" if due.escalate else ""))
    return new, detail, effects
