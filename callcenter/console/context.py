"""The console's typed app keys and small look-ups shared by the API and the public pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from yarl import URL

from callcenter.config.model import HotlineConfig, Tenant
from callcenter.console.errors import ApiError
from callcenter.tickets.service import TicketService

SERVICE = web.AppKey("console_ticket_service", TicketService)
CONFIG: web.AppKey[Callable[[], HotlineConfig]] = web.AppKey("console_config")
CLOCK: web.AppKey[Callable[[], dt.datetime]] = web.AppKey("console_clock")

API_PREFIX: Final = "/api/v1"
CONSOLE_PREFIX: Final = "/console"
PUBLIC_PREFIX: Final = "/public"

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


@dataclass(frozen=True)
class ConsoleApps:
    """Where ``setup_console`` and the slices' ``add_*`` functions put things: shared
    resources, app keys and cleanup contexts on ``root`` (the composition root's app), routes
    on the sub-app they belong to, with paths relative to its prefix (``sub_path``)."""

    root: web.Application
    api: web.Application      # mounted at API_PREFIX
    console: web.Application  # mounted at CONSOLE_PREFIX
    public: web.Application   # mounted at PUBLIC_PREFIX

    def mount(self) -> None:
        """Add the sub-apps to the root, last: aiohttp freezes a sub-app when it is mounted."""
        self.root[SUBAPPS] = {API_PREFIX: self.api, CONSOLE_PREFIX: self.console,
                              PUBLIC_PREFIX: self.public}
        for prefix, sub in self.root[SUBAPPS].items():
            self.root.add_subapp(prefix, sub)


# The console's sub-apps by prefix, set on the root by ``ConsoleApps.mount``.
SUBAPPS: web.AppKey[dict[str, web.Application]] = web.AppKey("console_subapps")


def sub_path(prefix: str, path: str) -> str:
    """A full path under ``prefix`` as the route path of the sub-app mounted there."""
    if path != prefix and not path.startswith(prefix + "/"):
        raise ValueError(f"{path!r} is not under {prefix!r}")
    return path[len(prefix):]


def url_for(app: Shared, name: str, **parts: str) -> URL:
    """The full URL of the console route named ``name``, in whichever sub-app has it."""
    for sub in app[SUBAPPS].values():
        if name in sub.router:
            return sub.router[name].url_for(**parts)
    raise KeyError(f"no console route named {name!r}")
