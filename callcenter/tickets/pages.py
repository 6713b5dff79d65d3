"""Ticket and call lists in the console, with xlsx exports (issue 7, parts 1 and 6).

* ``GET /console/tickets`` — units, supervisors, admins. A unit user sees only the tickets
  its unit holds, has held or oversees (``oversees``; those it does not hold are marked "Chỉ
  xem"): ``TicketService.list`` with the user's actor enforces it, and a ``unit`` parameter
  from a unit user is ignored unless its unit oversees others (then it filters by holder).
  The overview of what a unit oversees is ``GET /console/oversight`` (``oversight_page.py``).
  A unit user's list starts with "Cuộc gọi chuyển đến": the tickets whose calls an operator
  transferred to the unit in the last 24 h (``TicketService.transferred_to``), newest first;
  the unit reads them (read only) until they are forwarded to it.
  Oversight roles filter by state, unit, field, lateness and received day (the tenant's local
  days); quick links "Chưa xử lý" and "Trễ hạn". 50 a page.
* ``GET /console/tickets.xlsx`` — the same filter, every row up to ``EXPORT_CAP``, built
  with ``console.exports`` (``tickets.reports.Table``/``xlsx_bytes`` underneath).
* ``GET /console/tickets/{code}`` — one ticket, its audit trail and attachments; for the unit
  holding it, forms to accept, record the result (text and an optional reply document) or
  send it back. ``POST`` to the same path carries them out with the version the page showed
  (a stale one: "Phiếu đã được người khác cập nhật"). Supervisors read only: their actions
  stay in the API.
* ``/console/calls`` lives in ``call_pages.py`` (registered from here).

Citizens' numbers are shown (units and supervisors call back) and never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Final

from aiohttp import web

from callcenter.console import call_pages
from callcenter.console import listing as ls
from callcenter.console.api import ACTIONS, CODE_PATTERN, event_of
from callcenter.console.auth import actor_of, in_thread
from callcenter.console.context import (
    CLOCK,
    CONSOLE_PREFIX,
    SERVICE,
    ConsoleApps,
    find_tenant,
    sub_path,
)
from callcenter.console.errors import ApiError
from callcenter.console.exports import fetch_capped, numbered, xlsx_response
from callcenter.console.limits import large_body
from callcenter.console.pages import render, zone_of
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.console.uploads import safe_file_name
from callcenter.store.database import DatabaseRef
from callcenter.store.users import User
from callcenter.tickets.config import TicketPolicy, policy_of
from callcenter.tickets.files import UploadTooLarge
from callcenter.tickets.reports import Column, Table
from callcenter.tickets.rules import OPEN, Resolve, Ticket, TicketError, oversight_scope
from callcenter.tickets.service import MAX_LIST

log = logging.getLogger("callcenter.console.tickets")

PATH: Final = "/console/tickets"
TRANSFERRED_HOURS: Final = 24  # how long a unit's list shows a call transferred to it
ROLES: Final = ("unit", "supervisor", "admin")
_CODE: Final = re.compile(CODE_PATTERN)
CONFLICT: Final = "Phiếu đã được người khác cập nhật, vui lòng xem lại"
_FIELD_MESSAGES: Final = {
    "result": "Vui lòng nhập kết quả giải quyết (tối đa 10 000 ký tự).",
    "reason": "Vui lòng nhập lý do trả lại (tối đa 2 000 ký tự).",
    "version": "Biểu mẫu không hợp lệ, vui lòng tải lại trang.",
    "action": "Thao tác không hợp lệ.",
}

_ENV: Final = environment("callcenter.tickets")  # templates/tickets.html, ticket.html


# ---- shared look-ups ----------------------------------------------------------------------------
def _policy(request: web.Request, user: User) -> TicketPolicy | None:
    tenant = find_tenant(request.config_dict, user.tenant)
    return policy_of(tenant) if tenant is not None else None


def _no_tenant() -> web.Response:
    return error_page(404, "tenant.not_found", "Không tìm thấy tỉnh",
                      "Cấu hình hiện hành không còn tỉnh của tài khoản này.")


def _not_found(code: str) -> web.Response:
    # Another unit's ticket looks exactly like a missing one: its existence is not told.
    return error_page(404, "ticket.not_found", "Không tìm thấy phiếu",
                      f"Không có phiếu {code} trong danh sách của bạn.", back=PATH,
                      back_label="Về danh sách phiếu")


def _near(policy: TicketPolicy) -> dt.timedelta:
    """How close a deadline must be to be shown as near: the reminder lead, else a day."""
    return policy.deadlines.reminder_before or dt.timedelta(days=1)


def _unit_name(policy: TicketPolicy, unit: str | None) -> str:
    if unit is None:
        return "Tổng đài 1022"
    found = policy.unit(unit)
    return found.name if found is not None else unit


def ticket_row(t: Ticket, policy: TicketPolicy, now: dt.datetime) -> dict[str, Any]:
    """One ticket as a list row (the page and the export)."""
    mark = ls.deadline_mark(t.resolve_due, t.state in OPEN, now, _near(policy))
    return {"code": t.code, "received_at": t.received_at, "state": t.state.value,
            "state_label": ls.state_label(t.state.value),
            "field_name": policy.field_name(t.field) or t.field,
            "unit_name": _unit_name(policy, t.unit), "resolve_due": t.resolve_due,
            "mark": mark, "late": "Trễ hạn" if mark == "late" else "",
            "content": ls.short(t.content), "full_content": t.content,
            "channel": ls.CHANNEL_LABELS.get(t.channel, t.channel),
            "citizen_name": t.citizen_name or "", "citizen_phone": t.citizen_phone or "",
            "result": t.result or ""}


# ---- the list and its export ---------------------------------------------------------------------
def _filtered(request: web.Request) -> tuple[User, TicketPolicy | None, ls.TicketFilter | None]:
    """The user (role checked), the tenant's ticket policy and the list's filter (None, None:
    the tenant is no longer in the config)."""
    user = require_console_role(request, ROLES)
    policy = _policy(request, user)
    if policy is None:
        return user, None, None
    # A unit that oversees others' tickets may filter them by holder (the service still keeps
    # it to what it may read); any other unit user's unit filter is ignored.
    return user, policy, ls.parse_ticket_filter(
        request.query, units=[u.id for u in policy.units], fields=[x.id for x in policy.fields],
        unit_user=user.role == "unit" and not oversight_scope(policy, user.unit))


async def tickets_page(request: web.Request) -> web.StreamResponse:
    """GET /console/tickets: the filtered list (its xlsx: ``tickets_xlsx``)."""
    user, policy, f = _filtered(request)
    if policy is None or f is None:
        return _no_tenant()
    app = request.config_dict
    service, now = app[SERVICE], app[CLOCK]()
    kwargs = f.service_kwargs(zone_of(request, user.tenant))
    actor = actor_of(user)
    tickets = await in_thread(app, service.list, actor, user.tenant, limit=ls.PAGE_SIZE,
                              offset=(f.page - 1) * ls.PAGE_SIZE, **kwargs)
    total = await in_thread(app, service.count, actor, user.tenant, **kwargs)
    heading = {"unprocessed": "Phiếu chưa xử lý", "late": "Phiếu trễ hạn"}.get(
        f.view, "Phiếu phản ánh")
    if user.role == "unit":
        heading += f" — {_unit_name(policy, user.unit)}"
    rows = [ticket_row(t, policy, now) for t in tickets]
    for row, t in zip(rows, tickets, strict=True):
        row["read_only"] = user.role == "unit" and t.unit != user.unit  # held, or overseen
    overseer = user.role == "unit" and bool(oversight_scope(policy, user.unit))
    transferred: list[dict[str, Any]] = []
    if user.role == "unit":
        # Calls an operator transferred to this unit (warm transfer): the ticket the person
        # who took the call just heard announced, to read before it is forwarded.
        found = await in_thread(app, service.transferred_to, actor, user.tenant,
                                hours=TRANSFERRED_HOURS)
        transferred = [{"code": x.ticket.code, "at": x.at,
                        "field_name": policy.field_name(x.ticket.field) or x.ticket.field,
                        "state_label": ls.state_label(x.ticket.state.value)} for x in found]
    return render(request, _ENV, "tickets.html", user, title=heading, heading=heading, f=f,
                  rows=rows, total=total, transferred=transferred,
                  transferred_hours=TRANSFERRED_HOURS,
                  pages=max(1, -(-total // ls.PAGE_SIZE)), policy=policy,
                  unit_user=user.role == "unit" and not overseer, overseer=overseer,
                  states=list(ls.TICKET_STATE_LABELS.items()),
                  status=422 if f.errors else 200)


async def tickets_xlsx(request: web.Request) -> web.StreamResponse:
    """GET /console/tickets.xlsx: the filtered list as an xlsx workbook."""
    user, policy, f = _filtered(request)
    if policy is None or f is None:
        return _no_tenant()
    return await _export(request, user, policy, f)


TICKET_COLUMNS: Final = (
    Column("stt", "STT", 6, "int"), Column("code", "Mã phiếu", 20),
    Column("received_at", "Thời điểm tiếp nhận", 17, "datetime"),
    Column("channel", "Kênh", 12), Column("field_name", "Lĩnh vực", 20),
    Column("unit_name", "Đơn vị xử lý", 28), Column("state_label", "Trạng thái", 18),
    Column("resolve_due", "Hạn xử lý", 17, "datetime"), Column("late", "Trễ hạn", 9),
    Column("citizen_name", "Họ tên công dân", 20),
    Column("citizen_phone", "Số điện thoại", 14),
    Column("full_content", "Nội dung", 60), Column("result", "Kết quả giải quyết", 50),
)


async def _export(request: web.Request, user: User, policy: TicketPolicy,
                  f: ls.TicketFilter) -> web.StreamResponse:
    if f.errors:
        return error_page(422, "request.invalid", "Bộ lọc không hợp lệ",
                          " ".join(f.errors.values()), back=PATH,
                          back_label="Về danh sách phiếu")
    app = request.config_dict
    service, now = app[SERVICE], app[CLOCK]()
    zone = zone_of(request, user.tenant)
    kwargs = f.service_kwargs(zone)
    actor = actor_of(user)
    tickets = await fetch_capped(app, service.list, actor, user.tenant, batch=MAX_LIST,
                                 **kwargs)
    total = await in_thread(app, service.count, actor, user.tenant, **kwargs)
    rows = numbered([ticket_row(t, policy, now) for t in tickets], total, "code", "phiếu",
                    " (mới nhất)")
    tenant = find_tenant(app, user.tenant)
    who = f" — {_unit_name(policy, user.unit)}" if user.role == "unit" else ""
    title = f"Danh sách phiếu phản ánh - Tổng đài 1022 {tenant.name if tenant else ''}{who}"
    sub = (f"Lập lúc {now.astimezone(zone):%H:%M %d/%m/%Y} (giờ {zone.key}); "
           f"{total} phiếu theo bộ lọc")
    day = ls.local_day(now, zone).isoformat()
    return await xlsx_response(app, [Table("Phiếu", title, sub, TICKET_COLUMNS, rows,
                                           zone.key)], f"phieu-{user.tenant}-{day}.xlsx")


# ---- one ticket ----------------------------------------------------------------------------------
async def _visible(request: web.Request, user: User, code: str) -> Ticket | None:
    """The ticket if this user may see it, else None (missing, another unit's or tenant's)."""
    if not _CODE.fullmatch(code):
        return None
    try:
        ticket: Ticket = await in_thread(request.config_dict, request.config_dict[SERVICE].get,
                                         code,
                                         actor_of(user))
    except TicketError as e:
        if e.id in ("ticket.not_found", "ticket.forbidden", "ticket.bad_code"):
            return None
        raise
    return ticket if ticket.tenant == user.tenant else None


# Who may open a call's recording from the ticket (the quality pages' listeners).
LISTEN_ROLES: Final = ("supervisor", "admin")


async def _calls(request: web.Request, user: User, ticket: Ticket) -> list[dict[str, Any]]:
    """The ticket's linked calls with their records (the call that asked, calls back from the
    console, ...), oldest first; none for units' users (the hotline's calls are not theirs)."""
    records = request.config_dict.get(call_pages.RECORDS)
    if records is None or user.role == "unit" or not ticket.call_ids:
        return []
    found = await in_thread(request.config_dict, records.get_many, ticket.call_ids)
    rows = [{"id": r.id, "at": r.arrived_at, "outcome": ls.outcome_label(r.outcome),
             "dialback": r.outcome == "dialback", "operator": r.operator or "",
             "recording": (r.recording or "").rsplit("/", 1)[-1],
             "listen": bool(r.recording) and user.role in LISTEN_ROLES}
            for r in found.values() if r.tenant == ticket.tenant]
    return sorted(rows, key=lambda r: (r["at"], r["id"]))


async def _detail(request: web.Request, user: User, ticket: Ticket, policy: TicketPolicy, *,
                  status: int = 200, message: str = "", message_id: str = "",
                  errors: dict[str, str] | None = None,
                  typed: dict[str, str] | None = None) -> web.Response:
    app = request.config_dict
    service, now = app[SERVICE], app[CLOCK]()
    actor = actor_of(user)
    audit = await in_thread(app, service.audit, ticket.code, actor)
    attachments = await in_thread(app, service.attachments, ticket.code, actor)
    calls = await _calls(request, user, ticket)
    actions = ls.unit_actions(ticket.state.value, ticket.unit == user.unit) \
        if user.role == "unit" else ()
    done = request.query.get("done", "")
    unit_names = {u.id: u.name for u in policy.units}
    field_names = {f.id: f.name for f in policy.fields}
    return render(
        request, _ENV, "ticket.html", user, title=f"Phiếu {ticket.code}", status=status,
        t=ticket, state_label=ls.state_label(ticket.state.value),
        channel=ls.CHANNEL_LABELS.get(ticket.channel, ticket.channel),
        field_name=policy.field_name(ticket.field) or ticket.field,
        unit_name=_unit_name(policy, ticket.unit),
        mark=ls.deadline_mark(ticket.resolve_due, ticket.state in OPEN, now, _near(policy)),
        actions=actions, attachments=attachments, calls=calls,
        read_only=user.role == "unit" and ticket.unit != user.unit,
        audit=[{"at": e.at, "event": e.event, "label": ls.EVENT_LABELS.get(e.event, e.event),
                "actor": e.actor.user_id + (f" ({e.actor.unit})" if e.actor.unit else ""),
                "to": ls.state_label(e.to_state.value),
                "detail": ls.audit_note(e.event, e.detail, units=unit_names,
                                        fields=field_names)} for e in audit],
        done=done if done in ACTIONS else "", message=message, message_id=message_id,
        errors=errors or {}, typed=typed or {}, limits=service.upload_limits,
        size_text=ls.size_text)


async def _ticket_of(request: web.Request, roles: tuple[str, ...]
                     ) -> tuple[User, TicketPolicy, Ticket] | web.Response:
    """The user (role checked), the tenant's policy and the ticket of the path, when this
    user may see it; else the page to answer with (tenant gone, or 404)."""
    user = require_console_role(request, roles)
    policy = _policy(request, user)
    if policy is None:
        return _no_tenant()
    code = request.match_info["code"]
    ticket = await _visible(request, user, code)
    if ticket is None:
        return _not_found(code[:40])
    return user, policy, ticket


async def ticket_page(request: web.Request) -> web.StreamResponse:
    """GET /console/tickets/{code}: the ticket, its history, files and the unit's actions."""
    found = await _ticket_of(request, ROLES)
    if isinstance(found, web.Response):
        return found
    user, policy, ticket = found
    return await _detail(request, user, ticket, policy)


def _ticket_message(e: TicketError) -> tuple[str, str | None]:
    """A refusal of the ticket service in Vietnamese, and the form field it belongs to."""
    if e.id == "ticket.upload_type":
        return ("Tệp đính kèm phải là văn bản PDF, DOC, DOCX, hình ảnh JPEG, PNG, WEBP, HEIC "
                "hoặc đoạn phim MP4, MOV, 3GP (kiểm tra theo nội dung tệp, không theo tên).",
                "file")
    if isinstance(e, UploadTooLarge):
        return ls.upload_too_large_text(e.category, e.max_bytes), "file"
    if e.id == "ticket.conflict":
        return CONFLICT, None
    if e.id == "ticket.illegal_transition":
        return "Trạng thái hiện tại của phiếu không cho phép thao tác này.", None
    if e.id == "ticket.forbidden":
        return "Đơn vị của bạn không được thực hiện thao tác này với phiếu.", None
    if e.id == "ticket.invalid_text":
        return "Nội dung không được để trống và không quá dài.", None
    return f"Không thực hiện được thao tác ({e.id}).", None


async def ticket_submit(request: web.Request) -> web.StreamResponse:
    """POST /console/tickets/{code}: a unit accepts, records the result or sends it back."""
    found = await _ticket_of(request, ("unit",))
    if isinstance(found, web.Response):
        return found
    user, policy, ticket = found
    code = ticket.code
    form = await request.post()  # the CSRF middleware read it already; aiohttp keeps it
    action = str(form.get("action", ""))
    typed = {k: str(form.get(k, "")) for k in ("result", "reason")
             if isinstance(form.get(k), str)}
    service = request.config_dict[SERVICE]

    async def again(status: int, message: str = "", message_id: str = "",
                    errors: dict[str, str] | None = None) -> web.Response:
        current = await _visible(request, user, code) or ticket
        return await _detail(request, user, current, policy, status=status, message=message,
                             message_id=message_id, errors=errors, typed=typed)

    if action not in ls.unit_actions(ticket.state.value, ticket.unit == user.unit):
        return await again(409, "Trạng thái hiện tại của phiếu không cho phép thao tác này.",
                           "ticket.illegal_transition")
    version_text = str(form.get("version", ""))
    submitted: dict[str, Any] = {"action": action, "version": int(version_text)
                                 if version_text.isdigit() else -1}
    if action == "resolve":
        submitted["result"] = typed.get("result", "").strip()
    elif action == "return":
        submitted["reason"] = typed.get("reason", "").strip()
    try:
        body = ACTIONS[action].check(submitted)
    except ApiError as e:
        bad = str((e.details or {}).get("field", "action"))
        return await again(422, errors={bad: _FIELD_MESSAGES.get(bad, "Không hợp lệ.")})
    if body["version"] != ticket.version:
        # Before the upload: a stale form must not leave a file on a ticket it never changed.
        return await again(409, CONFLICT, "ticket.conflict")
    actor = actor_of(user)
    try:
        upload = form.get("file")
        event = event_of(action, body, ticket, actor, request.config_dict[CLOCK]())
        if isinstance(event, Resolve) and isinstance(upload, web.FileField) \
                and upload.filename:
            # The file and the result in one transaction: a refused resolve keeps no file.
            data = await in_thread(request.config_dict, upload.file.read,
                                   service.upload_limits.largest + 1)
            await in_thread(request.config_dict, service.resolve_with_document, code, actor, event,
                            safe_file_name(upload.filename), upload.content_type, data,
                            expected_version=body["version"])
        else:
            await in_thread(request.config_dict, service.act, code, actor, event,
                            expected_version=body["version"])
    except TicketError as e:
        message, where = _ticket_message(e)
        status = 409 if e.id in ("ticket.conflict", "ticket.illegal_transition") else 422
        if where is None:
            return await again(status, message, e.id)
        return await again(status, errors={where: message})
    log.info("console: %s did %s on ticket %s", user.name, action, code)
    raise web.HTTPSeeOther(location=f"{PATH}/{code}?done={action}")


def add_list_pages(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Add the ticket and call list pages to the console sub-app."""
    path = sub_path(CONSOLE_PREFIX, PATH)
    router = apps.console.router
    router.add_get(path, tickets_page, name="console_tickets")
    router.add_get(path + ".xlsx", tickets_xlsx, name="console_tickets_xlsx")
    router.add_get(path + "/{code}", ticket_page, name="console_ticket")
    # The reply document may be a video: this form's body may be larger than the app's limit.
    router.add_post(path + "/{code}", large_body(ticket_submit))
    call_pages.add_call_pages(apps, database)
    # Imported here: the overview page reuses this module's look-ups.
    from callcenter.tickets.oversight_page import add_oversight_page

    add_oversight_page(apps)
