"""User administration in the console (``/console/admin/users``). (Being built: issue 7,
part 1.)"""

from __future__ import annotations

from aiohttp import web


def add_user_admin_routes(app: web.Application, database_url: str) -> None:
    """Add the user administration pages to ``app``."""
