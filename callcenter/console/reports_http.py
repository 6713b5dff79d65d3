"""Reports over HTTP: daily, weekly, monthly and quarterly figures, unprocessed and late lists,
the league table.

JSON by default; ``?format=csv`` (UTF-8 with BOM, so Excel reads the diacritics) or
``?format=xlsx`` downloads the same rows as ``callcenter.tickets.reports`` lays them out
(Vietnamese headers, the tenant's time zone). Periods are local: a day ``date=2026-11-23``
(default today), an ISO week ``week=2026-W48`` (default this week), a month
``month=2026-11`` (default this month), a quarter ``quarter=2026-Q4`` (default this quarter).
The SMS report takes a month or a quarter (default this month) and counts the outbox's texts
to citizens and to officials in billed parts (``callcenter.sms.billing``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from aiohttp import web

from callcenter.console.auth import in_thread, require_tenant
from callcenter.console.context import CLOCK, SERVICE, tenant_or_404
from callcenter.console.errors import invalid
from callcenter.console.validation import Param, parse_query
from callcenter.sms import billing as sms_billing
from callcenter.sms import billing_tables as sms_tables
from callcenter.sms.store import SmsOutbox
from callcenter.store.users import User
from callcenter.tickets import reports as rp
from callcenter.tickets.config import policy_of

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("json", "csv", "xlsx")
P_TENANT = Param("tenant", pattern=r"[a-z0-9_-]{1,32}", max_len=32,
                 description="tenant (province) id; default: the user's")
P_FORMAT = Param("format", enum=FORMATS, default="json",
                 description="json, or a csv / xlsx download")
P_UNIT = Param("unit", pattern=r"[a-z0-9_-]{1,32}", max_len=32, description="one unit only")
P_DATE = Param("date", kind="date", description="local day, YYYY-MM-DD (default: today)")
P_WEEK = Param("week", pattern=r"[0-9]{4}-W[0-9]{2}", max_len=8,
               description="ISO week, YYYY-Www (default: this week)")
P_MONTH = Param("month", kind="month", description="YYYY-MM (default: this month)")
P_QUARTER = Param("quarter", pattern=r"[0-9]{4}-Q[1-4]", max_len=7,
                  description="YYYY-Qn, e.g. 2026-Q4 (default: this quarter)")

Handler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


def _tenant(request: web.Request, user: User, value: str | None) -> tuple[str, str, str]:
    """(tenant id, its name, its time zone) after checking the user may see it."""
    tenant_id = value or user.tenant
    require_tenant(user, tenant_id)
    tenant = tenant_or_404(request.config_dict, tenant_id)
    return tenant.id, tenant.name, policy_of(tenant).timezone


def _today(request: web.Request, timezone: str) -> dt.date:
    return request.config_dict[CLOCK]().astimezone(ZoneInfo(timezone)).date()


def _download(request: web.Request, fmt: str, name: str, csv_text: Callable[[], str],
              xlsx: Callable[[], bytes]) -> web.StreamResponse:
    if fmt == "csv":
        return web.Response(body=("\ufeff" + csv_text()).encode("utf-8"),
                            content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return web.Response(body=xlsx(), content_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


_SUMMARY_PARAM = {"daily": P_DATE, "weekly": P_WEEK, "monthly": P_MONTH, "quarterly": P_QUARTER}
_FILE_WORD = {"daily": "ngay", "weekly": "tuan", "monthly": "thang", "quarterly": "quy"}


def _default_period(kind: str, today: dt.date) -> str:
    if kind == "weekly":
        year, num, _ = today.isocalendar()
        return f"{year}-W{num:02d}"
    if kind == "monthly":
        return f"{today:%Y-%m}"
    return f"{today.year}-Q{(today.month - 1) // 3 + 1}"


async def _summary(request: web.Request, user: User, kind: str) -> web.StreamResponse:
    param = _SUMMARY_PARAM[kind]
    q = parse_query((P_TENANT, param, P_FORMAT), request.query)
    tenant, _, tz = _tenant(request, user, q["tenant"])
    reports = request.config_dict[SERVICE].reports
    if kind == "daily":
        day = q["date"] or _today(request, tz)
        summary = await in_thread(request.config_dict, reports.daily, tenant, day)
    else:
        value = q[param.name] or _default_period(kind, _today(request, tz))
        arg = {"weekly": "week", "monthly": "month", "quarterly": "quarter"}[kind]
        period = await in_thread(request.config_dict, reports.period, tenant, **{arg: value})
        summary = await in_thread(request.config_dict, reports.summary, tenant, period)
    if q["format"] == "json":
        return web.json_response(summary.to_json_dict())
    name = f"bao-cao-{_FILE_WORD[kind]}-{tenant}-{summary.period.label}"
    return _download(request, q["format"], name, lambda: rp.summary_csv(summary),
                     lambda: rp.xlsx_bytes(rp.summary_tables(summary)))


async def daily(request: web.Request, user: User) -> web.StreamResponse:
    return await _summary(request, user, "daily")


async def weekly(request: web.Request, user: User) -> web.StreamResponse:
    return await _summary(request, user, "weekly")


async def monthly(request: web.Request, user: User) -> web.StreamResponse:
    return await _summary(request, user, "monthly")


async def quarterly(request: web.Request, user: User) -> web.StreamResponse:
    return await _summary(request, user, "quarterly")


async def _listing(request: web.Request, user: User, kind: str) -> web.StreamResponse:
    q = parse_query(LIST_PARAMS, request.query)
    tenant, tenant_name, tz = _tenant(request, user, q["tenant"])
    reports = request.config_dict[SERVICE].reports
    now = request.config_dict[CLOCK]()
    fetch = reports.late if kind == "late" else reports.unprocessed
    rows = await in_thread(request.config_dict, fetch, tenant, unit=q["unit"], now=now)
    if q["format"] == "json":
        return web.json_response({"tenant": tenant, "tenant_name": tenant_name,
                                  "generated_at": now.isoformat(),
                                  "items": [r.to_json_dict() for r in rows]})
    table = rp.list_table("late" if kind == "late" else "unprocessed", tenant_name, rows, now,
                          tz)
    name = f"{'tre-han' if kind == 'late' else 'chua-xu-ly'}-{tenant}-" \
           f"{now.astimezone(ZoneInfo(tz)):%Y%m%d}"
    return _download(request, q["format"], name, lambda: rp.table_csv(table),
                     lambda: rp.xlsx_bytes([table]))


async def late(request: web.Request, user: User) -> web.StreamResponse:
    return await _listing(request, user, "late")


async def unprocessed(request: web.Request, user: User) -> web.StreamResponse:
    return await _listing(request, user, "unprocessed")


async def league(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query(LEAGUE_PARAMS, request.query)
    tenant, tenant_name, tz = _tenant(request, user, q["tenant"])
    given = {k: q[k] for k in ("date", "week", "month") if q[k] is not None}
    if len(given) > 1:
        raise invalid(sorted(given)[1], "give one of date, week or month")
    if not given:
        given = {"month": f"{_today(request, tz):%Y-%m}"}
    reports = request.config_dict[SERVICE].reports
    period = await in_thread(request.config_dict, reports.period, tenant, **given)
    now = request.config_dict[CLOCK]()
    rows = await in_thread(request.config_dict, reports.league, tenant, period, now=now)
    if q["format"] == "json":
        return web.json_response({"tenant": tenant, "tenant_name": tenant_name,
                                  "period": period.to_json_dict(),
                                  "generated_at": now.isoformat(),
                                  "items": [r.to_json_dict() for r in rows]})
    table = rp.league_table(tenant_name, rows, period, now)
    return _download(request, q["format"], f"xep-hang-{tenant}-{period.label}",
                     lambda: rp.table_csv(table), lambda: rp.xlsx_bytes([table]))


P_QUARTER = Param("quarter", pattern=r"[0-9]{4}-Q[1-4]", max_len=7,
                  description="a quarter, YYYY-Qn (instead of month)")


async def sms(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query(SMS_PARAMS, request.query)
    tenant, tenant_name, tz = _tenant(request, user, q["tenant"])
    if q["month"] is not None and q["quarter"] is not None:
        raise invalid("quarter", "give a month or a quarter, not both")
    month = q["month"]
    if month is None and q["quarter"] is None:
        month = f"{_today(request, tz):%Y-%m}"
    period = sms_billing.billing_period(month, q["quarter"])
    outbox = SmsOutbox(request.config_dict[SERVICE].db.engine)  # the same database
    report = await in_thread(request.config_dict, outbox.billing_report, tenant, period, tz)
    if q["format"] == "json":
        return web.json_response(sms_tables.report_json(report, tenant_name))
    table = sms_tables.billing_table(report, tenant_name, request.config_dict[CLOCK]())
    return _download(request, q["format"], f"tin-nhan-sms-{tenant}-{period.label}",
                     lambda: rp.table_csv(table), lambda: rp.xlsx_bytes([table]))


LIST_PARAMS = (P_TENANT, P_UNIT, P_FORMAT)
SMS_PARAMS = (P_TENANT, P_MONTH, P_QUARTER, P_FORMAT)
LEAGUE_PARAMS = (P_TENANT, P_DATE, P_WEEK, P_MONTH, P_FORMAT)

REPORTS: tuple[tuple[str, Handler, str, tuple[Param, ...]], ...] = (
    ("daily", daily, "Figures of one local day per unit and per field (received, answered "
                     "at level 1, forwarded, resolved on time / late, open, late)",
     (P_TENANT, P_DATE, P_FORMAT)),
    ("weekly", weekly, "The same figures for an ISO week", (P_TENANT, P_WEEK, P_FORMAT)),
    ("monthly", monthly, "The same figures for a calendar month",
     (P_TENANT, P_MONTH, P_FORMAT)),
    ("quarterly", quarterly, "The same figures for a calendar quarter",
     (P_TENANT, P_QUARTER, P_FORMAT)),
    ("late", late, "Open tickets past their deadline, with days late (as of now)",
     LIST_PARAMS),
    ("unprocessed", unprocessed, "Tickets a unit has not accepted yet (as of now)",
     LIST_PARAMS),
    ("league", league, "Units ranked by on-time rate, with median resolve time",
     LEAGUE_PARAMS),
    ("sms", sms, "SMS texts to citizens and to officials per month (or quarter), in billed "
                 "parts", SMS_PARAMS),
)

__all__ = ["FORMATS", "REPORTS", "XLSX"]
