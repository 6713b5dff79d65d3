"""A ticket's clocks: due times, time left, lateness and reminders; pure and time-zone aware.

Two clocks, both set by the tenant's ``TicketPolicy.deadlines`` (see callcenter.tickets.config):

* **forward** (optional; HCMC: 5 minutes): level 1 must pass the ticket to a unit. It runs
  while the ticket is at level 1, from receipt (or the latest return or reopening) until it is
  forwarded, answered or closed.
* **resolve** (24 h by default, urgent health 4 h in every field of the health group, HCMC
  violation reports 60 min from the unit's receipt): the result is due. It runs until the
  unit records the result, level 1 answers, or a supervisor closes the ticket.

Arithmetic is on elapsed time: "24 giờ" is 24 real hours, so durations are added in UTC and
due times are returned in UTC (``local`` and ``format_local`` show them in the tenant's zone).
Vietnam has no daylight saving time, but a zone with it still gets exact answers. The clocks
run around the clock: the hotline is 24/7 and the orders count hours, not working days.

Decisions:

* **Returned ticket:** the resolve clock keeps running from receipt (the citizen has waited
  all along; the seeds count 24 h "kể từ khi tiếp nhận phản ánh trên Tổng đài 1022"). The
  forward clock starts again at the return, since level 1 must pass the ticket on again, and a
  ``from: forwarded`` rule's clock starts again at the next forwarding (the new unit gets its
  full time, as HCMC counts from the unit's own receipt).
* **Reopened ticket:** both clocks start afresh at the reopening: a new round of handling.
* **Days late** (the seeds' appendices): every started 24 hours past the due time is a day, so
  1 minute late is 1 day and 24 h 1 min is 2 days; a late ticket never shows 0 days.
* **Stopped clocks:** lateness is measured where the clock stopped (result recorded, answered,
  closed), so a ticket resolved late stays "resolved late" in the reports.
* **Reminder:** ``reminder_before`` the resolve due time, only while a unit holds the ticket
  and only if that moment comes after the forwarding (otherwise the forward SMS, which gives
  the deadline, is the reminder).
* **Chasing** (``TicketPolicy.chasing``; "đôn đốc, nhắc nhở các đơn vị chậm trễ"): once the
  resolve deadline has passed with the ticket still at a unit, the unit is chased at *chase
  slots*: the deadline itself (``at_deadline``; the hotline is 24/7, so this one may fall at
  night or on a Sunday, like the deadline) and ``daily_at`` local time on every working day
  after it (Monday-Friday unless ``working_days`` says otherwise, minus ``holidays``). A sweep
  sends one chase for the latest slot that has passed and was not yet chased, never a backlog
  (an app down for three days sends one chase, not three). Slots at or before the forwarding
  are skipped (the forward SMS gives the deadline). Escalation to the unit's head and the
  province office rides on the first slot at least ``escalate_after`` past the deadline, so
  it never wakes anyone at night unless only ``at_deadline`` is configured (then it has a
  slot of its own, the deadline plus ``escalate_after``); once per forwarding.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from callcenter.tickets.config import ChasingPolicy, DeadlineRule, TicketError, TicketPolicy

if TYPE_CHECKING:
    from callcenter.tickets.rules import Ticket

ClockName = Literal["forward", "resolve"]
_DAY = dt.timedelta(days=1)
_ZERO = dt.timedelta(0)


@dataclass(frozen=True)
class Deadlines:
    """Due times (UTC) of a ticket's clocks; None: that clock does not apply (yet)."""

    forward_due: dt.datetime | None
    resolve_due: dt.datetime | None
    rules: tuple[str, ...] = ()  # names of the deadline rules that set them


def require_aware(at: dt.datetime, what: str = "time") -> None:
    """Raise TicketError ``ticket.naive_time`` unless ``at`` carries a UTC offset."""
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise TicketError("ticket.naive_time", f"{what} must be timezone-aware, got {at!r}")


def add_elapsed(start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
    """``start`` plus ``duration`` of real elapsed time, in UTC (exact across DST changes)."""
    require_aware(start)
    return start.astimezone(dt.UTC) + duration


def local(at: dt.datetime, timezone: str) -> dt.datetime:
    """An aware moment as wall-clock time in ``timezone``."""
    require_aware(at)
    return at.astimezone(ZoneInfo(timezone))


def format_local(at: dt.datetime, timezone: str) -> str:
    """Vietnamese style local time for SMS and lists: ``14:30 23/11/2026``."""
    t = local(at, timezone)
    return f"{t:%H:%M %d/%m/%Y}"


def receipt_time(saved_at: dt.datetime, call_arrivals: Iterable[dt.datetime] = ()) -> dt.datetime:
    """When the hotline received a petition: the earliest arrival of the calls it came from.

    The clocks count "kể từ khi tiếp nhận phản ánh trên Tổng đài 1022": from the call, not
    from the moment the operator saved the form. An arrival after ``saved_at`` (clocks of two
    machines apart) is not a receipt: the save time stands then.
    """
    require_aware(saved_at, "the time of receipt")
    earliest = saved_at.astimezone(dt.UTC)
    for arrived in call_arrivals:
        require_aware(arrived, "a call's arrival")
        earliest = min(earliest, arrived.astimezone(dt.UTC))
    return earliest


def matching_rules(policy: TicketPolicy, field: str, urgent: bool) -> tuple[DeadlineRule, ...]:
    """The tenant's deadline rules that apply to a ticket of this field and urgency."""
    group = policy.field_group(field)
    return tuple(r for r in policy.deadlines.rules if r.matches(field, urgent, group))


def compute_deadlines(policy: TicketPolicy, *, field: str, urgent: bool,
                      clock_start: dt.datetime, level1_since: dt.datetime,
                      forwarded_at: dt.datetime | None) -> Deadlines:
    """Due times for a ticket (see the module docstring for the anchors).

    ``clock_start``: receipt or reopening; ``level1_since``: when the ticket last came to
    level 1; ``forwarded_at``: when the unit now holding it received it (None: no unit).
    When several matching rules set a clock the earliest due time wins; a clock that no
    matching rule sets uses the tenant default.
    """
    rules = matching_rules(policy, field, urgent)
    used: list[str] = []
    resolve_rules = [r for r in rules if r.resolve is not None]
    resolve_due: dt.datetime | None
    if resolve_rules:
        dues: list[dt.datetime] = []
        for r in resolve_rules:
            assert r.resolve is not None
            anchor = clock_start if r.resolve_from == "received" else forwarded_at
            if anchor is not None:
                dues.append(add_elapsed(anchor, r.resolve))
        used += [r.name for r in resolve_rules]
        resolve_due = min(dues) if dues else None
    else:
        resolve_due = add_elapsed(clock_start, policy.deadlines.resolve)
    forward_rules = [r for r in rules if r.forward is not None]
    forward_due: dt.datetime | None = None
    if forward_rules:
        forward_due = min(add_elapsed(level1_since, r.forward) for r in forward_rules
                          if r.forward is not None)
        used += [r.name for r in forward_rules if r.name not in used]
    elif policy.deadlines.forward is not None:
        forward_due = add_elapsed(level1_since, policy.deadlines.forward)
    return Deadlines(forward_due, resolve_due, tuple(used))


def clock_start(ticket: Ticket) -> dt.datetime:
    """Where the ticket's resolve clock (``from: received``) starts: receipt or reopening."""
    return ticket.reopened_at or ticket.received_at


def level1_since(ticket: Ticket) -> dt.datetime:
    """When the ticket last came to level 1: receipt, its latest return or reopening."""
    return max(t for t in (ticket.received_at, ticket.returned_at, ticket.reopened_at)
               if t is not None)


def ticket_deadlines(policy: TicketPolicy, ticket: Ticket) -> Deadlines:
    """The due times a ticket should carry now, from its field, urgency and history."""
    return compute_deadlines(
        policy, field=ticket.field, urgent=ticket.urgent, clock_start=clock_start(ticket),
        level1_since=level1_since(ticket),
        forwarded_at=ticket.forwarded_at if ticket.unit is not None else None)


def resolve_stopped_at(ticket: Ticket) -> dt.datetime | None:
    """When the resolve clock stopped (result recorded, answered or closed); None: running."""
    return ticket.resolved_at if ticket.resolved_at is not None else ticket.closed_at


def forward_stopped_at(ticket: Ticket) -> dt.datetime | None:
    """When the forward clock stopped (forwarded, answered or closed); None: running."""
    if ticket.unit is not None:  # a unit holds it (or resolved it): it was forwarded
        return ticket.forwarded_at
    return resolve_stopped_at(ticket)  # still at level 1, unless answered or closed there


def running_clocks(ticket: Ticket) -> dict[ClockName, dt.datetime]:
    """The clocks that are running now, with their due times."""
    result: dict[ClockName, dt.datetime] = {}
    if ticket.forward_due is not None and forward_stopped_at(ticket) is None:
        result["forward"] = ticket.forward_due
    if ticket.resolve_due is not None and resolve_stopped_at(ticket) is None:
        result["resolve"] = ticket.resolve_due
    return result


def time_left(ticket: Ticket, now: dt.datetime) -> dt.timedelta | None:
    """Time until the nearest running clock's due time (negative once late); None: none runs."""
    require_aware(now, "now")
    clocks = running_clocks(ticket)
    return min(clocks.values()) - now if clocks else None


def _late_by(due: dt.datetime | None, stop: dt.datetime | None,
             now: dt.datetime) -> dt.timedelta:
    require_aware(now, "now")
    if due is None:
        return _ZERO
    end = stop if stop is not None else now
    return max(end - due, _ZERO)


def lateness(ticket: Ticket, now: dt.datetime) -> dt.timedelta:
    """How far past the resolve due time the ticket is (or was, if its clock stopped)."""
    return _late_by(ticket.resolve_due, resolve_stopped_at(ticket), now)


def forward_lateness(ticket: Ticket, now: dt.datetime) -> dt.timedelta:
    """How far past the forward due time level 1 is (or was when it forwarded)."""
    return _late_by(ticket.forward_due, forward_stopped_at(ticket), now)


def is_late(ticket: Ticket, now: dt.datetime) -> bool:
    """True if the result is (or was, when recorded) past its due time."""
    return lateness(ticket, now) > _ZERO


def is_forward_late(ticket: Ticket, now: dt.datetime) -> bool:
    """True if level 1 forwarded (or still has not forwarded) past the forward due time."""
    return forward_lateness(ticket, now) > _ZERO


def days_late(ticket: Ticket, now: dt.datetime) -> int:
    """Days late as in the seeds' appendices: every started 24 hours counts one day."""
    late = lateness(ticket, now)
    return math.ceil(late / _DAY) if late > _ZERO else 0


def reminder_at(policy: TicketPolicy, ticket: Ticket) -> dt.datetime | None:
    """When to remind the unit holding the ticket of its deadline; None: no reminder."""
    lead = policy.deadlines.reminder_before
    if (lead is None or ticket.unit is None or ticket.resolve_due is None
            or ticket.forwarded_at is None or resolve_stopped_at(ticket) is not None):
        return None
    at = ticket.resolve_due - lead
    return at if at > ticket.forwarded_at else None


def reminder_due(policy: TicketPolicy, ticket: Ticket, now: dt.datetime) -> bool:
    """True if the unit should get its reminder now and has not had it for this forwarding."""
    require_aware(now, "now")
    at = reminder_at(policy, ticket)
    return at is not None and now >= at and ticket.reminded_at is None


# ---- chasing late units -----------------------------------------------------------------------
_MAX_SEARCH_DAYS = 400  # a config whose working days are all holidays finds no morning


@dataclass(frozen=True)
class ChaseDue:
    """A chase to send now: the slot it is for (UTC) and whether it escalates."""

    slot: dt.datetime  # the chase moment; the SMS dedupe keys carry it
    escalate: bool  # tell the unit's head and the province office too (once)


def is_working_day(chasing: ChasingPolicy, day: dt.date) -> bool:
    """True if ``day`` (a local date) gets a morning chase."""
    return day.weekday() in chasing.working_days and day not in chasing.holidays


def _morning(chasing: ChasingPolicy, zone: ZoneInfo, day: dt.date) -> dt.datetime:
    assert chasing.daily_at is not None
    return dt.datetime.combine(day, chasing.daily_at, tzinfo=zone).astimezone(dt.UTC)


def _mornings(chasing: ChasingPolicy, zone: ZoneInfo, start: dt.date,
              step: int) -> Iterator[tuple[dt.date, dt.datetime]]:
    day = start
    for _ in range(_MAX_SEARCH_DAYS):
        if is_working_day(chasing, day):
            yield day, _morning(chasing, zone, day)
        day += dt.timedelta(days=step)


def _extra_slots(chasing: ChasingPolicy, due: dt.datetime) -> list[dt.datetime]:
    """Slots other than the mornings: the deadline, and escalation's own when no mornings."""
    slots = [due] if chasing.at_deadline else []
    if chasing.daily_at is None and chasing.escalate_after is not None:
        slots.append(due + chasing.escalate_after)
    return slots


def latest_chase_slot(chasing: ChasingPolicy, timezone: str, due: dt.datetime,
                      now: dt.datetime) -> dt.datetime | None:
    """The latest chase slot at or before ``now`` for a deadline ``due``; None: none yet."""
    require_aware(due, "the deadline")
    require_aware(now, "now")
    due, now = due.astimezone(dt.UTC), now.astimezone(dt.UTC)
    found = [s for s in _extra_slots(chasing, due) if s <= now]
    if chasing.daily_at is not None and now > due:
        zone = ZoneInfo(timezone)
        for _, at in _mornings(chasing, zone, now.astimezone(zone).date(), -1):
            if at <= due:
                break
            if at <= now:
                found.append(at)
                break
    return max(found) if found else None


def next_chase_slot(chasing: ChasingPolicy, timezone: str, due: dt.datetime,
                    after: dt.datetime) -> dt.datetime | None:
    """The first chase slot strictly after ``after`` for a deadline ``due``; None: none."""
    require_aware(due, "the deadline")
    require_aware(after, "after")
    due, after = due.astimezone(dt.UTC), after.astimezone(dt.UTC)
    found = [s for s in _extra_slots(chasing, due) if s > after]
    if chasing.daily_at is not None:
        zone = ZoneInfo(timezone)
        floor = max(after, due)
        for _, at in _mornings(chasing, zone, floor.astimezone(zone).date(), 1):
            if at > floor:
                found.append(at)
                break
    return min(found) if found else None


def _chase_floor(ticket: Ticket) -> dt.datetime | None:
    """Slots at or before this are done: the forwarding, or the last chase sent."""
    if ticket.forwarded_at is None:
        return None
    return max(t for t in (ticket.forwarded_at, ticket.chased_at) if t is not None)


def _chaseable(policy: TicketPolicy, ticket: Ticket) -> bool:
    return (policy.chasing is not None and ticket.unit is not None
            and ticket.resolve_due is not None and ticket.forwarded_at is not None
            and resolve_stopped_at(ticket) is None)


def chase_due(policy: TicketPolicy, ticket: Ticket, now: dt.datetime) -> ChaseDue | None:
    """The chase the unit holding a late ticket should get now; None: nothing is due."""
    require_aware(now, "now")
    if not _chaseable(policy, ticket):
        return None
    chasing, due, floor = policy.chasing, ticket.resolve_due, _chase_floor(ticket)
    assert chasing is not None and due is not None and floor is not None
    slot = latest_chase_slot(chasing, policy.timezone, due, now)
    if slot is None or slot <= floor:
        return None
    escalate = (chasing.escalate_after is not None and ticket.escalated_at is None
                and slot >= due + chasing.escalate_after)
    return ChaseDue(slot, escalate)


def next_chase_at(policy: TicketPolicy, ticket: Ticket) -> dt.datetime | None:
    """When the ticket's unit is next due a chase (the deadline job's schedule); None: never."""
    if not _chaseable(policy, ticket):
        return None
    chasing, due, floor = policy.chasing, ticket.resolve_due, _chase_floor(ticket)
    assert chasing is not None and due is not None and floor is not None
    return next_chase_slot(chasing, policy.timezone, due, floor)
