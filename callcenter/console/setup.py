"""Wire the console's HTTP side into the app: ticket API, public pages, OpenAPI, auth.

Called once from the composition root (``callcenter.app.build_app``), after the cleanup
context that creates the app's TicketService (``callcenter.tickets.jobs`` shows it)::

    app.cleanup_ctx.append(_tickets_ctx)          # sets app[TICKETS], runs the deadline job
    setup_console(app, database_url=settings.database_url, config=app[CONFIG],
                  tickets=TICKETS)

With ``tickets=`` the console uses that service (one engine, one files folder, shared with
the deadline job); without it, it opens its own on ``files_dir`` (tests, or a console-only
process) and closes it at shutdown. Either way the files folder must be the one the
``callcenter ticket`` CLI uses (``$HOTLINE_STATE/ticket-files``): attachment rows name files
relative to it.

The console is three aiohttp sub-apps mounted on ``app``: the API (``/api/v1``, behind the
bearer-auth middleware), the pages (``/console``, behind the size-limit and session
middlewares) and the public disclosure (``/public``). Each slice's ``add_*`` function takes
the ``ConsoleApps`` (``context.py``) and adds its routes to its sub-app, with paths relative
to the prefix; shared resources, app keys and cleanup contexts go on ``app`` itself, and
handlers read them through ``request.config_dict``. The JSON-error middleware stays on
``app`` (it acts on every path starting ``/api/v1`` or ``/public/``, also those no sub-app
owns). A cleanup context opens the user store and the console's own thread pool (so slow
report queries never hold up call records on the default pool), and closes them in reverse
order. The database is migrated by the app's store context, which must come earlier in
``cleanup_ctx``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web

from callcenter.callbacks.http import add_callback_routes
from callcenter.callbacks.pages import add_callback_pages
from callcenter.clock import utcnow
from callcenter.config.live import LiveConfig
from callcenter.config.model import HotlineConfig
from callcenter.console.admin_shifts import add_admin_shift_routes
from callcenter.console.admin_users import add_user_admin_routes
from callcenter.console.api import API, add_routes
from callcenter.console.auth import EXECUTOR, USERS, auth_middleware
from callcenter.console.context import CLOCK, CONFIG, SERVICE, ConsoleApps
from callcenter.console.errors import error_middleware
from callcenter.console.limits import add_size_limit_page
from callcenter.console.listen_api import add_listen_routes
from callcenter.console.openapi import spec
from callcenter.console.pages import add_static_routes
from callcenter.console.proxies import add_hsts
from callcenter.console.public import add_public_routes
from callcenter.console.sessions import add_login_routes
from callcenter.desk.pages import add_desk_routes
from callcenter.open311.http import add_open311_routes
from callcenter.quality.pages import RecordingsFolder, add_quality_pages
from callcenter.queue.http import ROUTES_ADDED, add_agent_routes
from callcenter.store.database import Database
from callcenter.store.users import UserStore
from callcenter.tickets.files import UploadLimits
from callcenter.tickets.pages import add_list_pages
from callcenter.tickets.review_pages import add_review_pages
from callcenter.tickets.service import TicketService
from callcenter.transfers.http import add_transfer_routes
from callcenter.wallboard.http import add_wallboard_routes

log = logging.getLogger("callcenter.console")

DEFAULT_WORKERS = 8


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(spec(agents=request.config_dict.get(ROUTES_ADDED, False)),
                             headers={"Cache-Control": "public, max-age=300"})


def setup_console(app: web.Application, *, database_url: str,
                  database: Database | None = None,
                  config: Callable[[], HotlineConfig],
                  tickets: web.AppKey[TicketService] | None = None,
                  files_dir: Path | None = None, upload_limits: UploadLimits | None = None,
                  clock: Callable[[], dt.datetime] = utcnow,
                  workers: int = DEFAULT_WORKERS,
                  queue: bool = False,
                  live_config: web.AppKey[LiveConfig] | None = None,
                  redis: web.AppKey[aioredis.Redis] | None = None,
                  recordings: RecordingsFolder | None = None,
                  extra_routes: Iterable[Callable[[ConsoleApps], None]] = ()) -> None:
    """Mount the console's sub-apps (API, pages, public) on ``app`` (not yet started) and put
    their shared resources on ``app``. Call it once: every console route is added here, before
    the sub-apps are mounted (aiohttp freezes a sub-app when it is mounted).

    ``database``: the app's shared Database (one connection pool for every store); without
    one, the console opens its own on ``database_url`` and closes it when the app stops.
    ``config`` is read at every request (the app's LiveConfig), so reloads apply at once.
    ``tickets``: the app key of a TicketService an earlier cleanup context sets; otherwise
    give ``files_dir`` (and optionally ``upload_limits``) and the console opens its own.
    ``queue``: the app runs the operators' queue (``app[queue.redis.ACD]``, set by a cleanup
    context); the queue, agent, transfer, wallboard, listen-in and desk routes are added
    (``queue/http.py``) and the served OpenAPI document describes them.
    ``live_config``: the app key of the LiveConfig; with it, admins edit shifts in a form
    (``admin_shifts.py``: the file is rewritten and reloaded).
    ``redis``: the app key of the Redis client; with it login attempts are counted across app
    instances (``sessions.SharedLoginRateLimiter``).
    ``recordings``: where the PBX's call recordings are (asked at each request); without it the
    quality pages play none (``quality/pages.py``).
    ``extra_routes``: more ``add_*`` functions, run after the console's own and before the
    sub-apps are mounted (mounting freezes them).
    """
    if tickets is None and files_dir is None:
        raise ValueError("setup_console: give tickets= (the app's TicketService key) or "
                         "files_dir= (the console opens its own service)")
    app[CONFIG] = config
    db = database
    if db is None:
        db = own_db = Database(database_url)

        async def database_ctx(_app: web.Application) -> AsyncIterator[None]:
            yield  # registered first: closed after every console store
            own_db.close()

        app.cleanup_ctx.append(database_ctx)
    app[CLOCK] = clock

    async def console_ctx(app: web.Application) -> AsyncIterator[None]:
        executor = concurrent.futures.ThreadPoolExecutor(workers,
                                                         thread_name_prefix="console")
        own: TicketService | None = None
        if tickets is not None:
            service = app[tickets]
        else:
            assert files_dir is not None
            service = own = TicketService(database_url, config, files_dir, clock=clock,
                                          upload_limits=upload_limits or UploadLimits())
        users = UserStore(db)
        app[EXECUTOR], app[SERVICE], app[USERS] = executor, service, users
        log.info("ticket API on %s, public pages on /public/{tenant}/", API)
        try:
            yield
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            users.close()
            if own is not None:
                own.close()

    app.cleanup_ctx.append(console_ctx)
    # JSON errors for /api/v1 and /public/ (on the root: also for paths no sub-app owns).
    app.middlewares.append(error_middleware)
    add_hsts(app)  # Strict-Transport-Security over https (proxies.py)
    apps = ConsoleApps(root=app, api=web.Application(middlewares=[auth_middleware]),
                       console=web.Application(), public=web.Application())
    apps.api.router.add_get("/openapi.json", openapi_json, name="openapi")
    add_routes(apps.api)
    add_callback_routes(apps, db)
    if queue:
        add_agent_routes(apps)
        add_transfer_routes(apps)  # calls live in the same app as the queue
        add_wallboard_routes(apps, database=db)  # wallboard/http.py
        add_listen_routes(apps, db)  # supervisors listen in (listen_api.py)
        add_desk_routes(apps, db)  # the operator desk (desk/pages.py)
    add_public_routes(apps)
    add_open311_routes(apps, db)  # /open311/v2/: GeoReport v2 (open311/http.py)
    add_static_routes(apps)  # /console/static/*.js|css (pages.py)
    add_login_routes(apps, redis=redis)  # /console/login, /console/logout, /console/ (sessions.py)
    add_list_pages(apps, db)  # /console/tickets, /console/calls (tickets/pages.py)
    add_review_pages(apps)  # /console/review: disclosure review (tickets/review_pages.py)
    add_callback_pages(apps)  # /console/callbacks (callbacks/pages.py)
    add_quality_pages(apps, db, recordings)  # /console/quality (quality/pages.py)
    add_size_limit_page(apps)  # Vietnamese 413 page under /console (limits.py)
    add_user_admin_routes(apps, db)  # /console/admin/users (admin_users.py)
    if live_config is not None:
        add_admin_shift_routes(apps, live_config, database=db)
    for add in extra_routes:
        add(apps)
    apps.mount()
