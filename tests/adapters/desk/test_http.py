"""The operator desk over aiohttp's test client: ``/console/desk`` and its API (``/api/v1/desk``,
``/api/v1/faq``) with the console session, a real private Redis (the queue and the call state
the call's task writes) and a real store (SQLite, and PostgreSQL when reachable)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter import calls as cm
from callcenter.calls.codec import CALL_KEY, CALL_TTL_S, state_to_json
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.context import SERVICE
from callcenter.console.listing import TICKET_STATE_LABELS
from callcenter.console.openapi import spec
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.faq.rules import FaqRow
from callcenter.faq.store import FaqStore
from callcenter.ivr import menu as mn
from callcenter.queue import agent as ag
from callcenter.queue.policy import DEFAULT_PAUSE_REASONS
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import UserStore
from callcenter.tickets.rules import Actor, TicketState
from tests.support.config_files import as_yaml, config_data

Client = TestClient[web.Request, web.Application]
PASSWORD = "Mật khẩu đúng 2026"
T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 09:00 in Đồng Nai
CALL_ID = "1763863200.42"
CALLER = "0918100001"

# The queue tests' two provinces; dongnai gets menus, a unit with a hotline and tickets, and
# thanhhoa keeps the default pause reasons.
CONFIG = config_data("two_provinces_operators.yaml")
CONFIG["tenants"][0].update({
    "ivr": {"root": "main", "nodes": {
        "main": {"type": "menu", "prompt": "Hỏi về y tế bấm 1. Gặp tổng đài viên bấm 2.",
                 "options": {"1": "yte", "2": "op"}},
        "yte": {"type": "faq", "field": "health"},
        "op": {"type": "operator", "prompt": "Xin giữ máy."}}},
    "units": [{"id": "so_y_te", "name": "Sở Y tế", "kind": "department",
               "hotline": "02513822222",
               "focal_persons": [{"name": "Đầu mối Sở Y tế", "phone": "0900000102"}]}],
    "tickets": {"code_prefix": "DN", "fallback_unit": "so_y_te"},
})
del CONFIG["tenants"][1]["queue"]

# name -> (role, tenant, unit). Operator users are named after their extension.
USERS: dict[str, tuple[str, str, str | None]] = {
    "101": ("operator", "dongnai", None),
    "102": ("operator", "dongnai", None),
    "tdv.an": ("operator", "dongnai", None),
    "giamsat": ("supervisor", "dongnai", None),
    "syt": ("unit", "dongnai", "so_y_te"),
    "201": ("operator", "thanhhoa", None),
}

FAQ_ROWS = [
    FaqRow("health", "Giờ làm việc của bệnh viện tỉnh?", "Từ 7 giờ đến 17 giờ các ngày.",
           "YT-01", "khám bệnh", "Sở Y tế", "Y tế", 2),
    FaqRow("health", "Thủ tục cấp thẻ bảo hiểm y tế?", "Nộp hồ sơ tại bưu điện, không phải "
           "bệnh viện.", "YT-02", "bhyt", "BHXH tỉnh", "Y tế", 3),
    FaqRow("transport", "Đổi giấy phép lái xe ở đâu?", "Tại Sở Giao thông vận tải.", None,
           None, None, "GT", 2),
]


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    path = tmp_path / "hotline.yaml"
    path.write_text(as_yaml(CONFIG), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def db_url(database_url: str) -> str:
    """A migrated store (SQLite, and PostgreSQL when reachable) with the users above."""
    upgrade_head(database_url)
    store = UserStore(database_url)
    hasher = Passwords(TEST_PARAMS)
    try:
        for name, (role, tenant, unit) in USERS.items():
            store.add_user(name, role, tenant, unit, now=T0)
            store.set_password(name, hasher.hash(PASSWORD), now=T0)
    finally:
        store.close()
    return database_url


@pytest.fixture
async def acd(redis_server: PrivateRedis, config: HotlineConfig) -> AsyncIterator[AcdQueue]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    q = AcdQueue(client, "test", "pbx1", {t.id: t.operators.queue for t in config.tenants},
                 clock=Clock())
    for t in config.tenants:
        await q.sync_operators(t.id, t.operators.operators)
    yield q
    await client.aclose()


@pytest.fixture
async def app(db_url: str, config: HotlineConfig, acd: AcdQueue,
              tmp_path: Path) -> web.Application:
    a = web.Application()
    # The real clock: the session's idle timeout is checked against it.
    setup_console(a, database_url=db_url, config=lambda: config, files_dir=tmp_path / "f",
                  queue=True)
    a[ACD] = acd
    a[PASSWORDS] = Passwords(TEST_PARAMS)
    return a


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def login(client: Client, name: str) -> str:
    """Log ``name`` in through the form (a new browser: no cookies); the session's CSRF
    token, as the pages give it to their scripts."""
    client.session.cookie_jar.clear()
    page = await (await client.get("/console/login")).text()
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m
    resp = await client.post("/console/login", allow_redirects=False,
                             data={"username": name, "password": PASSWORD, "csrf": m[1]})
    assert resp.status == 303, await resp.text()
    home = await (await client.get("/console/")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', home)
    assert token
    return token[1]


async def get(client: Client, path: str, expect: int = 200) -> Any:
    resp = await client.get(path)
    body = await resp.json()
    assert resp.status == expect, (resp.status, body)
    return body


async def on_call(acd: AcdQueue, ext: str, call_id: str = CALL_ID) -> None:
    """Operator ``ext`` logged in, reachable and bridged with a queued call."""
    await acd.agent_event("dongnai", ext, ag.Reachable())
    await acd.agent_event("dongnai", ext, ag.LogIn())
    await acd.enqueue("dongnai", call_id, caller=CALLER)
    offered = await acd.offer_next("dongnai")
    assert offered is not None and offered.extension == ext
    await acd.answered("dongnai", call_id, ext)


def call_state(ext: str = "101") -> cm.CallState:
    """The call as its task keeps it in Redis: through the menu (1, FAQ, then 0) to ``ext``."""
    at = T0 - dt.timedelta(seconds=40)
    path = (mn.Step(at, "enter", node="main"), mn.Step(at, "digit", node="main", digit="1"),
            mn.Step(at, "enter", node="yte"), mn.Step(at, "faq", node="yte", faq="FAQKEY"),
            mn.Step(at, "enter", node="op"), mn.Step(at, "operator", node="op"))
    return cm.CallState(
        call_id=CALL_ID, node="pbx1", dialled="1022", caller=CALLER, linkedid=CALL_ID,
        arrived_at=at, phase=cm.Phase.BRIDGED, tenant_id="dongnai", line_held=True,
        answered_at=at, menu=mn.MenuState(node="op", mode=mn.Mode.DONE, path=path),
        queued_at=at + dt.timedelta(seconds=20), operator=ext,
        bridged_at=T0 - dt.timedelta(seconds=10), queue_enabled=True)


# ---- the desk API ------------------------------------------------------------------------------
async def test_given_operator_without_call_when_reading_desk_then_state_and_no_call(
        client: Client, acd: AcdQueue) -> None:
    await login(client, "101")
    body = await get(client, "/api/v1/desk")
    assert (body["tenant"], body["tenant_name"], body["extension"]) == ("dongnai", "Đồng Nai",
                                                                        "101")
    assert body["call"] is None
    agent = body["agent"]
    assert (agent["state"], agent["state_label"], agent["call_id"]) == (
        "logged_out", "Chưa đăng nhập", None)
    await acd.agent_event("dongnai", "101", ag.LogIn())
    await acd.agent_event("dongnai", "101", ag.Pause("meeting"))
    agent = (await get(client, "/api/v1/desk?ext=101"))["agent"]
    assert (agent["state"], agent["reason"], agent["reason_label"]) == ("paused", "meeting",
                                                                        "Họp")


async def test_given_call_in_redis_and_open_ticket_when_reading_desk_then_call_path_tickets(
        client: Client, app: web.Application, acd: AcdQueue) -> None:
    await on_call(acd, "101")
    state = call_state()
    await acd.redis.set(CALL_KEY.format(CALL_ID), state_to_json(state), ex=CALL_TTL_S)
    faq = FaqStore(app_db(app))
    try:
        faq.import_version("dongnai", {"health": FAQ_ROWS[:2]}, "faq.xlsx", "sha-1", "admin",
                           T0)
        key = faq.active_items("dongnai", "health")[0].key
    finally:
        faq.close()
    await acd.redis.set(CALL_KEY.format(CALL_ID),
                        state_to_json(state).replace("FAQKEY", key), ex=CALL_TTL_S)
    service = app[SERVICE]
    actor = Actor(user_id="102", role="operator")
    earlier = service.open("dongnai", actor, channel="phone", content="Đèn đường hỏng",
                           field="transport", citizen_phone="+84 918 100 001")
    linked = service.open("dongnai", actor, channel="phone", content="Hỏi giờ khám",
                          field="health", citizen_phone=CALLER, call_ids=["pbx1:" + CALL_ID],
                          answer="Từ 7 giờ.", faq_item=key)
    other = service.open("dongnai", actor, channel="phone", content="Người khác",
                         field="health", citizen_phone="0909999999")

    await login(client, "101")
    body = await get(client, "/api/v1/desk")
    call = body["call"]
    assert body["agent"]["state"] == "on_call" and body["agent"]["call_id"] == CALL_ID
    assert (call["call_id"], call["record_id"], call["caller"], call["dialled"]) == (
        CALL_ID, "pbx1:" + CALL_ID, CALLER, "1022")
    assert (call["tenant"], call["tenant_name"], call["phase"], call["phase_label"]) == (
        "dongnai", "Đồng Nai", "bridged", "Đang đàm thoại")
    assert call["mine"] and not call["urgent"] and call["transfer"] is None
    assert call["bridged_at"] == state.bridged_at.isoformat()  # type: ignore[union-attr]
    assert call["talk_s"] is not None and call["talk_s"] >= 10
    assert [s["text"] for s in call["ivr_path"]] == [
        "Vào «Hỏi về y tế bấm 1. Gặp tổng đài viên bấm 2.»", "Bấm phím 1",
        "Vào «Hỏi đáp: Y tế»", "Nghe giải đáp: Giờ làm việc của bệnh viện tỉnh?",
        "Vào «Xin giữ máy.»", "Chọn gặp điện thoại viên"]
    # The caller's open tickets (any written form of the number); the answered one is closed.
    assert [t["code"] for t in call["caller_tickets"]] == [earlier.code]
    assert [t["code"] for t in call["call_tickets"]] == [linked.code]
    assert other.code not in json.dumps(body)

    light = await get(client, "/api/v1/desk?detail=false")
    assert light["call"]["call_id"] == CALL_ID and light["detail"] is False
    assert not {"ivr_path", "caller_tickets", "call_tickets"} & set(light["call"])

    # The supervisor reads the same desk by extension.
    await login(client, "giamsat")
    assert (await get(client, "/api/v1/desk?ext=101"))["call"]["record_id"] == "pbx1:" + CALL_ID


def app_db(app: web.Application) -> str:
    """The store's URL (the console's ticket service knows it)."""
    return app[SERVICE].db.engine.url.render_as_string(hide_password=False)


async def test_given_call_state_gone_from_redis_when_reading_desk_then_agent_without_call(
        client: Client, acd: AcdQueue) -> None:
    await on_call(acd, "101")
    await login(client, "101")
    body = await get(client, "/api/v1/desk")
    assert body["agent"]["call_id"] == CALL_ID and body["call"] is None


async def test_given_other_tenants_call_id_when_reading_desk_then_not_shown(
        client: Client, acd: AcdQueue) -> None:
    await on_call(acd, "101")
    foreign = dataclasses.replace(call_state(), tenant_id="thanhhoa")
    await acd.redis.set(CALL_KEY.format(CALL_ID), state_to_json(foreign))
    await login(client, "101")
    assert (await get(client, "/api/v1/desk"))["call"] is None


@pytest.mark.parametrize(("user", "path", "status", "error"), [
    ("101", "/api/v1/desk?ext=102", 403, "auth.forbidden"),       # another operator's desk
    ("201", "/api/v1/desk?ext=101", 403, "auth.forbidden"),       # another tenant's operator
    ("syt", "/api/v1/desk?ext=101", 403, "auth.forbidden"),       # a unit
    ("syt", "/api/v1/faq?q=y", 403, "auth.forbidden"),
    ("giamsat", "/api/v1/desk", 422, "request.invalid"),          # whose desk?
    ("giamsat", "/api/v1/desk?ext=1x1", 422, "request.invalid"),
    ("giamsat", "/api/v1/desk?ext=999", 404, "agent.unknown"),
    ("tdv.an", "/api/v1/desk", 404, "agent.unknown"),             # user name is no extension
    ("101", "/api/v1/faq?limit=0", 422, "request.invalid"),
    ("101", "/api/v1/faq?tenant=thanhhoa", 403, "auth.forbidden"),
])
async def test_given_wrong_user_or_input_when_reading_then_refused_with_stable_id(
        client: Client, user: str, path: str, status: int, error: str) -> None:
    await login(client, user)
    body = await get(client, path, status)
    assert body["error"]["id"] == error


async def test_given_no_session_when_reading_desk_then_401(client: Client) -> None:
    body = await get(client, "/api/v1/desk?ext=101", 401)
    assert body["error"]["id"] == "auth.required"


# ---- FAQ search --------------------------------------------------------------------------------
async def test_given_imported_faq_when_searching_then_ranked_and_reloaded_after_import(
        client: Client, app: web.Application) -> None:
    faq = FaqStore(app_db(app))
    try:
        faq.import_version("dongnai", {"health": FAQ_ROWS[:2], "transport": FAQ_ROWS[2:]},
                           "faq.xlsx", "sha-1", "admin", T0)
        await login(client, "101")
        body = await get(client, "/api/v1/faq?q=benh+vien")
        assert [i["question"] for i in body["items"]] == [
            "Giờ làm việc của bệnh viện tỉnh?", "Thủ tục cấp thẻ bảo hiểm y tế?"]
        first = body["items"][0]
        assert (first["code"], first["field"], first["field_name"], first["unit"]) == (
            "YT-01", "health", "Y tế", "Sở Y tế")
        assert first["answer"] == "Từ 7 giờ đến 17 giờ các ngày."
        assert len(first["key"]) == 16 and body["total_items"] == 3
        assert [i["code"] for i in (await get(client, "/api/v1/faq?q=BHYT"))["items"]] == [
            "YT-02"]
        everything = await get(client, "/api/v1/faq?q=&field=transport")
        assert [i["question"] for i in everything["items"]] == ["Đổi giấy phép lái xe ở đâu?"]
        assert len((await get(client, "/api/v1/faq?limit=2"))["items"]) == 2
        generation = body["generation"]

        # A new version of the field: the next search sees it (no restart).
        faq.import_version("dongnai", {"health": [dataclasses.replace(
            FAQ_ROWS[0], question="Giờ khám bệnh ngày lễ?")]}, "faq2.xlsx", "sha-2", "admin", T0)
        again = await get(client, "/api/v1/faq?q=benh")
        assert again["generation"] != generation
        assert [i["question"] for i in again["items"]] == ["Giờ khám bệnh ngày lễ?"]
    finally:
        faq.close()


# ---- the session's writes need the CSRF header ------------------------------------------------
async def test_given_session_when_posting_with_and_without_csrf_header_then_ok_and_403(
        client: Client, acd: AcdQueue) -> None:
    token = await login(client, "101")
    resp = await client.post("/api/v1/agents/101/login")
    assert resp.status == 403 and (await resp.json())["error"]["id"] == "csrf.invalid"
    agent = await acd.agent("dongnai", "101")
    assert agent is not None and agent.status is ag.AgentStatus.LOGGED_OUT  # nothing changed
    resp = await client.post("/api/v1/agents/101/login", headers={"X-CSRF-Token": token})
    assert resp.status == 200, await resp.text()
    assert (await get(client, "/api/v1/desk"))["agent"]["state"] == "available"
    resp = await client.post("/api/v1/tickets", headers={"X-CSRF-Token": token}, json={
        "channel": "phone", "content": "Hỏi giờ khám", "field": "health",
        "citizen_phone": CALLER, "call_ids": ["pbx1:" + CALL_ID]})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    resp = await client.post(f"/api/v1/tickets/{created['code']}/actions",
                             headers={"X-CSRF-Token": token},
                             json={"action": "forward", "version": created["version"],
                                   "unit": None})  # the routing's unit (the fallback here)
    assert resp.status == 200, await resp.text()
    forwarded = await resp.json()
    assert (forwarded["state"], forwarded["unit"]) == ("forwarded", "so_y_te")


async def test_given_call_still_up_when_ticket_saved_from_desk_then_received_at_its_arrival(
        client: Client, acd: AcdQueue) -> None:
    # The operator saves the form during the call: no call record yet, the live state has it.
    token = await login(client, "101")
    # The console runs on the real clock: the call came in 10 minutes ago.
    arrived = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    state = dataclasses.replace(call_state(), arrived_at=arrived)
    await acd.redis.set(CALL_KEY.format(CALL_ID), state_to_json(state), ex=CALL_TTL_S)
    foreign = dataclasses.replace(state, call_id="1763863200.43", tenant_id="thanhhoa")
    await acd.redis.set(CALL_KEY.format(foreign.call_id), state_to_json(foreign))
    bodies = []
    for call_id in (CALL_ID, foreign.call_id):
        resp = await client.post("/api/v1/tickets", headers={"X-CSRF-Token": token}, json={
            "channel": "phone", "content": "Nghi nhiễm, sốt cao", "field": "suspected_infection",
            "urgent": True, "citizen_phone": CALLER, "call_ids": ["pbx1:" + call_id]})
        assert resp.status == 201, await resp.text()
        bodies.append(await resp.json())
    mine, other = bodies
    assert dt.datetime.fromisoformat(mine["received_at"]) == arrived
    assert dt.datetime.fromisoformat(mine["resolve_due"]) == arrived + dt.timedelta(hours=4)
    # Another tenant's call says nothing about this ticket: received when saved.
    assert dt.datetime.fromisoformat(other["received_at"]) >= arrived + dt.timedelta(minutes=10)


# ---- the page --------------------------------------------------------------------------------
async def test_given_operator_when_opening_desk_then_page_with_data_and_script(
        client: Client) -> None:
    await login(client, "101")
    resp = await client.get("/console/desk")
    page = await resp.text()
    assert resp.status == 200
    assert 'data-ext="101"' in page and 'data-readonly="0"' in page
    assert '<script src="/console/static/desk.js" defer></script>' in page
    m = re.search(r'<script type="application/json" id="desk-data">(.*?)</script>', page, re.S)
    assert m
    data = json.loads(m[1])
    assert data["ext"] == "101" and data["tenant"] == "dongnai"
    assert {"id": "health", "name": "Y tế"} in data["fields"]
    assert data["units"] == [{"id": "so_y_te", "name": "Sở Y tế"}]
    assert [r["id"] for r in data["pause_reasons"]] == [
        r.id for r in DEFAULT_PAUSE_REASONS]  # the config names none: the defaults
    # Ticket states under the shared table's names (the ticket pages say the same).
    assert data["ticket_states"] == TICKET_STATE_LABELS
    assert set(data["ticket_states"]) == {s.value for s in TicketState}
    for label in ("Sẵn sàng", "Tạm nghỉ", "Kết thúc xử lý sau cuộc gọi", "Lưu phiếu",
                  "Trả lời từ FAQ", "Chuyển đơn vị", "Chuyển cuộc gọi"):
        assert label in page
    js = await client.get("/console/static/desk.js")
    css = await client.get("/console/static/desk.css")
    assert js.status == 200 and css.status == 200
    assert "/api/v1/desk" in await js.text()


@pytest.mark.parametrize(("user", "path", "status", "marker"), [
    ("syt", "/console/desk", 403, 'data-error-id="auth.forbidden"'),
    ("101", "/console/desk?ext=102", 403, 'data-error-id="auth.forbidden"'),
    ("tdv.an", "/console/desk", 404, 'data-error-id="agent.unknown"'),
    ("giamsat", "/console/desk", 200, 'id="ext-choice"'),
    ("giamsat", "/console/desk?ext=102", 200, 'data-readonly="1"'),
])
async def test_given_role_when_opening_desk_page_then_allowed_or_refused(
        client: Client, user: str, path: str, status: int, marker: str) -> None:
    await login(client, user)
    resp = await client.get(path)
    assert resp.status == status
    assert marker in await resp.text()


def test_openapi_documents_the_desk_and_faq_routes() -> None:
    doc = spec(agents=True)
    assert doc["paths"]["/api/v1/desk"]["get"]["x-roles"] == ["operator", "supervisor", "admin"]
    assert doc["paths"]["/api/v1/faq"]["get"]["operationId"] == "searchFaq"
    for name in ("Desk", "DeskCall", "FaqResults"):
        assert name in doc["components"]["schemas"]
    assert "/api/v1/desk" not in spec(agents=False)["paths"]


async def test_given_forged_ext_when_operator_refused_then_log_line_not_forged(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    await login(client, "101")
    forged = "102\n2026-11-23 INFO callcenter.desk.pages: admin opened the desk of 101"
    with caplog.at_level("INFO", logger="callcenter.desk.pages"):
        resp = await client.get("/console/desk", params={"ext": forged})
    assert resp.status == 403
    lines = [r.getMessage() for r in caplog.records if "refused the desk" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert repr(forged) in lines[0]
