"""``GET /console/callbacks``: callers waiting to be called back (operators, supervisors,
admins), and ``/console/callbacks.xlsx``, the same list as an xlsx workbook.

The tenant's open requests, oldest first (call back in that order), with the number in full
(operators dial it), when it was asked (tenant-local time, and how long ago), how long the
caller had waited in the queue (from the call record, when it is stored) and the call record's
id, and the attempts made from the console. ``?closed=1`` adds the requests done or
cancelled in the last 7 days, with who handled them, when, their note and recording.
Each open row has a "Đã gọi lại" form (optional note) posting to
``/console/callbacks/{id}/done``: the store's ``done`` operation by the user (one INFO log
line from the store: id and user, never the number), then a redirect back with a message.
Another tenant's request is a 404 page; one already closed, a 409 page saying so (nothing
changed). Operators and supervisors also get a "Gọi lại" form posting to
``/console/callbacks/{id}/dial`` (``callbacks/dial.py``): their phone rings, then the caller
(supervisors name the operator phone to ring); a refusal (409 phone on a call, ...) is the
page again with the Vietnamese reason. Reuses the CallbackStore the API opens
(``callbacks.http.CALLBACKS``) and the call record store of the call list (``call_pages.RECORDS``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from callcenter.ari_app.dialback import DialRefused
from callcenter.callbacks.dial import start_dialback
from callcenter.callbacks.http import CALLBACKS
from callcenter.callbacks.store import MAX_NOTE, MAX_TICKET, CallbackError, CallbackRequest
from callcenter.callbacks.ticket_link import link_ticket
from callcenter.calls import dialback as rules
from callcenter.console import listing as ls
from callcenter.console.auth import in_thread
from callcenter.console.call_pages import RECORDS
from callcenter.console.context import CLOCK, CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.console.errors import ApiError
from callcenter.console.pages import render, zone_of
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.store.data import CallRecordData
from callcenter.store.users import User
from callcenter.tickets.config import TicketError
from callcenter.tickets.reports import Column, Table, xlsx_bytes

log = logging.getLogger("callcenter.console.callbacks")

PATH: Final = "/console/callbacks"
ROLES: Final = ("operator", "supervisor", "admin")
CLOSED_DAYS: Final = 7
PAGE_LIMIT: Final = 200  # open requests shown; more means the hotline is far behind
EXPORT_LIMIT: Final = 5000
# A caller still waiting for a call back after this long is shown in red: nobody forgotten.
LATE_AFTER: Final = dt.timedelta(minutes=30)
STATUS_LABELS: Final = {"open": "Đang chờ gọi lại", "done": "Đã gọi lại",
                        "cancelled": "Đã hủy"}

_ENV: Final = environment("callcenter.callbacks")  # templates/callbacks.html

CALLBACK_COLUMNS: Final = (
    Column("stt", "STT", 6, "int"), Column("caller", "Số cần gọi lại", 15),
    Column("requested_at", "Yêu cầu lúc", 17, "datetime"),
    Column("waited_s", "Đã chờ (giây)", 10, "int"), Column("status_label", "Trạng thái", 16),
    Column("handled_by", "Người xử lý", 14), Column("handled_at", "Xử lý lúc", 17, "datetime"),
    Column("note", "Ghi chú", 40), Column("call_id", "Mã cuộc gọi", 26),
)


def ago(then: dt.datetime, now: dt.datetime) -> str:
    """How long ago, in Vietnamese: "vừa xong", "5 phút trước", "2 giờ 5 phút trước"."""
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 1:
        return "vừa xong"
    if minutes < 60:
        return f"{minutes} phút trước"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} giờ {rest} phút trước" if rest else f"{hours} giờ trước"
    days, hours = divmod(hours, 24)
    return f"{days} ngày {hours} giờ trước" if hours else f"{days} ngày trước"


def callback_row(c: CallbackRequest, record: CallRecordData | None,
                 now: dt.datetime) -> dict[str, Any]:
    """One request as a row of the page and the export."""
    return {"id": c.id, "caller": c.caller, "requested_at": c.requested_at,
            "ago": ago(c.requested_at, now),
            "waited_s": ls.seconds(record.wait_s) if record is not None else None,
            "call_id": c.call_id, "status": c.status,
            "status_label": STATUS_LABELS.get(c.status, c.status),
            "handled_by": c.handled_by or "", "handled_at": c.handled_at,
            "note": c.note or "", "attempts": c.attempts,
            "last_result": rules.RESULT_LABELS.get(c.last_result or "", c.last_result or ""),
            "recording": c.recording or "", "pool_full": c.source == rules.POOL_FULL,
            "ticket": c.ticket or "",
            "late": c.status == "open" and now - c.requested_at >= LATE_AFTER}


def closed_newest_first(rows: Iterable[CallbackRequest]) -> list[CallbackRequest]:
    """Done and cancelled requests, the most recently handled first."""
    return sorted(rows, key=lambda c: (c.handled_at or c.requested_at, c.id), reverse=True)


def show_closed(query: Mapping[str, str]) -> bool:
    """Whether the list adds the requests handled in the last days (``closed=1``)."""
    return query.get("closed", "") in ("1", "true", "on")


def _load(request: web.Request, tenant: str, closed: bool, limit: int
          ) -> tuple[list[CallbackRequest], list[CallbackRequest], dict[str, CallRecordData]]:
    """Open (and closed) requests and their call records; blocking: run in the pool."""
    store = request.config_dict[CALLBACKS]
    open_ = rules.call_back_order(store.recent(tenant, statuses=("open",), limit=limit))
    closed_ = closed_newest_first(store.recent(
        tenant, statuses=("done", "cancelled"), limit=limit,
        handled_since=request.config_dict[CLOCK]() - dt.timedelta(days=CLOSED_DAYS))
    ) if closed else []
    records = request.config_dict.get(RECORDS)
    found = {} if records is None else records.get_many(c.call_id for c in (*open_, *closed_))
    return open_, closed_, found


async def _page(request: web.Request, user: User, *, status: int = 200,
                message: str | None = None, error: str | None = None,
                error_id: str | None = None, error_field: str | None = None,
                error_row: int | None = None, note_value: str = "",
                closed: bool | None = None) -> web.Response:
    show = show_closed(request.query) if closed is None else closed
    open_, closed_, records = await in_thread(request.config_dict, _load, request, user.tenant,
                                              show,
                                              PAGE_LIMIT)
    now = request.config_dict[CLOCK]()
    return render(request, _ENV, "callbacks.html", user, title="Yêu cầu gọi lại",
                  status=status, path=PATH, show_closed=show, closed_days=CLOSED_DAYS,
                  query="?closed=1" if show else "", max_note=MAX_NOTE,
                  open_rows=[callback_row(c, records.get(c.call_id), now) for c in open_],
                  open_capped=len(open_) >= PAGE_LIMIT,
                  closed_rows=[callback_row(c, records.get(c.call_id), now) for c in closed_],
                  message=message, error=error, error_id=error_id, error_field=error_field,
                  error_row=error_row, note_value=note_value,
                  can_dial=user.role in rules.DIAL_ROLES, ask_extension=user.role != "operator")


async def callbacks_page(request: web.Request) -> web.StreamResponse:
    """GET /console/callbacks: the tenant's callers waiting to be called back."""
    user = require_console_role(request, ROLES)
    message = None
    done = request.query.get("done", "")
    dialling = request.query.get("dialling", "")
    if done.isdigit() and len(done) < 12:
        message = f"Đã ghi nhận: yêu cầu số {int(done)} đã được gọi lại."
    elif (linked := request.query.get("ticket", "")).isdigit() and len(linked) < 12:
        message = f"Đã cập nhật phiếu của yêu cầu số {int(linked)}."
    elif dialling.isdigit() and len(dialling) < 12:
        message = (f"Đang đổ chuông máy của bạn cho yêu cầu số {int(dialling)}: nhấc máy, "
                   "tổng đài sẽ gọi cho người dân và ghi âm cuộc gọi.")
    return await _page(request, user, message=message)


def _back(closed: bool, **extra: str) -> str:
    params = {"closed": "1"} if closed else {}
    params.update(extra)
    return PATH + ("?" + urlencode(params) if params else "")


async def callback_done(request: web.Request) -> web.StreamResponse:
    """POST /console/callbacks/{id}/done: the caller was called back (optional note)."""
    user = require_console_role(request, ROLES)
    raw_id = request.match_info["id"]
    form = await request.post()
    closed = show_closed({"closed": str(form.get("closed", ""))})
    not_found = error_page(404, "callback.not_found", "Không tìm thấy yêu cầu gọi lại",
                           "Yêu cầu gọi lại này không tồn tại.", back=PATH,
                           back_label="Về danh sách yêu cầu gọi lại")
    if not raw_id.isdigit() or len(raw_id) > 10:
        return not_found
    callback_id = int(raw_id)
    store = request.config_dict[CALLBACKS]
    current = await in_thread(request.config_dict, store.get, callback_id)
    if current is None or current.tenant != user.tenant:
        # Another tenant's request is as good as absent: its existence is not this user's.
        return not_found
    note_field = form.get("note", "")
    note = note_field.strip() if isinstance(note_field, str) else ""
    if len(note) > MAX_NOTE:
        return await _page(request, user, status=422, error_id="request.invalid",
                           error_field="note", error_row=callback_id, note_value=note,
                           error=f"Ghi chú dài quá {MAX_NOTE} ký tự; vui lòng rút gọn.",
                           closed=closed)
    try:
        await in_thread(request.config_dict, store.done, callback_id, user.name, note or None,
                        at=request.config_dict[CLOCK]())
    except CallbackError as e:
        if e.id != "callback.closed":
            return not_found
        latest = await in_thread(request.config_dict, store.get, callback_id)
        state = STATUS_LABELS.get(latest.status, "") if latest else ""
        by = f" bởi {latest.handled_by}" if latest and latest.handled_by else ""
        return await _page(request, user, status=409, error_id="callback.closed",
                           error=f"Yêu cầu số {callback_id} đã được xử lý trước đó "
                                 f"({state.lower()}{by}); không thay đổi gì.", closed=closed)
    raise web.HTTPSeeOther(location=_back(closed, done=str(callback_id)))


async def callback_dial(request: web.Request) -> web.StreamResponse:
    """POST /console/callbacks/{id}/dial: ring the user's phone, then call the caller back
    (operators: their own extension; supervisors: the form's ``extension``)."""
    user = require_console_role(request, ROLES)
    raw_id = request.match_info["id"]
    form = await request.post()
    closed = show_closed({"closed": str(form.get("closed", ""))})
    if not raw_id.isdigit() or len(raw_id) > 10:
        return error_page(404, rules.NOT_FOUND, "Không tìm thấy yêu cầu gọi lại",
                          rules.MESSAGES[rules.NOT_FOUND], back=PATH,
                          back_label="Về danh sách yêu cầu gọi lại")
    callback_id = int(raw_id)
    ext_field = form.get("extension", "")
    extension = ext_field.strip()[:16] if isinstance(ext_field, str) else ""
    try:
        await start_dialback(request, request.config_dict[CALLBACKS], user, callback_id,
                             extension or None)
    except DialRefused as e:
        if e.id == rules.NOT_FOUND:
            return error_page(404, rules.NOT_FOUND, "Không tìm thấy yêu cầu gọi lại",
                              rules.MESSAGES[rules.NOT_FOUND], back=PATH,
                              back_label="Về danh sách yêu cầu gọi lại")
        return await _page(request, user, status=rules.STATUS.get(e.id, 409), error_id=e.id,
                           error=rules.MESSAGES[e.id], error_row=callback_id, closed=closed)
    raise web.HTTPSeeOther(location=_back(closed, dialling=str(callback_id)))


async def callback_ticket(request: web.Request) -> web.StreamResponse:
    """POST /console/callbacks/{id}/ticket: the request is about this ticket (its code; empty:
    none); checked like the API's (ticket_link.py)."""
    user = require_console_role(request, rules.DIAL_ROLES)
    raw_id = request.match_info["id"]
    form = await request.post()
    closed = show_closed({"closed": str(form.get("closed", ""))})
    not_found = error_page(404, rules.NOT_FOUND, "Không tìm thấy yêu cầu gọi lại",
                           rules.MESSAGES[rules.NOT_FOUND], back=PATH,
                           back_label="Về danh sách yêu cầu gọi lại")
    if not raw_id.isdigit() or len(raw_id) > 10:
        return not_found
    callback_id = int(raw_id)
    field = form.get("ticket", "")
    code = field.strip()[:MAX_TICKET + 1] if isinstance(field, str) else ""
    try:
        linked = await link_ticket(request, request.config_dict[CALLBACKS], user, callback_id,
                                   code or None)
    except ApiError as e:
        if e.id == rules.NOT_FOUND:
            return not_found
        raise
    except (TicketError, ValueError) as e:
        error_id = e.id if isinstance(e, TicketError) else "request.invalid"
        return await _page(request, user, status=422, error_id=error_id,
                           error_field="ticket", error_row=callback_id, closed=closed,
                           error=f"Không gắn được phiếu «{code}»: không có phiếu này trong "
                                 "tỉnh của bạn (mã dạng DN-20261123-0042).")
    raise web.HTTPSeeOther(location=_back(closed, ticket=str(linked.id)))


async def callbacks_xlsx(request: web.Request) -> web.StreamResponse:
    """GET /console/callbacks.xlsx: the same list (and filter) as an xlsx workbook."""
    user = require_console_role(request, ROLES)
    show = show_closed(request.query)
    open_, closed_, records = await in_thread(request.config_dict, _load, request, user.tenant,
                                              show,
                                              EXPORT_LIMIT)
    now = request.config_dict[CLOCK]()
    zone = zone_of(request, user.tenant)
    rows = export_rows([*open_, *closed_], records, now)
    tenant = find_tenant(request.config_dict, user.tenant)
    title = f"Yêu cầu gọi lại - Tổng đài 1022 {tenant.name if tenant else user.tenant}"
    what = (f"đang chờ và đã xử lý trong {CLOSED_DAYS} ngày qua" if show else "đang chờ")
    sub = (f"Giờ {zone.key}; {len(open_)} yêu cầu đang chờ; lập lúc "
           f"{now.astimezone(zone):%H:%M %d/%m/%Y}; danh sách {what}")
    data = await in_thread(request.config_dict, xlsx_bytes, [Table(
        "Yêu cầu gọi lại", title, sub, CALLBACK_COLUMNS, tuple(rows), zone.key)])
    local_day = now.astimezone(zone).date().isoformat()
    return web.Response(body=data, content_type="application/vnd.openxmlformats-"
                        "officedocument.spreadsheetml.sheet", headers={
                            "Content-Disposition": f'attachment; filename="goi-lai-'
                                                   f'{user.tenant}-{local_day}.xlsx"',
                            "Cache-Control": "private, no-store"})


def export_rows(requests: Sequence[CallbackRequest], records: Mapping[str, CallRecordData],
                now: dt.datetime) -> list[dict[str, Any]]:
    """The export's rows, numbered, in the page's order."""
    return [{"stt": i, **callback_row(c, records.get(c.call_id), now)}
            for i, c in enumerate(requests, 1)]


def add_callback_pages(apps: ConsoleApps) -> None:
    """Add the callback list, its "done" form and its xlsx export to the console sub-app
    (after add_list_pages and add_callback_routes, whose stores it reads)."""
    path = sub_path(CONSOLE_PREFIX, PATH)
    router = apps.console.router
    router.add_get(path, callbacks_page, name="console_callbacks")
    router.add_get(path + ".xlsx", callbacks_xlsx, name="console_callbacks_xlsx")
    router.add_post(path + "/{id}/done", callback_done, name="console_callback_done")
    router.add_post(path + "/{id}/dial", callback_dial, name="console_callback_dial")
    router.add_post(path + "/{id}/ticket", callback_ticket, name="console_callback_ticket")
