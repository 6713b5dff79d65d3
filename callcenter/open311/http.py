"""Open311 GeoReport v2 over HTTP, at ``/open311/v2/`` (a sub-app of its own, no login):

==============================================  =================================================
``GET  /open311/v2/discovery.{json,xml}``       Service Discovery: this endpoint and its formats
``GET  /open311/v2/services.{json,xml}``        the tenant's fields as services
``GET  /open311/v2/services/{code}.{json,xml}`` a service's definition (no attributes)
``GET  /open311/v2/requests.{json,xml}``        tickets: service_request_id, service_code,
                                                start_date, end_date, status (90 days, 1000 max)
``POST /open311/v2/requests.{json,xml}``        open a ticket (form-encoded; needs ``api_key``)
``GET  /open311/v2/requests/{code}.{json,xml}`` one ticket
==============================================  =================================================

``jurisdiction_id`` (the tenant id) is required when the config has several tenants. Reads
need no key and show no personal data (``rules.request_view``); a POST needs a valid,
unrevoked key of that tenant (``callcenter open311 key create``), and the ticket it opens has
channel ``open311``, is opened by the ``system`` role as ``open311:<key name>`` (so the key's
name is in the ticket's audit log) and keeps ``media_url`` as a link (never fetched).

Errors are the spec's: a list of ``{code, description}`` (``<errors><error>`` in XML) with
HTTP 400 (missing or invalid argument), 403 (missing, invalid or revoked key, or another
tenant's), 404 (jurisdiction, service, request or path not found), 405 (a known path, another
method); beyond the spec, 503 when the database is unavailable (with Retry-After) and 500 for
a fault (logged, never shown).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from sqlalchemy.exc import OperationalError

from callcenter.config.model import Tenant
from callcenter.console.auth import in_thread
from callcenter.console.context import CLOCK, CONFIG, SERVICE, ConsoleApps
from callcenter.open311.rules import (
    Format,
    Open311Error,
    created_view,
    discovery,
    error_list,
    jurisdiction,
    parse_filters,
    parse_new_request,
    render,
    request_view,
    service_definition,
    services,
)
from callcenter.open311.store import Open311Store
from callcenter.store.database import DatabaseRef
from callcenter.tickets.config import policy_of
from callcenter.tickets.rules import Actor, Ticket, TicketError, is_public, parse_ticket_code
from callcenter.tickets.service import scrub

log = logging.getLogger("callcenter.open311")

OPEN311_PREFIX: Final = "/open311/v2"
STORE = web.AppKey("open311_store", Open311Store)
_FMT = "{fmt:json|xml}"
FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _format(request: web.Request) -> Format:
    """The format asked for: the path's extension (errors of other paths: JSON)."""
    return "xml" if request.path.endswith(".xml") else "json"


def _fmt(request: web.Request) -> Format:
    """The format of a matched route (its ``.json`` or ``.xml``)."""
    return "xml" if request.match_info.get("fmt") == "xml" else "json"


def _respond(fmt: Format, shape: str, payload: Any, *, status: int = 200,
             headers: dict[str, str] | None = None) -> web.Response:
    body, content_type = render(fmt, shape, payload)
    return web.Response(body=body, status=status, content_type=content_type, charset="utf-8",
                        headers=headers)


def _error(fmt: Format, status: int, description: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return _respond(fmt, "errors", error_list(status, description), status=status,
                    headers=headers)


@web.middleware
async def open311_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The spec's error bodies, in the format the path asks for."""
    fmt = _format(request)
    try:
        response = await handler(request)
    except Open311Error as e:
        return _respond(fmt, "errors", error_list(e.status, e.description, e.code),
                        status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        allow = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        return _error(fmt, e.status, e.reason, allow or None)
    except OperationalError as e:
        log.error("database unavailable for %s %s: %s", request.method, _route(request),
                  str(e.orig or e).splitlines()[0][:200])
        return _error(fmt, 503, "the ticket store is unavailable; retry later",
                      {"Retry-After": "5"})
    except Exception as e:
        # The frames only: an exception's text may quote a citizen's number or SQL parameters.
        frames = "".join(traceback.format_list(traceback.extract_tb(e.__traceback__)))
        log.error("unexpected %s in %s %s\n%s", type(e).__name__, request.method,
                  _route(request), frames.rstrip())
        return _error(fmt, 500, "internal error (logged); retry later or tell the hotline")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _route(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else request.path


def _listed_args(request: web.Request) -> dict[str, str]:
    """Query arguments; one declared several times counts as a comma-delimited list."""
    return {k: ",".join(request.query.getall(k)) for k in request.query}


def _tenant(request: web.Request, given: str | None) -> Tenant:
    config = request.config_dict[CONFIG]()
    tenant_id = jurisdiction(given, [t.id for t in config.tenants])
    tenant = config.tenant(tenant_id)
    assert tenant is not None  # jurisdiction() only returns ids of the config's tenants
    return tenant


def _reading(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a read: public data, any web app may read it."""
    return {"Access-Control-Allow-Origin": "*"} | (headers or {})


def _public_text(ticket: Ticket) -> Callable[[str], str]:
    return lambda text: scrub(text, ticket.citizen_name, ticket.citizen_phone)


async def list_services(request: web.Request) -> web.StreamResponse:
    """GET Service List."""
    tenant = _tenant(request, request.query.get("jurisdiction_id"))
    return _respond(_fmt(request), "services", services(policy_of(tenant)),
                    headers=_reading({"Cache-Control": "public, max-age=300"}))


async def get_service(request: web.Request) -> web.StreamResponse:
    """GET Service Definition."""
    tenant = _tenant(request, request.query.get("jurisdiction_id"))
    definition = service_definition(policy_of(tenant), request.match_info["code"])
    return _respond(_fmt(request), "service_definition", definition,
                    headers=_reading({"Cache-Control": "public, max-age=300"}))


async def _views(request: web.Request, tenant: Tenant,
                 tickets: list[Ticket]) -> list[dict[str, Any]]:
    policy = policy_of(tenant)
    published = [t.code for t in tickets if is_public(t)]
    media = (await in_thread(request.config_dict, request.config_dict[STORE].media_urls,
                             published)) if published else {}
    return [request_view(t, policy, media_url=media.get(t.code), public_text=_public_text(t))
            for t in tickets]


async def list_requests(request: web.Request) -> web.StreamResponse:
    """GET Service Requests."""
    args = _listed_args(request)
    tenant = _tenant(request, args.get("jurisdiction_id"))
    filters = parse_filters(args, now=request.config_dict[CLOCK](), policy=policy_of(tenant))
    tickets = await in_thread(request.config_dict, request.config_dict[STORE].find_tickets,
                              tenant.id, filters)
    return _respond(_fmt(request), "requests",
                    await _views(request, tenant, tickets),
                    headers=_reading({"Cache-Control": "no-cache"}))


async def get_request(request: web.Request) -> web.StreamResponse:
    """GET Service Request."""
    tenant = _tenant(request, request.query.get("jurisdiction_id"))
    code = request.match_info["id"]
    missing = Open311Error(404, f"service_request_id {code[:40]!r} was not found")
    try:
        parse_ticket_code(code)
    except TicketError:
        raise missing from None
    ticket = await in_thread(request.config_dict, request.config_dict[STORE].find_ticket,
                             tenant.id, code)
    if ticket is None:
        raise missing
    return _respond(_fmt(request), "requests",
                    await _views(request, tenant, [ticket]),
                    headers=_reading({"Cache-Control": "no-cache"}))


async def post_request(request: web.Request) -> web.StreamResponse:
    """POST Service Request: a new ticket, opened by the system as the key's app."""
    if request.content_type not in FORM_TYPES:
        raise Open311Error(400, "send the arguments form-encoded "
                                "(Content-Type: application/x-www-form-urlencoded)")
    form = await request.post()
    args = {k: v for k, v in form.items() if isinstance(v, str)}
    given_key = args.get("api_key") or request.query.get("api_key")
    if not given_key:
        raise Open311Error(403, "api_key was not provided")
    store = request.config_dict[STORE]
    now = request.config_dict[CLOCK]()
    key = await in_thread(request.config_dict, store.authenticate, given_key, now=now)
    if key is None:
        raise Open311Error(403, "invalid api_key: unknown or revoked")
    tenant = _tenant(request, args.get("jurisdiction_id") or request.query.get("jurisdiction_id"))
    if key.tenant != tenant.id:
        raise Open311Error(403, f"this api_key is not valid for jurisdiction {tenant.id}")
    policy = policy_of(tenant)
    new = parse_new_request(args, policy, app=key.name)
    actor = Actor(f"open311:{key.name}", "system")
    try:
        ticket = await in_thread(
            request.config_dict, request.config_dict[SERVICE].open, tenant.id, actor,
            channel="open311", content=new.content, field=new.service_code, place=new.place,
            citizen_name=new.citizen_name, citizen_phone=new.citizen_phone)
    except TicketError as e:
        raise Open311Error(400, e.message) from None
    await in_thread(request.config_dict, store.record_request, ticket.code, tenant.id, key.id,
                    new.media_url, now=now)
    log.info("open311: app %s opened ticket %s (%s, field %s)", key.name, ticket.code,
             tenant.id, ticket.field)
    return _respond(_fmt(request), "requests",
                    [created_view(ticket, policy)])


async def get_discovery(request: web.Request) -> web.StreamResponse:
    """Service Discovery: this endpoint's address and formats (no jurisdiction needed)."""
    base = str(request.url.origin()) + OPEN311_PREFIX + "/"
    return _respond(_fmt(request), "discovery", discovery(base),
                    headers=_reading({"Cache-Control": "public, max-age=300"}))


async def not_found(request: web.Request) -> web.StreamResponse:
    """Any other path or method under the prefix: the spec's 404 (405 for a known path)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
    raise Open311Error(404, "no such resource: see services.json and requests.json "
                            "(or .xml) under /open311/v2/")


def add_open311_routes(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Mount the Open311 sub-app at ``/open311/v2`` on the root (not yet started) and add its
    store's cleanup context; the console's ticket service, executor and config serve it."""

    async def open311_ctx(app: web.Application) -> AsyncIterator[None]:
        store = Open311Store(database)
        app[STORE] = store
        try:
            yield
        finally:
            store.close()

    apps.root.cleanup_ctx.append(open311_ctx)
    sub = web.Application(middlewares=[open311_errors])
    sub.router.add_get(f"/discovery.{_FMT}", get_discovery, name="open311_discovery")
    sub.router.add_get(f"/services.{_FMT}", list_services, name="open311_services")
    sub.router.add_get(f"/services/{{code:[^/]+}}.{_FMT}", get_service,
                       name="open311_service")
    sub.router.add_get(f"/requests.{_FMT}", list_requests, name="open311_requests")
    sub.router.add_post(f"/requests.{_FMT}", post_request, name="open311_create")
    sub.router.add_get(f"/requests/{{id:[^/]+}}.{_FMT}", get_request, name="open311_request")
    sub.router.add_route("*", "/{tail:.*}", not_found)
    apps.root.add_subapp(OPEN311_PREFIX, sub)
