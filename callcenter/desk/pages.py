"""The operator desk (``/console/desk``): the current call, the caller's tickets, the ticket
form with FAQ search, transfer, pause and wrap-up.

The page is rendered once with what does not change during a shift (the tenant's fields,
places, units, pause reasons, labels) as a JSON data block; ``static/desk.js`` then polls
``GET /api/v1/desk`` (``desk/http.py``) every 1.5 s and acts through the existing API:
``POST /api/v1/agents/{ext}/{action}`` (ready, pause, unpause, login), ``POST /api/v1/tickets``
(+ ``/actions`` forward), ``POST /api/v1/calls/{call_id}/transfer`` (+ complete/cancel) and
``GET /api/v1/faq``, with the session cookie and the page's CSRF token.

Operators open their own desk (user name = extension). Supervisors and admins may open any
operator's desk of their tenant read-only (``?ext=101``): the buttons are disabled on the page
and the API refuses an operator's actions on another extension anyway.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from aiohttp import web

from callcenter.config.model import Tenant
from callcenter.console.context import CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.console.listing import TICKET_STATE_LABELS
from callcenter.console.pages import render
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.desk.http import add_desk_api
from callcenter.queue.texts import STATE_LABELS
from callcenter.store.database import DatabaseRef
from callcenter.tickets.config import policy_of
from callcenter.transfers import rules as xf

log = logging.getLogger("callcenter.desk.pages")

DESK_PATH: Final = "/console/desk"
ROLES: Final = ("operator", "supervisor", "admin")
_EXT: Final = re.compile(r"[0-9]{3,6}")

_ENV: Final = environment("callcenter.desk")  # templates/desk.html


def _places(tenant: Tenant) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for d in policy_of(tenant).districts:
        out.append({"id": d.id, "name": d.name})
        out.extend({"id": c.id, "name": f"{d.name} — {c.name}"} for c in d.communes)
    return out


def page_data(tenant: Tenant) -> dict[str, Any]:
    """What the page's script needs that does not change during a shift."""
    policy = policy_of(tenant)
    units = [{"id": u.id, "name": u.name} for u in policy.units]
    return {
        "tenant": tenant.id, "tenant_name": tenant.name,
        "fields": [{"id": f.id, "name": f.name} for f in tenant.fields],
        "units": units,
        "unit_names": {u.id: u.name for u in policy.units},
        "pause_reasons": [{"id": r.id, "label": r.label}
                          for r in tenant.operators.queue.pause_reasons],
        "ticket_states": dict(TICKET_STATE_LABELS),  # the one table, every state
        "agent_states": {s.value: label for s, label in STATE_LABELS.items()},
    }


async def desk_page(request: web.Request) -> web.StreamResponse:
    """GET /console/desk: an operator's own desk; a supervisor/admin: ?ext= read-only."""
    user = require_console_role(request, ROLES)
    tenant = find_tenant(request.config_dict, user.tenant)
    if tenant is None:
        return error_page(404, "tenant.not_found", "Không tìm thấy tỉnh",
                          "Cấu hình không còn tỉnh của tài khoản này.")
    operators = tenant.operators.operators
    wanted = request.query.get("ext")
    readonly = user.role != "operator"
    if user.role == "operator":
        if wanted and wanted != user.name:
            # %r: the extension is the raw query string (no forged log lines via CR/LF).
            log.info("desk: %r refused the desk of %r", user.name, wanted)
            return error_page(403, "auth.forbidden", "Không có quyền truy cập",
                              "Điện thoại viên chỉ mở được bàn làm việc của máy lẻ mình.",
                              back=DESK_PATH, back_label="Về bàn làm việc của tôi")
        ext: str | None = user.name
    elif wanted and _EXT.fullmatch(wanted) and any(o.extension == wanted for o in operators):
        ext = wanted
    else:
        ext = None
    op = next((o for o in operators if o.extension == ext), None)
    if user.role == "operator" and op is None:
        return error_page(404, "agent.unknown", "Không có máy lẻ",
                          f"Tài khoản {user.name} không trùng với máy lẻ điện thoại viên nào "
                          "của tỉnh. Tên đăng nhập của điện thoại viên phải là số máy lẻ.")
    policy = policy_of(tenant)
    transfer_units = [{"id": u.id, "name": u.name, "hotline": u.hotline}
                      for u in xf.targets(policy.units)]
    data = {**page_data(tenant), "ext": ext, "readonly": readonly}
    return render(request, _ENV, "desk.html", user, title="Bàn làm việc", data=data, ext=ext,
                  readonly=readonly, choose=ext is None, operators=operators,
                  operator_name=op.name if op else "", fields=tenant.fields,
                  places=_places(tenant), units=data["units"], transfer_units=transfer_units,
                  pause_reasons=tenant.operators.queue.pause_reasons)


def add_desk_routes(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Add the desk page (console sub-app) and its API routes (API sub-app); the root's
    ``queue.redis.ACD`` is the AcdQueue at request time, ``database`` the store the FAQ is
    read from."""
    apps.console.router.add_get(sub_path(CONSOLE_PREFIX, DESK_PATH), desk_page,
                                name="console_desk")
    add_desk_api(apps, database)
