"""Over-size requests under ``/console/``: the Vietnamese error page instead of aiohttp's
bare English 413.

aiohttp refuses a body larger than the app's ``client_max_size`` by raising
``HTTPRequestEntityTooLarge`` from ``request.post()``/``read()`` — in the console that is the
CSRF check of the session middleware (it reads the form first) or the page's handler. This
middleware, outermost, turns that one exception into the console's error page (id
``request.too_large``, 413). The API keeps its JSON error (``errors.error_middleware``).

A handler wrapped in ``large_body`` (the ticket page's reply form, whose document may be a
video) reads a body up to the ticket service's largest upload limit plus room for the form's
other fields; every other route keeps the app's ``client_max_size``.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web

from callcenter.console.context import CONSOLE_PREFIX, SERVICE, ConsoleApps
from callcenter.console.errors import Handler
from callcenter.console.proxies import client_address
from callcenter.console.sessions import _PAGE_HEADERS as PAGE_HEADERS
from callcenter.console.sessions import error_page

log = logging.getLogger("callcenter.console.limits")

_MB: Final = 1024 * 1024
FORM_SLACK: Final = 256 * 1024  # the form's other fields around an upload


def large_body(handler: Handler) -> Handler:
    """Mark a console handler whose form carries an upload up to the largest upload limit."""
    setattr(handler, "large_body", True)  # noqa: B010 (a function attribute, read below)
    return handler


def _with_body_limit(request: web.Request) -> web.Request:
    """The request with the upload's body limit when its route is marked ``large_body``."""
    info = request.match_info
    if request.method != "POST" or not getattr(info.handler, "large_body", False) or \
            SERVICE not in request.config_dict:
        return request
    limit = request.config_dict[SERVICE].upload_limits.largest + FORM_SLACK
    return request.clone(client_max_size=max(limit, request.client_max_size))


def size_in_mb(size: int) -> str:
    """A byte count in MB for people: one decimal rounded down (never promise more than is
    accepted), Vietnamese decimal comma ("10,2")."""
    value = f"{size * 10 // _MB / 10:.1f}".replace(".", ",")
    return value[:-2] if value.endswith(",0") else value


def too_large_page(max_size: int) -> web.Response:
    """The console's 413 page, naming the largest request it accepts."""
    # With the private pages' headers (no caching, no framing): the session middleware adds
    # them on the way out, but what is raised inside it never comes back out through it.
    return error_page(413, "request.too_large", "Dữ liệu gửi lên quá lớn",
                      f"Dữ liệu gửi lên vượt quá giới hạn {size_in_mb(max_size)} MB. "
                      "Vui lòng chọn tệp nhỏ hơn hoặc gửi ít tệp hơn rồi thử lại.",
                      back=CONSOLE_PREFIX + "/", headers=dict(PAGE_HEADERS))


@web.middleware
async def console_size_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In the console sub-app (/console): a body over the limit gets the Vietnamese 413 page."""
    request = _with_body_limit(request)
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        log.info("console: %s %s from %s refused: body over %d bytes", request.method,
                 request.path, client_address(request), request.client_max_size)
        return too_large_page(request.client_max_size)


def add_size_limit_page(apps: ConsoleApps) -> None:
    """Put the middleware first (outermost) in the console sub-app, so it also sees what the
    session middleware raises while it reads the form for the CSRF check."""
    apps.console.middlewares.insert(0, console_size_middleware)
