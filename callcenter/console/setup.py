"""Wire the console's HTTP side into the app: ticket API, public pages, OpenAPI, auth.

Called once from the composition root (``callcenter.app.build_app``)::

    setup_console(app, database_url=settings.database_url, config=app[CONFIG],
                  files_dir=settings.state_dir / "files")

It adds the routes, the two middlewares (JSON errors, then bearer auth; both only act on
``/api/v1`` and ``/public/``), and a cleanup context that opens the ticket service, the user
store and the console's own thread pool (so slow report queries never hold up call records
on the default pool) and closes them in reverse order. The database is migrated by the
app's store context, which must come earlier in ``cleanup_ctx``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from callcenter.console.api import API, add_routes
from callcenter.console.auth import EXECUTOR, USERS, auth_middleware
from callcenter.console.context import CLOCK, CONFIG, SERVICE, utcnow
from callcenter.console.errors import error_middleware
from callcenter.console.openapi import spec
from callcenter.console.public import add_public_routes
from callcenter.domain.model import HotlineConfig
from callcenter.store.users import UserStore
from callcenter.tickets.service import TicketService

log = logging.getLogger("callcenter.console")

DEFAULT_WORKERS = 8


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(spec(), headers={"Cache-Control": "public, max-age=300"})


def setup_console(app: web.Application, *, database_url: str,
                  config: Callable[[], HotlineConfig], files_dir: Path,
                  max_upload_bytes: int | None = None,
                  clock: Callable[[], dt.datetime] = utcnow,
                  workers: int = DEFAULT_WORKERS) -> None:
    """Add the ticket API, the public pages and their resources to ``app`` (not yet started).

    ``config`` is read at every request (the app's LiveConfig), so reloads apply at once.
    """
    app[CONFIG] = config
    app[CLOCK] = clock

    async def console_ctx(app: web.Application) -> AsyncIterator[None]:
        executor = concurrent.futures.ThreadPoolExecutor(workers,
                                                         thread_name_prefix="console")
        kwargs = {} if max_upload_bytes is None else {"max_upload_bytes": max_upload_bytes}
        service = TicketService(database_url, config, files_dir, clock=clock, **kwargs)
        users = UserStore(database_url)
        app[EXECUTOR], app[SERVICE], app[USERS] = executor, service, users
        log.info("ticket API on %s, public pages on /public/{tenant}/", API)
        try:
            yield
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            users.close()
            service.close()

    app.cleanup_ctx.append(console_ctx)
    app.middlewares.extend([error_middleware, auth_middleware])
    app.router.add_get(f"{API}/openapi.json", openapi_json, name="openapi")
    add_routes(app)
    add_public_routes(app)
