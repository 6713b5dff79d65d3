"""Errors over HTTP: every refusal is ``{"error": {"id", "message", "details"?}}`` with a
stable id, and an HTTP status that follows from the id.

=================================  ======  ===============================================
id (or family)                     status  when
=================================  ======  ===============================================
``auth.required``                  401     no, malformed, unknown, expired or revoked token
``auth.forbidden``                 403     the user's role or tenant may not do this
``csrf.invalid``                   403     console session without its X-CSRF-Token
``ticket.forbidden``               403     the service refused the actor (another unit's)
``*.not_found``                    404     no such ticket, tenant, route
``ticket.unknown_tenant``          404
``ticket.attachment_missing``      410     the row exists, the file is gone (restore it)
``http.method_not_allowed``        405
``ticket.conflict``                409     the ``version`` sent is not the ticket's
``ticket.illegal_transition``      409     the action cannot happen in the ticket's state
``ticket.same_unit``               409
``ticket.reminder_not_due``        409
``ticket.upload_too_large``        413     checked while the upload streams in
``ticket.upload_type``             415     the bytes are no accepted document, photo or video
``request.unsupported_media``      415     not JSON (or not multipart for uploads)
``request.*`` / other ``ticket.*`` 422     the body or a parameter is malformed (field named)
``store.unavailable``              503     the database does not answer
``internal``                       500     a bug: logged with its stack, never details
=================================  ======  ===============================================
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import OperationalError

from callcenter.store.users import UserError
from callcenter.tickets.config import TicketError

log = logging.getLogger("callcenter.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths whose errors are JSON in this shape; the rest of the app keeps its own.
JSON_PREFIXES = ("/api/v1", "/public/")

STATUS_BY_ID: dict[str, int] = {
    "auth.required": 401,
    "auth.forbidden": 403,
    "csrf.invalid": 403,
    "ticket.forbidden": 403,
    "ticket.not_found": 404,
    "ticket.unknown_tenant": 404,
    "ticket.attachment_missing": 410,
    "ticket.conflict": 409,
    "ticket.illegal_transition": 409,
    "ticket.same_unit": 409,
    "ticket.reminder_not_due": 409,
    "ticket.upload_too_large": 413,
    "ticket.upload_type": 415,
    "request.unsupported_media": 415,
    "store.unavailable": 503,
    "internal": 500,
}


def status_for(error_id: str) -> int:
    """The HTTP status of an error id (422 for malformed input unless listed)."""
    if error_id in STATUS_BY_ID:
        return STATUS_BY_ID[error_id]
    if error_id.endswith(".not_found"):
        return 404
    if error_id.endswith(".forbidden"):
        return 403
    return 422


class ApiError(Exception):
    """A refusal raised by a handler; the middleware renders it."""

    def __init__(self, error_id: str, message: str, *, status: int | None = None,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{error_id}: {message}")
        self.id = error_id
        self.message = message
        self.status = status or status_for(error_id)
        self.details = details
        self.headers = headers


def invalid(field: str, message: str, error_id: str = "request.invalid") -> ApiError:
    """A 422 naming the offending field (``details.field``)."""
    return ApiError(error_id, f"{field}: {message}", details={"field": field})


def error_response(error_id: str, message: str, status: int, *,
                   details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error body every client of the API can rely on."""
    body: dict[str, Any] = {"id": error_id, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


def _route_name(request: web.Request) -> str:
    """The route's template (``/api/v1/callers/{phone}/tickets``): never the raw path, which
    may carry a phone number, in a log line."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    return resource.canonical if resource is not None else "(no route)"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError, TicketError, UserError and aiohttp's HTTP errors as JSON errors."""
    if not request.path.startswith(JSON_PREFIXES):
        return await handler(request)
    try:
        response = await handler(request)
    except ApiError as e:
        return error_response(e.id, e.message, e.status, details=e.details, headers=e.headers)
    except (TicketError, UserError) as e:
        return error_response(e.id, e.message, status_for(e.id))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        ids = {404: "http.not_found", 405: "http.method_not_allowed",
               413: "request.too_large", 415: "request.unsupported_media"}
        error_id = ids.get(e.status, f"http.{e.status}")
        headers = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        return error_response(error_id, e.reason, e.status, headers=headers or None)
    except OperationalError as e:
        log.error("database unavailable for %s %s: %s", request.method, _route_name(request),
                  str(e.orig or e).splitlines()[0][:200])
        return error_response("store.unavailable", "the ticket store is unavailable; retry",
                              503, headers={"Retry-After": "5"})
    except Exception as e:
        # The frames only: an exception's text may quote a citizen's phone number or SQL
        # parameters, which belong in DEBUG at most.
        frames = "".join(traceback.format_list(traceback.extract_tb(e.__traceback__)))
        log.error("unexpected %s in %s %s\n%s", type(e).__name__, request.method,
                  _route_name(request), frames.rstrip())
        log.debug("unexpected error in %s", _route_name(request), exc_info=True)
        return error_response("internal", "internal error (logged)", 500)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
