"""Public disclosure (công khai): resolved tickets marked publishable, question and answer,
with personal data removed by the ticket service's ``public_feed``; no authentication.

``/public/{tenant}/tickets.json`` and a plain Vietnamese page ``/public/{tenant}/`` with a
GET form to filter by field, unit and month. The page is rendered by Jinja2 with
autoescaping on, so a petition's text can never become markup; the page loads nothing from
elsewhere and its Content-Security-Policy says so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from callcenter.config.model import Tenant
from callcenter.console.auth import in_thread
from callcenter.console.context import (
    PUBLIC_PREFIX,
    SERVICE,
    ConsoleApps,
    sub_path,
    tenant_or_404,
)
from callcenter.console.errors import ApiError, invalid
from callcenter.console.rendering import environment
from callcenter.console.validation import Param, parse_query
from callcenter.tickets.config import policy_of

FEED_PATH = "/public/{tenant}/tickets.json"
PAGE_PATH = "/public/{tenant}/"
P_TENANT = Param("tenant", where="path", pattern=r"[a-z0-9_-]{1,32}", max_len=32,
                 description="tenant (province) id")
PARAMS = (
    P_TENANT,
    Param("field", pattern=r"[a-z0-9_.-]{1,64}", description="field id"),
    Param("unit", pattern=r"[a-z0-9_-]{1,32}", max_len=32, description="level-2 unit id"),
    Param("month", kind="month", description="month of receipt (local), YYYY-MM"),
)
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
_ENV = environment("callcenter.console")  # templates/public.html


def _filters(request: web.Request, tenant: Tenant) -> dict[str, Any]:
    # A browser form sends empty fields for "all": treat them as absent.
    query = {k: v for k, v in request.query.items() if v != ""}
    q = parse_query(PARAMS, query)
    policy = policy_of(tenant)
    if q["field"] is not None and policy.field_name(q["field"]) is None:
        raise invalid("field", f"no field {q['field']!r} in {tenant.id}", "public.unknown_field")
    if q["unit"] is not None and policy.unit(q["unit"]) is None:
        raise invalid("unit", f"no unit {q['unit']!r} in {tenant.id}", "public.unknown_unit")
    return {"field": q["field"], "unit": q["unit"], "month": q["month"]}


async def _feed(request: web.Request, tenant: Tenant, f: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = await in_thread(
        request.config_dict, request.config_dict[SERVICE].public_feed, tenant.id, field=f["field"],
        unit=f["unit"], month=f["month"])
    return items


def _tenant(request: web.Request) -> Tenant:
    raw = request.match_info.get("tenant", "")
    try:
        tenant_id = P_TENANT.parse(raw)
    except ApiError:  # not even shaped like a tenant id: there is no such tenant
        raise ApiError("tenant.not_found", "no such tenant") from None
    return tenant_or_404(request.config_dict, tenant_id)


async def feed_json(request: web.Request) -> web.StreamResponse:
    """The public feed as JSON."""
    tenant = _tenant(request)
    items = await _feed(request, tenant, _filters(request, tenant))
    return web.json_response({"tenant": tenant.id, "name": tenant.name, "items": items},
                             dumps=_dumps, headers={"Cache-Control": "public, max-age=60"})


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _day(value: Any) -> str:
    """A feed date (YYYY-MM-DD, the tenant's local day) as Vietnamese write it: dd/mm/yyyy."""
    if not isinstance(value, str):
        return ""
    try:
        return dt.date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


async def page(request: web.Request) -> web.StreamResponse:
    """The public page: a filter form and the question/answer list, in Vietnamese."""
    tenant = _tenant(request)
    policy = policy_of(tenant)
    error: str | None = None
    status = 200
    try:
        f = _filters(request, tenant)
        items = await _feed(request, tenant, f)
    except ApiError as e:
        if e.status != 422:
            raise
        error, status, items = "Bộ lọc không hợp lệ: " + e.message, 422, []
        f = {"field": None, "unit": None, "month": None}
    fields = {fi.id: fi.name for fi in policy.fields}
    units = {u.id: u.name for u in policy.units}
    rows = [{
        "code": it.get("code") or "",
        "field": it.get("field_name") or it.get("field") or "",
        "unit": it.get("unit_name") or it.get("unit") or "",
        "received": _day(it.get("received_date")),
        "resolved": _day(it.get("answered_date")),
        "question": it.get("question") or "",
        "answer": it.get("answer") or "",
    } for it in items]
    html = _ENV.get_template("public.html").render(
        tenant=tenant, fields=fields, units=units, f=f, rows=rows, error=error)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status,
                        headers={"Content-Security-Policy": CSP,
                                 "Cache-Control": "public, max-age=60",
                                 "Referrer-Policy": "no-referrer"})


def add_public_routes(apps: ConsoleApps) -> None:
    """Register the public feed and page on the public sub-app."""
    apps.public.router.add_get(sub_path(PUBLIC_PREFIX, FEED_PATH), feed_json, name="publicFeed")
    apps.public.router.add_get(sub_path(PUBLIC_PREFIX, PAGE_PATH), page, name="publicPage")
