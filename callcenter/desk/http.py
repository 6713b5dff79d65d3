"""The operator desk's own API under ``/api/v1`` (the desk page polls it; bearer tokens work too):

    GET /api/v1/desk?ext=101[&detail=false]   the operator's state and current call
    GET /api/v1/faq?q=...&field=&tenant=&limit=  the tenant's active FAQ items, ranked

``/desk``: the agent's state from the queue (``AcdQueue.agent``) and, while the agent has a
call (``AgentState.call_id``: ringing, on call or wrapping up), that call read from Redis
(``hotline:call:<call_id>``, the key the call's task writes: ``ari_app.calls``), with the IVR
path in Vietnamese, the caller's open tickets and the tickets linked to the call's record id
(``<node>:<call_id>``). ``detail=false`` leaves out the path and the tickets (two SQL queries):
the page asks for them only when the call changes. A call whose state is gone from Redis (ended
long ago, TTL) is shown as no call. An operator reads only their own extension (user name =
extension, as in ``queue/http.py``); supervisors and admins any operator of their tenant.

``/faq``: ranked by ``faq.search`` (diacritic-insensitive, question first); the tenant's
items are cached per process and reloaded when ``FaqStore.generation`` changes (one cheap query
per search, never the whole catalogue per keystroke). Roles operator, supervisor, admin.

Nothing here logs a caller's number (the numbers are in the answers only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from callcenter import calls as cm
from callcenter.calls.codec import CALL_KEY, state_from_json
from callcenter.config.model import Tenant
from callcenter.console.api import LEVEL1, P_TENANT, Route, add_route_table, tenant_param
from callcenter.console.auth import in_thread
from callcenter.console.context import CLOCK, SERVICE, ConsoleApps, Shared, find_tenant
from callcenter.console.errors import ApiError, invalid
from callcenter.console.validation import Param, parse_query
from callcenter.desk import rules as dk
from callcenter.faq import search as fs
from callcenter.faq.store import FaqStore
from callcenter.queue import texts as tx
from callcenter.queue.agent import AgentState
from callcenter.queue.control import AgentActionError
from callcenter.queue.http import acd_of, acd_unavailable, agent_error, own_tenant_of
from callcenter.queue.rules import agent_json
from callcenter.store.database import DatabaseRef
from callcenter.store.recorder import record_of
from callcenter.store.users import User
from callcenter.tickets.config import policy_of
from callcenter.tickets.service import ticket_dict

log = logging.getLogger("callcenter.desk.pages")

MAX_FAQ_RESULTS = 50

P_DESK_EXT = Param("ext", pattern=r"[0-9]{3,6}", max_len=6,
                   description="the operator's extension; an operator: their own (the default)")
P_DETAIL = Param("detail", kind="bool", default=True,
                 description="false: leave out the IVR path and the tickets (cheap polling)")
P_QUERY = Param("q", max_len=200, description="words to find (diacritics optional); empty: "
                                              "the items in the FAQ's order")
P_FIELD = Param("field", pattern=r"[a-z0-9_.-]{1,64}", description="only this field's items")
P_LIMIT = Param("limit", kind="int", minimum=1, maximum=MAX_FAQ_RESULTS, default=10)


# ---- the FAQ, cached per tenant ------------------------------------------------------------------
@dataclass
class _Cached:
    generation: str
    index: fs.FaqIndex


class FaqCache:
    """The tenants' active FAQ items for searching, reloaded when their generation changes."""

    def __init__(self, store: FaqStore) -> None:
        self.store = store
        self._cached: dict[str, _Cached] = {}
        self._lock = asyncio.Lock()  # one reload at a time (a burst of keystrokes: one load)

    async def index(self, app: Shared, tenant: str) -> tuple[str, fs.FaqIndex]:
        """(generation, index) of the tenant's active items, loading them if they changed."""
        generation = await in_thread(app, self.store.generation, tenant)
        cached = self._cached.get(tenant)
        if cached is not None and cached.generation == generation:
            return generation, cached.index
        async with self._lock:
            cached = self._cached.get(tenant)
            if cached is not None and cached.generation == generation:
                return generation, cached.index
            items = await in_thread(app, self.store.active_items, tenant)
            index = fs.FaqIndex.build(fs.FaqDoc(
                key=i.key, code=i.code, field=i.field, position=i.position,
                question=i.question, answer=i.answer, keywords=i.keywords, unit=i.unit)
                for i in items)
            self._cached[tenant] = _Cached(generation, index)
            log.info("desk: FAQ of %s loaded for search (%d items)", tenant, len(index))
            return generation, index

    async def questions(self, app: Shared, tenant: str) -> dict[str, str]:
        """Item key -> question, for naming the FAQ steps of an IVR path."""
        _, index = await self.index(app, tenant)
        return {f.doc.key: f.doc.question for f in index.docs}


FAQ_CACHE = web.AppKey("desk_faq_cache", FaqCache)


def _faq_cache(request: web.Request) -> FaqCache:
    cache = request.config_dict.get(FAQ_CACHE)
    if cache is None:  # the cleanup context has not run (or failed)
        raise ApiError("store.unavailable", "the FAQ store is not open yet; retry", status=503)
    return cache


# ---- views ---------------------------------------------------------------------------------------
def _field_namer(tenant: Tenant | None) -> Any:
    names = {f.id: f.name for f in tenant.fields} if tenant is not None else {}
    return names.get


def agent_view(a: AgentState, tenant: Tenant, now: Any) -> dict[str, Any]:
    """The agent as the desk shows it: the snapshot's keys plus Vietnamese labels."""
    policy = tenant.operators.queue
    j: dict[str, Any] = dict(agent_json(a))
    j["time_in_state_s"] = int(a.time_in_state(now).total_seconds())
    j["state_label"] = tx.state_label(a.status)
    reason = policy.reason(a.reason) if a.reason else None
    j["reason_label"] = reason.label if reason else a.reason
    pending = policy.reason(a.pending_reason) if a.pending_reason else None
    j["pending_reason_label"] = pending.label if pending else a.pending_reason
    j["wrap_up_left_s"] = (max(0, int((a.wrap_up_until - now).total_seconds()))
                           if a.wrap_up_until is not None else None)
    return j


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def call_view(s: cm.CallState, tenant: Tenant, ext: str, now: Any) -> dict[str, Any]:
    """The call as the desk shows it (no IVR path: ``ivr_path`` is added on detail)."""
    talk_end = s.talk_ended_at or s.ended_at or now
    transfer = None
    if s.transfer is not None:
        t = s.transfer
        transfer = {"unit": t.unit, "number": t.number, "kind": t.kind,
                    "unit_answered": t.unit_answered, "at": _iso(t.at)}
    return {
        "call_id": s.call_id,
        "record_id": record_of(s).id,
        "caller": s.caller,
        "dialled": s.dialled,
        "tenant": s.tenant_id,
        "tenant_name": tenant.name,
        "phase": s.phase.value,
        "phase_label": dk.phase_label(s.phase),
        "urgent": s.urgent,
        "arrived_at": _iso(s.arrived_at),
        "queued_at": _iso(s.queued_at),
        "answered_at": _iso(s.answered_at),
        "bridged_at": _iso(s.bridged_at),
        "talk_ended_at": _iso(s.talk_ended_at),
        "ended_at": _iso(s.ended_at),
        "talk_s": dk.seconds_since(s.bridged_at, talk_end) if s.bridged_at else None,
        "operator": s.operator,
        "mine": s.operator == ext or s.ringing == ext,
        "transfer": transfer,
        "transfers": [{"unit": t.unit, "kind": t.kind, "result": t.result}
                      for t in s.transfers],
    }


# ---- handlers ------------------------------------------------------------------------------------
async def get_desk(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query((P_DESK_EXT, P_DETAIL), request.query)
    ext = q["ext"] or (user.name if user.role == "operator" else None)
    if ext is None:
        raise invalid("ext", "required for supervisors and admins: the operator's extension")
    if user.role == "operator" and ext != user.name:
        raise ApiError("auth.forbidden", f"an operator sees only their own desk (the user "
                                         f"name); {user.name} is not {ext}")
    tenant_id = own_tenant_of(request, user, ext)
    tenant = find_tenant(request.config_dict, tenant_id)
    assert tenant is not None  # own_tenant_of found it in the same config
    acd = acd_of(request)
    try:
        agent = await acd.agent(tenant_id, ext)
        raw = (await acd.redis.get(CALL_KEY.format(agent.call_id))
               if agent is not None and agent.call_id else None)
    except (RedisError, OSError):
        raise acd_unavailable() from None
    if agent is None:
        raise agent_error(_not_loaded(ext, tenant_id))
    now = request.config_dict[CLOCK]()
    state = state_from_json(raw) if raw else None
    if state is not None and state.tenant_id != tenant_id:
        state = None  # never show another tenant's call (ids are Asterisk's, not ours)
    body: dict[str, Any] = {"tenant": tenant_id, "tenant_name": tenant.name,
                            "extension": ext, "at": now.isoformat(),
                            "agent": agent_view(agent, tenant, now), "call": None,
                            "detail": q["detail"]}
    if state is None:
        return web.json_response(body)
    call = call_view(state, tenant, ext, now)
    if q["detail"]:
        path = state.menu.path if state.menu is not None else ()
        questions = (await _faq_cache(request).questions(request.config_dict, tenant_id)
                     if any(s.event == "faq" for s in path) else {})
        call["ivr_path"] = dk.ivr_steps(path, tenant.ivr, questions, _field_namer(tenant))
        service = request.config_dict[SERVICE]
        caller_open = await in_thread(request.config_dict, service.open_for_caller, tenant_id,
                                      state.caller) if state.caller else []
        of_call = await in_thread(request.config_dict, service.tickets_of_call, call["record_id"])
        call["caller_tickets"] = [ticket_dict(t, now) for t in caller_open]
        call["call_tickets"] = [ticket_dict(t, now) for t in of_call if t.tenant == tenant_id]
    body["call"] = call
    return web.json_response(body)


def _not_loaded(ext: str, tenant: str) -> AgentActionError:
    return AgentActionError(tx.NOT_LOADED, tx.refusal(tx.NOT_LOADED, ext), ext, tenant)


async def search_faq(request: web.Request, user: User) -> web.StreamResponse:
    query = {k: v for k, v in request.query.items() if not (k == "q" and v == "")}
    q = parse_query((P_QUERY, P_FIELD, P_TENANT, P_LIMIT), query)
    tenant_id = tenant_param(request, user, q["tenant"])
    tenant = find_tenant(request.config_dict, tenant_id)
    assert tenant is not None
    generation, index = await _faq_cache(request).index(request.config_dict, tenant_id)
    found = fs.search(index, q["q"] or "", field=q["field"], limit=q["limit"])
    policy = policy_of(tenant)
    return web.json_response({
        "tenant": tenant_id, "generation": generation, "query": q["q"] or "",
        "field": q["field"], "total_items": len(index),
        "items": [{"key": d.key, "code": d.code, "field": d.field,
                   "field_name": policy.field_name(d.field) or d.field,
                   "question": d.question, "answer": d.answer, "unit": d.unit}
                  for d in found]})


DESK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/desk", get_desk, "getDesk",
          "The operator desk: the agent's state, the current call with its IVR path, the "
          "caller's open tickets and the call's tickets (an operator: their own extension)",
          LEVEL1, "agents", params=(P_DESK_EXT, P_DETAIL), ok_schema="Desk",
          errors=(401, 403, 404, 422)),
    Route("GET", "/faq", search_faq, "searchFaq",
          "Search the tenant's active FAQ items (diacritic-insensitive; question hits first)",
          LEVEL1, "tickets", params=(P_QUERY, P_FIELD, P_TENANT, P_LIMIT),
          ok_schema="FaqResults", errors=(401, 403, 404, 422)),
)

_TIME = {"type": ["string", "null"], "format": "date-time"}
_TICKETS = {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}}

DESK_SCHEMAS: dict[str, Any] = {
    "Desk": {
        "type": "object", "required": ["tenant", "extension", "at", "agent", "call"],
        "properties": {
            "tenant": {"type": "string"}, "tenant_name": {"type": "string"},
            "extension": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
            "detail": {"type": "boolean"},
            "agent": {"type": "object", "description": "as in the queue snapshot, plus "
                      "state_label, reason_label, pending_reason_label, wrap_up_left_s"},
            "call": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/DeskCall"}]},
        }},
    "DeskCall": {
        "type": "object",
        "required": ["call_id", "record_id", "caller", "dialled", "phase", "urgent"],
        "properties": {
            "call_id": {"type": "string", "description": "the Asterisk channel id (transfers)"},
            "record_id": {"type": "string", "description": "<node>:<call_id>: tickets' call_ids"},
            "caller": {"type": "string"}, "dialled": {"type": "string"},
            "tenant": {"type": ["string", "null"]}, "tenant_name": {"type": "string"},
            "phase": {"type": "string"}, "phase_label": {"type": "string"},
            "urgent": {"type": "boolean"}, "arrived_at": _TIME, "queued_at": _TIME,
            "answered_at": _TIME, "bridged_at": _TIME, "talk_ended_at": _TIME,
            "ended_at": _TIME, "talk_s": {"type": ["integer", "null"]},
            "operator": {"type": ["string", "null"]}, "mine": {"type": "boolean"},
            "transfer": {"type": ["object", "null"]},
            "transfers": {"type": "array", "items": {"type": "object"}},
            "ivr_path": {"type": "array", "items": {
                "type": "object", "required": ["at", "event", "text"],
                "properties": {"at": {"type": "string"}, "event": {"type": "string"},
                               "node": {"type": ["string", "null"]},
                               "digit": {"type": ["string", "null"]},
                               "faq": {"type": ["string", "null"]},
                               "text": {"type": "string", "description": "in Vietnamese"}}}},
            "caller_tickets": _TICKETS, "call_tickets": _TICKETS,
        }},
    "FaqResults": {
        "type": "object", "required": ["tenant", "generation", "query", "items"],
        "properties": {
            "tenant": {"type": "string"}, "generation": {"type": "string"},
            "query": {"type": "string"}, "field": {"type": ["string", "null"]},
            "total_items": {"type": "integer"},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["key", "field", "question", "answer"],
                "properties": {"key": {"type": "string"}, "code": {"type": ["string", "null"]},
                               "field": {"type": "string"}, "field_name": {"type": "string"},
                               "question": {"type": "string"}, "answer": {"type": "string"},
                               "unit": {"type": ["string", "null"]}}}},
        }},
}


def add_desk_api(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Register the desk and FAQ routes (API sub-app) and a cleanup context opening the FAQ
    store (root)."""

    async def faq_ctx(app: web.Application) -> AsyncIterator[None]:
        store = FaqStore(database)
        app[FAQ_CACHE] = FaqCache(store)
        try:
            yield
        finally:
            store.close()

    apps.root.cleanup_ctx.append(faq_ctx)
    add_route_table(apps.api, DESK_ROUTES)
