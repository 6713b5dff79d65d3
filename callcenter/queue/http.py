"""Operators and the live queue over HTTP, under ``/api/v1`` (bearer tokens, JSON errors):

    GET  /api/v1/queue?tenant=T            the live snapshot (docs/live-state.md)
    GET  /api/v1/agents/{ext}              one operator as in the snapshot
    POST /api/v1/agents/{ext}/{action}     login | logout | pause | unpause | ready
                                           body (optional) {"reason": "break" | 2}

Roles operator, supervisor and admin, each within their own tenant (the user's ``tenant``).
**Which extension is an operator's own:** the users table has no extension column, so an
operator user may act only on the extension equal to their user name (create operator users
named after their extension: ``callcenter user add 101 --role operator --tenant dongnai``);
supervisors and admins may act on any operator of their tenant. Reading is open to every
level-1 role of the tenant.

The actions are ``callcenter.queue.control.apply_action`` (the phone's feature codes and the
CLI do the same); its refusals keep their ids: ``agent.unknown`` 404, ``agent.illegal`` 409,
``agent.busy`` 409, ``agent.bad_reason`` / ``agent.bad_action`` 422, ``agent.not_loaded`` and
``agent.unavailable`` 503. The AcdQueue is the app's (``app[queue.redis.ACD]``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.console.api import (
    LEVEL1,
    P_TENANT,
    Route,
    add_route_table,
    json_body,
    tenant_param,
)
from callcenter.console.context import CONFIG, ConsoleApps
from callcenter.console.errors import ApiError
from callcenter.console.validation import Int, Obj, Param, Str, parse_query
from callcenter.queue import texts as tx
from callcenter.queue.agent import AgentStatus
from callcenter.queue.control import (
    ACTIONS,
    AgentActionError,
    apply_action,
    result_json,
    tenant_of,
)
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.store.users import User

ROUTES_ADDED = web.AppKey("queue_routes_added", bool)  # for the OpenAPI document

STATUS_BY_AGENT_ERROR: dict[str, int] = {
    tx.UNKNOWN: 404,
    tx.NOT_LOADED: 503,
    tx.BAD_ACTION: 422,
    tx.BAD_REASON: 422,
    tx.ILLEGAL: 409,
    tx.BUSY: 409,
    tx.UNAVAILABLE: 503,
}

P_EXT = Param("ext", where="path", pattern=r"[0-9]{3,6}", max_len=6,
              description="the operator's extension, e.g. 101")
P_ACTION = Param("action", where="path", enum=ACTIONS,
                 description="login, logout, pause, unpause or ready (end wrap-up now)")
ACTION_BODY = Obj(
    title="AgentAction",
    fields={"reason": Str(max_len=32, pattern=r"[a-z0-9_]{1,32}", nullable=True,
                          description="pause only: a reason id of the tenant's "
                                      "queue.pause_reasons, or its position in that list as "
                                      "on the phone (\"2\"; a JSON number is accepted too); "
                                      "default: the first")},
    defaults={"reason": None},
)
REASON_NUMBER = Int(1, 9, description="pause only: the reason's position (as on the phone)")


def acd_of(request: web.Request) -> AcdQueue:
    """The app's AcdQueue; 503 while the live queue is not there."""
    acd = request.config_dict.get(ACD)
    if acd is None:  # the app's cleanup context has not set it (or failed to)
        raise acd_unavailable()
    return acd


def agent_error(e: AgentActionError) -> ApiError:
    """The API error of a refused agent action (stable id, Vietnamese text)."""
    details: dict[str, Any] | None = None
    if e.reasons:
        details = {"field": "reason", "reasons": [r.id for r in e.reasons]}
    return ApiError(e.id, e.message, status=STATUS_BY_AGENT_ERROR.get(e.id, 422),
                    details=details)


def acd_unavailable() -> ApiError:
    """503 ``agent.unavailable``: the live queue (Redis) does not answer; retry."""
    text = tx.refusal(tx.UNAVAILABLE, "")
    return ApiError(tx.UNAVAILABLE, text.text, status=503, headers={"Retry-After": "5"})


def own_tenant_of(request: web.Request, user: User, ext: str) -> str:
    """The tenant of the operator ``ext``; 404 unknown, 403 another tenant's."""
    tenant = tenant_of(request.config_dict[CONFIG](), ext)
    if tenant is None:
        raise agent_error(AgentActionError(tx.UNKNOWN, tx.refusal(tx.UNKNOWN, ext), ext))
    if tenant.id != user.tenant:
        raise ApiError("auth.forbidden", f"extension {ext} is an operator of another tenant")
    return tenant.id


async def get_queue(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query((P_TENANT,), request.query)
    tenant = tenant_param(request, user, q["tenant"])
    try:
        snap = await acd_of(request).snapshot(tenant)
    except (RedisError, OSError):
        raise acd_unavailable() from None
    return web.json_response(snap)


async def get_agent(request: web.Request, user: User) -> web.StreamResponse:
    ext = P_EXT.parse(request.match_info.get("ext"))
    tenant = own_tenant_of(request, user, ext)
    try:
        snap = await acd_of(request).snapshot(tenant)
    except (RedisError, OSError):
        raise acd_unavailable() from None
    agents: list[dict[str, Any]] = snap["agents"]  # type: ignore[assignment]
    found = next((a for a in agents if a["extension"] == ext), None)
    if found is None:
        raise agent_error(AgentActionError(tx.NOT_LOADED, tx.refusal(tx.NOT_LOADED, ext),
                                            ext, tenant))
    return web.json_response({"tenant": tenant, **found,
                              "state_label": tx.state_label(AgentStatus(found["state"]))})


async def act_on_agent(request: web.Request, user: User) -> web.StreamResponse:
    ext = P_EXT.parse(request.match_info.get("ext"))
    action = P_ACTION.parse(request.match_info.get("action"))
    own_tenant_of(request, user, ext)
    if user.role == "operator" and user.name != ext:
        raise ApiError("auth.forbidden", f"an operator acts only on their own extension (the "
                                         f"user name); {user.name} is not {ext}")
    reason: str | None = None
    if request.can_read_body:
        raw = await json_body(request)
        if isinstance(raw, dict) and type(raw.get("reason")) is int:
            # The phone's way: the reason's position in the tenant's list.
            raw = {**raw, "reason": str(REASON_NUMBER.check(raw["reason"], "reason"))}
        reason = ACTION_BODY.check(raw)["reason"]
    try:
        result = await apply_action(acd_of(request), request.config_dict[CONFIG](), ext, action,
                                    reason)
    except AgentActionError as e:
        raise agent_error(e) from None
    return web.json_response(result_json(result))


AGENT_ROUTES: tuple[Route, ...] = (
    Route("GET", "/queue", get_queue, "getQueue",
          "The live queue of the tenant: waiting calls, operators and their states, totals "
          "(docs/live-state.md)", LEVEL1, "agents", params=(P_TENANT,),
          ok_schema="QueueSnapshot", errors=(401, 403, 404, 422)),
    Route("GET", "/agents/{ext}", get_agent, "getAgent",
          "One operator's state as in the snapshot", LEVEL1, "agents", params=(P_EXT,),
          ok_schema="Agent", errors=(401, 403, 404, 422)),
    Route("POST", "/agents/{ext}/{action}", act_on_agent, "actOnAgent",
          "Log an operator in or out, pause (with a reason), unpause, or end wrap-up "
          "(\"ready\"); an operator only their own extension (user name = extension)",
          LEVEL1, "agents", params=(P_EXT, P_ACTION), body=ACTION_BODY,
          ok_schema="AgentActionResult", errors=(401, 403, 404, 409, 415, 422)),
)



def add_agent_routes(apps: ConsoleApps) -> None:
    """Register the queue and agent routes on the API sub-app; the root's ``ACD`` is the
    AcdQueue at request time (set by a cleanup context before the first request)."""
    apps.root[ROUTES_ADDED] = True
    add_route_table(apps.api, AGENT_ROUTES)
