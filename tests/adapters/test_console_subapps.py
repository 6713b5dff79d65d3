"""The console as three aiohttp sub-apps on the composition root: ``/api/v1``, ``/console`` and
``/public``. Their handlers read the root's resources through ``request.config_dict``, route
names resolve to full URLs, and paths no route owns keep the error they had on one app."""

from __future__ import annotations

from aiohttp import web

from callcenter.console.auth import USERS
from callcenter.console.context import (
    API_PREFIX,
    CONFIG,
    CONSOLE_PREFIX,
    PUBLIC_PREFIX,
    SERVICE,
    SUBAPPS,
    url_for,
)
from callcenter.open311.http import OPEN311_PREFIX
from tests.support import api as support
from tests.support.api import Api

api = support.api
hotline_config = support.hotline_config


def _root(api: Api) -> web.Application:
    app = api.client.app
    assert app is not None
    return app


async def test_given_console_then_three_subapps_and_resources_on_the_root(api: Api) -> None:
    root = _root(api)
    mounted = {resource.canonical: resource.get_info()["app"]
               for resource in root.router.resources()
               if isinstance(resource, web.PrefixedSubAppResource)}
    # Open311 is a sub-app of its own beside the console's three (open311/http.py).
    assert set(mounted) == {API_PREFIX, CONSOLE_PREFIX, PUBLIC_PREFIX, OPEN311_PREFIX}
    assert {p: a for p, a in mounted.items() if p != OPEN311_PREFIX} == root[SUBAPPS]
    for key in (CONFIG, SERVICE, USERS):
        assert key in root
        assert all(key not in sub for sub in mounted.values())


async def test_given_root_resources_then_each_subapp_handler_reads_them(api: Api) -> None:
    # /api/v1: USERS for the bearer token, SERVICE for the list.
    body = await api.call("GET", "/api/v1/tickets", "tdv.an", 200)
    assert body["items"] == []
    # /public: CONFIG for the tenant, SERVICE for the feed.
    body = await api.call("GET", "/public/dongnai/tickets.json", None, 200)
    assert body["items"] == []
    # /console: the login page (the session middleware reads POLICY and USERS).
    resp = await api.client.get("/console/login")
    assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]


async def test_given_route_names_then_full_urls(api: Api) -> None:
    root = _root(api)
    assert str(url_for(root, "console_login")) == "/console/login"
    assert str(url_for(root, "console_ticket", code="DN-2026-000001")) == \
        "/console/tickets/DN-2026-000001"
    assert str(url_for(root, "publicFeed", tenant="dongnai")) == "/public/dongnai/tickets.json"
    assert str(url_for(root, "getTicket", code="DN-2026-000001")) == \
        "/api/v1/tickets/DN-2026-000001"
    assert str(url_for(root, "openapi")) == "/api/v1/openapi.json"


async def test_given_unknown_paths_then_the_errors_of_before(api: Api) -> None:
    # In the API: no token, 401 first; with one, the JSON 404.
    body = await api.call("GET", "/api/v1/nothing-here", None, 401)
    assert body["error"]["id"] == "auth.required"
    body = await api.call("GET", "/api/v1/nothing-here", "tdv.an", 404)
    assert body["error"]["id"] == "http.not_found"
    body = await api.call("DELETE", "/api/v1/tickets", "tdv.an", 405)
    assert body["error"]["id"] == "http.method_not_allowed"
    # Starts like the API without being in it: still the JSON 404 (the error middleware is
    # on the root for this).
    body = await api.call("GET", "/api/v1x", None, 404)
    assert body["error"]["id"] == "http.not_found"
    # Under /public/: the JSON 404; /public alone is aiohttp's plain one, as before.
    body = await api.call("GET", "/public/dongnai/nothing-here", None, 404)
    assert body["error"]["id"] == "http.not_found"
    resp = await api.client.get("/public")
    assert resp.status == 404 and resp.content_type == "text/plain"
    # Under /console: aiohttp's plain 404, an unsafe request without a session the 403.
    resp = await api.client.get("/console/nothing-here")
    assert resp.status == 404 and resp.content_type == "text/plain"
    resp = await api.client.post("/console/nothing-here", data={"x": "1"})
    assert resp.status == 403
