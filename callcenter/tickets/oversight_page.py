"""The oversight overview in the console (issue 17, item 3): ``GET /console/oversight``.

"Sở Y tế … theo dõi phản ánh … và hỗ trợ các địa phương"; "Văn phòng … theo dõi tình hình xử
lý … trên địa bàn". A unit that oversees fields or places (``oversees`` in the config) sees,
for its own unit, the late tickets first (most overdue first, with the holder and the holder's
deadline), then counts by state and by holder unit; supervisors and admins choose the unit
(``?unit=``). Everything here is read only: each code links to the ticket's page, where an
overseer gets no forms (``TicketService`` refuses its actions anyway).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from aiohttp import web

from callcenter.console import listing as ls
from callcenter.console.auth import actor_of, in_thread
from callcenter.console.context import CLOCK, CONSOLE_PREFIX, SERVICE, ConsoleApps, sub_path
from callcenter.console.pages import render
from callcenter.console.rendering import environment
from callcenter.console.sessions import require_console_role
from callcenter.tickets import deadlines as dl
from callcenter.tickets.config import TicketPolicy
from callcenter.tickets.pages import _no_tenant, _policy, _unit_name
from callcenter.tickets.rules import OversightScope, oversight_scope
from callcenter.tickets.service import OversightOverview

PATH: Final = "/console/oversight"
ROLES: Final = ("unit", "supervisor", "admin")
_ENV: Final = environment("callcenter.tickets")  # templates/oversight.html


def _scope_text(policy: TicketPolicy, scope: OversightScope) -> tuple[list[str], list[str]]:
    """The fields and places of a scope by their Vietnamese names."""
    fields = [f.name for f in policy.fields if f.id in scope.fields]  # the tenant's order
    places: list[str] = []
    for pid in sorted(scope.districts | scope.communes):
        found = policy.place(pid)
        if found is None:
            places.append(pid)
            continue
        district, commune = found
        places.append(f"{commune.name}, {district.name}" if commune else district.name)
    return fields, places


def _late_row(t: Any, policy: TicketPolicy, now: dt.datetime) -> dict[str, Any]:
    place = policy.place(t.place) if t.place else None
    return {"code": t.code, "received_at": t.received_at, "resolve_due": t.resolve_due,
            "field_name": policy.field_name(t.field) or t.field,
            "place": (f"{place[1].name}, {place[0].name}" if place[1] else place[0].name)
            if place else "",
            "unit_name": _unit_name(policy, t.unit), "state_label": ls.state_label(t.state.value),
            "days_late": dl.days_late(t, now), "urgent": t.urgent}


def _holder_row(h: Any, policy: TicketPolicy) -> dict[str, Any]:
    states = h.by_state
    open_n = sum(states.get(s, 0) for s in ("new", "forwarded", "in_progress", "returned",
                                            "reopened"))
    done = sum(states.get(s, 0) for s in ("answered", "resolved", "closed"))
    return {"unit": h.unit or "", "unit_name": _unit_name(policy, h.unit), "total": h.total,
            "open": open_n, "late": h.late, "done": done}


async def oversight_page(request: web.Request) -> web.StreamResponse:
    """GET /console/oversight[?unit=]: the overview of what a unit oversees."""
    user = require_console_role(request, ROLES)
    policy = _policy(request, user)
    if policy is None:
        return _no_tenant()
    app = request.config_dict
    overseers = [u for u in policy.units if oversight_scope(policy, u.id)]
    if user.role == "unit":
        chosen: str | None = user.unit
    else:
        asked = request.query.get("unit", "")
        chosen = asked if any(u.id == asked for u in overseers) else None
    overview: OversightOverview | None = None
    if chosen is not None and oversight_scope(policy, chosen):
        overview = await in_thread(app, app[SERVICE].oversight, actor_of(user), user.tenant,
                                   chosen)
    now = app[CLOCK]()
    heading = "Theo dõi phản ánh theo lĩnh vực, địa bàn"
    if chosen is not None:
        heading += f" — {_unit_name(policy, chosen)}"
    fields, places = _scope_text(policy, overview.scope) if overview else ([], [])
    return render(
        request, _ENV, "oversight.html", user, title=heading, heading=heading,
        unit_user=user.role == "unit", overseers=overseers, chosen=chosen, o=overview,
        fields=fields, places=places,
        late=[_late_row(t, policy, now) for t in overview.late] if overview else [],
        states=[(k, v, overview.by_state.get(k, 0) if overview else 0)
                for k, v in ls.TICKET_STATE_LABELS.items()],
        holders=[_holder_row(h, policy) for h in overview.by_holder] if overview else [],
        status=404 if request.query.get("unit") and chosen is None else 200)


def add_oversight_page(apps: ConsoleApps) -> None:
    """Add the oversight overview to the console sub-app."""
    apps.console.router.add_get(sub_path(CONSOLE_PREFIX, PATH), oversight_page,
                                name="console_oversight")
