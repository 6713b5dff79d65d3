"""Supervisors listen in on a live call from their own softphone, under ``/api/v1``:

    POST   /api/v1/calls/{call_id}/listen   {"extension": "109", "mode": "listen" | "whisper"
                                            | "barge"}  -> 202, the supervisor's phone rings
    GET    /api/v1/calls/{call_id}/listen   listen-ins on the call now, and its audit entries
    DELETE /api/v1/calls/{call_id}/listen   stop every listen-in on the call -> 200

Roles supervisor and admin of the call's tenant. ``extension`` is the supervisor's softphone:
a PJSIP endpoint the PBX knows, i.e. configured as an operator of the tenant in
``config/hotline.yaml`` (``operators:``) but never logged in to the queue (``callcenter agent
login``), so the queue never offers it calls. What each mode does is in
``callcenter.ari_app.listen``; the caller and the operator are told nothing in ``listen``.

The call must be owned by this process (like ``transfers/http.py``). Every use is a row of
``listen_audit`` (who, which call and operator, mode, requested / connected / ended, why).
Refusal ids: ``listen.call_not_found`` 404, ``listen.none`` 404, ``listen.unknown_extension``
/ ``listen.own_call`` 422, ``listen.not_bridged`` / ``listen.busy`` /
``listen.other_instance`` 409, ``listen.ring_failed`` 502, ``listen.unavailable`` 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.ari_app import listen as ls
from callcenter.ari_app.calls import CallSession
from callcenter.ari_app.service import STASIS, StasisService
from callcenter.calls.codec import CALL_KEY
from callcenter.console.api import OVERSIGHT, Route, add_route_table, json_body
from callcenter.console.auth import in_thread
from callcenter.console.context import CONFIG, ConsoleApps
from callcenter.console.errors import ApiError
from callcenter.console.validation import Obj, Param, Str
from callcenter.store.database import DatabaseRef
from callcenter.store.listen_audit import ListenAuditStore
from callcenter.store.users import User

AUDIT: web.AppKey[ListenAuditStore] = web.AppKey("listen_audit", ListenAuditStore)

STATUS: dict[str, int] = {
    ls.CALL_NOT_FOUND: 404, ls.NOT_LISTENING: 404, ls.UNKNOWN_EXTENSION: 422,
    ls.OWN_CALL: 422, ls.NOT_BRIDGED: 409, ls.BUSY: 409, ls.OTHER_INSTANCE: 409,
    ls.RING_FAILED: 502, ls.UNAVAILABLE: 503,
}

P_CALL = Param("call_id", where="path", pattern=r"[A-Za-z0-9._-]{1,64}", max_len=64,
               description="the call's id (its Asterisk channel id)")
LISTEN_BODY = Obj(
    title="ListenRequest",
    fields={
        "extension": Str(max_len=32, pattern=r"[0-9A-Za-z_.-]{1,32}",
                         description="the supervisor's softphone (configured as an operator "
                                     "of the tenant, not logged in)"),
        "mode": Str(max_len=8, enum=ls.MODES,
                    description="listen: hear both, nobody hears you; whisper: the operator "
                                "hears you, the caller does not; barge: join the call"),
    },
    required=("extension",),
    defaults={"mode": "listen"},
)


def refusal(error_id: str) -> ApiError:
    """The API error of a listen-in refusal (stable id, Vietnamese message)."""
    headers = {"Retry-After": "5"} if error_id == ls.UNAVAILABLE else None
    return ApiError(error_id, ls.MESSAGES[error_id], status=STATUS.get(error_id, 409),
                    headers=headers)


def _stasis(request: web.Request) -> StasisService:
    service = request.config_dict.get(STASIS)
    if service is None:  # a console without calls
        raise refusal(ls.UNAVAILABLE)
    return service


async def _call(request: web.Request, user: User) -> tuple[StasisService, str,
                                                           CallSession | None]:
    """The service, the call id and its session here (None: not live here), tenant checked."""
    call_id = P_CALL.parse(request.match_info.get("call_id"))
    service = _stasis(request)
    session = service.sessions.get(call_id)
    if session is not None and session.state.tenant_id != user.tenant:
        raise ApiError("auth.forbidden", f"call {call_id} belongs to another tenant")
    return service, call_id, session


async def _live_session(service: StasisService, call_id: str,
                        session: CallSession | None) -> CallSession:
    if session is not None:
        return session
    try:
        known = await service.deps.redis.exists(CALL_KEY.format(call_id))
    except (RedisError, OSError):
        raise refusal(ls.UNAVAILABLE) from None
    raise refusal(ls.OTHER_INSTANCE if known else ls.CALL_NOT_FOUND)


async def start_listen(request: web.Request, user: User) -> web.StreamResponse:
    service, call_id, session = await _call(request, user)
    body = LISTEN_BODY.check(await json_body(request))
    session = await _live_session(service, call_id, session)
    tenant = request.config_dict[CONFIG]().tenant(session.state.tenant_id)
    operators = tuple(op.extension for op in tenant.operators.operators) if tenant else ()
    try:
        li = await service.listen.start(session, supervisor=user.name,
                                        extension=body["extension"], mode=body["mode"],
                                        operators=operators, audit=request.config_dict.get(AUDIT))
    except ls.ListenRefused as e:
        raise refusal(e.id) from None
    return web.json_response(li.json(), status=202)


async def get_listen(request: web.Request, user: User) -> web.StreamResponse:
    service, call_id, _session = await _call(request, user)
    audit = request.config_dict.get(AUDIT)
    rows = [] if audit is None else await in_thread(request.config_dict, audit.recent, user.tenant,
                                                    call_id=call_id, limit=50)
    return web.json_response({"call_id": call_id,
                              "active": [li.json() for li in service.listen.of_call(call_id)],
                              "audit": [r.to_json_dict() for r in rows]})


async def stop_listen(request: web.Request, user: User) -> web.StreamResponse:
    service, call_id, _session = await _call(request, user)
    if any(li.tenant != user.tenant for li in service.listen.of_call(call_id)):
        raise ApiError("auth.forbidden", f"call {call_id} belongs to another tenant")
    ended = await service.listen.stop(call_id, f"stopped by {user.name}")
    if not ended:
        raise refusal(ls.NOT_LISTENING)
    return web.json_response({"call_id": call_id, "stopped": [li.id for li in ended]})


LISTEN_ROUTES: tuple[Route, ...] = (
    Route("POST", "/calls/{call_id}/listen", start_listen, "startListen",
          "Ring the supervisor's softphone and let them listen to, whisper to or join a live "
          "call (audit-logged); the answer is 202", OVERSIGHT, "calls", params=(P_CALL,),
          body=LISTEN_BODY, ok_status=202, errors=(401, 403, 404, 409, 415, 422, 502)),
    Route("GET", "/calls/{call_id}/listen", get_listen, "getListen",
          "Listen-ins on the call now and its audit entries", OVERSIGHT, "calls",
          params=(P_CALL,), errors=(401, 403, 404, 422)),
    Route("DELETE", "/calls/{call_id}/listen", stop_listen, "stopListen",
          "Stop every listen-in on the call", OVERSIGHT, "calls", params=(P_CALL,),
          errors=(401, 403, 404, 422)),
)


def add_listen_routes(apps: ConsoleApps, database: DatabaseRef | None = None) -> None:
    """Register the listen-in routes on the API sub-app; with ``database`` every use is
    audit-logged in ``listen_audit`` (the store is opened and closed with the app). The
    StasisService is found where the transfer routes find it (the root's
    ``ari_app.service.STASIS``)."""
    add_route_table(apps.api, LISTEN_ROUTES)
    if database is None:
        return

    async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[AUDIT] = ListenAuditStore(database)
        try:
            yield
        finally:
            store.close()

    apps.root.cleanup_ctx.append(audit_ctx)

