"""The supervisors' wallboard over aiohttp's test client: a real private Redis (pool and queue
events on ``hotline:events``), a real SQLite store (users, sessions, call records, tickets)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.calls import CallState, Phase
from callcenter.calls.codec import state_to_json
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.context import SERVICE
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.lines.redis import LinePool
from callcenter.queue import agent as ag
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.data import CallRecordData
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from callcenter.tickets.rules import Actor
from callcenter.wallboard import http as wallboard
from callcenter.wallboard.http import HUB
from tests.support.config_files import config_text

PASSWORD = "Mật khẩu đúng 2026"
USERS: dict[str, tuple[str, str, str | None]] = {
    "giamsat": ("supervisor", "dongnai", None),
    "quantri": ("admin", "dongnai", None),
    "tdv.an": ("operator", "dongnai", None),
    "syt": ("unit", "dongnai", "so_y_te"),
    "giamsat.th": ("supervisor", "thanhhoa", None),
}
Ws = aiohttp.ClientWebSocketResponse


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    path = tmp_path / "hotline.yaml"
    path.write_text(config_text("two_provinces_operators.yaml"), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    store = UserStore(url)
    hasher = Passwords(TEST_PARAMS)
    now = dt.datetime.now(dt.UTC)
    try:
        for name, (role, tenant, unit) in USERS.items():
            store.add_user(name, role, tenant, unit, now=now)
            store.set_password(name, hasher.hash(PASSWORD), now=now)
    finally:
        store.close()
    return url


@pytest.fixture
async def redis_client(redis_server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def acd(redis_client: aioredis.Redis, config: HotlineConfig) -> AcdQueue:
    q = AcdQueue(redis_client, "test", "pbx1", {t.id: t.operators.queue for t in config.tenants})
    for t in config.tenants:
        await q.sync_operators(t.id, t.operators.operators)
    return q


@pytest.fixture
async def client(db_url: str, config: HotlineConfig, acd: AcdQueue,
                 tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)
    app[ACD] = acd
    app[PASSWORDS] = Passwords(TEST_PARAMS)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as c:
        yield c


async def login(client: TestClient[web.Request, web.Application], name: str) -> None:
    page = await (await client.get("/console/login")).text()
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m
    resp = await client.post("/console/login", allow_redirects=False,
                             data={"username": name, "password": PASSWORD, "csrf": m[1]})
    assert resp.status == 303, await resp.text()


async def next_state(ws: Ws, timeout: float = 2.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def state_where(ws: Ws, check: Any, within: float) -> tuple[dict[str, Any], float]:
    """The first state for which ``check`` holds, and the seconds it took."""
    start = time.monotonic()
    while True:
        left = within - (time.monotonic() - start)
        assert left > 0, f"no matching state within {within} s"
        state = await next_state(ws, left)
        if state["type"] == "state" and check(state):
            return state, time.monotonic() - start


def record(n: int, arrived: dt.datetime, outcome: str, **kw: Any) -> CallRecordData:
    return CallRecordData(id=f"pbx1:{n}", node="pbx1", tenant="dongnai", dialled="1022",
                          caller="0909123456", shift="all", pool_limit=4, arrived_at=arrived,
                          answered_at=arrived, ended_at=arrived + dt.timedelta(seconds=90),
                          outcome=outcome, cause=None, cause_code=None, linkedid=f"l{n}", **kw)


# ---- the page -------------------------------------------------------------------------------
async def test_given_supervisor_when_open_wallboard_then_vietnamese_page_with_test_ids(
        client: TestClient[web.Request, web.Application]) -> None:
    await login(client, "giamsat")
    resp = await client.get("/console/wallboard")
    text = await resp.text()
    assert resp.status == 200
    assert "Màn hình giám sát — Tổng đài 1022 Đồng Nai" in text
    for test_id in ("lines-in-use", "lines-limit", "waiting-count", "agents", "kpi-offered",
                    "kpi-answered", "kpi-abandoned", "kpi-service-level", "kpi-asa", "kpi-aht",
                    "kpi-rejected-busy", "stale-banner", "hours-chart", "tickets"):
        assert f'data-testid="{test_id}"' in text, test_id
    assert "Mất kết nối — dữ liệu có\n thể đã cũ" in text
    assert 'data-timezone="Asia/Ho_Chi_Minh"' in text
    assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'self'
    js = await client.get("/console/static/wallboard.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    assert "Mất kết nối" not in await js.text()  # the banner's text lives in the page
    css = await client.get("/console/static/wallboard.css")
    assert css.status == 200 and "Liberation Sans" in await css.text()
    assert (await client.get("/console/static/other.js")).status == 404


async def test_given_unit_or_operator_user_when_open_wallboard_then_403(
        client: TestClient[web.Request, web.Application]) -> None:
    for name in ("syt", "tdv.an"):
        client.session.cookie_jar.clear()
        await login(client, name)
        resp = await client.get("/console/wallboard", allow_redirects=False)
        assert resp.status == 403
        assert 'data-error-id="auth.forbidden"' in await resp.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await client.ws_connect("/console/wallboard/ws")
        assert e.value.status == 403


async def test_given_nobody_logged_in_when_open_wallboard_then_redirect_to_login(
        client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/console/wallboard?tenant=dongnai", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login?next=/console/wallboard")
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await client.ws_connect("/console/wallboard/ws")
    assert e.value.request_info.url.path == "/console/login"  # redirected, no websocket


async def test_given_supervisor_of_another_province_when_open_board_then_403(
        client: TestClient[web.Request, web.Application]) -> None:
    await login(client, "giamsat.th")
    assert (await client.get("/console/wallboard?tenant=dongnai")).status == 403
    resp = await client.get("/console/wallboard")
    assert resp.status == 200 and "Thanh Hóa" in await resp.text()


# ---- the websocket --------------------------------------------------------------------------
async def test_given_supervisor_when_ws_then_state_and_updates_within_a_second_of_events(
        client: TestClient[web.Request, web.Application], acd: AcdQueue,
        redis_client: aioredis.Redis) -> None:
    await login(client, "giamsat")
    async with client.ws_connect("/console/wallboard/ws") as ws:
        first = await next_state(ws)
        assert first["type"] == "state" and first["tenant"] == "dongnai"
        assert first["lines"] == {"in_use": 0, "limit": 4, "full": False}
        assert first["shift"]["lines"] == 4 and first["timezone"] == "Asia/Ho_Chi_Minh"
        assert [(a["extension"], a["state_label"]) for a in first["agents"]] == [
            ("101", "Chưa đăng nhập"), ("102", "Chưa đăng nhập")]
        assert first["kpis"]["offered"] == 0 and first["kpis"]["service_level"] is None
        assert len(first["hours"]) == 24
        await asyncio.wait_for(client.app[HUB].subscribed.wait(), 2)

        # A call takes a line: the pool publishes {"type": "pool"} on hotline:events.
        pool = LinePool(redis_client, "test", "pbx1")
        assert await pool.acquire("dongnai", "pbx1-1.1", 4, "all")
        state, took = await state_where(ws, lambda s: s["lines"]["in_use"] == 1, 1.0)
        assert took < 1.0 and state["lines"]["full"] is False

        # An operator logs in: an agent event.
        await acd.agent_event("dongnai", "101", ag.LogIn())
        state, took = await state_where(
            ws, lambda s: s["agents"][0]["state"] == "available", 1.0)
        assert state["agents"][0]["state_label"] == "Sẵn sàng" and took < 1.0
        assert state["agent_counts"]["available"] == 1

        # The pool fills up: the bar turns red (full).
        for i in range(2, 5):
            await pool.acquire("dongnai", f"pbx1-1.{i}", 4, "all")
        state, _ = await state_where(ws, lambda s: s["lines"]["in_use"] == 4, 1.5)
        assert state["lines"]["full"] is True

        # A caller waits in the queue; their number is masked on the board.
        await acd.enqueue("dongnai", "pbx1-1.1", caller="0909123456")
        state, _ = await state_where(ws, lambda s: s["queue"]["queued"] == 1, 1.5)
        assert state["queue"]["calls"][0]["caller"] == "*******456"

        # Another province's events do not wake this board's feed.
        await LinePool(redis_client, "test", "pbx1").acquire("thanhhoa", "pbx1-9.9", 2, "all")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=1.0)


async def test_given_thanhhoa_two_per_shift_when_one_operator_logged_in_then_understaffed_warning(
        client: TestClient[web.Request, web.Application], acd: AcdQueue) -> None:
    await login(client, "giamsat.th")
    page = await (await client.get("/console/wallboard")).text()
    banner = re.search(r'<div id="understaffed-banner"[^>]*>(.*?)</div>', page, re.S)
    assert banner is not None
    assert 'data-testid="understaffed-banner"' in banner[0]
    assert 'data-understaffed="0"' in banner[0] and " hidden>" in banner[0]
    words = re.sub(r"<[^>]+>", "", banner[1])  # what the page shows once the script fills in
    assert words == "Ca trực hiện có –/– tổng đài viên đăng nhập — dưới mức tối thiểu"
    async with client.ws_connect("/console/wallboard/ws?tenant=thanhhoa") as ws:
        first = await next_state(ws)
        assert first["staffing"] == {"logged_in": 0, "minimum": 2, "understaffed": True}
        await asyncio.wait_for(client.app[HUB].subscribed.wait(), 2)
        await acd.agent_event("thanhhoa", "201", ag.LogIn())
        state, _ = await state_where(ws, lambda s: s["staffing"]["logged_in"] == 1, 1.5)
        assert state["staffing"] == {"logged_in": 1, "minimum": 2, "understaffed": True}


async def test_given_minimum_one_when_operator_logs_in_then_warning_cleared_and_back_on_logout(
        client: TestClient[web.Request, web.Application], acd: AcdQueue) -> None:
    await login(client, "giamsat")
    async with client.ws_connect("/console/wallboard/ws") as ws:
        assert (await next_state(ws))["staffing"] == {
            "logged_in": 0, "minimum": 1, "understaffed": True}
        await asyncio.wait_for(client.app[HUB].subscribed.wait(), 2)
        await acd.agent_event("dongnai", "101", ag.LogIn())
        await acd.agent_event("dongnai", "101", ag.Pause("break"))  # paused is still at post
        state, _ = await state_where(ws, lambda s: s["agents"][0]["state"] == "paused", 1.5)
        assert state["staffing"] == {"logged_in": 1, "minimum": 1, "understaffed": False}
        await acd.agent_event("dongnai", "101", ag.LogOut())
        state, _ = await state_where(ws, lambda s: s["agents"][0]["state"] == "logged_out", 1.5)
        assert state["staffing"]["understaffed"] is True


async def test_given_two_browsers_when_watching_then_one_redis_subscription_and_both_fed(
        client: TestClient[web.Request, web.Application], redis_client: aioredis.Redis) -> None:
    await login(client, "giamsat")
    async with client.ws_connect("/console/wallboard/ws") as one, \
            client.ws_connect("/console/wallboard/ws") as two:
        await next_state(one)
        await next_state(two)
        await asyncio.wait_for(client.app[HUB].subscribed.wait(), 2)
        assert await redis_client.pubsub_numsub("hotline:events") == [(b"hotline:events", 1)]
        await LinePool(redis_client, "test", "pbx1").acquire("dongnai", "pbx1-2.1", 4, "all")
        for ws in (one, two):
            await state_where(ws, lambda s: s["lines"]["in_use"] == 1, 1.0)


async def test_given_records_and_late_tickets_when_ws_then_kpis_chart_and_tickets(
        client: TestClient[web.Request, web.Application], db_url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    t = now - dt.timedelta(seconds=300)
    store = CallRecordStore(db_url)
    try:
        store.insert_once(record(1, t, "answered", operator="101", queued_at=t,
                                 bridged_at=t + dt.timedelta(seconds=8),
                                 talk_ended_at=t + dt.timedelta(seconds=68), wrap_up_s=30))
        store.insert_once(record(2, t, "abandoned", queued_at=t))
        store.insert_once(record(3, t, "busy"))
    finally:
        store.close()
    service = None
    await login(client, "giamsat")
    service = client.app[SERVICE]
    actor = Actor("giamsat", "supervisor")
    late = await asyncio.to_thread(service.open, "dongnai", actor, channel="phone",
                                   content="Đường ngập nước", field="transport",
                                   at=now - dt.timedelta(hours=30))
    await asyncio.to_thread(service.open, "dongnai", actor, channel="phone",
                            content="Mới gọi", field="health")  # due in 24 h: not shown
    async with client.ws_connect("/console/wallboard/ws") as ws:
        state = await next_state(ws)
    k = state["kpis"]
    local_t = t.astimezone(dt.timezone(dt.timedelta(hours=7)))
    if local_t.date() == now.astimezone(local_t.tzinfo).date():  # not across local midnight
        assert (k["offered"], k["queued"], k["answered"], k["abandoned"],
                k["rejected_busy"]) == (2, 2, 1, 1, 1)
        assert k["service_level"] == 0.5 and k["asa_s"] == 8.0 and k["aht_s"] == 90.0
        assert sum(h["calls"] for h in state["hours"]) == 3
        assert state["hours"][local_t.hour]["busy"] == 1
    assert [x["code"] for x in state["tickets"]] == [late.code]
    row = state["tickets"][0]
    assert row["late"] is True and row["time_left_s"] < 0
    assert row["field_name"] == "Giao thông vận tải" and row["state_label"] == "Mới tiếp nhận"


def _live_state(call_id: str, arrived: dt.datetime, **kw: Any) -> str:
    return state_to_json(CallState(call_id=call_id, node="pbx1", dialled="1022",
                                   caller="0909123456", linkedid=call_id, arrived_at=arrived,
                                   phase=Phase.BRIDGED if kw.get("bridged_at") else
                                   Phase.QUEUED, tenant_id="dongnai", **kw))


async def test_given_calls_in_progress_when_ws_then_kpis_count_them_before_they_end(
        client: TestClient[web.Request, web.Application], db_url: str,
        redis_client: aioredis.Redis) -> None:
    now = dt.datetime.now(dt.UTC)
    t = now - dt.timedelta(seconds=100)
    pool = LinePool(redis_client, "test", "pbx1")
    # On a call with an operator (answered after 5 s in the queue), and one just queued.
    for call_id, kw in (("c1", {"queued_at": t, "bridged_at": t + dt.timedelta(seconds=5)}),
                        ("c2", {"queued_at": now - dt.timedelta(seconds=3)}),
                        ("c3", {"queued_at": t, "bridged_at": t + dt.timedelta(seconds=7)})):
        assert await pool.acquire("dongnai", call_id, 4, "all")
        await redis_client.set(f"hotline:call:{call_id}", _live_state(call_id, t, **kw))
    assert await pool.acquire("dongnai", "c4", 4, "all")
    await redis_client.set("hotline:call:c4", "{not json")  # unreadable: left out
    store = CallRecordStore(db_url)
    try:  # c3 has just ended: its record is there, its state not yet gone
        store.insert_once(dataclasses.replace(
            record(3, t, "answered", operator="101", queued_at=t,
                   bridged_at=t + dt.timedelta(seconds=7)), id="pbx1:c3"))
    finally:
        store.close()
    await login(client, "giamsat")
    async with client.ws_connect("/console/wallboard/ws") as ws:
        state = await next_state(ws)
    k = state["kpis"]
    if t.astimezone(dt.timezone(dt.timedelta(hours=7))).date() == \
            now.astimezone(dt.timezone(dt.timedelta(hours=7))).date():
        assert (k["offered"], k["queued"], k["answered"]) == (3, 3, 2)  # c3 once
        assert k["service_level"] == 1.0  # c2 has waited 3 s: not decided yet
        assert k["asa_s"] == 6.0
    assert state["lines"]["in_use"] == 4


async def test_given_logout_when_ws_open_then_socket_closed_4401(
        client: TestClient[web.Request, web.Application],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wallboard, "SESSION_CHECK_S", 0.2)
    await login(client, "quantri")
    home = await (await client.get("/console/")).text()
    m = re.search(r'name="csrf" value="([^"]+)"', home)
    assert m
    async with client.ws_connect("/console/wallboard/ws") as ws:
        await next_state(ws)
        resp = await client.post("/console/logout", data={"csrf": m[1]},
                                 allow_redirects=False)
        assert resp.status == 303
        deadline = time.monotonic() + 3
        while True:
            msg = await ws.receive(timeout=deadline - time.monotonic())
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4401


async def test_given_redis_gone_when_state_built_then_unavailable_with_stable_id(
        db_url: str, config: HotlineConfig, tmp_path: Path) -> None:
    dead = aioredis.Redis.from_url(f"unix://{tmp_path / 'nobody.sock'}",
                                   socket_connect_timeout=0.5)
    app = web.Application()
    setup_console(app, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)
    app[ACD] = AcdQueue(dead, "test", "pbx1")
    app[PASSWORDS] = Passwords(TEST_PARAMS)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await login(client, "giamsat")
            async with client.ws_connect("/console/wallboard/ws") as ws:
                msg = await next_state(ws, 5)
            assert msg["type"] == "unavailable"
            assert msg["error"]["id"] == "wallboard.live_unavailable"
            page = await client.get("/console/wallboard")  # the page itself still opens
            assert page.status == 200
    finally:
        await dead.aclose()


@pytest.mark.parametrize(("state", "shown"), [("on_call", "c1"), ("wrap_up", None),
                                              ("ringing", None)])
def test_given_agent_when_row_built_then_only_a_call_in_progress_can_be_listened_to(
        state: str, shown: str | None) -> None:
    row = wallboard._agent_row({"extension": "101", "state": state, "call_id": "c1"})
    assert row["call_id"] == shown


async def test_given_wallboard_page_then_it_carries_the_csrf_token_for_listen_in(
        client: TestClient[web.Request, web.Application]) -> None:
    await login(client, "giamsat")
    text = await (await client.get("/console/wallboard")).text()
    home = await (await client.get("/console/")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', home)
    assert token and f'<meta name="csrf-token" content="{token[1]}">' in text
    assert 'id="listen-ext"' in text and "Nghe xen" in text


async def test_given_day_read_once_when_records_added_then_only_the_new_ones_are_read(
        client: TestClient[web.Request, web.Application], db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = client.app[HUB]
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    reads: list[dt.datetime | None] = []
    real = wallboard.records_between

    def counting(*args: Any) -> Any:
        reads.append(args[-1])
        return real(*args)

    monkeypatch.setattr(wallboard, "records_between", counting)
    store = CallRecordStore(db_url)
    try:
        store.insert_once(record(1, now - dt.timedelta(minutes=5), "answered"))
        assert [r.id for r in await hub._day_records("dongnai", start, end)] == ["pbx1:1"]
        store.insert_once(record(2, now - dt.timedelta(minutes=4), "abandoned"))
        second = await hub._day_records("dongnai", start, end)
        # The second read asked only for what was written since (minus the overlap), and
        # the first record, read again inside the overlap, counts once.
        assert reads[0] is None and reads[1] is not None
        assert sorted(r.id for r in second) == ["pbx1:1", "pbx1:2"]
        # A new local day starts afresh with a whole read.
        later = await hub._day_records("dongnai", end, end + dt.timedelta(days=1))
        assert reads[2] is None and later == []
        # ... and so does the next read once FULL_READ_S has passed.
        monkeypatch.setattr(wallboard, "FULL_READ_S", -1.0)
        await hub._day_records("dongnai", end, end + dt.timedelta(days=1))
        assert reads[3] is None
    finally:
        store.close()


def test_given_call_back_records_when_kpis_read_then_only_inbound_calls_counted(
        store: CallRecordStore, make_record: Any) -> None:
    inbound = make_record(1)
    call_back = make_record(2, outcome="dialback", dialled="0912345678", caller="02511022",
                            id="pbx1:cb3-abcdef-out")
    assert store.insert_once(inbound) and store.insert_once(call_back)
    start, end = inbound.arrived_at - dt.timedelta(hours=1), inbound.arrived_at + \
        dt.timedelta(hours=1)
    calls, _latest = wallboard.records_between(store, "dongnai", start, end)
    assert [c.id for c in calls] == [inbound.id]  # the hotline's own outbound call is not one
