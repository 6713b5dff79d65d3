"""SMS billing as the orders count it (pure): texts to citizens apart from texts to officials.

The orders pay for "tin nhắn … đến người dân" apart from the texts the hotline sends its own
officials (units' focal persons and heads). Every outbox row carries a ``purpose``; this
module says, explicitly, which audience each purpose reaches:

=====================  ==========  ================================================
purpose                audience    sent when
=====================  ==========  ================================================
``resolve_notice``     citizen     the unit recorded the result (the citizen's notice)
``unit_notice``        official    a ticket was forwarded to the unit
``reminder``           official    the unit's deadline is near
``chase``              official    the unit is late: chasing its focal persons
``escalation``         official    the unit is late: its head (lãnh đạo đơn vị)
anything else          other       test texts (``callcenter sms send``), future purposes
=====================  ==========  ================================================

An unknown purpose is never guessed into citizen or official: it is reported as "other", so
a new kind of text shows up in the report instead of silently changing a budget line.

What is billed: a message the gateway accepted (Kannel answered 2xx: ``sent``) and that no
delivery report has declared failed since (``sent`` or ``delivered``), counted in PARTS (a
79-character Vietnamese notice is 2 UCS-2 parts, billed as 2). Carriers in Vietnam bill a
text when their SMSC takes it, not when the handset confirms, so a message still waiting
for its report counts; one whose report says undelivered or rejected (``failed``) is shown
apart, not billed. Queued, refused and expired messages never left: not counted at all.
A message belongs to the local month (tenant's time zone) in which the gateway accepted it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo

Audience = Literal["citizen", "official", "other"]
AUDIENCES: Final[tuple[Audience, ...]] = ("citizen", "official", "other")
AUDIENCE_OF_PURPOSE: Final[Mapping[str, Audience]] = {
    "resolve_notice": "citizen",
    "unit_notice": "official",
    "reminder": "official",
    "chase": "official",  # the late-unit chasing (tickets.chasing, on main since 'chasing')
    "escalation": "official",
}
AUDIENCE_NAMES: Final[Mapping[Audience, str]] = {
    "citizen": "Người dân",
    "official": "Cán bộ (đầu mối, lãnh đạo đơn vị)",
    "other": "Khác (tin thử, mục đích chưa phân loại)",
}
BILLED_STATUSES: Final = frozenset({"sent", "delivered"})
# Statuses a message may have once the gateway accepted it (sent_at set).
ACCEPTED_STATUSES: Final = frozenset({"sent", "delivered", "failed"})


class BillingPeriodError(ValueError):
    """A month or quarter that is not one."""


def audience_of(purpose: str) -> Audience:
    """Who a text of this purpose reaches; "other" for a purpose this table does not know."""
    return AUDIENCE_OF_PURPOSE.get(purpose, "other")


def is_billed(status: str) -> bool:
    """True if a message in this status (accepted by the gateway) is billed."""
    return status in BILLED_STATUSES


@dataclass(frozen=True)
class BillingPeriod:
    """A month (``2026-11``) or a quarter (``2026-Q4``): its label and its months."""

    label: str
    kind: Literal["month", "quarter"]
    months: tuple[str, ...]  # "YYYY-MM", in order

    def describe(self) -> str:
        """Vietnamese: "tháng 11/2026" or "quý IV/2026"."""
        year = self.label[:4]
        if self.kind == "month":
            return f"tháng {self.label[5:]}/{year}"
        return f"quý {('I', 'II', 'III', 'IV')[int(self.label[-1]) - 1]}/{year}"


def billing_period(month: str | None = None, quarter: str | None = None) -> BillingPeriod:
    """The period of ``month`` ("YYYY-MM") or ``quarter`` ("YYYY-Qn"); exactly one of them."""
    if (month is None) == (quarter is None):
        raise BillingPeriodError("give a month (YYYY-MM) or a quarter (YYYY-Qn), not both")
    if month is not None:
        m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month.strip())
        if m is None or not 1 <= int(m[2]) <= 12:
            raise BillingPeriodError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11")
        return BillingPeriod(f"{m[1]}-{m[2]}", "month", (f"{m[1]}-{m[2]}",))
    assert quarter is not None
    q = re.fullmatch(r"([0-9]{4})-?[Qq]([1-4])", quarter.strip())
    if q is None:
        raise BillingPeriodError(f"quarter {quarter!r}: expected YYYY-Qn, e.g. 2026-Q4")
    first = 3 * (int(q[2]) - 1) + 1
    return BillingPeriod(f"{q[1]}-Q{q[2]}", "quarter",
                         tuple(f"{q[1]}-{m:02d}" for m in range(first, first + 3)))


def month_utc_bounds(month: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of a local calendar month "YYYY-MM" in ``timezone``."""
    year, mon = int(month[:4]), int(month[5:7])
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


@dataclass(frozen=True)
class OutboxGroup:
    """Accepted messages of one month, purpose and status: how many, how many parts."""

    month: str
    purpose: str
    status: str
    messages: int
    parts: int


@dataclass(frozen=True)
class BillingLine:
    """One audience in one month (or the period's total, ``month`` None)."""

    month: str | None
    audience: Audience
    messages: int = 0  # billed messages
    parts: int = 0  # billed parts
    delivered_messages: int = 0  # of the billed, confirmed delivered
    delivered_parts: int = 0
    failed_messages: int = 0  # accepted, then reported undelivered/rejected: not billed
    failed_parts: int = 0

    @property
    def audience_name(self) -> str:
        """The audience in Vietnamese."""
        return AUDIENCE_NAMES[self.audience]

    def plus(self, other: BillingLine) -> BillingLine:
        """The sum of two lines (month and audience of ``self``)."""
        return BillingLine(self.month, self.audience, self.messages + other.messages,
                           self.parts + other.parts,
                           self.delivered_messages + other.delivered_messages,
                           self.delivered_parts + other.delivered_parts,
                           self.failed_messages + other.failed_messages,
                           self.failed_parts + other.failed_parts)


def _line(group: OutboxGroup) -> BillingLine:
    audience = audience_of(group.purpose)
    if is_billed(group.status):
        delivered = group.status == "delivered"
        return BillingLine(group.month, audience, group.messages, group.parts,
                           group.messages if delivered else 0, group.parts if delivered else 0)
    if group.status == "failed":
        return BillingLine(group.month, audience, failed_messages=group.messages,
                           failed_parts=group.parts)
    return BillingLine(group.month, audience)  # never accepted: not counted


@dataclass(frozen=True)
class BillingReport:
    """A tenant's SMS of a period: per month and audience, then the period's totals."""

    tenant: str
    period: BillingPeriod
    timezone: str
    months: tuple[BillingLine, ...]  # every month x audience, zeros included
    totals: tuple[BillingLine, ...]  # per audience over the period
    total: BillingLine  # everything (audience "other" is a placeholder here)


def billing_report(tenant: str, period: BillingPeriod, timezone: str,
                   groups: Iterable[OutboxGroup]) -> BillingReport:
    """Fold outbox groups into the period's lines; groups outside its months are ignored."""
    cells: dict[tuple[str, Audience], BillingLine] = {
        (m, a): BillingLine(m, a) for m in period.months for a in AUDIENCES}
    for g in groups:
        key = (g.month, audience_of(g.purpose))
        if key in cells:
            cells[key] = cells[key].plus(_line(g))
    months = tuple(cells[(m, a)] for m in period.months for a in AUDIENCES)
    totals = []
    for a in AUDIENCES:
        line = BillingLine(None, a)
        for m in period.months:
            line = line.plus(cells[(m, a)])
        totals.append(line)
    total = BillingLine(None, "other")
    for line in totals:
        total = total.plus(line)
    return BillingReport(tenant, period, timezone, months, tuple(totals), total)
