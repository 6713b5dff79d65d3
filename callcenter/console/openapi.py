"""The OpenAPI 3.1 document of the hotline's HTTP API, served at ``/api/v1/openapi.json``.

Built from ``api.ROUTES`` (paths, roles, parameters, bodies) and the shared validation specs,
so what is documented is what the handlers check; the shapes of answers are written here.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from callcenter.callbacks.http import CALLBACK_ROUTES, CALLBACK_SCHEMAS
from callcenter.console import public
from callcenter.console.api import API, Route
from callcenter.console.api import ROUTES as TICKET_ROUTES
from callcenter.console.errors import STATUS_BY_ID
from callcenter.console.listen_api import LISTEN_ROUTES
from callcenter.console.validation import Obj
from callcenter.desk.http import DESK_ROUTES, DESK_SCHEMAS
from callcenter.queue.http import AGENT_ROUTES
from callcenter.tickets import rules as tk
from callcenter.tickets.files import KINDS
from callcenter.transfers.http import TRANSFER_ROUTES

ROUTES = (*TICKET_ROUTES, *CALLBACK_ROUTES)
# Served with the live queue and calls only.
LIVE_ROUTES = (*AGENT_ROUTES, *TRANSFER_ROUTES, *LISTEN_ROUTES, *DESK_ROUTES)
DOCUMENT_TYPES = tuple(k.content_type for k in KINDS.values())

TITLE = "Tổng đài 1022 — ticket API"
VERSION = "1.0.0"

ERROR_TEXT = {
    401: "No valid bearer token (`auth.required`)",
    403: "The role, tenant or unit may not do this (`auth.forbidden`, `ticket.forbidden`)",
    404: "No such ticket, tenant or operator (`ticket.not_found`, `tenant.not_found`, "
         "`agent.unknown`)",
    410: "The attachment's bytes are missing from the files folder "
         "(`ticket.attachment_missing`)",
    409: "Stale `version` (`ticket.conflict`) or not allowed in the ticket's state "
         "(`ticket.illegal_transition`); an operator action not possible in the operator's "
         "state (`agent.illegal`, `agent.busy`)",
    413: "The upload passed the size limit while streaming (`ticket.upload_too_large`), or "
         "a JSON body over 1 MiB (`request.too_large`)",
    415: "Not JSON/multipart (`request.unsupported_media`), or a file whose bytes are "
         "no accepted document, photo or video (`ticket.upload_type`)",
    422: "A body field or parameter is malformed (`request.invalid`, with `details.field`) "
         "or refused by the ticket rules (`ticket.unknown_field`, `ticket.invalid_phone` ...)",
    502: "The PBX could not ring the supervisor's phone (`listen.ring_failed`)",
    503: "The ticket store or the live queue does not answer (`store.unavailable`, "
         "`agent.unavailable`, `agent.not_loaded`); retry",
}

# Ticket dataclass annotations (strings: the module uses postponed annotations) -> schema.
_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "str | None": {"type": ["string", "null"]},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "dt.datetime": {"type": "string", "format": "date-time"},
    "dt.datetime | None": {"type": ["string", "null"], "format": "date-time"},
    "tuple[str, ...]": {"type": "array", "items": {"type": "string"}},
    "Channel": {"type": "string", "enum": list(tk.CHANNELS)},
    "TicketState": {"type": "string", "enum": [s.value for s in tk.TicketState]},
}


def _ticket_schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in dataclasses.fields(tk.Ticket):
        props[f.name] = dict(_TYPES.get(str(f.type), {}))
    props |= {
        "time_left_s": {"type": ["integer", "null"],
                        "description": "seconds to the resolve deadline; negative: late"},
        "late": {"type": "boolean"},
        "days_late": {"type": "integer", "minimum": 0},
        "forward_late": {"type": "boolean"},
        "open": {"type": "boolean", "description": "with level 1 or a unit"},
        "review": {"type": "string", "enum": list(tk.REVIEW_STATUSES),
                   "description": "disclosure review: not_ready (no answer or result yet), "
                                  "pending, published, declined"},
    }
    return {"type": "object", "properties": props, "required": ["code", "tenant", "state",
                                                                "version"]}


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["id", "message"],
            "properties": {
                "id": {"type": "string", "description": "stable, e.g. "
                       + ", ".join(sorted(STATUS_BY_ID))},
                "message": {"type": "string"},
                "details": {"type": "object",
                            "properties": {"field": {"type": "string"}}},
            },
        }},
    }


def _schemas() -> dict[str, Any]:
    ticket = {"$ref": "#/components/schemas/Ticket"}
    return {
        "Error": _error_schema(),
        "Ticket": _ticket_schema(),
        "TicketPage": {"type": "object", "required": ["items", "total", "limit", "offset"],
                       "properties": {"items": {"type": "array", "items": ticket},
                                      "total": {"type": "integer"},
                                      "limit": {"type": "integer"},
                                      "offset": {"type": "integer"}}},
        "TicketList": {"type": "object", "required": ["items"],
                       "properties": {"items": {"type": "array", "items": ticket}}},
        "AuditEntry": {"type": "object", "required": ["at", "actor", "event", "to"],
                       "properties": {
                           "at": {"type": "string", "format": "date-time"},
                           "actor": {"type": "object", "properties": {
                               "user": {"type": "string"}, "role": {"type": "string"},
                               "unit": {"type": ["string", "null"]}}},
                           "event": {"type": "string"},
                           "from": {"type": ["string", "null"]},
                           "to": {"type": "string"},
                           "detail": {"type": "string"},
                           "text": {"type": "string",
                                    "description": "code from -[event]-> to by actor at time"},
                       }},
        "AuditLog": {"type": "object", "required": ["code", "entries"],
                     "properties": {"code": {"type": "string"}, "entries": {
                         "type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}}},
        "Attachment": {"type": "object",
                       "required": ["id", "code", "file_name", "content_type", "size", "sha256"],
                       "description": "a stored reply document; give its id as "
                                      "`reply_document` when resolving",
                       "properties": {"id": {"type": "integer"},
                                      "code": {"type": "string"},
                                      "file_name": {"type": "string"},
                                      "content_type": {"type": "string"},
                                      "size": {"type": "integer"},
                                      "sha256": {"type": "string"},
                                      "uploaded_by": {"type": "string"},
                                      "uploaded_at": {"type": "string",
                                                      "format": "date-time"}}},
        "AttachmentList": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}}}},
        "Oversight": {"type": "object", "required": ["tenant", "unit", "late", "by_state",
                                                     "by_holder"],
                      "properties": {
                          "tenant": {"type": "string"}, "unit": {"type": "string"},
                          "total": {"type": "integer"}, "late_total": {"type": "integer"},
                          "fields": {"type": "array", "items": {"type": "string"}},
                          "districts": {"type": "array", "items": {"type": "string"}},
                          "communes": {"type": "array", "items": {"type": "string"}},
                          "by_state": {"type": "object",
                                       "additionalProperties": {"type": "integer"}},
                          "by_holder": {"type": "array", "items": {
                              "type": "object", "properties": {
                                  "unit": {"type": ["string", "null"],
                                           "description": "null: level 1"},
                                  "by_state": {"type": "object",
                                               "additionalProperties": {"type": "integer"}},
                                  "late": {"type": "integer"}, "total": {"type": "integer"}}}},
                          "late": {"type": "array", "items": ticket,
                                   "description": "open past the holder's deadline, most "
                                                  "overdue first (at most 200)"}}},
        "Report": {"type": "object", "description": "rows of the report; `?format=csv` or "
                                                    "`xlsx` downloads the same rows"},
        **_agent_schemas(),
        "PublicFeed": {"type": "object", "required": ["tenant", "items"],
                       "properties": {"tenant": {"type": "string"},
                                      "name": {"type": "string"},
                                      "items": {"type": "array",
                                                "items": {"type": "object"}}}},
    }


def _agent_schemas() -> dict[str, Any]:
    """The live queue's shapes (docs/live-state.md) and an operator action's answer."""
    ms = {"type": "integer", "description": "milliseconds since the Unix epoch"}
    ms_or_null = {"type": ["integer", "null"], "description": ms["description"]}
    text_or_null = {"type": ["string", "null"]}
    agent_props: dict[str, Any] = {
        "extension": {"type": "string"}, "name": {"type": "string"},
        "state": {"type": "string", "enum": ["logged_out", "available", "ringing", "on_call",
                                             "wrap_up", "paused"]},
        "reason": text_or_null,
        "pending": {"type": ["string", "null"], "enum": ["pause", "logout", None]},
        "pending_reason": text_or_null, "reachable": {"type": "boolean"},
        "since_ms": ms, "idle_since_ms": ms_or_null, "call_id": text_or_null,
        "wrap_up_until_ms": ms_or_null, "last_call_end_ms": ms_or_null,
    }
    agent_required = list(agent_props)
    live_agent: dict[str, Any] = {
        "type": "object", "required": [*agent_required, "time_in_state_s"],
        "properties": {**agent_props, "time_in_state_s": {"type": "integer"},
                       "reason_label": text_or_null}}
    call = {"type": "object",
            "required": ["call_id", "state", "priority", "urgent", "position", "wait_s"],
            "properties": {
                "call_id": {"type": "string"},
                "state": {"type": "string", "enum": ["waiting", "ringing"]},
                "priority": {"type": "integer"}, "urgent": {"type": "boolean"},
                "caller": {"type": "string"}, "node": {"type": "string"},
                "instance": {"type": "string"}, "enqueued_ms": ms,
                "ringing_extension": text_or_null,
                "offered_to": {"type": "array", "items": {"type": "string"}},
                "callback_offers": {"type": "integer"},
                "position": {"type": "integer", "minimum": 1},
                "wait_s": {"type": "integer"},
                "estimated_wait_s": {"type": ["integer", "null"]}}}
    return {
        "QueueSnapshot": {
            "type": "object", "description": "docs/live-state.md",
            "required": ["type", "tenant", "at_ms", "counts", "average_handle_s", "calls",
                         "agents"],
            "properties": {"type": {"type": "string", "enum": ["snapshot"]},
                           "tenant": {"type": "string"}, "at_ms": ms,
                           "counts": {"type": "object"},
                           "average_handle_s": {"type": ["number", "null"]},
                           "calls": {"type": "array", "items": call},
                           "agents": {"type": "array", "items": live_agent}}},
        "Agent": {"type": "object", "required": ["tenant", *live_agent["required"],
                                                 "state_label"],
                  "properties": {"tenant": {"type": "string"}, **live_agent["properties"],
                                 "state_label": {"type": "string",
                                                 "description": "the state in Vietnamese"}}},
        "AgentActionResult": {
            "type": "object",
            "required": ["tenant", "extension", "action", "changed", "pending", "message",
                         "agent"],
            "properties": {
                "tenant": {"type": "string"}, "extension": {"type": "string"},
                "action": {"type": "string"},
                "changed": {"type": "boolean", "description": "false: nothing to do"},
                "pending": {"type": "boolean", "description": "pause/log-out applied when "
                                                              "the current call ends"},
                "message": {"type": "string", "description": "confirmation in Vietnamese"},
                "reason": text_or_null,
                "agent": {"type": "object", "required": agent_required,
                          "properties": agent_props}}},
    }


def _responses() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    out: dict[str, Any] = {}
    for status, text in ERROR_TEXT.items():
        resp: dict[str, Any] = {"description": text, "content": error}
        if status == 401:
            resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[str(status)] = resp
    return out


def _body(route: Route) -> dict[str, Any] | None:
    if route.body is None:
        return None
    if route.body == "multipart":
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "a document, photo or video"}}}}}}
    schema: dict[str, Any]
    if isinstance(route.body, Obj):
        schema = {"$ref": f"#/components/schemas/{route.body.title}"}
    else:
        schema = {"oneOf": [{"$ref": f"#/components/schemas/{o.title}"} for o in route.body],
                  "discriminator": {"propertyName": "action"}}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _body_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route in (*ROUTES, *LIVE_ROUTES):  # schemas of routes not served are harmless
        objs = [route.body] if isinstance(route.body, Obj) else (
            list(route.body) if isinstance(route.body, tuple) else [])
        for obj in objs:
            assert obj.title
            out[obj.title] = obj.schema()
    return out


def _operation(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK", "content": {}}
    if route.ok_schema is not None:
        ok["content"] = {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{route.ok_schema}"}}}
    if route.downloads:
        ok["content"]["text/csv"] = {"schema": {"type": "string"}}
        ok["content"]["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = {
            "schema": {"type": "string", "format": "binary"}}
    if route.file_download:
        ok["content"] = {ctype: {"schema": {"type": "string", "format": "binary"}}
                         for ctype in DOCUMENT_TYPES}
        ok["description"] = "The document, photo or video as stored"
    responses: dict[str, Any] = {str(route.ok_status): ok}
    for status in sorted({*route.errors, 401, 503}):
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "description": f"Roles: {', '.join(route.roles)}.",
        "x-roles": list(route.roles),
        "parameters": [p.openapi() for p in route.params],
        "responses": responses,
    }
    body = _body(route)
    if body is not None:
        op["requestBody"] = body
    return op


def _public_paths() -> dict[str, Any]:
    ok_json = {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/PublicFeed"}}}}
    ok_html = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
    html_422 = {"description": "A filter is malformed: the page says which",
                "content": {"text/html": {"schema": {"type": "string"}}}}
    out: dict[str, Any] = {}
    for path, op_id, summary, ok in (
            (public.FEED_PATH, "publicFeed", "Resolved, publishable tickets with personal data "
                                             "removed (no authentication)", ok_json),
            (public.PAGE_PATH, "publicPage", "The same as a plain Vietnamese page with a "
                                             "filter form (no authentication)", ok_html)):
        out[path] = {"get": {
            "operationId": op_id, "summary": summary, "tags": ["public"], "security": [],
            "parameters": [p.openapi() for p in public.PARAMS],
            "responses": {"200": ok, "404": {"$ref": "#/components/responses/404"},
                          "422": (html_422 if path == public.PAGE_PATH
                                  else {"$ref": "#/components/responses/422"}),
                          "503": {"$ref": "#/components/responses/503"}},
        }}
    return out


@functools.cache
def spec(*, agents: bool = False) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once); ``agents``: with the live queue and agent
    routes, which the app serves when it has the queue (``setup_console(queue=True)``)."""
    paths: dict[str, Any] = {}
    for route in (*ROUTES, *(LIVE_ROUTES if agents else ())):
        paths.setdefault(API + route.path, {})[route.method.lower()] = _operation(route)
    paths[f"{API}/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["meta"],
        "security": [], "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"type": "object"}}}}}}}
    paths |= _public_paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Petition tickets of Tổng đài 1022: record, forward, resolve, "
                                "audit, reports; the operators' live queue and their log-in, "
                                "pause and ready controls. Errors: "
                                "`{\"error\": {\"id\", \"message\", \"details\"?}}` with "
                                "stable ids. Tokens: "
                                "`callcenter user token NAME`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("tickets", "calls", "reports", "agents",
                                                "public", "meta")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "hl1_<id>_<secret>"}},
            "schemas": _schemas() | CALLBACK_SCHEMAS | DESK_SCHEMAS | _body_schemas(),
            "responses": _responses(),
        },
    }
