"""The live queue and the operators' controls over HTTP (``/api/v1/queue``, ``/api/v1/agents``):
real Redis, real user store (SQLite), aiohttp's test client; answers checked against the
OpenAPI document's schemas."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis's validator (already a test dependency)
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.openapi import spec
from callcenter.console.setup import setup_console
from callcenter.queue import agent as ag
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import UserStore
from tests.support.config_files import config_text

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)

# name -> (role, tenant, unit). Operator users named after their extension act on it.
USERS: dict[str, tuple[str, str, str | None]] = {
    "101": ("operator", "dongnai", None),
    "tdv.an": ("operator", "dongnai", None),
    "giamsat": ("supervisor", "dongnai", None),
    "quantri": ("admin", "dongnai", None),
    "syt": ("unit", "dongnai", "so_y_te"),
    "201": ("operator", "thanhhoa", None),
}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    path = tmp_path / "hotline.yaml"
    path.write_text(config_text("two_provinces_operators.yaml"), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    return url


@pytest.fixture
def tokens(db_url: str) -> dict[str, str]:
    store = UserStore(db_url)
    try:
        out = {}
        for name, (role, tenant, unit) in USERS.items():
            store.add_user(name, role, tenant, unit)
            out[name] = store.issue_token(name)[1]
        return out
    finally:
        store.close()


@pytest.fixture
async def acd(redis_server: PrivateRedis, config: HotlineConfig) -> AsyncIterator[AcdQueue]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    q = AcdQueue(client, "test", "pbx1",
                 {t.id: t.operators.queue for t in config.tenants}, clock=Clock())
    for t in config.tenants:
        await q.sync_operators(t.id, t.operators.operators)
    yield q
    await client.aclose()


class Api:
    def __init__(self, client: TestClient[web.Request, web.Application],
                 tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    async def call(self, method: str, path: str, user: str | None, expect: int,
                   **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if user:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body = await resp.json()
        assert resp.status == expect, (resp.status, body)
        return body


async def _client(app: web.Application) -> TestClient[web.Request, web.Application]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    return TestClient(server)


@pytest.fixture
async def api(db_url: str, config: HotlineConfig, tokens: dict[str, str], acd: AcdQueue,
              tmp_path: Path) -> AsyncIterator[Api]:
    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)
    app[ACD] = acd
    async with await _client(app) as client:
        yield Api(client, tokens)


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec(agents=True)["components"]["schemas"][name]
    return schema


def _op(path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = spec(agents=True)["paths"][path][method]
    return op


# ---- GET /queue ----------------------------------------------------------------------------
async def test_given_queued_calls_when_supervisor_gets_queue_then_the_snapshot(
        api: Api, acd: AcdQueue) -> None:
    await acd.agent_event("dongnai", "102", ag.Reachable())
    await acd.agent_event("dongnai", "102", ag.LogIn())
    await acd.enqueue("dongnai", "pbx1-1.1", caller="0909123456", urgent=True)
    body = await api.call("GET", "/api/v1/queue", "giamsat", 200)
    assert body == await acd.snapshot("dongnai")
    assert body["counts"]["queued"] == 1 and body["calls"][0]["urgent"] is True
    jsonschema_rs.validate(_schema("QueueSnapshot"), body)
    for user in ("tdv.an", "quantri"):
        assert (await api.call("GET", "/api/v1/queue?tenant=dongnai", user, 200))["tenant"] \
            == "dongnai"
    other = await api.call("GET", "/api/v1/queue", "201", 200)
    assert other["tenant"] == "thanhhoa" and other["counts"]["queued"] == 0


async def test_given_other_tenant_or_unit_or_no_token_when_get_queue_then_refused(
        api: Api) -> None:
    body = await api.call("GET", "/api/v1/queue?tenant=thanhhoa", "giamsat", 403)
    assert body["error"]["id"] == "auth.forbidden"
    assert (await api.call("GET", "/api/v1/queue", "syt", 403))["error"]["id"] == \
        "auth.forbidden"
    assert (await api.call("GET", "/api/v1/queue", None, 401))["error"]["id"] == \
        "auth.required"
    assert (await api.call("GET", "/api/v1/queue?tenant=BAD!", "giamsat", 422))["error"][
        "details"]["field"] == "tenant"


# ---- GET /agents/{ext} ---------------------------------------------------------------------
async def test_given_operator_when_get_agent_then_state_with_vietnamese_label(
        api: Api, acd: AcdQueue) -> None:
    await acd.agent_event("dongnai", "101", ag.LogIn())
    await acd.agent_event("dongnai", "101", ag.Pause("meeting"))
    body = await api.call("GET", "/api/v1/agents/101", "tdv.an", 200)
    assert (body["tenant"], body["extension"], body["state"], body["reason"]) == (
        "dongnai", "101", "paused", "meeting")
    assert body["state_label"] == "Tạm nghỉ" and body["reason_label"] == "Họp"
    assert body["name"] == "Nguyễn Thị Lan" and body["time_in_state_s"] == 0
    jsonschema_rs.validate(_schema("Agent"), body)


async def test_given_unknown_or_foreign_extension_when_get_agent_then_404_or_403(
        api: Api) -> None:
    body = await api.call("GET", "/api/v1/agents/999", "giamsat", 404)
    assert body["error"] == {"id": "agent.unknown",
                             "message": "Máy lẻ này chưa được khai báo là tổng đài viên."}
    assert (await api.call("GET", "/api/v1/agents/201", "giamsat", 403))["error"]["id"] == \
        "auth.forbidden"
    assert (await api.call("GET", "/api/v1/agents/1x1", "giamsat", 422))["error"]["details"][
        "field"] == "ext"


# ---- POST /agents/{ext}/{action} -----------------------------------------------------------
async def test_given_operator_named_after_extension_when_login_then_available(
        api: Api, acd: AcdQueue) -> None:
    body = await api.call("POST", "/api/v1/agents/101/login", "101", 200)
    assert body["message"] == "Đã đăng nhập. Máy lẻ 101 sẵn sàng nhận cuộc gọi."
    assert (body["tenant"], body["action"], body["changed"], body["pending"]) == (
        "dongnai", "login", True, False)
    assert body["agent"]["state"] == "available"
    jsonschema_rs.validate(_schema("AgentActionResult"), body)
    stored = await acd.agent("dongnai", "101")
    assert stored is not None and stored.status is ag.AgentStatus.AVAILABLE


async def test_given_operator_when_acting_on_another_extension_then_403(
        api: Api, acd: AcdQueue) -> None:
    body = await api.call("POST", "/api/v1/agents/102/login", "101", 403)
    assert body["error"]["id"] == "auth.forbidden"
    assert (await api.call("POST", "/api/v1/agents/101/login", "tdv.an", 403))["error"][
        "id"] == "auth.forbidden"
    stored = await acd.agent("dongnai", "102")
    assert stored is not None and stored.status is ag.AgentStatus.LOGGED_OUT


async def test_given_supervisor_or_admin_then_any_operator_of_their_tenant(api: Api) -> None:
    await api.call("POST", "/api/v1/agents/102/login", "giamsat", 200)
    body = await api.call("POST", "/api/v1/agents/102/pause", "quantri", 200,
                          json={"reason": "paperwork"})
    assert body["agent"]["reason"] == "paperwork" and body["reason"] == "paperwork"
    body = await api.call("POST", "/api/v1/agents/201/login", "giamsat", 403)
    assert body["error"]["id"] == "auth.forbidden"
    assert (await api.call("POST", "/api/v1/agents/101/login", "syt", 403))["error"]["id"] \
        == "auth.forbidden"


@pytest.mark.parametrize(("reason", "expected"), [
    ({"reason": "meeting"}, "meeting"), ({"reason": 2}, "meeting"), ({"reason": "3"},
                                                                     "paperwork"),
    ({}, "break"), ({"reason": None}, "break")])
async def test_given_reason_forms_when_pause_then_that_reason(
        api: Api, reason: dict[str, Any], expected: str) -> None:
    await api.call("POST", "/api/v1/agents/101/login", "101", 200)
    body = await api.call("POST", "/api/v1/agents/101/pause", "101", 200, json=reason)
    assert body["agent"]["state"] == "paused" and body["agent"]["reason"] == expected


async def test_given_pause_without_body_then_first_reason(api: Api) -> None:
    await api.call("POST", "/api/v1/agents/101/login", "101", 200)
    body = await api.call("POST", "/api/v1/agents/101/pause", "101", 200)
    assert body["message"] == "Đã tạm nghỉ: Nghỉ giải lao."


async def test_given_refusals_then_stable_ids_and_statuses(api: Api) -> None:
    await api.call("POST", "/api/v1/agents/101/login", "101", 200)
    body = await api.call("POST", "/api/v1/agents/101/login", "101", 409)
    assert body["error"] == {"id": "agent.illegal", "message": "Máy lẻ 101 đã đăng nhập rồi."}
    body = await api.call("POST", "/api/v1/agents/101/pause", "101", 422,
                          json={"reason": "lunch"})
    assert body["error"]["id"] == "agent.bad_reason"
    assert body["error"]["details"] == {"field": "reason", "reasons": [
        "break", "meeting", "paperwork", "training", "other"]}
    assert "Xin chọn 1: Nghỉ giải lao" in body["error"]["message"]
    for payload in ({"reason": 12}, {"reason": True}, {"why": "x"}, ["break"]):
        body = await api.call("POST", "/api/v1/agents/101/pause", "101", 422, json=payload)
        assert body["error"]["id"] == "request.invalid", payload
    body = await api.call("POST", "/api/v1/agents/101/pause", "101", 415, data="break",
                          headers={"Content-Type": "text/plain"})
    assert body["error"]["id"] == "request.unsupported_media"
    body = await api.call("POST", "/api/v1/agents/101/dance", "101", 422)
    assert body["error"]["details"]["field"] == "action"
    body = await api.call("POST", "/api/v1/agents/101/unpause", "101", 409)
    assert body["error"]["message"] == "Máy lẻ 101 không ở trạng thái tạm nghỉ."


async def test_given_agent_missing_from_redis_then_503_not_loaded(
        api: Api, acd: AcdQueue) -> None:
    await acd.redis.flushall()
    body = await api.call("POST", "/api/v1/agents/101/login", "101", 503)
    assert body["error"]["id"] == "agent.not_loaded"
    body = await api.call("GET", "/api/v1/agents/101", "101", 503)
    assert body["error"]["id"] == "agent.not_loaded"


async def test_given_console_without_queue_then_no_agent_routes_served_or_documented(
        db_url: str, config: HotlineConfig, tokens: dict[str, str], tmp_path: Path) -> None:
    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f")
    async with await _client(app) as client:
        api = Api(client, tokens)
        body = await api.call("GET", "/api/v1/queue", "giamsat", 404)
        assert body["error"]["id"] == "http.not_found"
        served = await api.call("GET", "/api/v1/openapi.json", None, 200)
        assert served == spec() and "/api/v1/queue" not in served["paths"]


async def test_given_app_with_queue_then_served_spec_has_agent_routes(api: Api) -> None:
    served = await api.call("GET", "/api/v1/openapi.json", None, 200)
    assert served == spec(agents=True)
    assert {"/api/v1/queue", "/api/v1/agents/{ext}", "/api/v1/agents/{ext}/{action}"} <= \
        set(served["paths"])
    listen = served["paths"]["/api/v1/calls/{call_id}/listen"]
    assert set(listen) == {"get", "post", "delete"}
    assert listen["post"]["x-roles"] == ["supervisor", "admin"]


async def test_given_queue_key_not_set_then_503_unavailable(
        db_url: str, config: HotlineConfig, tokens: dict[str, str], tmp_path: Path) -> None:
    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)  # ... but no cleanup context ever sets app[ACD]
    async with await _client(app) as client:
        body = await Api(client, tokens).call("GET", "/api/v1/queue", "giamsat", 503)
        assert body["error"]["id"] == "agent.unavailable"


def test_given_served_agent_routes_when_schemathesis_runs_then_no_5xx_and_answers_conform(
        redis_server: PrivateRedis, db_url: str, config: HotlineConfig,
        tokens: dict[str, str], tmp_path: Path) -> None:
    import requests
    import schemathesis

    from tests.adapters.test_api_schema import _run
    from tests.support.api import live_server

    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)

    async def acd_ctx(app: web.Application) -> AsyncIterator[None]:
        # The queue lives on the server thread's loop: Redis connections belong to one loop.
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushall()
        q = AcdQueue(client, "test", "pbx1", {t.id: t.operators.queue for t in config.tenants})
        for t in config.tenants:
            await q.sync_operators(t.id, t.operators.operators)
        await q.enqueue("dongnai", "pbx1-1.1", caller="0909123456")
        app[ACD] = q
        yield
        await client.aclose()

    app.cleanup_ctx.append(acd_ctx)
    with live_server(app) as base_url:
        served = requests.get(f"{base_url}/api/v1/openapi.json", timeout=10).json()
        mine = {p: ops for p, ops in served["paths"].items()
                if p == "/api/v1/queue" or p.startswith("/api/v1/agents/")}
        assert len(mine) == 3
        schema = schemathesis.openapi.from_dict(served | {"paths": mine})
        for user in ("quantri", "101"):
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            failures = _run(schema, base_url, headers, None)
            failures += _run(schema, base_url, headers, {"ext": "101"})
            assert not failures, "\n\n".join(failures)


def test_given_spec_then_agent_routes_documented_with_roles_and_errors() -> None:
    op = _op("/api/v1/agents/{ext}/{action}", "post")
    assert op["x-roles"] == ["operator", "supervisor", "admin"]
    assert {"401", "403", "404", "409", "422", "503"} <= set(op["responses"])
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AgentAction"}
    params = {p["name"]: p for p in op["parameters"]}
    assert params["action"]["schema"]["enum"] == ["login", "logout", "pause", "unpause",
                                                  "ready"]
    assert _op("/api/v1/queue", "get")["responses"]["200"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/QueueSnapshot"}
    assert "agents" in {t["name"] for t in spec(agents=True)["tags"]}
