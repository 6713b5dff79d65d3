"""Bearer-token authentication and role checks for ``/api/v1``.

``Authorization: Bearer hl1_<id>_<secret>``: the middleware looks the token up (in the
console's thread pool: the store is blocking), and puts the ``User`` on the request. No
token, or one that is unknown, expired, revoked or whose user is disabled: 401
``auth.required`` (all alike, so the answer tells nothing about which tokens exist).
A handler's roles are checked by ``require_role``; the tenant by ``require_tenant``.
Tokens never reach a log line; the user name does.

Console pages call the same API from the browser with the console session instead of a
token: without an ``Authorization`` header the middleware asks ``SESSION_AUTH`` (set by
``sessions.add_login_routes``) for the session cookie's user; unsafe methods then also need
the session's CSRF token in ``X-CSRF-Token`` (403 ``csrf.invalid`` otherwise), so another
site cannot make a logged-in browser act.

The app's control routes outside ``/api/v1`` (``/api/pool``, ``/api/reload`` ...) use the same
check through ``guarded``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from aiohttp import web

from callcenter.console.context import API_PREFIX, Shared
from callcenter.console.errors import ApiError, Handler, error_response
from callcenter.store.users import User, UserStore
from callcenter.tickets.rules import Actor

log = logging.getLogger("callcenter.console.auth")

USERS = web.AppKey("console_users", UserStore)
EXECUTOR = web.AppKey("console_executor", concurrent.futures.ThreadPoolExecutor)
USER = web.RequestKey("console_user", User)
SessionAuth = Callable[[web.Request], Awaitable["User | None"]]
SESSION_AUTH: web.AppKey[SessionAuth] = web.AppKey("console_session_auth")

PUBLIC_API_PATHS = frozenset({f"{API_PREFIX}/openapi.json"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hotline1022"'}

T = TypeVar("T")


async def in_thread(app: Shared, fn: Callable[..., T], *args: Any,
                    **kwargs: Any) -> T:
    """Run blocking store work in the console's own pool (call records keep the default)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[EXECUTOR], functools.partial(fn, *args, **kwargs))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    return token


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every request of the API sub-app (``/api/v1``) except the spec; 401
    ``auth.required`` otherwise."""
    if request.path in PUBLIC_API_PATHS:
        return await handler(request)
    request[USER] = await authenticate(request)
    return await handler(request)


async def authenticate(request: web.Request) -> User:
    """The user of the request's console session (no ``Authorization`` header) or bearer token;
    ApiError ``auth.required`` without either, ``csrf.invalid`` for a session's unsafe request
    without its CSRF token."""
    header = request.headers.get("Authorization")
    if header is None and SESSION_AUTH in request.config_dict:
        session_user = await request.config_dict[SESSION_AUTH](request)
        if session_user is not None:
            return session_user
    token = bearer_token(header)
    if token is None or USERS not in request.config_dict:
        raise ApiError("auth.required", "send Authorization: Bearer <token>", headers=CHALLENGE)
    user = await in_thread(request.config_dict, request.config_dict[USERS].authenticate, token,
                           now=dt.datetime.now(dt.UTC))
    if user is None:
        log.info("refused a bearer token on %s %s (unknown, expired, revoked or user "
                 "disabled)", request.method, _canonical(request))
        raise ApiError("auth.required", "the token is not valid (unknown, expired or revoked)",
                       headers=CHALLENGE)
    return user


def guarded(handler: Handler, roles: Collection[str], what: str) -> Handler:
    """``handler`` behind the API's authentication (session or bearer token) and ``roles``,
    for routes outside ``/api/v1`` (the app's control routes): refusals are the API's JSON
    errors, 401 ``auth.required`` or 403 ``auth.forbidden`` / ``csrf.invalid``."""
    @functools.wraps(handler)
    async def guarded_handler(request: web.Request) -> web.StreamResponse:
        try:
            user = await authenticate(request)
            require_role(user, roles, what)
        except ApiError as e:
            return error_response(e.id, e.message, e.status, details=e.details,
                                  headers=e.headers)
        request[USER] = user
        return await handler(request)

    return guarded_handler


def _canonical(request: web.Request) -> str:
    route = request.match_info.route if request.match_info is not None else None
    return route.resource.canonical if route is not None and route.resource else "?"


def current_user(request: web.Request) -> User:
    """The authenticated user (the middleware ran)."""
    return request[USER]


def actor_of(user: User) -> Actor:
    """The ticket core's view of a user: the login name, role and unit."""
    role = user.role
    if role not in ("operator", "supervisor", "admin", "unit"):
        raise ApiError("auth.forbidden", f"role {role!r} may not use the API")
    return Actor(user_id=user.name, role=role,  # type: ignore[arg-type]
                 unit=user.unit if role == "unit" else None)


def require_role(user: User, roles: Collection[str], what: str) -> None:
    """403 ``auth.forbidden`` unless the user's role is one of ``roles``."""
    if user.role not in roles:
        raise ApiError("auth.forbidden",
                       f"{what} needs the role {' or '.join(sorted(roles))}; "
                       f"{user.name} is {user.role}")


def require_tenant(user: User, tenant: str) -> None:
    """403 ``auth.forbidden`` unless the user works for this tenant."""
    if user.tenant != tenant:
        raise ApiError("auth.forbidden", f"{user.name} works for tenant {user.tenant}, "
                                         f"not {tenant}")
