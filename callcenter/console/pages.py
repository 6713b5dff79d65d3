"""The console pages' common frame: one layout (header with the role's links, the user, a
log-out button), one style sheet readable on a laptop and a tablet, and tenant-local times.

The layout is ``templates/base.html``. A page is a template file beside the code that
renders it (``<slice>/templates/desk.html``: ``{% extends "base.html" %}{% block main %}...
{% endblock %}``), loaded through its package's environment (``console.rendering``)::

    _ENV = environment("callcenter.desk")
    return render(request, _ENV, "desk.html", user, title="Bàn làm việc", ...)

``render`` passes ``user``, ``role_name``, ``links`` (the role's pages), ``csrf``, ``here``
(the path, to mark the current link), ``tz`` (the user's tenant's time zone) and the
filters ``local`` (a datetime shown in that zone, ``dd/mm/yyyy HH:MM``) and ``local_s``
(with seconds). Scripts read the CSRF token from ``<meta name="csrf-token">`` and send it
as ``X-CSRF-Token`` on unsafe API calls (``Hotline.send`` of ``static/console.js``, the
helpers the pages' scripts share: a page loads it before its own script). Blocks: ``head``
(extra ``<link>`` and ``<script src>``: the CSP allows no inline script), ``main``.
Static files are served under ``STATIC_PREFIX`` from ``static/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from callcenter.console.context import CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.store.users import User

DEFAULT_TZ: Final = "Asia/Ho_Chi_Minh"
STATIC_PREFIX: Final = "/console/static/"
STATIC_DIR: Final = Path(__file__).with_name("static")
_STATIC_NAME: Final = re.compile(r"[a-z0-9_-]{1,64}\.(js|css)")
_STATIC_TYPES: Final = {"js": "text/javascript", "css": "text/css"}

ROLE_NAMES: Final = {"operator": "Điện thoại viên", "supervisor": "Giám sát viên",
                     "admin": "Quản trị viên", "unit": "Đơn vị xử lý"}
# The pages a role may open, in menu order.
ROLE_LINKS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "operator": (("/console/desk", "Bàn làm việc điện thoại viên"),
                 ("/console/callbacks", "Yêu cầu gọi lại")),
    "supervisor": (("/console/wallboard", "Màn hình giám sát"),
                   ("/console/tickets", "Phiếu phản ánh"),
                   ("/console/review", "Rà soát công khai"),
                   ("/console/oversight", "Theo dõi theo lĩnh vực, địa bàn"),
                   ("/console/calls", "Cuộc gọi"),
                   ("/console/callbacks", "Yêu cầu gọi lại"),
                   ("/console/quality", "Kiểm tra chất lượng")),
    "admin": (("/console/wallboard", "Màn hình giám sát"),
              ("/console/tickets", "Phiếu phản ánh"),
              ("/console/review", "Rà soát công khai"),
              ("/console/oversight", "Theo dõi theo lĩnh vực, địa bàn"),
              ("/console/calls", "Cuộc gọi"),
              ("/console/callbacks", "Yêu cầu gọi lại"),
              ("/console/quality", "Kiểm tra chất lượng"),
              ("/console/admin/shifts", "Quản trị: ca trực và số line"),
              ("/console/admin/users", "Quản trị: người dùng")),
    "unit": (("/console/tickets", "Phiếu phản ánh của đơn vị"),
             ("/console/oversight", "Theo dõi lĩnh vực, địa bàn")),
}


def zone_of(request: web.Request, tenant_id: str) -> ZoneInfo:
    """The tenant's time zone (the default when the config no longer has the tenant)."""
    tenant = find_tenant(request.config_dict, tenant_id)
    return ZoneInfo(tenant.timezone if tenant is not None else DEFAULT_TZ)


def local_time(value: dt.datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """``dd/mm/yyyy HH:MM[:SS]`` in ``zone``; naive datetimes are taken as UTC; '' for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%d/%m/%Y %H:%M:%S" if seconds else
                                           "%d/%m/%Y %H:%M")


def render(request: web.Request, env: jinja2.Environment, template: str, user: User, *,
           status: int = 200, title: str, **values: Any) -> web.Response:
    """A console page for ``user``: the template inside the layout, as text/html."""
    # Imported here: sessions imports this module for ROLE_NAMES/ROLE_LINKS.
    from callcenter.console.sessions import console_csrf

    zone = zone_of(request, user.tenant)
    body = env.get_template(template).render(
        title=title, user=user, role_name=ROLE_NAMES.get(user.role, user.role),
        links=ROLE_LINKS.get(user.role, ()), csrf=console_csrf(request), here=request.path,
        tz=zone.key, local=lambda t: local_time(t, zone),
        local_s=lambda t: local_time(t, zone, seconds=True), **values)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


async def static_file(request: web.Request) -> web.StreamResponse:
    """GET /console/static/{name}: the pages' scripts and style sheets (.js, .css only)."""
    name = request.match_info["name"]
    match = _STATIC_NAME.fullmatch(name)
    path = STATIC_DIR / name
    if match is None or not path.is_file():
        raise web.HTTPNotFound()
    data = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=data, content_type=_STATIC_TYPES[match.group(1)], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


def add_static_routes(apps: ConsoleApps) -> None:
    """Serve the console's static files from the console sub-app (setup_console calls this
    once)."""
    apps.console.router.add_get(sub_path(CONSOLE_PREFIX, STATIC_PREFIX) + "{name}", static_file,
                                name="console_static")
