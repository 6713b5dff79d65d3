"""Transfers of a caller to a level-2 unit's hotline over HTTP, under ``/api/v1`` (bearer
tokens, JSON errors); the phone's transfer button does the same through the PBX:

    GET  /api/v1/units?tenant=T                       units one may transfer to (with a hotline)
    POST /api/v1/calls/{call_id}/transfer             {"unit": id | "number": ..., "kind":
                                                      "blind" | "attended"}  -> 202
    POST /api/v1/calls/{call_id}/transfer/complete    attended: the unit takes the caller
    POST /api/v1/calls/{call_id}/transfer/cancel      back to the caller (unit hung up)

Roles operator, supervisor and admin of the call's tenant; an operator only on the call they
are talking on (user name = extension, as in ``queue/http.py``). The call must be owned by this
process (its task holds the call's state): a call of another app instance answers 409
``transfer.other_instance``. Answers are 202: the transfer goes on in the call's task (the unit
rings); the call record keeps each transfer's outcome. Refusal ids: ``transfer.unknown_unit``
422, ``transfer.call_not_found`` 404, ``transfer.not_bridged`` / ``transfer.in_progress`` /
``transfer.none`` / ``transfer.not_answered`` / ``transfer.not_attended`` /
``transfer.other_instance`` 409, ``transfer.unavailable`` 503.

The Stasis service is found at request time at ``app[callcenter.ari_app.service.STASIS]``,
where the composition root keeps it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from callcenter import calls as cm
from callcenter.ari_app.calls import CallSession
from callcenter.ari_app.service import STASIS, StasisService
from callcenter.calls.codec import CALL_KEY
from callcenter.clock import utcnow
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
from callcenter.console.validation import Obj, Param, Str, parse_query
from callcenter.numbers import dial_digits
from callcenter.store.users import User
from callcenter.transfers import rules as xf

STATUS: dict[str, int] = {
    xf.UNKNOWN_UNIT: 422,
    xf.CALL_NOT_FOUND: 404,
    xf.NOT_BRIDGED: 409,
    xf.IN_PROGRESS: 409,
    xf.NO_TRANSFER: 409,
    xf.NOT_ANSWERED: 409,
    xf.NOT_ATTENDED: 409,
    xf.OTHER_INSTANCE: 409,
    xf.NOT_YOURS: 403,
    xf.UNAVAILABLE: 503,
}

P_CALL = Param("call_id", where="path", pattern=r"[A-Za-z0-9._-]{1,64}", max_len=64,
               description="the call's id (its Asterisk channel id)")
TRANSFER_BODY = Obj(
    title="TransferRequest",
    fields={
        "unit": Str(max_len=32, pattern=r"[a-z0-9_-]{1,32}", nullable=True,
                    description="the unit's id (GET /api/v1/units)"),
        "number": Str(max_len=24, pattern=r"\+?[0-9 .-]{2,23}", nullable=True,
                      description="or the unit's hotline number"),
        "kind": Str(max_len=8, enum=cm.TRANSFER_KINDS,
                    description="blind: the unit takes the caller when it answers; "
                                "attended: the operator talks with the unit first"),
    },
    defaults={"unit": None, "number": None, "kind": "blind"},
)


def refusal(error_id: str, details: dict[str, Any] | None = None) -> ApiError:
    """The API error of a transfer refusal (stable id, Vietnamese message)."""
    headers = {"Retry-After": "5"} if error_id == xf.UNAVAILABLE else None
    return ApiError(error_id, xf.MESSAGES[error_id], status=STATUS.get(error_id, 409),
                    details=details, headers=headers)


def _stasis(request: web.Request) -> StasisService:
    service = request.config_dict.get(STASIS)
    if service is None:  # a console without calls (tests, a console-only process)
        raise refusal(xf.UNAVAILABLE)
    return service


async def _session(request: web.Request, user: User) -> CallSession:
    """The call's session in this process, if this user may act on it."""
    call_id = P_CALL.parse(request.match_info.get("call_id"))
    service = _stasis(request)
    session = service.sessions.get(call_id)
    if session is None:
        try:
            known = await service.deps.redis.exists(CALL_KEY.format(call_id))
        except (RedisError, OSError):
            raise refusal(xf.UNAVAILABLE) from None
        raise refusal(xf.OTHER_INSTANCE if known else xf.CALL_NOT_FOUND)
    s = session.state
    if s.tenant_id != user.tenant:
        raise ApiError("auth.forbidden", f"call {call_id} belongs to another tenant")
    if user.role == "operator" and user.name != s.operator:
        raise refusal(xf.NOT_YOURS)
    return session


async def get_units(request: web.Request, user: User) -> web.StreamResponse:
    q = parse_query((P_TENANT,), request.query)
    tenant = tenant_param(request, user, q["tenant"])
    t = request.config_dict[CONFIG]().require_tenant(tenant)
    units = xf.targets(t.tickets.units) if t.tickets is not None else ()
    return web.json_response({"tenant": tenant, "units": [
        {"id": u.id, "name": u.name, "kind": u.kind, "hotline": u.hotline} for u in units]})


async def start_transfer(request: web.Request, user: User) -> web.StreamResponse:
    session = await _session(request, user)
    body = TRANSFER_BODY.check(await json_body(request)) if request.can_read_body \
        else dict(TRANSFER_BODY.defaults)
    s = session.state
    units = _stasis(request).transfers.units_of(s.tenant_id)
    unit = None
    if body["unit"] is not None:
        unit = xf.unit_for_id(units, body["unit"])
        if unit is not None and body["number"] is not None \
                and xf.unit_for_number(units, body["number"]) != unit:
            unit = None
    elif body["number"] is not None:
        unit = xf.unit_for_number(units, body["number"])
    if unit is None or unit.hotline is None:
        raise refusal(xf.UNKNOWN_UNIT, {"units": [u.id for u in units]})
    why = xf.request_refusal(s)
    if why is not None or s.operator is None:
        raise refusal(why or xf.NOT_BRIDGED)
    session.events.put_nowait(cm.TransferRequested(
        utcnow(), s.operator, unit.id, dial_digits(unit.hotline), body["kind"], "api"))
    return web.json_response({"call_id": s.call_id, "unit": unit.id, "number": unit.hotline,
                              "kind": body["kind"], "by": s.operator, "status": "dialling"},
                             status=202)


async def complete_transfer(request: web.Request, user: User) -> web.StreamResponse:
    session = await _session(request, user)
    why = xf.complete_refusal(session.state)
    if why is not None:
        raise refusal(why)
    session.events.put_nowait(cm.TransferCompleted(utcnow(), "api"))
    return web.json_response({"call_id": session.call_id, "status": "completing"}, status=202)


async def cancel_transfer(request: web.Request, user: User) -> web.StreamResponse:
    session = await _session(request, user)
    why = xf.cancel_refusal(session.state)
    if why is not None:
        raise refusal(why)
    session.events.put_nowait(cm.TransferCancelled(utcnow()))
    return web.json_response({"call_id": session.call_id, "status": "cancelling"}, status=202)


_ERRORS = (401, 403, 404, 409, 415, 422)

TRANSFER_ROUTES: tuple[Route, ...] = (
    Route("GET", "/units", get_units, "listTransferUnits",
          "Level-2 units of the tenant one may transfer a caller to (those with a hotline)",
          LEVEL1, "calls", params=(P_TENANT,), errors=(401, 403, 404, 422)),
    Route("POST", "/calls/{call_id}/transfer", start_transfer, "startTransfer",
          "Transfer a caller talking with an operator to a unit's hotline, blind or attended "
          "(consultation first); the unit rings, the answer is 202", LEVEL1, "calls",
          params=(P_CALL,), body=TRANSFER_BODY, ok_status=202, errors=_ERRORS),
    Route("POST", "/calls/{call_id}/transfer/complete", complete_transfer, "completeTransfer",
          "Attended transfer: the unit, consulted and answering, takes the caller; the "
          "operator's part ends (wrap-up)", LEVEL1, "calls", params=(P_CALL,), ok_status=202,
          errors=(401, 403, 404, 409, 422)),
    Route("POST", "/calls/{call_id}/transfer/cancel", cancel_transfer, "cancelTransfer",
          "Give up the transfer in progress: the unit's leg is hung up, the operator is back "
          "with the caller", LEVEL1, "calls", params=(P_CALL,), ok_status=202,
          errors=(401, 403, 404, 409, 422)),
)



def add_transfer_routes(apps: ConsoleApps) -> None:
    """Register the transfer routes on the API sub-app; the root's
    ``ari_app.service.STASIS`` is the StasisService at request time (none: 503
    ``transfer.unavailable``)."""
    add_route_table(apps.api, TRANSFER_ROUTES)
