"""Ticket reports: daily/weekly statistics, unprocessed and late lists, the units' league table.

Everything is computed in SQL (GROUP BY on the ``ix_tickets_tenant_received`` range, window
functions for medians); Python only rolls the (unit, field) groups up and formats. Outputs:
rows for the HTTP API (``to_json_dict``), CSV (``*_csv``: UTF-8, one header row) and xlsx
(``xlsx_bytes``: a title row with the tenant and period, Vietnamese headers, column widths,
dates in the tenant's time zone).

What the figures mean (a report is about the tickets *received* in the period, each counted
once, in its state at the time the report is made, ``now``):

=====================  ================================================================
received               received in the period (Tiếp nhận)
answered_l1            answered at level 1 from the FAQ (Trả lời tại cấp 1)
forwarded              forwarded to a level-2 unit at least once (Chuyển cấp 2)
resolved_on_time       result recorded (resolved or closed after it) by the due time
resolved_late          result recorded after the due time
still_open             not answered, resolved or closed yet (Đang xử lý)
late                   still open and past the resolve due time at ``now`` (Quá hạn)
closed_unhandled       closed by a supervisor without a result (duplicate, not a petition)
satisfied              resolve SMS whose satisfaction question the citizen answered "1"
not_resolved           ... answered "2" (chưa được giải quyết: the ticket was reopened)
no_answer              ... not answered (yet: a reply counts ``reply_days`` after the SMS)
=====================  ================================================================

The three survey figures (``callcenter.tickets.survey``) count resolve notices that asked the
question, of the tickets received in the period: a ticket reopened by a "2" and resolved
again asked twice and counts twice. They go to the unit that resolved the ticket then (not
the holder now: a reopened ticket is back at level 1).

received = answered_l1 + resolved_on_time + resolved_late + still_open + closed_unhandled;
``late`` is part of ``still_open``; ``forwarded`` overlaps the others. Per unit means the unit
holding the ticket now (or the one that resolved it); tickets at level 1 (never forwarded, or
returned) are the "Tổng đài 1022 (cấp 1)" row.

Lists (as of ``now``, all open tickets unless a period is given): *unprocessed* = with a
level-2 unit that has not accepted it yet (state forwarded); *late* = open past the resolve due
time, with days late as the seeds' appendices count them (every started 24 hours). Their
content is internal: kept, but shortened to ``CONTENT_CHARS``.

League table (tickets received in the period, per unit): on-time rate = resolved on time /
(resolved + still open past due), i.e. over the tickets whose deadline outcome is known;
median resolve time from the unit's receipt (latest forwarding) to the result.

API (blocking; ``TicketService.reports`` gives one on the service's database)::

    r = TicketReports(database, config, *, clock=utcnow)
    r.period(tenant, date=... | week="2026-W48" | month="2026-11" | quarter="2026-Q4") -> Period
    r.daily(tenant, date, *, now=None) -> Summary       # date: datetime.date or "YYYY-MM-DD"
    r.weekly(tenant, week, *, now=None) -> Summary
    r.summary(tenant, period, *, now=None) -> Summary
    r.unprocessed(tenant, *, unit=None, period=None, now=None, limit=10000) -> list[ListRow]
    r.late(tenant, *, unit=None, period=None, now=None, limit=10000) -> list[ListRow]
    r.league(tenant, period, *, now=None) -> list[LeagueRow]
    # output: Summary.to_json_dict() / .rows(), ListRow/LeagueRow.to_json_dict(),
    # summary_csv(s), summary_tables(s), list_table(...), league_table(...), table_csv(t),
    # xlsx_bytes([tables...])

Errors: ``TicketError`` ``report.bad_period`` (a date, week or month that is not one, 400),
``ticket.unknown_tenant`` (404).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig, Tenant
from callcenter.tickets import store as st
from callcenter.tickets.config import TicketError, TicketPolicy, policy_of, ticket_tenant

LEVEL1_NAME = "Tổng đài 1022 (cấp 1)"
CONTENT_CHARS = 200
MAX_LIST_ROWS = 10_000
_DAY = dt.timedelta(days=1)

PeriodKind = Literal["day", "week", "month", "quarter"]
_ROMAN = ("I", "II", "III", "IV")


# ---- periods --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A local calendar period of a tenant: [start, end) in UTC."""

    kind: PeriodKind
    label: str  # 2026-11-23, 2026-W48, 2026-11, 2026-Q4
    first_day: dt.date  # local, inclusive
    last_day: dt.date  # local, inclusive
    timezone: str

    @property
    def start(self) -> dt.datetime:
        """The period's first instant (local midnight), in UTC."""
        return _local_midnight(self.first_day, self.timezone)

    @property
    def end(self) -> dt.datetime:
        """The instant after the period (the next local midnight), in UTC."""
        return _local_midnight(self.last_day + _DAY, self.timezone)

    def describe(self) -> str:
        """Vietnamese: "ngày 23/11/2026", "tuần 48/2026 (23/11/2026 - 29/11/2026)", ..."""
        if self.kind == "day":
            return f"ngày {self.first_day:%d/%m/%Y}"
        if self.kind == "week":
            year, week, _ = self.first_day.isocalendar()
            return (f"tuần {week:02d}/{year} ({self.first_day:%d/%m/%Y} - "
                    f"{self.last_day:%d/%m/%Y})")
        if self.kind == "quarter":
            return f"quý {_ROMAN[(self.first_day.month - 1) // 3]}/{self.first_day.year}"
        return f"tháng {self.first_day:%m/%Y}"

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"kind": self.kind, "label": self.label, "first_day": self.first_day.isoformat(),
                "last_day": self.last_day.isoformat(), "timezone": self.timezone,
                "start": self.start.isoformat(), "end": self.end.isoformat()}


def _local_midnight(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), ZoneInfo(timezone)).astimezone(dt.UTC)


def _bad(what: str, value: object, expected: str) -> TicketError:
    return TicketError("report.bad_period", f"{what} {value!r}: expected {expected}")


def day_period(day: dt.date | str, timezone: str) -> Period:
    """One local day (``2026-11-23``)."""
    if isinstance(day, str):
        try:
            day = dt.date.fromisoformat(day)
        except ValueError:
            raise _bad("date", day, "YYYY-MM-DD, e.g. 2026-11-23") from None
    return Period("day", day.isoformat(), day, day, timezone)


def week_period(week: str, timezone: str) -> Period:
    """One ISO week, Monday to Sunday (``2026-W48``)."""
    m = re.fullmatch(r"([0-9]{4})-?W([0-9]{2})", week.strip())
    try:
        if m is None:
            raise ValueError
        monday = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
    except ValueError:
        raise _bad("week", week, "an ISO week YYYY-Www, e.g. 2026-W48") from None
    year, num, _ = monday.isocalendar()
    return Period("week", f"{year}-W{num:02d}", monday, monday + 6 * _DAY, timezone)


def month_period(month: str, timezone: str) -> Period:
    """One calendar month (``2026-11``)."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month.strip())
    if m is None or not 1 <= int(m[2]) <= 12:
        raise _bad("month", month, "YYYY-MM, e.g. 2026-11")
    first = dt.date(int(m[1]), int(m[2]), 1)
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period("month", f"{first:%Y-%m}", first, nxt - _DAY, timezone)


def quarter_period(quarter: str, timezone: str) -> Period:
    """One calendar quarter (``2026-Q4``: October to December)."""
    m = re.fullmatch(r"([0-9]{4})-?Q([1-4])", quarter.strip().upper())
    if m is None:
        raise _bad("quarter", quarter, "YYYY-Qn, e.g. 2026-Q4")
    year, q = int(m[1]), int(m[2])
    first = dt.date(year, 3 * (q - 1) + 1, 1)
    nxt = dt.date(year + q // 4, (3 * q) % 12 + 1, 1)
    return Period("quarter", f"{year}-Q{q}", first, nxt - _DAY, timezone)


# ---- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """The figures of one group (see the module docstring)."""

    received: int = 0
    answered_l1: int = 0
    forwarded: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    still_open: int = 0
    late: int = 0
    closed_unhandled: int = 0
    satisfied: int = 0  # survey answers (see the module docstring)
    not_resolved: int = 0
    no_answer: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


COUNT_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Counts))
SURVEY_KEYS: tuple[str, ...] = ("satisfied", "not_resolved", "no_answer")
COUNT_HEADERS: dict[str, str] = {
    "received": "Tiếp nhận",
    "answered_l1": "Trả lời tại cấp 1",
    "forwarded": "Chuyển cấp 2",
    "resolved_on_time": "Giải quyết đúng hạn",
    "resolved_late": "Giải quyết trễ hạn",
    "still_open": "Đang xử lý",
    "late": "Quá hạn",
    "closed_unhandled": "Đóng không xử lý",
    "satisfied": "Hài lòng",
    "not_resolved": "Chưa được giải quyết",
    "no_answer": "Chưa phản hồi",
}


@dataclass(frozen=True)
class CountRow:
    """One unit's or field's figures."""

    key: str | None  # unit or field id; None: level 1 (by unit)
    name: str
    counts: Counts


@dataclass(frozen=True)
class Summary:
    """A daily or weekly report of one tenant."""

    tenant: str
    tenant_name: str
    period: Period
    generated_at: dt.datetime  # the "now" the states and lateness were judged at
    total: Counts
    by_unit: tuple[CountRow, ...]
    by_field: tuple[CountRow, ...]

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows: group (total, unit, field), key, name and the figures."""
        out = [{"group": "total", "key": None, "name": "Tổng cộng", **self.total.__dict__}]
        out += [{"group": "unit", "key": r.key, "name": r.name, **r.counts.__dict__}
                for r in self.by_unit]
        out += [{"group": "field", "key": r.key, "name": r.name, **r.counts.__dict__}
                for r in self.by_field]
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """The report as plain JSON values (for the HTTP API)."""
        return {"tenant": self.tenant, "tenant_name": self.tenant_name,
                "period": self.period.to_json_dict(),
                "generated_at": self.generated_at.isoformat(),
                "total": dict(self.total.__dict__),
                "by_unit": [{"unit": r.key, "name": r.name, **r.counts.__dict__}
                            for r in self.by_unit],
                "by_field": [{"field": r.key, "name": r.name, **r.counts.__dict__}
                             for r in self.by_field]}


@dataclass(frozen=True)
class ListRow:
    """One ticket in the unprocessed or late list."""

    unit: str | None
    unit_name: str
    code: str
    received_at: dt.datetime  # UTC
    field: str
    field_name: str
    content: str  # shortened to CONTENT_CHARS
    state: str
    forwarded_at: dt.datetime | None
    resolve_due: dt.datetime | None
    days_late: int  # 0 when not past due

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (times ISO 8601 in UTC)."""
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v
                for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class LeagueRow:
    """One unit's deadline record in a period."""

    rank: int | None  # None: nothing to judge yet
    unit: str
    unit_name: str
    assigned: int
    resolved: int
    resolved_on_time: int
    resolved_late: int
    still_open: int
    late_open: int
    on_time_rate: float | None  # 0..1
    median_resolve_hours: float | None
    satisfied: int = 0  # survey answers to the unit's resolve SMS (module docstring)
    not_resolved: int = 0
    no_answer: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return dict(self.__dict__)


# ---- queries --------------------------------------------------------------------------------
def _n(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def _tenant(config: HotlineConfig, tenant: str) -> Tenant:
    return ticket_tenant(config, tenant)


def _shorten(text: str, limit: int = CONTENT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _days_late(due: dt.datetime | None, now: dt.datetime) -> int:
    if due is None or now <= due:
        return 0
    return math.ceil((now - due) / _DAY)


class TicketReports:
    """Reports over the ticket tables. Blocking: run it in a thread from the app."""

    def __init__(self, database: st.TicketDatabase | str | sa.Engine,
                 config: Callable[[], HotlineConfig], *,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.db = database if isinstance(database, st.TicketDatabase) else st.TicketDatabase(
            database)
        self._owns_db = not isinstance(database, st.TicketDatabase)
        self.config = config
        self.clock = clock

    def close(self) -> None:
        """Close the connections (when this object opened the database)."""
        if self._owns_db:
            self.db.close()

    # -- helpers ---------------------------------------------------------------------------
    def _tenant_policy(self, tenant: str) -> tuple[Tenant, TicketPolicy]:
        t = _tenant(self.config(), tenant)
        return t, policy_of(t)

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        value = now or self.clock()
        if value.tzinfo is None:
            raise TicketError("ticket.naive_time", f"now must be timezone-aware, got {value!r}")
        return value.astimezone(dt.UTC)

    def period(self, tenant: str, *, date: dt.date | str | None = None,
               week: str | None = None, month: str | None = None,
               quarter: str | None = None) -> Period:
        """The tenant's local day, ISO week, month or quarter (exactly one of them)."""
        if sum(x is not None for x in (date, week, month, quarter)) != 1:
            raise TicketError("report.bad_period",
                              "give exactly one of date, week, month, quarter")
        tz = self._tenant_policy(tenant)[1].timezone
        if date is not None:
            return day_period(date, tz)
        if week is not None:
            return week_period(week, tz)
        if quarter is not None:
            return quarter_period(quarter, tz)
        assert month is not None
        return month_period(month, tz)

    @staticmethod
    def _unit_name(policy: TicketPolicy, unit: str | None) -> str:
        if unit is None:
            return LEVEL1_NAME
        found = policy.unit(unit)
        return found.name if found is not None else unit

    # -- statistics ------------------------------------------------------------------------
    def daily(self, tenant: str, date: dt.date | str, *,
              now: dt.datetime | None = None) -> Summary:
        """The report of one local day."""
        return self.summary(tenant, self.period(tenant, date=date), now=now)

    def weekly(self, tenant: str, week: str, *, now: dt.datetime | None = None) -> Summary:
        """The report of one ISO week (``2026-W48``)."""
        return self.summary(tenant, self.period(tenant, week=week), now=now)

    def summary(self, tenant: str, period: Period, *,
                now: dt.datetime | None = None) -> Summary:
        """Figures per tenant, per unit and per field for tickets received in ``period``."""
        cfg_tenant, policy = self._tenant_policy(tenant)
        now = self._now(now)
        t = st.TICKETS.c
        open_ = t.state.in_(st.OPEN_STATES)
        resolved = sa.and_(t.state.in_(("resolved", "closed")), t.resolved_at.is_not(None))
        q = (sa.select(
            t.unit, t.field, sa.func.count(),
            _n(t.state == "answered"),
            _n(t.forwarded_at.is_not(None)),
            _n(sa.and_(resolved, sa.or_(t.resolve_due.is_(None),
                                        t.resolved_at <= t.resolve_due))),
            _n(sa.and_(resolved, t.resolved_at > t.resolve_due)),
            _n(open_),
            _n(sa.and_(open_, t.resolve_due < now)),
            _n(sa.and_(t.state == "closed", t.resolved_at.is_(None))),
        ).where(t.tenant == tenant, t.received_at >= period.start, t.received_at < period.end)
            .group_by(t.unit, t.field))
        with self.db.reading() as conn:
            groups = [(unit, fld, Counts(*(int(v) for v in rest)))
                      for unit, fld, *rest in conn.execute(q)]
        by_unit: dict[str | None, Counts] = {u.id: Counts() for u in policy.units}
        by_field: dict[str, Counts] = {f.id: Counts() for f in policy.fields}
        total = Counts()
        for unit, fld, counts in groups:
            by_unit[unit] = by_unit.get(unit, Counts()) + counts
            by_field[fld] = by_field.get(fld, Counts()) + counts
            total += counts
        for unit, fld, counts in self._survey_groups(tenant, period):
            by_unit[unit] = by_unit.get(unit, Counts()) + counts
            by_field[fld] = by_field.get(fld, Counts()) + counts
            total += counts
        by_unit.setdefault(None, Counts())  # level 1 always has its row, last
        unit_rows = [CountRow(u, self._unit_name(policy, u), c)
                     for u, c in by_unit.items() if u is not None]
        unit_rows.append(CountRow(None, LEVEL1_NAME, by_unit[None]))
        field_rows = [CountRow(f, policy.field_name(f) or f, c) for f, c in by_field.items()]
        return Summary(tenant, cfg_tenant.name, period, now, total, tuple(unit_rows),
                       tuple(field_rows))

    def _survey_groups(self, tenant: str,
                       period: Period) -> list[tuple[str | None, str, Counts]]:
        """Survey answers per (unit that resolved, field) of the tickets received in period."""
        t, sv = st.TICKETS.c, st.SURVEYS.c
        q = (sa.select(sv.unit, t.field, _n(sv.answer == "satisfied"),
                       _n(sv.answer == "not_resolved"), _n(sv.answer.is_(None)))
             .select_from(st.SURVEYS.join(st.TICKETS, t.code == sv.code))
             .where(t.tenant == tenant, t.received_at >= period.start,
                    t.received_at < period.end)
             .group_by(sv.unit, t.field))
        with self.db.reading() as conn:
            return [(unit, fld, Counts(satisfied=int(a), not_resolved=int(b), no_answer=int(c)))
                    for unit, fld, a, b, c in conn.execute(q)]

    # -- lists -----------------------------------------------------------------------------
    def _list(self, tenant: str, where: Sequence[sa.ColumnElement[bool]], order: Sequence[Any],
              unit: str | None, period: Period | None, now: dt.datetime,
              limit: int) -> list[ListRow]:
        _, policy = self._tenant_policy(tenant)
        t = st.TICKETS.c
        conds = [t.tenant == tenant, *where]
        if unit is not None:
            conds.append(t.unit == unit)
        if period is not None:
            conds += [t.received_at >= period.start, t.received_at < period.end]
        q = (sa.select(t.unit, t.code, t.received_at, t.field, t.content, t.state,
                       t.forwarded_at, t.resolve_due)
             .where(*conds).order_by(*order).limit(max(0, min(limit, MAX_LIST_ROWS))))
        with self.db.reading() as conn:
            rows = conn.execute(q).all()
        return [ListRow(r.unit, self._unit_name(policy, r.unit), r.code, r.received_at, r.field,
                        policy.field_name(r.field) or r.field, _shorten(r.content), r.state,
                        r.forwarded_at, r.resolve_due, _days_late(r.resolve_due, now))
                for r in rows]

    def unprocessed(self, tenant: str, *, unit: str | None = None,
                    period: Period | None = None, now: dt.datetime | None = None,
                    limit: int = MAX_LIST_ROWS) -> list[ListRow]:
        """Tickets with a unit that has not taken them up (forwarded, not accepted)."""
        t = st.TICKETS.c
        return self._list(tenant, [t.state == "forwarded"],
                          [t.unit, t.received_at, t.code], unit, period, self._now(now), limit)

    def late(self, tenant: str, *, unit: str | None = None, period: Period | None = None,
             now: dt.datetime | None = None, limit: int = MAX_LIST_ROWS) -> list[ListRow]:
        """Open tickets past their resolve due time, most overdue first within each unit."""
        t = st.TICKETS.c
        when = self._now(now)
        return self._list(tenant, [t.state.in_(st.OPEN_STATES), t.resolve_due < when],
                          [t.unit, t.resolve_due, t.code], unit, period, when, limit)

    # -- league ----------------------------------------------------------------------------
    def _duration_s(self, conn: sa.Connection) -> sa.ColumnElement[Any]:
        t = st.TICKETS.c
        if conn.dialect.name == "postgresql":
            return sa.func.extract("epoch", t.resolved_at - t.forwarded_at)
        # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" (UTC): julianday reads it.
        return (sa.func.julianday(t.resolved_at) - sa.func.julianday(t.forwarded_at)) * 86400.0

    def league(self, tenant: str, period: Period, *,
               now: dt.datetime | None = None) -> list[LeagueRow]:
        """Units ranked by on-time rate, then median resolve time (see the module docstring)."""
        _, policy = self._tenant_policy(tenant)
        when = self._now(now)
        t = st.TICKETS.c
        in_period = [t.tenant == tenant, t.received_at >= period.start,
                     t.received_at < period.end, t.unit.is_not(None)]
        open_ = t.state.in_(st.OPEN_STATES)
        resolved = sa.and_(t.state.in_(("resolved", "closed")), t.resolved_at.is_not(None))
        counts_q = (sa.select(
            t.unit, sa.func.count(), _n(resolved),
            _n(sa.and_(resolved, sa.or_(t.resolve_due.is_(None),
                                        t.resolved_at <= t.resolve_due))),
            _n(sa.and_(resolved, t.resolved_at > t.resolve_due)),
            _n(open_), _n(sa.and_(open_, t.resolve_due < when)),
        ).where(*in_period).group_by(t.unit))
        with self.db.reading() as conn:
            dur = self._duration_s(conn)
            ranked = (sa.select(
                t.unit.label("unit"), dur.label("d"),
                sa.func.row_number().over(partition_by=t.unit, order_by=dur).label("rn"),
                sa.func.count().over(partition_by=t.unit).label("n"),
            ).where(*in_period, resolved, t.forwarded_at.is_not(None)).subquery())
            median_q = (sa.select(ranked.c.unit, sa.func.avg(ranked.c.d))
                        .where(sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2,
                                      ranked.c.rn == (ranked.c.n + 2) // 2))
                        .group_by(ranked.c.unit))
            counts = {u: [int(x) for x in rest] for u, *rest in conn.execute(counts_q)}
            medians = {u: float(m) for u, m in conn.execute(median_q) if m is not None}
        surveys: dict[str, list[int]] = {}
        for unit, _, c in self._survey_groups(tenant, period):
            if unit is not None:
                got = surveys.setdefault(unit, [0, 0, 0])
                for i, n in enumerate((c.satisfied, c.not_resolved, c.no_answer)):
                    got[i] += n
        units = [u.id for u in policy.units] + sorted((set(counts) | set(surveys))
                                                      - {u.id for u in policy.units})
        rows = []
        for u in units:
            assigned, res, on_time, res_late, still, late_open = counts.get(u, [0] * 6)
            judged = res + late_open
            rate = on_time / judged if judged else None
            med = medians.get(u)
            rows.append(LeagueRow(None, u, self._unit_name(policy, u), assigned, res, on_time,
                                  res_late, still, late_open, rate,
                                  round(med / 3600, 2) if med is not None else None,
                                  *surveys.get(u, [0, 0, 0])))
        rows.sort(key=lambda r: (r.on_time_rate is None, -(r.on_time_rate or 0),
                                 r.median_resolve_hours is None,
                                 r.median_resolve_hours or 0, r.unit_name))
        out = []
        for i, r in enumerate(rows, 1):
            out.append(LeagueRow(i if r.on_time_rate is not None else None,
                                 *[getattr(r, f.name) for f in fields(r)][1:]))
        return out


# ---- tables: CSV and xlsx -------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column of an output table."""

    key: str
    header: str  # Vietnamese
    width: float  # xlsx column width (characters)
    kind: Literal["text", "int", "datetime", "percent", "number"] = "text"


@dataclass(frozen=True)
class Table:
    """A titled table: one xlsx sheet, or one CSV file."""

    sheet: str  # xlsx sheet name (<= 31 characters)
    title: str
    subtitle: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Any], ...]
    timezone: str = "Asia/Ho_Chi_Minh"
    bold_last: bool = False  # a totals row at the end
    extra: dict[str, Any] = field(default_factory=dict)


def _generated(now: dt.datetime, timezone: str) -> str:
    return (f"Lập lúc {now.astimezone(ZoneInfo(timezone)):%H:%M %d/%m/%Y} (giờ {timezone}); "
            "số liệu theo trạng thái tại thời điểm lập")


_COUNT_COLUMNS = tuple(Column(k, COUNT_HEADERS[k], 12, "int") for k in COUNT_KEYS)


def summary_tables(s: Summary) -> list[Table]:
    """The report as two tables: per unit and per field, each with a totals row."""
    title = (f"Báo cáo tiếp nhận, xử lý phản ánh kiến nghị - Tổng đài 1022 {s.tenant_name} - "
             f"{s.period.describe()}")
    sub = _generated(s.generated_at, s.period.timezone)
    total = {"stt": None, "key": None, "name": "Tổng cộng", **s.total.__dict__}
    out = []
    for sheet, label, rows in (("Theo đơn vị", "Đơn vị", s.by_unit),
                               ("Theo lĩnh vực", "Lĩnh vực", s.by_field)):
        body = [{"stt": i, "key": r.key, "name": r.name, **r.counts.__dict__}
                for i, r in enumerate(rows, 1)]
        out.append(Table(sheet, title, sub,
                         (Column("stt", "STT", 6, "int"), Column("name", label, 40),
                          *_COUNT_COLUMNS),
                         (*body, total), s.period.timezone, bold_last=True))
    return out


def list_table(kind: Literal["unprocessed", "late"], tenant_name: str, rows: Sequence[ListRow],
               now: dt.datetime, timezone: str, period: Period | None = None) -> Table:
    """The unprocessed or late list as a table (like the seeds' appendices)."""
    what = ("Danh sách phản ánh, kiến nghị chưa được đơn vị tiếp nhận xử lý"
            if kind == "unprocessed" else "Danh sách phản ánh, kiến nghị quá hạn xử lý")
    when = f" - {period.describe()}" if period is not None else ""
    cols = [Column("stt", "STT", 6, "int"), Column("unit_name", "Đơn vị", 32),
            Column("code", "Mã phản ánh", 20), Column("received_at", "Ngày tiếp nhận", 17,
                                                      "datetime"),
            Column("field_name", "Lĩnh vực", 18), Column("content", "Nội dung", 70)]
    if kind == "unprocessed":
        cols += [Column("forwarded_at", "Ngày chuyển", 17, "datetime"),
                 Column("resolve_due", "Hạn xử lý", 17, "datetime"),
                 Column("days_late", "Số ngày trễ", 10, "int")]
    else:
        cols += [Column("resolve_due", "Hạn xử lý", 17, "datetime"),
                 Column("days_late", "Số ngày trễ", 10, "int")]
    body = tuple({"stt": i, **r.__dict__} for i, r in enumerate(rows, 1))
    return Table("Chưa xử lý" if kind == "unprocessed" else "Trễ hạn",
                 f"{what} - Tổng đài 1022 {tenant_name}{when}", _generated(now, timezone),
                 tuple(cols), body, timezone)


def league_table(tenant_name: str, rows: Sequence[LeagueRow], period: Period,
                 now: dt.datetime) -> Table:
    """The league table as a table."""
    cols = (Column("rank", "Hạng", 6, "int"), Column("unit_name", "Đơn vị", 36),
            Column("assigned", "Được giao", 10, "int"),
            Column("resolved", "Đã giải quyết", 12, "int"),
            Column("resolved_on_time", "Đúng hạn", 10, "int"),
            Column("resolved_late", "Trễ hạn", 10, "int"),
            Column("still_open", "Đang xử lý", 10, "int"),
            Column("late_open", "Quá hạn chưa xử lý", 14, "int"),
            Column("on_time_rate", "Tỷ lệ đúng hạn", 12, "percent"),
            Column("median_resolve_hours", "Thời gian xử lý trung vị (giờ)", 16, "number"),
            Column("satisfied", COUNT_HEADERS["satisfied"], 10, "int"),
            Column("not_resolved", COUNT_HEADERS["not_resolved"], 12, "int"),
            Column("no_answer", COUNT_HEADERS["no_answer"], 10, "int"))
    return Table("Xếp hạng", f"Xếp hạng đơn vị theo tỷ lệ xử lý đúng hạn - Tổng đài 1022 "
                             f"{tenant_name} - {period.describe()}",
                 _generated(now, period.timezone), cols,
                 tuple(dict(r.__dict__) for r in rows), period.timezone)


def _cell_text(value: Any, column: Column, timezone: str) -> str:
    if value is None:
        return ""
    if column.kind == "datetime" and isinstance(value, dt.datetime):
        return f"{value.astimezone(ZoneInfo(timezone)):%d/%m/%Y %H:%M}"
    if column.kind == "percent" and isinstance(value, float):
        return f"{value * 100:.1f}%"
    return str(value)


# A cell starting with one of these is a formula to Excel and LibreOffice; text from citizens
# (content, names, a forged caller number) must never run as one (CSV/formula injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    """CSV text that a spreadsheet shows as typed: a leading formula sign gets a ``'``."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_cell(value: Any, column: Column, timezone: str) -> str:
    text = _cell_text(value, column, timezone)
    return inert(text) if isinstance(value, str) else text


def table_csv(table: Table) -> str:
    """The table as CSV text: one header row, then the rows (write it as UTF-8 with BOM)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([c.header for c in table.columns])
    for row in table.rows:
        w.writerow([_csv_cell(row.get(c.key), c, table.timezone) for c in table.columns])
    return out.getvalue()


def summary_csv(s: Summary) -> str:
    """The daily/weekly report as one CSV: a group column (Đơn vị/Lĩnh vực), then the figures."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["Nhóm", "Mã", "Tên", *(COUNT_HEADERS[k] for k in COUNT_KEYS)])
    names = {"total": "Tổng cộng", "unit": "Đơn vị", "field": "Lĩnh vực"}
    for row in s.rows():
        w.writerow([names[row["group"]], inert(row["key"] or ""), inert(row["name"]),
                    *(row[k] for k in COUNT_KEYS)])
    return out.getvalue()


def xlsx_bytes(tables: Sequence[Table]) -> bytes:
    """An xlsx workbook with one sheet per table: title, subtitle, headers, rows."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    for table in tables:
        ws = wb.create_sheet(table.sheet[:31])
        ncols = len(table.columns)
        ws.cell(row=1, column=1, value=table.title).font = Font(bold=True, size=13)
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
        ws.cell(row=2, column=1, value=table.subtitle).font = Font(italic=True, size=10)
        ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=ncols)
        header_fill = PatternFill("solid", fgColor="DDEBF7")
        for j, col in enumerate(table.columns, 1):
            c = ws.cell(row=4, column=j, value=col.header)
            c.font = Font(bold=True)
            c.fill = header_fill
            c.border = border
            c.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
            ws.column_dimensions[get_column_letter(j)].width = col.width
        ws.row_dimensions[4].height = 32
        zone = ZoneInfo(table.timezone)
        for i, row in enumerate(table.rows, 5):
            last = table.bold_last and i == 4 + len(table.rows)
            for j, col in enumerate(table.columns, 1):
                value = row.get(col.key)
                if col.kind == "datetime" and isinstance(value, dt.datetime):
                    # Excel has no time zones: write the tenant's wall-clock time.
                    value = value.astimezone(zone).replace(tzinfo=None)
                c = ws.cell(row=i, column=j, value=value)
                if isinstance(value, str) and value.startswith(FORMULA_START):
                    c.data_type = "s"  # text as typed, never a formula (see FORMULA_START)
                c.border = border
                if col.kind == "datetime":
                    c.number_format = "dd/mm/yyyy hh:mm"
                elif col.kind == "percent":
                    c.number_format = "0.0%"
                elif col.kind == "number":
                    c.number_format = "0.00"
                if col.kind == "text":
                    c.alignment = Alignment(wrap_text=True, vertical="top")
                if last:
                    c.font = Font(bold=True)
        ws.freeze_panes = "A5"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
