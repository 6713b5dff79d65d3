"""Calling back from the console (SQLite and PostgreSQL): the "Gọi lại" form and the API route
(roles, tenant, CSRF, 409 when the phone is on a call), then the dialer's legs driven as ARI
would (a fake ARI client records what it is asked): the operator's phone rings first, the
citizen only once it answers, with the configured caller id; the answered call back is done
with its call and recording; a busy citizen is an attempt; an unanswered operator nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ari_app.client import AriError
from callcenter.ari_app.dialback import DialbackManager
from callcenter.ari_app.service import STASIS
from callcenter.callbacks.store import CallbackRequest, CallbackStore
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.console.context import SERVICE
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.queue.redis import ACD
from callcenter.store.data import CallRecordData
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from callcenter.tickets.rules import Actor
from tests.support.api import CONFIG, UPLOAD_LIMITS
from tests.support.lists import PASSWORD, T0, Clock, csrf_of

PAGE = "/console/callbacks"
MIN = dt.timedelta(minutes=1)

DIAL_CONFIG = CONFIG.replace(
    '''    numbers: ["1022", "02511022"]
''', '''    numbers: ["1022", "02511022"]
    operators:
      - {extension: "101", name: "Nguyễn Thị Lan", secret_env: HOTLINE_OP_101}
      - {extension: "102", name: "Trần Văn Minh", secret_env: HOTLINE_OP_102}
''') + '''
trunk:
  outbound: {host: 127.0.0.1, port: 5070, caller_id: "02511022"}
'''
USERS = {"101": ("operator", "dongnai"), "102": ("operator", "dongnai"),
         "giamsat.binh": ("supervisor", "dongnai"), "quantri": ("admin", "dongnai"),
         "syt.dongnai": ("unit", "dongnai"), "tdv.thanhhoa": ("operator", "thanhhoa")}


class FakeAri:
    """Records what the dialer asks; ``fail_originate`` refuses the next originate."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_originate = False

    async def originate(self, endpoint: str, channel_id: str, **kw: Any) -> dict[str, Any]:
        if self.fail_originate:
            self.fail_originate = False
            raise AriError("POST", f"/channels/{channel_id}", 400, "endpoint not registered")
        self.calls.append(("originate", endpoint, channel_id, kw.get("caller_id"),
                           kw.get("app_args")))
        return {"id": channel_id}

    def __getattr__(self, name: str) -> Any:
        async def record(*args: Any, **kw: Any) -> None:
            self.calls.append((name, *args))
        return record

    def originates(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "originate"]


class FakeAcd:
    def __init__(self) -> None:
        self.on_call: set[str] = set()

    async def agent(self, tenant: str, extension: str) -> Any:
        return SimpleNamespace(call_id="pbx1:9.1" if extension in self.on_call else None)


class Dial:
    def __init__(self, app: web.Application, server: TestServer, ari: FakeAri,
                 manager: DialbackManager, acd: FakeAcd) -> None:
        self.app, self.server, self.ari, self.manager, self.acd = app, server, ari, manager, acd
        self.records: list[CallRecordData] = []  # the calls back's call records
        self.clients: list[TestClient[web.Request, web.Application]] = []

    async def client(self, name: str) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        page = await (await client.get("/console/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        resp = await client.post("/console/login", data={
            "username": name, "password": PASSWORD, "csrf": token[1]}, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return client


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HotlineConfig:
    monkeypatch.setenv("HOTLINE_OP_101", "secret-101-abcdef")
    monkeypatch.setenv("HOTLINE_OP_102", "secret-102-abcdef")
    path = tmp_path / "hotline.yaml"
    path.write_text(DIAL_CONFIG, encoding="utf-8")
    return load_config(path)


@pytest.fixture
async def dial(database_url: str, config: HotlineConfig,
               tmp_path: Path) -> AsyncIterator[Dial]:
    upgrade_head(database_url)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config,
                  files_dir=tmp_path / "files", upload_limits=UPLOAD_LIMITS, clock=Clock(T0))
    ari, acd = FakeAri(), FakeAcd()
    records: list[CallRecordData] = []

    async def record(rec: CallRecordData) -> None:
        records.append(rec)

    async def link_call(code: str, record_id: str) -> None:  # as app.py links them
        await asyncio.to_thread(app[SERVICE].link_call, code, record_id,
                                Actor("dialback", "system"))

    manager = DialbackManager(ari, clock=lambda: T0, busy_tone_s=0.01,  # type: ignore[arg-type]
                              record=record, node=lambda: "pbx1", link_call=link_call)
    app[STASIS] = SimpleNamespace(dialback=manager)  # type: ignore[misc]
    app[ACD] = acd  # type: ignore[misc]
    app[PASSWORDS] = hasher = Passwords(TEST_PARAMS)
    users = UserStore(database_url)
    try:
        hashed = hasher.hash(PASSWORD)
        for name, (role, tenant) in USERS.items():
            users.add_user(name, role, tenant, "so_y_te" if role == "unit" else None, now=T0)
            users.set_password(name, hashed, now=T0)
    finally:
        users.close()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    holder = Dial(app, server, ari, manager, acd)
    holder.records = records
    try:
        yield holder
    finally:
        for c in holder.clients:
            await c.close()
        await server.close()


@pytest.fixture
def callbacks(database_url: str, dial: Dial) -> Iterator[CallbackStore]:
    store = CallbackStore(database_url)
    yield store
    store.close()


def ask(store: CallbackStore, n: int = 1, tenant: str = "dongnai") -> CallbackRequest:
    return store.request(tenant, f"pbx1:1763800000.{n}", f"09{n:08d}", T0 - 20 * MIN)


def error_id(page: str) -> str | None:
    m = re.search(r'data-error-id="([^"]+)"', page)
    return m[1] if m else None


async def test_given_operator_when_dial_form_posted_then_own_phone_rings_nothing_dialled_out(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    page = await (await client.get(PAGE)).text()
    assert f'action="{PAGE}/{req.id}/dial"' in page and 'name="extension"' not in page
    token = await csrf_of(client, PAGE)

    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": token},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"{PAGE}?dialling={req.id}"
    [(_, endpoint, channel, _cid, args)] = dial.ari.originates()
    assert endpoint == "PJSIP/101"  # the operator's own phone, never the citizen yet
    assert channel.startswith(f"cb{req.id}-") and channel.endswith("-op")
    assert args.startswith("dialback,") and args.endswith(",operator")
    page = await (await client.get(resp.headers["Location"])).text()
    assert "Đang đổ chuông máy của bạn" in page


async def test_given_no_csrf_when_dial_posted_then_403_and_nothing_rings(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    resp = await client.post(f"{PAGE}/{req.id}/dial", data={})
    assert resp.status == 403 and error_id(await resp.text()) == "csrf.invalid"
    assert dial.ari.originates() == []


async def test_given_operator_on_a_call_when_dialling_then_409_vietnamese_nothing_rings(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    dial.acd.on_call.add("101")
    client = await dial.client("101")
    token = await csrf_of(client, PAGE)

    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": token})
    page = await resp.text()
    assert resp.status == 409 and error_id(page) == "callback.operator_busy"
    assert "đang có cuộc gọi" in page
    api = await client.post(f"/api/v1/callbacks/{req.id}/dial",
                            headers={"X-CSRF-Token": token})
    assert api.status == 409 and (await api.json())["error"]["id"] == "callback.operator_busy"
    assert dial.ari.originates() == []


async def test_given_a_call_back_ringing_when_same_phone_dials_another_then_409(
        dial: Dial, callbacks: CallbackStore) -> None:
    first, second = ask(callbacks, 1), ask(callbacks, 2)
    client = await dial.client("101")
    token = await csrf_of(client, PAGE)
    assert (await client.post(f"{PAGE}/{first.id}/dial", data={"csrf": token},
                              allow_redirects=False)).status == 303
    resp = await client.post(f"{PAGE}/{second.id}/dial", data={"csrf": token})
    assert resp.status == 409 and error_id(await resp.text()) == "callback.operator_busy"
    other = await dial.client("102")
    resp = await other.post(f"{PAGE}/{first.id}/dial", data={"csrf": await csrf_of(other, PAGE)})
    assert resp.status == 409 and error_id(await resp.text()) == "callback.dialling"
    assert len(dial.ari.originates()) == 1


@pytest.mark.parametrize(("name", "status", "error"), [
    ("quantri", 403, "callback.forbidden"), ("tdv.thanhhoa", 404, "callback.not_found")])
async def test_given_admin_or_other_tenant_when_dialling_then_refused_nothing_rings(
        dial: Dial, callbacks: CallbackStore, name: str, status: int, error: str) -> None:
    req = ask(callbacks)
    client = await dial.client(name)
    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": await csrf_of(client, PAGE)})
    assert resp.status == status and error_id(await resp.text()) == error
    assert dial.ari.originates() == []


async def test_given_unit_user_when_dialling_then_403(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("syt.dongnai")
    token = await csrf_of(client, "/console/tickets")
    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": token})
    assert resp.status == 403
    assert dial.ari.originates() == []


async def test_given_supervisor_when_dialling_then_named_operator_phone_rings(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("giamsat.binh")
    page = await (await client.get(PAGE)).text()
    assert 'name="extension"' in page
    token = await csrf_of(client, PAGE)
    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": token, "extension": "999"})
    assert resp.status == 422 and error_id(await resp.text()) == "callback.no_extension"
    resp = await client.post(f"/api/v1/callbacks/{req.id}/dial", json={"extension": "102"},
                             headers={"X-CSRF-Token": token})
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["extension"] == "102" and body["status"] == "ringing_operator"
    assert [c[1] for c in dial.ari.originates()] == ["PJSIP/102"]


async def test_given_operator_answers_and_citizen_answers_then_done_with_call_and_recording(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": await csrf_of(client, PAGE)},
                      allow_redirects=False)
    [d] = dial.manager.dialbacks.values()

    await dial.manager.on_start({"id": d.operator_leg}, [d.id, "operator"])
    out = dial.ari.originates()[1]
    assert out[1:4] == ("PJSIP/0900000001@trunk-out", d.citizen_leg, "02511022")
    assert ("answer", d.operator_leg) in dial.ari.calls
    assert ("add_to_bridge", d.id, [d.operator_leg]) in dial.ari.calls
    assert ("start_bridge_moh", d.id) in dial.ari.calls  # music while the citizen rings
    assert callbacks.get(req.id).status == "open"  # type: ignore[union-attr]

    await dial.manager.on_start({"id": d.citizen_leg}, [d.id, "citizen"])
    assert ("add_to_bridge", d.id, [d.citizen_leg]) in dial.ari.calls
    assert dial.ari.calls.index(("stop_bridge_moh", d.id)) < dial.ari.calls.index(
        ("add_to_bridge", d.id, [d.citizen_leg]))
    assert ("record_bridge", d.id, f"dongnai-20261123-{d.id}") in dial.ari.calls

    assert await dial.manager.on_event({"type": "ChannelDestroyed", "cause": 16,
                                        "channel": {"id": d.citizen_leg}})
    got = callbacks.get(req.id)
    assert got is not None
    assert (got.status, got.handled_by, got.dial_call_id, got.recording, got.attempts,
            got.last_result) == ("done", "101", f"pbx1:{d.citizen_leg}",
                                 f"dongnai-20261123-{d.id}.wav", 1, "answered")
    assert ("hangup", d.operator_leg) in [c[:2] for c in dial.ari.calls]
    assert dial.manager.dialbacks == {}
    # The call back's own call record: outbound, the operator, the recording, the request.
    [rec] = dial.records
    assert (rec.id, rec.outcome, rec.tenant, rec.dialled, rec.caller, rec.operator) == (
        f"pbx1:{d.citizen_leg}", "dialback", "dongnai", "0900000001", "02511022", "101")
    assert (rec.arrived_at, rec.answered_at, rec.bridged_at, rec.ended_at) == (T0, T0, T0, T0)
    assert rec.recording == f"dongnai-20261123-{d.id}.wav" and rec.linkedid == d.id
    assert (rec.cause_code, rec.cause) == (16, "16 Normal Clearing")
    assert rec.extra == {"direction": "outbound", "callback_id": req.id, "by": "101",
                         "result": "answered", "ticket": None}


async def test_given_citizen_busy_then_attempt_counted_and_still_open(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": await csrf_of(client, PAGE)},
                      allow_redirects=False)
    [d] = dial.manager.dialbacks.values()
    await dial.manager.on_start({"id": d.operator_leg}, [d.id, "operator"])

    await dial.manager.on_event({"type": "ChannelDestroyed", "cause": 17,
                                 "channel": {"id": d.citizen_leg}})
    got = callbacks.get(req.id)
    assert got is not None
    assert (got.status, got.attempts, got.last_result, got.last_attempt_at) == (
        "open", 1, "busy", T0)
    # The operator hears the busy tone, then their leg is hung up.
    assert ("play", d.operator_leg, "tone:busy", f"{d.operator_leg}~busy") in dial.ari.calls
    await asyncio.sleep(0.1)
    legs = [c[:2] for c in dial.ari.calls]
    assert legs.index(("hangup", d.citizen_leg)) < legs.index(("hangup", d.operator_leg))
    page = await (await client.get(PAGE)).text()
    assert 'data-attempts="1"' in page and "máy bận" in page
    # A record too: the citizen was dialled, never answered; no recording.
    [rec] = dial.records
    assert (rec.outcome, rec.answered_at, rec.recording, rec.cause_code) == (
        "dialback", None, None, 17)
    assert rec.extra is not None and rec.extra["result"] == "busy"


async def test_given_operator_does_not_answer_then_nothing_dialled_and_request_untouched(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": await csrf_of(client, PAGE)},
                      allow_redirects=False)
    [d] = dial.manager.dialbacks.values()

    await dial.manager.on_event({"type": "ChannelDestroyed", "cause": 19,
                                 "channel": {"id": d.operator_leg}})
    assert len(dial.ari.originates()) == 1  # only the operator's phone
    assert callbacks.get(req.id) == req
    assert dial.manager.dialbacks == {}
    assert dial.records == []  # nobody was called: no call record


async def test_given_operator_phone_unregistered_when_dialling_then_502_message(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    dial.ari.fail_originate = True
    client = await dial.client("101")
    resp = await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": await csrf_of(client, PAGE)})
    assert resp.status == 502 and error_id(await resp.text()) == "callback.ring_failed"
    assert dial.manager.dialbacks == {} and callbacks.get(req.id) == req


# ---- linking a request to its ticket ---------------------------------------------------------
def open_ticket(dial: Dial, tenant: str = "dongnai") -> str:
    """A ticket of ``tenant`` opened by an operator there; its code."""
    actor = Actor("101" if tenant == "dongnai" else "tdv.thanhhoa", "operator")
    return str(dial.app[SERVICE].open(tenant, actor, channel="phone", content="Đèn đường hỏng",
                                      field="transport").code)


def calls_of(dial: Dial, code: str) -> tuple[str, ...]:
    return tuple(dial.app[SERVICE].get(code, Actor("101", "operator")).call_ids)


async def test_given_ticket_of_the_tenant_when_linked_over_api_then_request_and_calls_linked(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    code = open_ticket(dial)
    client = await dial.client("101")
    token = await csrf_of(client, PAGE)
    resp = await client.post(f"/api/v1/callbacks/{req.id}/ticket", json={"ticket": code},
                             headers={"X-CSRF-Token": token})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["ticket"] == code
    assert callbacks.get(req.id).ticket == code  # type: ignore[union-attr]
    assert calls_of(dial, code) == (req.call_id,)  # the call that asked, on its history
    assert [r.id for r in callbacks.by_ticket(code)] == [req.id]
    listed = await (await client.get("/api/v1/callbacks")).json()
    assert listed["items"][0]["ticket"] == code
    # null unlinks the request (the ticket's history keeps the call)
    resp = await client.post(f"/api/v1/callbacks/{req.id}/ticket", json={"ticket": None},
                             headers={"X-CSRF-Token": token})
    assert resp.status == 200 and (await resp.json())["ticket"] is None
    assert calls_of(dial, code) == (req.call_id,)


@pytest.mark.parametrize("body, status, error", [
    ({"ticket": "DN-20261123-9999"}, 404, "ticket.not_found"),
    ({"ticket": "not a code"}, 422, "ticket.bad_code"),
    ({}, 422, "request.invalid"),
])
async def test_given_no_such_ticket_when_linking_then_refused_and_nothing_linked(
        dial: Dial, callbacks: CallbackStore, body: dict[str, Any], status: int,
        error: str) -> None:
    req = ask(callbacks)
    client = await dial.client("101")
    resp = await client.post(f"/api/v1/callbacks/{req.id}/ticket", json=body,
                             headers={"X-CSRF-Token": await csrf_of(client, PAGE)})
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]["id"] == error
    assert callbacks.get(req.id).ticket is None  # type: ignore[union-attr]


async def test_given_another_tenants_ticket_when_linking_then_404_as_if_absent(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    theirs = open_ticket(dial, "thanhhoa")
    client = await dial.client("101")
    resp = await client.post(f"/api/v1/callbacks/{req.id}/ticket", json={"ticket": theirs},
                             headers={"X-CSRF-Token": await csrf_of(client, PAGE)})
    assert resp.status == 404
    assert (await resp.json())["error"]["id"] == "ticket.not_found"
    assert callbacks.get(req.id).ticket is None  # type: ignore[union-attr]
    # ... and another tenant's request is not this user's to link at all
    own = open_ticket(dial)
    other = ask(callbacks, 2, tenant="thanhhoa")
    resp = await client.post(f"/api/v1/callbacks/{other.id}/ticket", json={"ticket": own},
                             headers={"X-CSRF-Token": await csrf_of(client, PAGE)})
    assert resp.status == 404 and (await resp.json())["error"]["id"] == "callback.not_found"


async def test_given_page_form_when_ticket_linked_then_shown_and_bad_code_explained(
        dial: Dial, callbacks: CallbackStore) -> None:
    req = ask(callbacks)
    code = open_ticket(dial)
    client = await dial.client("101")
    token = await csrf_of(client, PAGE)
    page = await (await client.get(PAGE)).text()
    assert f'action="{PAGE}/{req.id}/ticket"' in page
    resp = await client.post(f"{PAGE}/{req.id}/ticket", data={"csrf": token, "ticket": code},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"{PAGE}?ticket={req.id}"
    page = await (await client.get(resp.headers["Location"])).text()
    assert f'value="{code}"' in page and "Đã cập nhật phiếu" in page
    resp = await client.post(f"{PAGE}/{req.id}/ticket",
                             data={"csrf": token, "ticket": "DN-20261123-9999"})
    page = await resp.text()
    assert resp.status == 422 and error_id(page) == "ticket.not_found"
    assert "Không gắn được phiếu" in page
    assert callbacks.get(req.id).ticket == code  # type: ignore[union-attr]


async def test_given_linked_request_when_called_back_then_record_names_ticket_and_is_linked(
        dial: Dial, callbacks: CallbackStore, database_url: str) -> None:
    req = ask(callbacks)
    code = open_ticket(dial)
    client = await dial.client("101")
    token = await csrf_of(client, PAGE)
    await client.post(f"/api/v1/callbacks/{req.id}/ticket", json={"ticket": code},
                      headers={"X-CSRF-Token": token})
    await client.post(f"{PAGE}/{req.id}/dial", data={"csrf": token}, allow_redirects=False)
    [d] = dial.manager.dialbacks.values()
    await dial.manager.on_start({"id": d.operator_leg}, [d.id, "operator"])
    await dial.manager.on_start({"id": d.citizen_leg}, [d.id, "citizen"])
    await dial.manager.on_event({"type": "ChannelDestroyed", "cause": 16,
                                 "channel": {"id": d.citizen_leg}})
    [rec] = dial.records
    assert rec.extra is not None and rec.extra["ticket"] == code
    assert calls_of(dial, code) == (req.call_id, rec.id)  # the call back on its history
    # Linked again after the call back: nothing twice.
    await client.post(f"/api/v1/callbacks/{req.id}/ticket", json={"ticket": code},
                      headers={"X-CSRF-Token": token})
    assert calls_of(dial, code) == (req.call_id, rec.id)
    # Once the writer stored the record, the ticket's page shows the call back with the link
    # to listen to its recording (the asking call has no record here: not listed).
    records = CallRecordStore(database_url)
    try:
        assert records.insert_once(rec)
    finally:
        records.close()
    boss = await dial.client("giamsat.binh")
    page = await (await boss.get(f"/console/tickets/{code}")).text()
    assert f'data-call="{rec.id}" data-dialback' in page and "Gọi lại cho công dân" in page
    assert page.count("data-call=") == 1
    assert f'href="/console/quality/calls/{quote(rec.id)}"' in page
    assert f"dongnai-20261123-{d.id}.wav" in page
