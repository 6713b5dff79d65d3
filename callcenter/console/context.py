"""The console's typed app keys and small look-ups shared by the API and the public pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from callcenter.config.model import HotlineConfig, Tenant
from callcenter.console.errors import ApiError
from callcenter.tickets.service import TicketService

SERVICE = web.AppKey("console_ticket_service", TicketService)
CONFIG: web.AppKey[Callable[[], HotlineConfig]] = web.AppKey("console_config")
CLOCK: web.AppKey[Callable[[], dt.datetime]] = web.AppKey("console_clock")



# What a handler reads the app's resources from: ``request.config_dict`` (its own app and every
# app it is mounted in: the console's sub-apps read what the composition root set), or an app.
Shared = web.Application | ChainMapProxy


def find_tenant(app: Shared, tenant_id: str) -> Tenant | None:
    """The tenant in force with this id, or None."""
    return app[CONFIG]().tenant(tenant_id)


def tenant_or_404(app: Shared, tenant_id: str) -> Tenant:
    """The tenant in force; 404 ``tenant.not_found`` if the config has no such tenant."""
    tenant = find_tenant(app, tenant_id)
    if tenant is None:
        raise ApiError("tenant.not_found", f"no tenant {tenant_id!r}")
    return tenant
