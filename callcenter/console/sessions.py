"""Browser login of the console: login/logout pages, the session cookie, CSRF, lock-out, rate
limit, and ``require_console_role`` for the pages that come later.

* ``POST /console/login`` (form ``username``, ``password``, ``csrf``) opens a session and sets
  the cookie ``hotline_session`` (HttpOnly, SameSite=Strict, Path=/, Secure over https — the
  app's own TLS or a trusted proxy's ``X-Forwarded-Proto``, ``proxies.is_https`` — or as
  ``SessionPolicy.secure`` says). The store keeps only hashes (``UserStore.open_session``).
  No session fixation: the id is always a new one made by the server, never a cookie value
  the browser sent, and a live session the browser carried into the login is closed.
* A session ends 8 h after login and after 30 min without a request (``SessionPolicy``: every
  default is there), at logout, when the password changes or the user is disabled.
* Wrong passwords slow an account down, they never lock its owner out: after
  ``SessionPolicy.free_failures`` (3) in a row, each further attempt on that account must wait
  2^(n-3) s after the n-th failure (1 s, 2 s, 4 s ... at most ``max_delay``, 15 min); an
  attempt inside the wait gets 429 ``login.rate_limited`` saying how long, and its password is
  not even checked. The right password after the wait logs in and clears the count (so does a
  new password, or ``callcenter user unlock``). Counted in the database
  (``users.failed_logins``, the wait in ``users.locked_until``), so every app instance sees it.
* Rate limit: ``service.login_attempts_per_minute`` in the config (10; or
  ``SessionPolicy.attempts_per_ip``) login attempts per ``attempts_window`` (1 min) from one
  address, and as many password checks of one account, else 429 with Retry-After. Counted in
  Redis when the app has it (``SharedLoginRateLimiter``: every app instance sees every
  attempt), else, or while Redis does not answer, in this process's memory. The address is
  ``proxies.client_address``: the peer's, or behind a proxy of ``console.trusted_proxies`` the
  client's from ``X-Forwarded-For`` (never believed from anyone else: a forged header would
  give every attempt a fresh address).
* CSRF: every unsafe request (POST, PUT, PATCH, DELETE) under ``/console/`` needs a live
  session and its CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), checked by the
  middleware against the hash stored with the session; otherwise 403 ``csrf.invalid``. The
  token is derived from the session id (``csrf_token_of``); pages get it with
  ``console_csrf(request)``. The login form, which has no session yet, is protected by a
  double-submit nonce in a SameSite=Strict cookie scoped to ``/console/login``.

Error ids shown on the pages (``data-error-id``): ``login.invalid`` 401,
``login.rate_limited`` 429 (per address, per account, or the account's wait after failures),
``csrf.invalid`` 403, ``auth.forbidden`` 403. Passwords are never logged; user names and
addresses are.
"""

from __future__ import annotations

import collections
import datetime as dt
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from callcenter.console.auth import SESSION_AUTH, USERS, in_thread
from callcenter.console.context import CLOCK, CONFIG, CONSOLE_PREFIX, ConsoleApps, Shared, sub_path
from callcenter.console.errors import ApiError, Handler
from callcenter.console.pages import ROLE_LINKS, ROLE_NAMES
from callcenter.console.passwords import MAX_LENGTH, Passwords
from callcenter.console.proxies import client_address, is_https
from callcenter.console.rendering import environment
from callcenter.store.users import ConsoleSession, User, csrf_token_of

log = logging.getLogger("callcenter.console.sessions")

LOGIN_PATH: Final = "/console/login"
LOGOUT_PATH: Final = "/console/logout"
HOME_PATH: Final = "/console/"
LOGIN_NONCE_COOKIE: Final = "hotline_login_csrf"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
ALL_ROLES: Final = ("operator", "supervisor", "admin", "unit")
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class SessionPolicy:
    """Every default of console login in one place."""

    cookie: str = "hotline_session"
    lifetime: dt.timedelta = dt.timedelta(hours=8)      # absolute, from login
    idle: dt.timedelta = dt.timedelta(minutes=30)       # without a request
    free_failures: int = 3                              # wrong passwords in a row, then ...
    max_delay: dt.timedelta = dt.timedelta(minutes=15)  # ... a doubling wait up to this
    attempts_per_ip: int | None = None  # login POSTs from one address, and password checks of
    # one account (None: the config's service.login_attempts_per_minute, 10 by default) ...
    attempts_window: dt.timedelta = dt.timedelta(minutes=1)  # ... per this window
    secure: bool | None = None  # Secure cookies: None = when the request came over https
    # (proxies.is_https)


class LoginRateLimiter:
    """Sliding-window count of login attempts per key (an address or an account), in this
    process's memory."""

    MAX_ADDRESSES = 10_000  # beyond this the least recently seen address is forgotten

    def __init__(self) -> None:
        self._hits: collections.OrderedDict[str, collections.deque[dt.datetime]] = \
            collections.OrderedDict()

    def hit(self, key: str, now: dt.datetime, limit: int,
            window: dt.timedelta) -> float | None:
        """Count one attempt; None if allowed, else the seconds until the next is allowed."""
        hits = self._hits.pop(key, None) or collections.deque()
        while hits and now - hits[0] >= window:
            hits.popleft()
        self._hits[key] = hits  # now the most recently seen
        if len(self._hits) > self.MAX_ADDRESSES:
            self._hits.popitem(last=False)
        if len(hits) >= limit:
            return max(1.0, (hits[0] + window - now).total_seconds())
        hits.append(now)
        return None


# One sliding window per key (an address, an account) in a sorted set (scores: attempt times in
# ms): drop what left the window, refuse when full (answer: ms until the oldest leaves), else
# count this one.
_RATE_LUA: Final = """
local key, now, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, window)
return -1
"""


class SharedLoginRateLimiter:
    """The same sliding window counted in Redis, shared by every app instance; while Redis
    does not answer, this process's own count stands in (never no limit at all)."""

    KEY = "hotline:login-attempts:{}"

    def __init__(self, redis: Callable[[], aioredis.Redis | None]) -> None:
        self._redis = redis
        self._local = LoginRateLimiter()

    async def hit(self, key: str, now: dt.datetime, limit: int,
                  window: dt.timedelta) -> float | None:
        """Count one attempt; None if allowed, else the seconds until the next is allowed."""
        client = self._redis()
        if client is not None:
            now_ms, window_ms = int(now.timestamp() * 1000), int(window.total_seconds() * 1000)
            try:
                wait_ms = await client.eval(
                    _RATE_LUA, 1, self.KEY.format(key), now_ms, window_ms, limit,
                    f"{now_ms}-{secrets.token_hex(4)}")
            except (RedisError, OSError) as e:
                log.warning("console: login attempts counted in this process only "
                            "(Redis: %r)", e)
            else:
                return None if int(wait_ms) < 0 else max(1.0, int(wait_ms) / 1000)
        return self._local.hit(key, now, limit, window)


POLICY = web.AppKey("console_session_policy", SessionPolicy)
PASSWORDS = web.AppKey("console_passwords", Passwords)
LIMITER = web.AppKey("console_login_limiter", SharedLoginRateLimiter)
SESSION = web.RequestKey("console_session", ConsoleSession)
SESSION_ID = web.RequestKey("console_session_id", str)

# templates/plain.html: the frame of the login, home and error pages (login.html, home.html,
# error.html), smaller than the pages' (base.html): no menu before login.
_ENV: Final = environment("callcenter.console")

# Console pages are private and must not be framed (clickjacking of the login form).
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _html(template: str, status: int = 200, headers: dict[str, str] | None = None,
          **values: Any) -> web.Response:
    body = _ENV.get_template(template).render(**values)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers=headers)


def error_page(status: int, error_id: str, title: str, message: str, *,
               back: str = HOME_PATH, back_label: str = "Về trang chính",
               headers: dict[str, str] | None = None) -> web.Response:
    """A console error page in Vietnamese carrying its stable id (``data-error-id``)."""
    return _html("error.html", status, headers, title=title, error_id=error_id,
                 message=message, back=back, back_label=back_label)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _now(app: Shared) -> dt.datetime:
    return app[CLOCK]()


def _secure(request: web.Request) -> bool:
    setting = request.config_dict[POLICY].secure
    return is_https(request) if setting is None else setting


def _safe_next(value: str | None) -> str | None:
    """A place to go after login: only a path of the console (no other site, no scheme)."""
    if not value or len(value) > 500 or "\\" in value or "//" in value:
        return None
    if value != CONSOLE_PREFIX and not value.startswith(CONSOLE_PREFIX + "/"):
        return None
    if value.startswith(LOGIN_PATH) or any(ord(c) < 0x21 for c in value):
        return None
    return value


def _login_url(next_path: str | None) -> str:
    safe = _safe_next(next_path)
    return LOGIN_PATH if safe is None or safe == HOME_PATH else \
        f"{LOGIN_PATH}?next={quote(safe, safe='/')}"


def current_session(request: web.Request) -> ConsoleSession | None:
    """The request's live console session (the middleware found it), or None."""
    return request.get(SESSION)


def console_csrf(request: web.Request) -> str:
    """The CSRF token of the request's session, for the forms of a page."""
    return csrf_token_of(request[SESSION_ID])


def require_console_role(request: web.Request, roles: Collection[str]) -> User:
    """The logged-in user if their role is one of ``roles``; without a session, a redirect
    (303) to the login page that comes back here; with another role, a 403 page."""
    session = current_session(request)
    if session is None:
        target = request.path_qs if request.method in SAFE_METHODS else None
        raise web.HTTPSeeOther(location=_login_url(target))
    if session.user.role not in roles:
        log.info("console: %s (%s) refused %s %s", session.user.name, session.user.role,
                 request.method, request.path)
        page = error_page(403, "auth.forbidden", "Không có quyền truy cập",
                          "Vai trò của bạn không được mở trang này.")
        raise web.HTTPForbidden(text=page.text, content_type="text/html",
                                headers=_PAGE_HEADERS)
    return session.user


async def _submitted_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # aiohttp keeps it: the handler reads it again for free
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def _csrf_refused(request: web.Request) -> web.Response:
    log.info("console: CSRF token missing or wrong on %s %s from %s", request.method,
             request.path, client_address(request))
    return error_page(403, "csrf.invalid", "Yêu cầu bị từ chối",
                      "Phiên làm việc không hợp lệ hoặc đã hết hạn. Vui lòng tải lại trang, "
                      "đăng nhập lại nếu cần, rồi thử lại.", headers=_PAGE_HEADERS)


@web.middleware
async def console_session_middleware(request: web.Request,
                                     handler: Handler) -> web.StreamResponse:
    """In the console sub-app (/console): find the session from its cookie; refuse unsafe
    requests without a session and its CSRF token (403 ``csrf.invalid``); set the private
    pages' headers."""
    path = request.path
    app = request.config_dict
    policy = app[POLICY]
    raw = request.cookies.get(policy.cookie)
    if raw:
        session = await in_thread(app, app[USERS].find_session, raw, now=_now(app),
                                  idle=policy.idle)
        if session is not None:
            request[SESSION] = session
            request[SESSION_ID] = raw
    if request.method not in SAFE_METHODS and path != LOGIN_PATH:
        session = current_session(request)
        if session is None or not session.csrf_ok(await _submitted_csrf(request)):
            return _csrf_refused(request)
    response = await handler(request)
    for key, value in _PAGE_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


async def api_session_user(request: web.Request) -> User | None:
    """The user of the request's console session, for ``/api/v1`` calls made by the pages
    (``auth.SESSION_AUTH``); None without a live session. Unsafe methods need the session's
    CSRF token in the ``X-CSRF-Token`` header: 403 ``csrf.invalid`` otherwise."""
    app = request.config_dict
    policy = app[POLICY]
    raw = request.cookies.get(policy.cookie)
    if not raw:
        return None
    session = await in_thread(app, app[USERS].find_session, raw, now=_now(app),
                              idle=policy.idle)
    if session is None:
        return None
    if request.method not in SAFE_METHODS \
            and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        log.info("console: CSRF header missing or wrong on %s %s from %s", request.method,
                 request.path, client_address(request))
        raise ApiError("csrf.invalid", f"send the page's CSRF token in {CSRF_HEADER}")
    return session.user


def _nonce_of(request: web.Request) -> str:
    value = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    return value if _NONCE.fullmatch(value) else secrets.token_urlsafe(32)


def _login_page(request: web.Request, status: int = 200, *, error_id: str | None = None,
                error: str | None = None, username: str = "",
                headers: dict[str, str] | None = None) -> web.Response:
    nonce = _nonce_of(request)
    resp = _html("login.html", status, headers, title="Đăng nhập", csrf=nonce, error=error,
                 error_id=error_id, username=username, next=_safe_next(request.query.get("next")))
    resp.set_cookie(LOGIN_NONCE_COOKIE, nonce, path=LOGIN_PATH, httponly=True,
                    samesite="Strict", secure=_secure(request), max_age=3600)
    return resp


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /console/login: the form (or home, when already logged in)."""
    if current_session(request) is not None:
        raise web.HTTPSeeOther(location=_safe_next(request.query.get("next")) or HOME_PATH)
    return _login_page(request)


def _throttled(request: web.Request, wait: float, message: str,
               username: str = "") -> web.Response:
    """429 ``login.rate_limited``: ``message`` and the wait in Vietnamese, and Retry-After."""
    seconds = max(1, int(wait + 0.999))
    when = f"{seconds} giây" if seconds < 120 else f"{(seconds + 59) // 60} phút"
    return _login_page(request, 429, error_id="login.rate_limited", username=username,
                       error=f"{message} Vui lòng thử lại sau {when}.",
                       headers={"Retry-After": str(seconds)})


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST /console/login: the address's rate limit, login CSRF, the account's wait after
    failures and its rate limit, the password, then a session."""
    app = request.config_dict
    policy, now = app[POLICY], _now(app)
    address = client_address(request)
    limit = policy.attempts_per_ip or app[CONFIG]().service.login_attempts_per_minute
    wait = await app[LIMITER].hit(f"addr:{address}", now, limit, policy.attempts_window)
    if wait is not None:
        log.warning("console: login rate limit for %s (%d per %s)", address, limit,
                    policy.attempts_window)
        return _throttled(request, wait, "Quá nhiều lần đăng nhập từ máy này.")
    form = await request.post()
    sent_nonce = form.get(CSRF_FIELD)
    cookie_nonce = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    if not (isinstance(sent_nonce, str) and _NONCE.fullmatch(cookie_nonce)
            and hmac.compare_digest(sent_nonce.encode(), cookie_nonce.encode())):
        return _csrf_refused(request)
    username = form.get("username")
    password = form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        return _login_page(request, 401, error_id="login.invalid",
                           error="Vui lòng nhập tên đăng nhập và mật khẩu.")
    name = username.strip().lower()[:64]
    # The account's wait first: an attempt inside it is neither checked nor counted, so
    # guesses from anywhere cannot keep the account's own window full against its owner.
    until = await in_thread(app, app[USERS].login_wait, name, now=now)
    result = None
    if until is None:
        wait = await app[LIMITER].hit(f"user:{name}", now, limit, policy.attempts_window)
        if wait is not None:  # a burst from many addresses at once (not one after another)
            log.warning("console: login rate limit for the account %s (from %s)", name,
                        address)
            return _throttled(request, wait, "Quá nhiều lần đăng nhập vào tài khoản này.",
                              name)
        result = await in_thread(app, app[USERS].login, name, password[:MAX_LENGTH + 1],
                                 passwords=app[PASSWORDS], now=now,
                                 free_failures=policy.free_failures,
                                 max_delay=policy.max_delay)
        until = result.wait_until if result.outcome == "waiting" else None
    if until is not None:
        log.warning("console: login of %s refused from %s: wrong passwords, next attempt "
                    "after %s", name, address, f"{until:%H:%M:%S} UTC")
        return _throttled(request, (until - now).total_seconds(),
                          "Tài khoản này vừa bị nhập sai mật khẩu nhiều lần.", name)
    if result is None or result.outcome != "ok" or result.user is None:
        log.info("console: login of %s refused from %s (wrong name or password)", name,
                 address)
        return _login_page(request, 401, error_id="login.invalid", username=name,
                           error="Tên đăng nhập hoặc mật khẩu không đúng.")
    # Session fixation: the id always comes from the server at login, never from the
    # request; a live session the browser already carried (planted, or an earlier login) is
    # closed, so no id known before this login is worth anything after it.
    earlier = request.get(SESSION_ID)
    if earlier is not None:
        await in_thread(app, app[USERS].close_session, earlier)
        log.info("console: the session this browser carried before the login of %s closed",
                 name)
    session, session_id = await in_thread(
        app, app[USERS].open_session, result.user.name, now=now, lifetime=policy.lifetime,
        user_agent=request.headers.get("User-Agent"))
    log.info("console: %s (%s) logged in from %s", session.user.name, session.user.role,
             address)
    resp = _see_other(_safe_next(request.query.get("next")) or HOME_PATH)
    resp.set_cookie(policy.cookie, session_id, path="/", httponly=True, samesite="Strict",
                    secure=_secure(request), max_age=int(policy.lifetime.total_seconds()))
    resp.del_cookie(LOGIN_NONCE_COOKIE, path=LOGIN_PATH)
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /console/logout (the middleware checked the session and its CSRF token)."""
    session = current_session(request)
    if session is not None:
        await in_thread(request.config_dict, request.config_dict[USERS].close_session,
                        request[SESSION_ID])
        log.info("console: %s logged out", session.user.name)
    resp = _see_other(LOGIN_PATH)
    resp.del_cookie(request.config_dict[POLICY].cookie, path="/")
    return resp


async def home(request: web.Request) -> web.StreamResponse:
    """GET /console/: who is logged in, and the pages their role may open."""
    user = require_console_role(request, ALL_ROLES)
    return _html("home.html", title="Trang chính", user=user,
                 role_name=ROLE_NAMES.get(user.role, user.role),
                 links=ROLE_LINKS.get(user.role, ()), csrf=console_csrf(request))


async def _to_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(location=HOME_PATH)


def add_login_routes(apps: ConsoleApps, *, policy: SessionPolicy | None = None,
                     passwords: Passwords | None = None,
                     redis: web.AppKey[aioredis.Redis] | None = None) -> None:
    """Add the login, logout and home pages and the session middleware to the console
    sub-app; ``POLICY``, ``PASSWORDS``, ``LIMITER`` and ``SESSION_AUTH`` to the root.

    The root must have ``USERS``, ``EXECUTOR`` and ``CLOCK`` (``setup_console`` sets them).
    ``POLICY`` and ``PASSWORDS`` are read per request: tests may replace them before start.
    ``redis``: the app key of a Redis client (set by an earlier cleanup context); with it the
    login rate limit is counted across app instances.
    """
    app = apps.root
    app[POLICY] = policy or SessionPolicy()
    app[PASSWORDS] = passwords or Passwords()
    app[LIMITER] = SharedLoginRateLimiter(
        lambda: app.get(redis) if redis is not None else None)
    app[SESSION_AUTH] = api_session_user
    pages = apps.console
    pages.middlewares.append(console_session_middleware)
    pages.router.add_get(sub_path(CONSOLE_PREFIX, CONSOLE_PREFIX), _to_home)
    pages.router.add_get(sub_path(CONSOLE_PREFIX, HOME_PATH), home, name="console_home")
    pages.router.add_get(sub_path(CONSOLE_PREFIX, LOGIN_PATH), login_form,
                         name="console_login")
    pages.router.add_post(sub_path(CONSOLE_PREFIX, LOGIN_PATH), login_submit)
    pages.router.add_post(sub_path(CONSOLE_PREFIX, LOGOUT_PATH), logout,
                          name="console_logout")
