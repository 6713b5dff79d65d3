"""Ticket and call lists in the console (``/console/tickets``, ``/console/calls``), with xlsx
exports. (Being built: issue 7, parts 1 and 6.)"""

from __future__ import annotations

from aiohttp import web


def add_list_pages(app: web.Application, database_url: str) -> None:
    """Add the ticket and call list pages to ``app``."""
