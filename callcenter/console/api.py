"""The ticket HTTP API under ``/api/v1``: tickets, actions, audit, attachments, callers,
calls and reports. Bearer tokens (``auth.py``), JSON errors with stable ids (``errors.py``).

``ROUTES`` is the one table of endpoints: the router is built from it, and so is the
OpenAPI document (``openapi.py``), so a route cannot exist without being described. Each
route names the roles that may call it; the ticket service checks the finer rules again
(a unit only ever sees and changes its own tickets), and every ticket's tenant is checked
against the user's here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.calls.codec import CALL_KEY, state_from_json
from callcenter.console import reports_http
from callcenter.console.auth import actor_of, current_user, in_thread, require_role, require_tenant
from callcenter.console.context import API_PREFIX, CLOCK, CONFIG, SERVICE, tenant_or_404
from callcenter.console.errors import ApiError, invalid
from callcenter.console.uploads import read_upload, too_large_error
from callcenter.console.validation import Bool, Int, Obj, Param, Str, StrList, parse_query
from callcenter.queue.redis import ACD
from callcenter.store.users import User
from callcenter.tickets import rules as tk
from callcenter.tickets.config import policy_of
from callcenter.tickets.files import UploadTooLarge
from callcenter.tickets.routing import route as route_ticket
from callcenter.tickets.service import ticket_dict

log = logging.getLogger("callcenter.console.api")

API = API_PREFIX
LEVEL1 = ("operator", "supervisor", "admin")
ALL_ROLES = ("operator", "supervisor", "admin", "unit")
OVERSIGHT = ("supervisor", "admin")
STATES = tuple(s.value for s in tk.TicketState)
CODE_PATTERN = r"[A-Z][A-Z0-9]{0,9}-[0-9]{8}-[0-9]{4,6}"
ID = r"[a-z0-9_.-]{1,64}"
MAX_PAGE = 200

ApiHandler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One endpoint: what the router and the OpenAPI document need to know about it."""

    method: Literal["GET", "POST", "DELETE"]
    path: str  # under /api/v1
    handler: ApiHandler
    operation_id: str
    summary: str
    roles: tuple[str, ...]
    tag: str
    params: tuple[Param, ...] = ()
    body: Obj | tuple[Obj, ...] | Literal["multipart"] | None = None
    ok_status: int = 200
    ok_schema: str | None = None  # a components/schemas name
    errors: tuple[int, ...] = (401, 403, 422)
    downloads: bool = False  # also answers text/csv and xlsx (?format=)
    file_download: bool = False  # answers the bytes of a stored document


# ---- JSON views -------------------------------------------------------------------------------
def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_json(ticket: tk.Ticket, now: dt.datetime) -> dict[str, Any]:
    """A ticket as the API shows it: the service's view (fields, clocks, lateness)."""
    return ticket_dict(ticket, now)


def audit_json(entry: Any) -> dict[str, Any]:
    """One audit entry: who, when, from -[event]-> to, detail."""
    actor = entry.actor
    return {
        "at": _iso(entry.at),
        "actor": {"user": actor.user_id, "role": actor.role, "unit": actor.unit},
        "event": entry.event,
        "from": entry.from_state.value if entry.from_state is not None else None,
        "to": entry.to_state.value,
        "detail": entry.detail,
        "text": str(entry),
    }


def _plain(value: Any) -> Any:
    """JSON-ready copy of a service's return value (dataclasses, datetimes, enums)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---- parameters and bodies --------------------------------------------------------------------
P_CODE = Param("code", where="path", pattern=CODE_PATTERN, max_len=24,
               description="ticket code, e.g. DN-20261123-0042")
P_TENANT = Param("tenant", pattern=r"[a-z0-9_-]{1,32}", max_len=32,
                 description="tenant (province) id; default: the user's")
P_PHONE = Param("phone", where="path", pattern=r"\+?[0-9 .-]{3,24}", max_len=24,
                description="the caller's number as the PBX gave it (0..., +84..., 84...)")
P_CALL = Param("call_id", where="path", pattern=r"[A-Za-z0-9_.:-]{1,64}", max_len=64,
               description="call record id, <node>:<asterisk uniqueid>")

LIST_PARAMS = (
    P_TENANT,
    Param("state", enum=STATES, description="only tickets in this state"),
    Param("unit", pattern=ID, description="only tickets held by (or resolved by) this unit"),
    Param("late", kind="bool", description="only late (true) or not late (false) tickets"),
    Param("field", pattern=ID, description="only tickets of this field"),
    Param("since", kind="datetime", description="received at or after (ISO 8601 with offset)"),
    Param("until", kind="datetime", description="received before (ISO 8601 with offset)"),
    Param("limit", kind="int", minimum=1, maximum=MAX_PAGE, default=50),
    Param("offset", kind="int", minimum=0, maximum=1_000_000, default=0),
)

TEXT = Str(max_len=tk.MAX_CONTENT)
REASON = Str(max_len=tk.MAX_REASON)
OPEN_BODY = Obj(
    title="NewTicket",
    fields={
        "tenant": Str(max_len=32, pattern=r"[a-z0-9_-]{1,32}",
                      description="default: the user's tenant"),
        "channel": Str(max_len=16, enum=tk.CHANNELS),
        "content": Str(max_len=tk.MAX_CONTENT, description="the petition, as recorded"),
        "field": Str(max_len=64, pattern=ID, description="field id from the tenant's config"),
        "place": Str(max_len=64, pattern=ID, nullable=True,
                     description="district or commune id"),
        "citizen_name": Str(max_len=200, nullable=True, min_len=0),
        "citizen_phone": Str(max_len=24, nullable=True, min_len=0),
        "urgent": Bool(),
        "call_ids": StrList(Str(max_len=64, pattern=r"[A-Za-z0-9_.:-]{1,64}"), max_items=20),
        "publishable": Bool(nullable=True, description="null: the tenant's default; true "
                                                       "only by a supervisor or admin "
                                                       "(403 ticket.forbidden otherwise)"),
        "answer": Str(max_len=tk.MAX_CONTENT, nullable=True,
                      description="answered at level 1 (from the FAQ): closed at once"),
        "faq_item": Str(max_len=64, nullable=True),
    },
    required=("channel", "content", "field"),
    defaults={"tenant": None, "place": None, "citizen_name": None, "citizen_phone": None,
              "urgent": False, "call_ids": [], "publishable": None, "answer": None,
              "faq_item": None},
)

VERSION = Int(0, 1_000_000, description="the ticket's version you saw (optimistic locking)")


def _action(name: str, fields: dict[str, Any], required: tuple[str, ...] = (),
            defaults: dict[str, Any] | None = None, title: str = "") -> Obj:
    return Obj(title=title or f"{name.capitalize()}Action",
               fields={"action": Str(max_len=16, enum=(name,)), "version": VERSION, **fields},
               required=("action", "version", *required), defaults=defaults or {})


ACTIONS: dict[str, Obj] = {
    # No unit: the tenant's routing rules choose (field + place, most specific first).
    "forward": _action("forward", {"unit": Str(max_len=32, pattern=r"[a-z0-9_-]{1,32}",
                                               nullable=True),
                                   "note": Str(max_len=tk.MAX_REASON, nullable=True)},
                       (), {"note": None, "unit": None}),
    "accept": _action("accept", {}),
    "resolve": _action("resolve", {"result": TEXT,
                                   "reply_document": Str(max_len=64, nullable=True,
                                                         description="an attachment id")},
                       ("result",), {"reply_document": None}),
    "return": _action("return", {"reason": REASON}, ("reason",)),
    "close": _action("close", {"reason": Str(max_len=tk.MAX_REASON, nullable=True)},
                     (), {"reason": None}),
    "reopen": _action("reopen", {"reason": REASON}, ("reason",)),
    "answer": _action("answer", {"answer": TEXT, "faq_item": Str(max_len=64, nullable=True)},
                      ("answer",), {"faq_item": None}),
    "reclassify": _action("reclassify", {
        "field": Str(max_len=64, pattern=ID),
        "place": Str(max_len=64, pattern=ID, nullable=True),
        "urgent": Bool()}),
    # Disclosure review: publish with the texts the public reads (null: keep the current
    # edit, or the masked original), or ``publishable: false`` to send it back to review.
    "publish": _action("publish", {
        "publishable": Bool(),
        "question": Str(max_len=tk.MAX_CONTENT, nullable=True,
                        description="the question as the public reads it (edited)"),
        "answer": Str(max_len=tk.MAX_CONTENT, nullable=True,
                      description="the answer as the public reads it (edited)")},
        (), {"publishable": True, "question": None, "answer": None}),
    "decline": _action("decline", {"reason": REASON}, ("reason",)),
}


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; 415 unless it is JSON, 422 when it does not parse."""
    if request.content_type != "application/json":
        raise ApiError("request.unsupported_media", "send the body as application/json")
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ApiError("request.invalid_json", "the body is not valid JSON (UTF-8)") from None


def _path(request: web.Request, param: Param) -> Any:
    return param.parse(request.match_info.get(param.name))


def tenant_param(request: web.Request, user: User, value: str | None) -> str:
    """The tenant asked for (default: the user's), checked against the user and config."""
    tenant = value or user.tenant
    require_tenant(user, tenant)
    tenant_or_404(request.config_dict, tenant)
    return tenant


async def _visible_ticket(request: web.Request, user: User, code: str) -> tk.Ticket:
    """The ticket if this user may see it (the service checks the unit; here the tenant)."""
    service = request.config_dict[SERVICE]
    ticket: tk.Ticket = await in_thread(request.config_dict, service.get, code, actor_of(user))
    if ticket.tenant != user.tenant:
        raise ApiError("auth.forbidden", f"ticket {code} belongs to another tenant")
    return ticket


def _now(request: web.Request) -> dt.datetime:
    return request.config_dict[CLOCK]()


async def live_arrivals(request: web.Request, tenant: str,
                        record_ids: Iterable[str]) -> dict[str, dt.datetime]:
    """When the tenant's calls still up among ``record_ids`` (``<node>:<uniqueid>``) arrived.

    Read from the live state the call's task writes (``hotline:call:<uniqueid>``): an operator
    usually saves the ticket during the call, before its record is written. A call the live
    state does not have (ended long ago, another tenant's, Redis down) is left out: its record
    in the store, or the time of saving, stands.
    """
    parts = {rid: rid.partition(":") for rid in record_ids}
    ids = [(rid, node, call_id) for rid, (node, sep, call_id) in parts.items()
           if sep and call_id]
    acd = request.config_dict.get(ACD)
    if acd is None or not ids:
        return {}
    try:
        raws = await acd.redis.mget([CALL_KEY.format(call_id) for _, _, call_id in ids])
    except (RedisError, OSError) as e:
        log.warning("live call state unreadable (%r): ticket receipt from call records only", e)
        return {}
    found: dict[str, dt.datetime] = {}
    for (rid, node, _), raw in zip(ids, raws, strict=True):
        try:
            state = state_from_json(raw) if raw else None
        except (ValueError, KeyError, TypeError):
            state = None  # a state another version wrote: the record will tell
        if state is not None and state.tenant_id == tenant and state.node == node:
            found[rid] = state.arrived_at
    return found


# ---- handlers ---------------------------------------------------------------------------------
async def create_ticket(request: web.Request, user: User) -> web.StreamResponse:
    body = OPEN_BODY.check(await json_body(request))
    tenant = tenant_param(request, user, body.pop("tenant"))
    now = _now(request)
    live = await live_arrivals(request, tenant, body["call_ids"])
    ticket = await in_thread(
        request.config_dict, request.config_dict[SERVICE].open, tenant, actor_of(user),
        channel=body["channel"], content=body["content"], field=body["field"],
        place=body["place"], citizen_name=body["citizen_name"],
        citizen_phone=body["citizen_phone"], urgent=body["urgent"],
        call_ids=tuple(body["call_ids"]), publishable=body["publishable"], at=now,
        answer=body["answer"], faq_item=body["faq_item"], live_arrivals=live)
    return web.json_response(ticket_json(ticket, now), status=201,
                             headers={"Location": f"{API}/tickets/{ticket.code}"})


async def list_tickets(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query(LIST_PARAMS, request.query)
    tenant = tenant_param(request, user, q["tenant"])
    if q["since"] and q["until"] and q["until"] < q["since"]:
        raise invalid("until", "before since")
    now = _now(request)
    service = request.config_dict[SERVICE]
    # A unit user: the service keeps to the tickets its unit holds or has held.
    filters = {"state": q["state"], "unit": q["unit"], "late": q["late"], "field": q["field"],
               "since": q["since"], "until": q["until"]}
    actor = actor_of(user)
    tickets = await in_thread(request.config_dict, service.list, actor, tenant, limit=q["limit"],
                              offset=q["offset"], **filters)
    total = await in_thread(request.config_dict, service.count, actor, tenant, **filters)
    return web.json_response({"items": [ticket_json(t, now) for t in tickets],
                              "total": total, "limit": q["limit"], "offset": q["offset"]})


async def get_ticket(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    ticket = await _visible_ticket(request, user, code)
    return web.json_response(ticket_json(ticket, _now(request)))


def event_of(action: str, b: dict[str, Any], ticket: tk.Ticket, actor: tk.Actor,
             at: dt.datetime) -> tk.Event:
    """The domain event of an action body checked by ``ACTIONS[action]`` (API and pages)."""
    if action == "forward":
        return tk.Forward(at, actor, b["unit"], b["note"])
    if action == "accept":
        return tk.Accept(at, actor)
    if action == "resolve":
        return tk.Resolve(at, actor, b["result"], b["reply_document"])
    if action == "return":
        return tk.Return(at, actor, b["reason"])
    if action == "close":
        return tk.Close(at, actor, b["reason"])
    if action == "reopen":
        return tk.Reopen(at, actor, b["reason"])
    if action == "answer":
        return tk.Answer(at, actor, b["answer"], b["faq_item"])
    if action == "reclassify":
        return tk.Reclassify(at, actor, b.get("field", ticket.field),
                             b["place"] if "place" in b else ticket.place,
                             b.get("urgent", ticket.urgent))
    if action == "decline":
        return tk.Decline(at, actor, b["reason"])
    if b["publishable"] and (b["question"] is not None or b["answer"] is not None):
        return tk.Publish(at, actor, b["question"], b["answer"])
    return tk.SetPublishable(at, actor, b["publishable"])


async def act_on_ticket(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    raw = await json_body(request)
    if not isinstance(raw, dict):
        raise invalid("body", "expected a JSON object")
    action = raw.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise invalid("action", f"expected one of {', '.join(ACTIONS)}")
    body = ACTIONS[action].check(raw)
    ticket = await _visible_ticket(request, user, code)
    actor = actor_of(user)
    now = _now(request)
    if action == "forward" and body["unit"] is None:
        policy = policy_of(tenant_or_404(request.config_dict, ticket.tenant))
        unit = route_ticket(policy, ticket.field, ticket.place)
        if unit is None:
            raise ApiError("ticket.no_route", f"no routing rule or fallback unit for field "
                           f"{ticket.field!r}: name the unit", status=422)
        body = {**body, "unit": unit}
    event = event_of(action, body, ticket, actor, now)
    updated = await in_thread(request.config_dict, request.config_dict[SERVICE].act, code, actor,
                              event,
                              expected_version=body["version"])
    return web.json_response(ticket_json(updated, now))


async def ticket_audit(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    await _visible_ticket(request, user, code)
    entries = await in_thread(request.config_dict, request.config_dict[SERVICE].audit, code,
                              actor_of(user))
    return web.json_response({"code": code, "entries": [audit_json(e) for e in entries]})


async def add_attachment(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    await _visible_ticket(request, user, code)
    service = request.config_dict[SERVICE]
    upload = await read_upload(request, service.upload_limits)
    try:
        attachment = await in_thread(request.config_dict, service.attach, code, actor_of(user),
                                     upload.file_name, upload.declared_type, upload.data)
    except UploadTooLarge as e:
        raise too_large_error(e) from None
    return web.json_response(attachment.to_json_dict(), status=201,
                             headers={"Location": f"{API}/tickets/{code}/attachments/"
                                                  f"{attachment.id}"})


P_ATTACHMENT = Param("attachment", where="path", pattern=r"[0-9]{1,9}|[0-9a-f]{64}",
                     max_len=64, description="attachment id (or its sha256)")


async def list_attachments(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    await _visible_ticket(request, user, code)
    items = await in_thread(request.config_dict, request.config_dict[SERVICE].attachments, code,
                            actor_of(user))
    return web.json_response({"items": [a.to_json_dict() for a in items]})


async def download_attachment(request: web.Request, user: User) -> web.StreamResponse:
    code = _path(request, P_CODE)
    ref = _path(request, P_ATTACHMENT)
    await _visible_ticket(request, user, code)
    att, path = await in_thread(request.config_dict, request.config_dict[SERVICE].attachment_file,
                                code, ref,
                                actor_of(user))
    if not path.is_file():
        raise ApiError("ticket.attachment_missing", f"the bytes of attachment {att.id} are "
                                                    "missing from the files folder", status=410)
    quoted = urllib.parse.quote(att.file_name, safe="")
    return web.FileResponse(path, headers={
        "Content-Type": att.content_type,
        "Content-Disposition": f"attachment; filename=\"attachment-{att.id}\"; "
                               f"filename*=UTF-8''{quoted}",
        "Cache-Control": "private, no-store"})


P_OVERSEER = Param("unit", pattern=r"[a-z0-9_-]{1,32}", max_len=32,
                   description="the overseeing unit (supervisors, admins; a unit user: its own)")


def oversight_json(o: Any, now: dt.datetime) -> dict[str, Any]:
    """An oversight overview (``TicketService.oversight``) as plain JSON."""
    return {"tenant": o.tenant, "unit": o.unit, "total": o.total, "late_total": o.late_total,
            "fields": sorted(o.scope.fields), "districts": sorted(o.scope.districts),
            "communes": sorted(o.scope.communes), "by_state": dict(o.by_state),
            "by_holder": [{"unit": h.unit, "by_state": dict(h.by_state), "late": h.late,
                           "total": h.total} for h in o.by_holder],
            "late": [ticket_json(t, now) for t in o.late]}


async def oversight(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query((P_TENANT, P_OVERSEER), request.query)
    tenant = tenant_param(request, user, q["tenant"])
    if user.role != "unit" and q["unit"] is None:
        raise invalid("unit", "name the overseeing unit")
    found = await in_thread(request.config_dict, request.config_dict[SERVICE].oversight,
                            actor_of(user), tenant, q["unit"])
    return web.json_response(oversight_json(found, _now(request)))


async def caller_tickets(request: web.Request, user: User) -> web.StreamResponse:
    phone = _path(request, P_PHONE)
    q = parse_query((P_TENANT,), request.query)
    tenant = tenant_param(request, user, q["tenant"])
    tickets = await in_thread(request.config_dict, request.config_dict[SERVICE].open_for_caller,
                              tenant, phone)
    now = _now(request)
    return web.json_response({"items": [ticket_json(t, now) for t in tickets]})


async def call_tickets(request: web.Request, user: User) -> web.StreamResponse:
    call_id = _path(request, P_CALL)
    tickets = await in_thread(request.config_dict, request.config_dict[SERVICE].tickets_of_call,
                              call_id)
    now = _now(request)
    return web.json_response({"items": [ticket_json(t, now) for t in tickets
                                        if t.tenant == user.tenant]})


# ---- the table --------------------------------------------------------------------------------
ROUTES: tuple[Route, ...] = (
    Route("POST", "/tickets", create_ticket, "createTicket",
          "Record a ticket (closed at once when an answer from the FAQ is given)",
          LEVEL1, "tickets", body=OPEN_BODY, ok_status=201, ok_schema="Ticket",
          errors=(401, 403, 404, 413, 415, 422)),
    Route("GET", "/tickets", list_tickets, "listTickets",
          "Tickets of the tenant (a unit user: what its unit holds, has held or oversees, "
          "the last two read only), newest first",
          ALL_ROLES, "tickets", params=LIST_PARAMS, ok_schema="TicketPage"),
    Route("GET", "/tickets/{code}", get_ticket, "getTicket", "One ticket", ALL_ROLES,
          "tickets", params=(P_CODE,), ok_schema="Ticket", errors=(401, 403, 404, 422)),
    Route("POST", "/tickets/{code}/actions", act_on_ticket, "actOnTicket",
          "Move a ticket on: forward, accept, resolve, return, close, reopen, answer, "
          "reclassify, publish, decline (send the version you saw)", ALL_ROLES, "tickets",
          params=(P_CODE,), body=tuple(ACTIONS.values()), ok_schema="Ticket",
          errors=(401, 403, 404, 409, 413, 415, 422)),
    Route("GET", "/tickets/{code}/audit", ticket_audit, "ticketAudit",
          "Who did what to a ticket, and when", ALL_ROLES, "tickets", params=(P_CODE,),
          ok_schema="AuditLog", errors=(401, 403, 404, 422)),
    Route("POST", "/tickets/{code}/attachments", add_attachment, "addAttachment",
          "Attach a document (PDF, DOC, DOCX), photo (JPEG, PNG, WEBP, HEIC) or video "
          "(MP4, MOV, 3GP, 3G2), checked by its bytes; limit per kind (10/10/100 MiB)",
          ALL_ROLES, "tickets", params=(P_CODE,), body="multipart", ok_status=201,
          ok_schema="Attachment", errors=(401, 403, 404, 409, 413, 415, 422)),
    Route("GET", "/tickets/{code}/attachments", list_attachments, "listAttachments",
          "The ticket's attachments, oldest first", ALL_ROLES, "tickets", params=(P_CODE,),
          ok_schema="AttachmentList", errors=(401, 403, 404, 422)),
    Route("GET", "/tickets/{code}/attachments/{attachment}", download_attachment,
          "downloadAttachment", "The bytes of one attachment", ALL_ROLES, "tickets",
          params=(P_CODE, P_ATTACHMENT), ok_schema=None, errors=(401, 403, 404, 410, 422),
          file_download=True),
    Route("GET", "/oversight", oversight, "oversight",
          "What a unit oversees (its fields or district, wherever held): late tickets, most "
          "overdue first, then counts by state and by holder unit", ("unit", *OVERSIGHT),
          "tickets", params=(P_TENANT, P_OVERSEER), ok_schema="Oversight"),
    Route("GET", "/callers/{phone}/tickets", caller_tickets, "callerTickets",
          "The caller's open tickets (the operator sees them while the call rings)",
          LEVEL1, "calls", params=(P_PHONE, P_TENANT), ok_schema="TicketList"),
    Route("GET", "/calls/{call_id}/tickets", call_tickets, "callTickets",
          "Tickets recorded from, or linked to, a call", LEVEL1, "calls", params=(P_CALL,),
          ok_schema="TicketList"),
    *(Route("GET", f"/reports/{name}", handler, f"report{name.capitalize()}", summary,
            OVERSIGHT, "reports", params=params, ok_schema="Report", downloads=True)
      for name, handler, summary, params in reports_http.REPORTS),
)


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        require_role(user, route.roles, f"{route.method} {API}{route.path}")
        return await route.handler(request, user)

    handle.__name__ = route.operation_id
    return handle


def add_route_table(api: web.Application, routes: Iterable[Route]) -> None:
    """Register ``routes`` on the API sub-app (mounted at /api/v1; ``Route.path`` is relative
    to it), each behind the bearer check of its roles."""
    for route in routes:
        api.router.add_route(route.method, route.path, _wrap(route), name=route.operation_id)


def add_routes(api: web.Application) -> None:
    """Register every route of ROUTES on the API sub-app."""
    add_route_table(api, ROUTES)


__all__ = ["ACTIONS", "API", "CONFIG", "OPEN_BODY", "P_TENANT", "ROUTES", "Route",
           "add_route_table", "add_routes", "event_of",
           "audit_json", "ticket_json"]
