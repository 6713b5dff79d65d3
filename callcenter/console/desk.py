"""The operator desk (``/console/desk``): the current call, the caller's tickets, the ticket
form with FAQ search, transfer, pause and wrap-up. (Being built: issue 7, part 4.)"""

from __future__ import annotations

from aiohttp import web

from callcenter.queue.acd import AcdQueue


def add_desk_routes(app: web.Application, acd: web.AppKey[AcdQueue]) -> None:
    """Add the desk page and its API routes to ``app``."""
