"""Ticket reports over a seeded month of tickets, on SQLite and PostgreSQL.

The month is generated deterministically as a *plan* (when each ticket arrives, what happens
to it and when); the tickets are then made through the real service. The expected figures
are computed from the plan alone, in plain Python, never through the report's SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import secrets
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from callcenter.tickets import reports as rp
from callcenter.tickets.rules import Accept, Actor, Close, Forward, Resolve, Return, TicketError
from callcenter.tickets.service import TicketService
from tests.support.tickets import OP, SUP, Clock, make_service

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 12, 1, 0, 0, tzinfo=VN).astimezone(dt.UTC)  # the report is made
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
UNITS = ("so_y_te", "so_gtvt", "cong_an_tinh", "ubnd_bien_hoa")
FIELDS = ("health", "transport", "security_order", "admin_procedures", "other")
KINDS = ("answer", "new", "forward", "accept", "resolve", "resolve_close", "closed_unhandled",
         "returned")
KEYS = rp.COUNT_KEYS


@dataclass(frozen=True)
class Plan:
    """One ticket of the month and its fate."""

    received: dt.datetime
    field: str
    urgent: bool
    kind: str
    unit: str | None
    resolve_after: dt.timedelta  # for resolve kinds

    @property
    def due(self) -> dt.datetime:
        hours = 4 if self.urgent and self.field == "health" else 24
        return self.received + hours * H

    @property
    def resolved_at(self) -> dt.datetime:
        return self.received + self.resolve_after

    @property
    def local_day(self) -> dt.date:
        return self.received.astimezone(VN).date()


def month_plan(seed: int = 1022, n: int = 240) -> list[Plan]:
    """November 2026 in Đồng Nai: n tickets, fates at random (but all before NOW)."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=VN).astimezone(dt.UTC)
    plans = []
    for _ in range(n):
        received = start + dt.timedelta(seconds=rng.randrange(30 * 86400))
        field = rng.choice(FIELDS)
        urgent = field == "health" and rng.random() < 0.3
        kind = rng.choice(KINDS)
        after = dt.timedelta(minutes=rng.randrange(60, 40 * 60))
        # Every act must be done by NOW; a resolution planned later is still in progress.
        if kind in ("resolve", "resolve_close") and received + after + H > NOW:
            kind = "accept"
        if received + 3 * H > NOW:
            kind = "new"
        unit = rng.choice(UNITS) if kind in ("forward", "accept", "resolve", "resolve_close",
                                             "returned") else None
        plans.append(Plan(received, field, urgent, kind, unit, after))
    return sorted(plans, key=lambda p: p.received)


def seed(svc: TicketService, plans: list[Plan]) -> list[str]:
    """Make the planned tickets through the service; their codes, in plan order."""
    codes = []
    for i, p in enumerate(plans):
        r = p.received
        answer = "Theo quy định hiện hành ..." if p.kind == "answer" else None
        t = svc.open("dongnai", OP, channel="phone",
                     content=f"Phản ánh số {i}: " + "nội dung " * 30, field=p.field,
                     urgent=p.urgent, at=r, answer=answer)
        codes.append(t.code)
        if p.kind == "closed_unhandled":
            svc.act(t.code, SUP, Close(r + 30 * M, SUP, "trùng lặp"))
        if p.unit is None and p.kind != "returned":
            continue
        assert p.unit is not None
        unit = Actor("u", "unit", p.unit)
        svc.act(t.code, OP, Forward(r + 10 * M, OP, p.unit))
        if p.kind == "returned":
            svc.act(t.code, unit, Return(r + 2 * H, unit, "không thuộc thẩm quyền"))
            continue
        if p.kind == "forward":
            continue
        svc.act(t.code, unit, Accept(r + H, unit))
        if p.kind in ("resolve", "resolve_close"):
            svc.act(t.code, unit, Resolve(p.resolved_at, unit, "Đã giải quyết"))
        if p.kind == "resolve_close":
            svc.act(t.code, OP, Close(p.resolved_at + H, OP))
    return codes


def expected_counts(plans: list[Plan]) -> dict[str, int]:
    """The figures of these tickets, judged at NOW, from the plan alone."""
    c: Counter[str] = Counter()
    for p in plans:
        c["received"] += 1
        if p.kind == "answer":
            c["answered_l1"] += 1
        if p.kind in ("forward", "accept", "resolve", "resolve_close", "returned"):
            c["forwarded"] += 1
        if p.kind in ("resolve", "resolve_close"):
            c["resolved_on_time" if p.resolved_at <= p.due else "resolved_late"] += 1
        if p.kind in ("new", "forward", "accept", "returned"):
            c["still_open"] += 1
            c["late"] += NOW > p.due
        if p.kind == "closed_unhandled":
            c["closed_unhandled"] += 1
    return {k: c[k] for k in KEYS}


def in_week_48(plans: list[Plan]) -> list[Plan]:
    return [p for p in plans if dt.date(2026, 11, 23) <= p.local_day <= dt.date(2026, 11, 29)]


def holder(p: Plan) -> str | None:
    return p.unit if p.kind in ("forward", "accept", "resolve", "resolve_close") else None


@dataclass
class Seeded:
    svc: TicketService
    plans: list[Plan]
    codes: list[str]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                                marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One seeded month per backend, shared by the tests of this module (they only read)."""
    tmp = tmp_path_factory.mktemp("reports")
    admin: sa.Engine | None = None
    name = f"hotline_test_{secrets.token_hex(6)}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'hotline.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    svc = make_service(url, tmp / "files", Clock(NOW))
    plans = month_plan()
    try:
        yield Seeded(svc, plans, seed(svc, plans))
    finally:
        svc.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _as_dict(c: rp.Counts) -> dict[str, int]:
    return {k: getattr(c, k) for k in KEYS}


# -- the plan itself is varied enough to test something ----------------------------------


def test_given_month_plan_when_generated_then_every_fate_and_lateness_occurs() -> None:
    plans = month_plan()
    assert set(Counter(p.kind for p in plans)) == set(KINDS)
    exp = expected_counts(plans)
    # The survey's figures (rp.SURVEY_KEYS) stay 0 here (no survey): see test_survey.py.
    assert all(exp[k] > 0 for k in KEYS if k not in rp.SURVEY_KEYS), exp
    assert exp["late"] < exp["still_open"]  # some open ones are not due yet at NOW
    assert month_plan() == plans  # deterministic


# -- statistics -----------------------------------------------------------------------------


def test_given_seeded_month_when_monthly_summary_then_counts_match_the_plan(
        seeded: Seeded) -> None:
    r = seeded.svc.reports
    s = r.summary("dongnai", r.period("dongnai", month="2026-11"), now=NOW)
    assert _as_dict(s.total) == expected_counts(seeded.plans)
    by_unit = {row.key: _as_dict(row.counts) for row in s.by_unit}
    for unit in (*UNITS, None):
        assert by_unit[unit] == expected_counts([p for p in seeded.plans if holder(p) == unit])
    assert by_unit["so_noi_vu"] == expected_counts([])  # a unit with nothing has its row
    by_field = {row.key: _as_dict(row.counts) for row in s.by_field}
    for f in FIELDS:
        assert by_field[f] == expected_counts([p for p in seeded.plans if p.field == f])
    assert s.by_unit[-1].name == rp.LEVEL1_NAME


@pytest.mark.parametrize("day", [dt.date(2026, 11, 1), dt.date(2026, 11, 17),
                                 dt.date(2026, 11, 30)])
def test_given_seeded_month_when_daily_report_then_local_day_counts_match(
        seeded: Seeded, day: dt.date) -> None:
    s = seeded.svc.reports.daily("dongnai", day.isoformat(), now=NOW)
    assert _as_dict(s.total) == expected_counts([p for p in seeded.plans if p.local_day == day])
    assert s.period.start == dt.datetime.combine(day, dt.time(0), VN).astimezone(dt.UTC)


def test_given_seeded_month_when_weekly_report_then_monday_to_sunday_counts_match(
        seeded: Seeded) -> None:
    s = seeded.svc.reports.weekly("dongnai", "2026-W48", now=NOW)
    week = in_week_48(seeded.plans)
    assert _as_dict(s.total) == expected_counts(week)
    assert (s.period.first_day, s.period.last_day) == (dt.date(2026, 11, 23),
                                                        dt.date(2026, 11, 29))
    assert "tuần 48/2026" in s.period.describe()


def test_given_bad_period_when_asked_then_report_error() -> None:
    calls: list[Callable[[], object]] = [lambda: rp.week_period("2026-W54", "Asia/Ho_Chi_Minh"),
                 lambda: rp.day_period("23/11/2026", "Asia/Ho_Chi_Minh"),
                 lambda: rp.month_period("2026-13", "Asia/Ho_Chi_Minh")]
    for call in calls:
        with pytest.raises(TicketError) as e:
            call()
        assert e.value.id == "report.bad_period"


# -- lists ----------------------------------------------------------------------------------


def test_given_seeded_month_when_late_list_then_open_overdue_tickets_with_days_late(
        seeded: Seeded) -> None:
    rows = seeded.svc.reports.late("dongnai", now=NOW)
    expected = {}
    for p, code in zip(seeded.plans, seeded.codes, strict=True):
        if p.kind in ("new", "forward", "accept", "returned") and NOW > p.due:
            started_days = -(-(NOW - p.due) // dt.timedelta(days=1))
            expected[code] = (holder(p), started_days)
    assert {r.code: (r.unit, r.days_late) for r in rows} == expected
    assert all(len(r.content) <= rp.CONTENT_CHARS and r.content.endswith("…") for r in rows)
    only = seeded.svc.reports.late("dongnai", unit="so_y_te", now=NOW)
    assert {r.code for r in only} == {c for c, (u, _) in expected.items() if u == "so_y_te"}


def test_given_seeded_month_when_unprocessed_list_then_forwarded_not_accepted(
        seeded: Seeded) -> None:
    rows = seeded.svc.reports.unprocessed("dongnai", now=NOW)
    expected = {code for p, code in zip(seeded.plans, seeded.codes, strict=True)
                if p.kind == "forward"}
    assert {r.code for r in rows} == expected and rows
    assert [r.unit for r in rows] == sorted(r.unit or "" for r in rows)


def test_given_seeded_month_when_league_then_rates_and_medians_match_the_plan(
        seeded: Seeded) -> None:
    r = seeded.svc.reports
    rows = {x.unit: x for x in r.league("dongnai", r.period("dongnai", month="2026-11"),
                                        now=NOW)}
    for unit in UNITS:
        mine = [p for p in seeded.plans if holder(p) == unit]
        done = [p for p in mine if p.kind in ("resolve", "resolve_close")]
        on_time = sum(p.resolved_at <= p.due for p in done)
        late_open = sum(p.kind in ("forward", "accept") and NOW > p.due for p in mine)
        row = rows[unit]
        assert (row.assigned, row.resolved, row.resolved_on_time, row.late_open) == (
            len(mine), len(done), on_time, late_open)
        assert row.on_time_rate == pytest.approx(on_time / (len(done) + late_open))
        median_h = statistics.median((p.resolve_after - 10 * M) / H for p in done)
        assert row.median_resolve_hours == pytest.approx(median_h, abs=0.006)
    ranked = [x for x in rows.values() if x.rank is not None]
    assert sorted(x.rank or 0 for x in ranked) == list(range(1, len(ranked) + 1))
    by_rank = sorted(ranked, key=lambda x: x.rank or 0)
    rates = [x.on_time_rate or 0.0 for x in by_rank]
    assert rates == sorted(rates, reverse=True)
    assert rows["so_noi_vu"].rank is None and rows["so_noi_vu"].assigned == 0


# -- files ----------------------------------------------------------------------------------


def test_given_summary_when_xlsx_then_opens_with_title_headers_and_matching_rows(
        seeded: Seeded, tmp_path: Path) -> None:
    r = seeded.svc.reports
    s = r.weekly("dongnai", "2026-W48", now=NOW)
    late = r.late("dongnai", now=NOW)
    path = tmp_path / "bao-cao.xlsx"
    path.write_bytes(rp.xlsx_bytes([*rp.summary_tables(s),
                                    rp.list_table("late", s.tenant_name, late, NOW,
                                                  "Asia/Ho_Chi_Minh")]))
    wb = load_workbook(path)
    assert wb.sheetnames == ["Theo đơn vị", "Theo lĩnh vực", "Trễ hạn"]
    ws = wb["Theo đơn vị"]
    assert "Đồng Nai" in ws["A1"].value and "tuần 48/2026" in ws["A1"].value
    headers = [c.value for c in ws[4]]
    assert headers == ["STT", "Đơn vị", *(rp.COUNT_HEADERS[k] for k in KEYS)]
    assert ws.column_dimensions["B"].width == 40
    body = [[c.value for c in row] for row in ws.iter_rows(min_row=5)]
    assert [row[1] for row in body] == [x.name for x in s.by_unit] + ["Tổng cộng"]
    week = in_week_48(seeded.plans)
    assert dict(zip(KEYS, body[-1][2:], strict=True)) == expected_counts(week)
    sy = next(row for row in body if row[1] == "Sở Y tế")
    assert dict(zip(KEYS, sy[2:], strict=True)) == expected_counts(
        [p for p in week if holder(p) == "so_y_te"])
    lw = wb["Trễ hạn"]
    first = late[0]
    cells = {h.value: c.value for h, c in zip(lw[4], lw[5], strict=True)}
    assert cells["Mã phản ánh"] == first.code
    assert cells["Ngày tiếp nhận"] == first.received_at.astimezone(VN).replace(tzinfo=None)
    assert cells["Số ngày trễ"] == first.days_late
    assert lw.max_row == 4 + len(late)


def test_given_summary_when_csv_then_rows_match_the_figures(seeded: Seeded) -> None:
    s = seeded.svc.reports.daily("dongnai", "2026-11-17", now=NOW)
    rows = list(csv.reader(io.StringIO(rp.summary_csv(s))))
    assert rows[0] == ["Nhóm", "Mã", "Tên", *(rp.COUNT_HEADERS[k] for k in KEYS)]
    total = dict(zip(KEYS, map(int, rows[1][3:]), strict=True))
    assert total == expected_counts([p for p in seeded.plans
                                     if p.local_day == dt.date(2026, 11, 17)])
    assert len(rows) == 1 + 1 + len(s.by_unit) + len(s.by_field)
    table = rp.list_table("unprocessed", s.tenant_name,
                          seeded.svc.reports.unprocessed("dongnai", now=NOW), NOW,
                          "Asia/Ho_Chi_Minh")
    lines = list(csv.reader(io.StringIO(rp.table_csv(table))))
    assert lines[0][:4] == ["STT", "Đơn vị", "Mã phản ánh", "Ngày tiếp nhận"]
    assert len(lines[1][3]) == len("23/11/2026 10:00")


def test_given_summary_when_json_then_plain_values(seeded: Seeded) -> None:
    import json

    s = seeded.svc.reports.daily("dongnai", "2026-11-17", now=NOW)
    d = json.loads(json.dumps(s.to_json_dict()))
    assert d["period"]["label"] == "2026-11-17" and d["tenant_name"] == "Đồng Nai"
    assert d["total"] == _as_dict(s.total)
    assert {x["unit"] for x in d["by_unit"]} >= set(UNITS) | {None}
