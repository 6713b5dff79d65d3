"""Callback requests over HTTP, under ``/api/v1`` (bearer auth as the rest of the API):

* ``GET /api/v1/callbacks?tenant=&all=`` — open requests of the tenant (default: the user's),
  those of callers turned away while the lines were full (``pool_full``) first, then oldest
  first; ``all=true`` adds the done and cancelled ones. Operators must dial the
  callers back, so numbers are given in full (the access log never has them: no number in
  the path).
* ``POST /api/v1/callbacks/{id}/dial`` — body optional, ``{"extension": "101"}`` (supervisors:
  the operator phone to ring; operators always ring their own, the user name): the user's
  phone rings, and when answered the hotline calls the caller through the outbound trunk
  (``ari_app/dialback.py``). 202 with the call back's id; refusals as in ``calls/dialback``
  (409 ``callback.operator_busy`` when that phone is on a call, 403 for units and admins).
* ``POST /api/v1/callbacks/{id}/done`` — body optional, ``{"note": "..."}``: the request is
  done, handled by the user (its login name). 404 ``callback.not_found`` (also for another
  tenant's request), 409 ``callback.closed`` when it is no longer open.
* ``POST /api/v1/callbacks/{id}/ticket`` — ``{"ticket": "DN-20261123-0042"}`` (null: unlink):
  the request is about this ticket of its tenant (``ticket_link.py``; 404 ``ticket.not_found``,
  422 ``ticket.bad_code``); its calls are linked to the ticket too.

Roles: operator, supervisor, admin (dial: operator, supervisor). ``add_callback_routes(app)``
adds the routes and a cleanup context that opens the CallbackStore (on the console's
database) and closes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from callcenter.ari_app.dialback import DialRefused
from callcenter.callbacks.dial import start_dialback
from callcenter.callbacks.store import (
    CALLBACK_STATUSES,
    MAX_NOTE,
    MAX_TICKET,
    CallbackError,
    CallbackRequest,
    CallbackStore,
)
from callcenter.callbacks.ticket_link import link_ticket
from callcenter.calls import dialback as rules
from callcenter.console.api import P_TENANT, Route, add_route_table
from callcenter.console.auth import USERS, in_thread, require_tenant
from callcenter.console.context import CLOCK, ConsoleApps, tenant_or_404
from callcenter.console.errors import ApiError, invalid
from callcenter.console.validation import Obj, Param, Str, parse_query
from callcenter.store.database import DatabaseRef
from callcenter.store.users import User

ROLES = ("operator", "supervisor", "admin")
CALLBACKS = web.AppKey("console_callbacks", CallbackStore)

P_ALL = Param("all", kind="bool", default=False,
              description="also requests done or cancelled (default: open ones only)")
P_ID = Param("id", kind="int", where="path", minimum=1, maximum=2**31 - 1,
             description="callback request id")
DIAL_BODY = Obj(title="CallbackDial",
                fields={"extension": Str(max_len=16, nullable=True,
                                         description="supervisors: the operator phone to ring")})
DONE_BODY = Obj(title="CallbackDone",
                fields={"note": Str(max_len=MAX_NOTE, nullable=True,
                                    description="what came of the call back")})
TICKET_BODY = Obj(title="CallbackTicket",
                  fields={"ticket": Str(max_len=MAX_TICKET, nullable=True,
                                        description="the ticket's code (null: unlink)")},
                  required=("ticket",))


def _tenant(request: web.Request, user: User, value: str | None) -> str:
    tenant = value or user.tenant
    require_tenant(user, tenant)
    tenant_or_404(request.config_dict, tenant)
    return tenant


async def list_callbacks(request: web.Request, user: User) -> web.StreamResponse:
    """The tenant's callback requests, open ones first in the order to call back (pool-full
    requests first), then oldest first."""
    q = parse_query((P_TENANT, P_ALL), request.query)
    tenant = _tenant(request, user, q["tenant"])
    statuses = CALLBACK_STATUSES if q["all"] else ("open",)
    rows: list[CallbackRequest] = await in_thread(
        request.config_dict, request.config_dict[CALLBACKS].recent, tenant, statuses=statuses)
    return web.json_response({"items": [r.to_json_dict() for r in rules.to_do_order(rows)]})


async def _body(request: web.Request, schema: Obj | None = None) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise ApiError("request.unsupported_media", "send the body as application/json")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ApiError("request.invalid_json", "the body is not valid JSON (UTF-8)") from None
    return (schema or DONE_BODY).check(doc)


async def callback_dial(request: web.Request, user: User) -> web.StreamResponse:
    """Call the caller back: ring the user's phone, then the caller (202)."""
    callback_id = P_ID.parse(request.match_info.get("id"))
    if callback_id is None:
        raise invalid("id", "required")
    body = await _body(request, DIAL_BODY)
    try:
        d = await start_dialback(request, request.config_dict[CALLBACKS], user, callback_id,
                                 body.get("extension"))
    except DialRefused as e:
        raise ApiError(e.id, rules.MESSAGES[e.id], status=rules.STATUS.get(e.id, 409)) \
            from None
    return web.json_response(d.json(), status=202)


async def callback_done(request: web.Request, user: User) -> web.StreamResponse:
    """Mark one request done, handled by this user."""
    callback_id = P_ID.parse(request.match_info.get("id"))
    if callback_id is None:
        raise invalid("id", "required")
    body = await _body(request)
    store = request.config_dict[CALLBACKS]
    current = await in_thread(request.config_dict, store.get, callback_id)
    if current is None or current.tenant != user.tenant:
        # Another tenant's request is as good as absent: its existence is not this user's.
        raise ApiError("callback.not_found", f"no callback request {callback_id}")
    try:
        done = await in_thread(request.config_dict, store.done, callback_id, user.name,
                               body.get("note"), at=request.config_dict[CLOCK]())
    except CallbackError as e:
        raise ApiError(e.id, e.message, status=409 if e.id == "callback.closed" else None) \
            from None
    return web.json_response(done.to_json_dict())


async def callback_ticket(request: web.Request, user: User) -> web.StreamResponse:
    """Link one request to a ticket of its tenant (null: unlink)."""
    callback_id = P_ID.parse(request.match_info.get("id"))
    if callback_id is None:
        raise invalid("id", "required")
    body = await _body(request, TICKET_BODY)
    if "ticket" not in body:
        raise invalid("ticket", "required (null to unlink)")
    linked = await link_ticket(request, request.config_dict[CALLBACKS], user, callback_id,
                               body.get("ticket"))
    return web.json_response(linked.to_json_dict())


# Described in the OpenAPI document like the ticket routes (openapi.py adds these).
CALLBACK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/callbacks", list_callbacks, "listCallbacks",
          "Callers waiting to be called back (open requests, pool-full ones first, then "
          "oldest first; all=true adds the done and cancelled ones)", ROLES, "calls",
          params=(P_TENANT, P_ALL),
          ok_schema="CallbackList", errors=(401, 403, 404, 422)),
    Route("POST", "/callbacks/{id}/dial", callback_dial, "callbackDial",
          "Call the caller back: the user's softphone rings first; when answered the hotline "
          "calls the caller out through the trunk, bridged and recorded (202)",
          rules.DIAL_ROLES, "calls", params=(P_ID,), body=DIAL_BODY, ok_schema="CallbackDial",
          errors=(401, 403, 404, 409, 415, 422, 502, 503)),
    Route("POST", "/callbacks/{id}/done", callback_done, "callbackDone",
          "Mark a callback request done (the caller was called back)", ROLES, "calls",
          params=(P_ID,), body=DONE_BODY, ok_schema="CallbackRequest",
          errors=(401, 403, 404, 409, 415, 422)),
    Route("POST", "/callbacks/{id}/ticket", callback_ticket, "callbackTicket",
          "Link a callback request to a ticket of its tenant (null: unlink); its calls are "
          "linked to the ticket too", rules.DIAL_ROLES, "calls", params=(P_ID,),
          body=TICKET_BODY, ok_schema="CallbackRequest", errors=(401, 403, 404, 415, 422)),
)

_TIME = {"type": "string", "format": "date-time"}
CALLBACK_SCHEMAS: dict[str, Any] = {
    "CallbackRequest": {
        "type": "object",
        "required": ["id", "tenant", "call_id", "caller", "requested_at", "status"],
        "properties": {
            "id": {"type": "integer"},
            "tenant": {"type": "string"},
            "call_id": {"type": "string", "description": "the call record's id"},
            "caller": {"type": "string", "description": "the number to call back, in full"},
            "requested_at": _TIME,
            "status": {"type": "string", "enum": list(CALLBACK_STATUSES)},
            "handled_by": {"type": ["string", "null"]},
            "handled_at": {"type": ["string", "null"], "format": "date-time"},
            "note": {"type": ["string", "null"]},
            "attempts": {"type": "integer", "description": "calls back tried from the console"},
            "last_result": {"type": ["string", "null"],
                            "enum": ["answered", "busy", "no_answer", "failed", None]},
            "last_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "dial_call_id": {"type": ["string", "null"],
                             "description": "the call that reached the caller"},
            "recording": {"type": ["string", "null"],
                          "description": "its recording, in the recordings folder"},
            "source": {"type": "string", "enum": ["queue", "pool_full"],
                       "description": "queue: pressed 1 while waiting; pool_full: pressed 1 "
                                      "when every line was taken"},
            "ticket": {"type": ["string", "null"],
                       "description": "the ticket this request is about"},
        }},
    "CallbackDial": {"type": "object", "required": ["dialback_id", "callback_id", "status"],
                     "properties": {"dialback_id": {"type": "string"},
                                    "callback_id": {"type": "integer"},
                                    "extension": {"type": "string"},
                                    "user": {"type": "string"},
                                    "status": {"type": "string"}}},
    "CallbackList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackRequest"}}}},
}



def add_callback_routes(apps: ConsoleApps, database: DatabaseRef | None = None) -> None:
    """Add the callback routes to the API sub-app and their store's cleanup context to the
    root (not yet started).

    The store opens on ``database`` (the app's shared Database, or a URL), or by default on
    the console's user store's database (so call this after ``setup_console`` has added its
    own context).
    """

    async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
        store = CallbackStore(database if database is not None else app[USERS].engine.url)
        app[CALLBACKS] = store
        try:
            yield
        finally:
            store.close()

    apps.root.cleanup_ctx.append(callbacks_ctx)
    add_route_table(apps.api, CALLBACK_ROUTES)
