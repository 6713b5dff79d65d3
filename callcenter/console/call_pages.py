"""``GET /console/calls`` and ``/console/calls.xlsx``: the tenant's call records of one local
day (supervisors and admins), filtered by outcome and operator, 50 a page, and the same rows
as an xlsx workbook. Records are stored in UTC; the day is the tenant's (a call at 23:30 on
the 22nd in Đồng Nai is on the 22nd's page). Registered by ``tickets.pages.add_list_pages``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from callcenter.console import listing as ls
from callcenter.console.auth import in_thread
from callcenter.console.context import CLOCK, CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.console.exports import fetch_capped, numbered, xlsx_response
from callcenter.console.pages import render, zone_of
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.store.data import CallRecordData
from callcenter.store.database import DatabaseRef
from callcenter.store.records import CallRecordStore
from callcenter.store.users import User
from callcenter.tickets.reports import Column, Table

PATH: Final = "/console/calls"
ROLES: Final = ("supervisor", "admin")
RECORDS = web.AppKey("console_call_records", CallRecordStore)
_BATCH: Final = 1000

_ENV: Final = environment("callcenter.console")  # templates/calls.html

CALL_COLUMNS: Final = (
    Column("stt", "STT", 6, "int"), Column("arrived_at", "Thời điểm gọi đến", 17, "datetime"),
    Column("arrived_s", "Giờ gọi đến (giây)", 10), Column("caller", "Số gọi đến", 14),
    Column("dialled", "Số quay", 10), Column("outcome_label", "Kết quả", 16),
    Column("wait_s", "Chờ (giây)", 9, "int"), Column("talk_s", "Đàm thoại (giây)", 10, "int"),
    Column("operator", "Điện thoại viên", 12), Column("ivr", "Nhánh IVR", 30),
    Column("transfers", "Chuyển tiếp", 24), Column("recording", "Tệp ghi âm", 36),
    Column("id", "Mã cuộc gọi", 26),
)


def call_row(r: CallRecordData, zone_key: str) -> dict[str, Any]:
    """One call record as a list row (the page and the export)."""
    return {"id": r.id, "arrived_at": r.arrived_at,
            "arrived_s": r.arrived_at.astimezone(ZoneInfo(zone_key)).strftime("%H:%M:%S"),
            "caller": r.caller, "dialled": r.dialled, "outcome": r.outcome,
            "outcome_label": ls.outcome_label(r.outcome), "wait_s": ls.seconds(r.wait_s),
            "talk_s": ls.seconds(r.talk_s), "operator": r.operator or "",
            "ivr": ls.ivr_summary(r.ivr_path), "transfers": ls.transfers_summary(r.transfers),
            "recording": (r.recording or "").rsplit("/", 1)[-1]}


def _filter(request: web.Request, user: User) -> tuple[ls.CallFilter, dt.datetime,
                                                       dt.datetime, str]:
    zone = zone_of(request, user.tenant)
    f = ls.parse_call_filter(request.query, ls.local_day(request.config_dict[CLOCK](), zone))
    start, end = ls.day_bounds(f.day, zone)
    return f, start, end, zone.key


async def calls_page(request: web.Request) -> web.StreamResponse:
    """GET /console/calls: one local day's calls of the user's tenant."""
    user = require_console_role(request, ROLES)
    f, start, end, zone_key = _filter(request, user)
    store = request.config_dict[RECORDS]
    filters = {"outcome": f.outcome, "operator": f.operator}
    records = await in_thread(request.config_dict, store.find, user.tenant, start, end,
                              limit=ls.PAGE_SIZE, offset=(f.page - 1) * ls.PAGE_SIZE,
                              **filters)
    total = await in_thread(request.config_dict, store.count_matching, user.tenant, start, end,
                            **filters)
    return render(request, _ENV, "calls.html", user, title="Cuộc gọi", f=f,
                  rows=[call_row(r, zone_key) for r in records], total=total,
                  pages=max(1, -(-total // ls.PAGE_SIZE)),
                  outcomes=list(ls.CALL_OUTCOME_LABELS.items()),
                  status=422 if f.errors else 200)


async def calls_xlsx(request: web.Request) -> web.StreamResponse:
    """GET /console/calls.xlsx: the same day and filters as an xlsx workbook."""
    user = require_console_role(request, ROLES)
    f, start, end, zone_key = _filter(request, user)
    if f.errors:
        return error_page(422, "request.invalid", "Bộ lọc không hợp lệ",
                          " ".join(f.errors.values()), back=PATH,
                          back_label="Về danh sách cuộc gọi")
    store = request.config_dict[RECORDS]
    records = await fetch_capped(request.config_dict, store.find, user.tenant, start, end,
                                 batch=_BATCH, outcome=f.outcome, operator=f.operator)
    total = await in_thread(request.config_dict, store.count_matching, user.tenant, start, end,
                            outcome=f.outcome, operator=f.operator)
    rows = numbered([call_row(r, zone_key) for r in records], total, "caller", "cuộc gọi")
    tenant = find_tenant(request.config_dict, user.tenant)
    title = (f"Danh sách cuộc gọi ngày {f.day:%d/%m/%Y} - Tổng đài 1022 "
             f"{tenant.name if tenant else user.tenant}")
    sub = f"Giờ {zone_key}; {total} cuộc gọi theo bộ lọc"
    return await xlsx_response(request.config_dict, [Table("Cuộc gọi", title, sub, CALL_COLUMNS,
                                                   rows, zone_key)],
                               f"cuoc-goi-{user.tenant}-{f.day.isoformat()}.xlsx")


def add_call_pages(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Add GET /console/calls and /console/calls.xlsx to the console sub-app (and the
    call-record store they read to the root)."""

    async def call_pages_ctx(app: web.Application) -> AsyncIterator[None]:
        app[RECORDS] = store = CallRecordStore(database)
        try:
            yield
        finally:
            store.close()

    apps.root.cleanup_ctx.append(call_pages_ctx)
    path = sub_path(CONSOLE_PREFIX, PATH)
    apps.console.router.add_get(path, calls_page, name="console_calls")
    apps.console.router.add_get(path + ".xlsx", calls_xlsx, name="console_calls_xlsx")
