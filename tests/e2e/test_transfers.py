"""End to end: an operator transfers a caller to a level-2 unit's hotline on a real Asterisk.

One stack for the module: operator 101 (a pjsua2 phone answering by itself), a unit "so_y_te"
whose hotline 02513822000 is reached over the outbound trunk (a pjsua2 unit phone on the
trunk's port, started per test: answering, or refusing as a unit that does not pick up), a
unit without hotline, no wrap-up time. The citizen is a pjsua2 phone too, so the test hears
what they hear (RTP per call). Each test ends with nothing left: no channel or bridge in
Asterisk, no queued call, operator not on a call.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from callcenter.queue import agent as ag
from callcenter.queue.redis import AcdQueue
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.pbx

TENANT = "dongnai"
HOTLINE = "02513822000"
UNIT_PORT = free_port(socket.SOCK_DGRAM)
PASSWORD = "xfer-e2e-101-pw"


def _acd(stack: Stack, work: Any) -> Any:
    async def go() -> Any:
        client = aioredis.Redis.from_url(stack.redis.url)
        try:
            return await work(AcdQueue(client, "e2e-xfer", "testpbx"))
        finally:
            await client.aclose()

    return asyncio.run(go())


def snap(stack: Stack) -> dict[str, Any]:
    return dict(_acd(stack, lambda acd: acd.snapshot(TENANT)))


def agent_state(stack: Stack) -> str:
    return str(next(a for a in snap(stack)["agents"] if a["extension"] == "101")["state"])


def record(stack: Stack, call_id: str, timeout: float = 10.0) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        store = CallRecordStore(stack.database_url)
        try:
            rows = [r.to_json_dict() for r in store.last(20, tenant=TENANT)]
        finally:
            store.close()
        return next((r for r in rows if r["id"].endswith(":" + call_id)), None)

    rec = wait_until(find, timeout, 0.2)
    assert rec, f"no record for {call_id}:\n{stack.app_log_tail()}"
    return dict(rec)


def api(stack: Stack, token: str, method: str, path: str,
        body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.http_port}/api/v1{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def bridges(stack: Stack) -> dict[str, list[str]]:
    return {b["id"]: list(b["channels"]) for b in stack.ari("/bridges")}


@pytest.fixture(scope="module")
def xstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("transfers")), operators={"101": PASSWORD},
              outbound_port=UNIT_PORT)
    tenant = s.config_data["tenants"][0]
    tenant["queue"] = {"ring_timeout_s": 10, "retry_s": 1, "wrap_up_s": 0}
    tenant["prompts"] = {"greeting": "Xin chào."}
    tenant["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department", "hotline": HOTLINE,
         "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912345678"}]},
        {"id": "vp_ubnd", "name": "Văn phòng UBND tỉnh", "kind": "department",
         "focal_persons": [{"name": "Trần Thị Bình", "phone": "0912345679"}]}]
    tenant["tickets"] = {"fallback_unit": "vp_ubnd"}
    s.write_config(s.config_data)
    try:
        s.start()
        users = UserStore(s.database_url)
        try:
            users.add_user("101", "operator", TENANT)
            s.token = users.issue_token("101")[1]  # type: ignore[attr-defined]
        finally:
            users.close()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def op(xstack: Stack) -> Iterator[OperatorPhone]:
    phone = xstack.operator_phone("101", auto_answer=0.2)
    try:
        assert phone.wait_registered() == 200
        assert wait_until(lambda: snap(xstack)["agents"][0]["reachable"], 15)
        _acd(xstack, lambda acd: acd.agent_event(TENANT, "101", ag.LogIn()))
        yield phone
    finally:
        phone.close()


@pytest.fixture
def x(xstack: Stack, op: OperatorPhone) -> Iterator[Stack]:
    assert wait_until(lambda: agent_state(xstack) == "available", 10), snap(xstack)
    try:
        yield xstack
        assert wait_until(lambda: xstack.ari("/channels") == [], 10), xstack.ari("/channels")
        assert xstack.ari("/bridges") == [], "bridges left in Asterisk"
        assert wait_until(lambda: xstack.pool_in_use() == 0, 5), "lines still held"
        s = snap(xstack)
        assert not s["calls"] and s["counts"]["queued"] == 0, s
        assert wait_until(lambda: agent_state(xstack) == "available", 5), snap(xstack)
    finally:
        op.hangup()


def connect(stack: Stack, op: OperatorPhone, citizen: UnitPhone) -> tuple[str, int]:
    """The citizen calls 1022 and is bridged with operator 101: (call id, operator's call
    index)."""
    mark = len(op.events)
    citizen.dial(f"sip:1022@127.0.0.1:{stack.sip_port}")
    assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "confirmed"], 20), (
        stack.app_log_tail())
    index = next(e["index"] for e in op.events[mark:] if e["event"] == "confirmed")
    found = wait_until(lambda: [b for b, chans in bridges(stack).items()
                                if b.endswith("-bridge") and len(chans) == 2], 5)
    assert found, bridges(stack)
    assert wait_until(lambda: citizen.rtp_rx(0) > 10 and op.rtp_rx(index) > 10, 5)
    return found[0].removesuffix("-bridge"), int(index)


def grows(phone: Any, index: int, by: int = 25, timeout: float = 5.0) -> bool:
    start = phone.rtp_rx(index)
    return bool(wait_until(lambda: phone.rtp_rx(index) > start + by, timeout, 0.1))


def transfer_final(op: OperatorPhone, mark: int, timeout: float = 25.0) -> int:
    found = wait_until(lambda: [e for e in op.events[mark:]
                                if e["event"] == "transfer_status" and e.get("final")], timeout)
    assert found, op.events[mark:]
    return int(found[0]["code"])


def test_given_bridged_call_when_operator_presses_blind_transfer_then_caller_talks_to_unit(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, HOTLINE)
        assert transfer_final(op, mark) == 200
        assert unit.dialled() == [HOTLINE]
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"
                                   and e["index"] == index], 5)  # the operator's part is over
        # The caller hears the unit and the unit hears the caller.
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5), unit.of("rtp")
        assert grows(citizen, 0)
        assert bridges(x) == {f"{call_id}-bridge": [call_id, f"{call_id}-unit1"]} or sorted(
            bridges(x)[f"{call_id}-bridge"]) == sorted([call_id, f"{call_id}-unit1"])
        assert wait_until(lambda: agent_state(x) == "available", 5)  # wrap-up 0
        unit.hangup()  # the unit hanging up ends the call
        assert citizen.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    rec = record(x, call_id)
    assert rec["outcome"] == "answered" and rec["operator"] == "101"
    (t,) = rec["transfers"]
    assert (t["by"], t["unit"], t["number"], t["kind"], t["answered"], t["result"]) == (
        "101", "so_y_te", HOTLINE, "blind", True, "completed")


def test_given_unit_not_answering_when_blind_transfer_then_caller_back_with_operator(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=None, reject_code=480)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, HOTLINE)
        assert transfer_final(op, mark) == 603
        assert unit.dialled() == [HOTLINE]
        # Still talking: RTP goes on both ways, nobody hung up.
        assert grows(citizen, 0) and grows(op, index)
        assert not [e for e in op.events[mark:] if e["event"] == "disconnected"]
        assert agent_state(x) == "on_call"
        citizen.hangup()
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"],
                          10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "blind", False, "no_answer")


def test_given_bridged_call_when_attended_transfer_by_api_then_consult_then_complete(
        x: Stack, op: OperatorPhone) -> None:
    token: str = x.token  # type: ignore[attr-defined]
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        status, body = api(x, token, "GET", "/units")
        assert status == 200 and [u["id"] for u in body["units"]] == ["so_y_te"]
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer/complete")
        assert (status, body["error"]["id"]) == (409, "transfer.none")
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer",
                           {"unit": "so_y_te", "kind": "attended"})
        assert status == 202, body
        # Consultation: operator and unit talk in a bridge of their own, the caller waits.
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(x).get(consult, [])) == 2, 10), bridges(x)
        assert bridges(x)[f"{call_id}-bridge"] == [call_id]
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5) and grows(op, index)
        assert grows(citizen, 0)  # music on hold
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer/complete")
        assert status == 202, body
        assert wait_until(lambda: sorted(bridges(x).get(f"{call_id}-bridge", [])) == sorted(
            [call_id, f"{call_id}-unit1"]) and consult not in bridges(x), 5), bridges(x)
        assert wait_until(lambda: [e for e in op.events if e["event"] == "disconnected"
                                   and e["index"] == index], 5)
        assert grows(unit, 0) and grows(citizen, 0)
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer/cancel")
        assert (status, body["error"]["id"]) == (409, "transfer.none")
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "completed")


def test_given_number_not_a_unit_when_transfer_then_refused_and_call_goes_on(
        x: Stack, op: OperatorPhone) -> None:
    token: str = x.token  # type: ignore[attr-defined]
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.xfer(index, "0909999999")
        assert transfer_final(op, mark) == 603
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer",
                           {"number": "0909999999"})
        assert (status, body["error"]["id"]) == (422, "transfer.unknown_unit")
        status, body = api(x, token, "POST", f"/calls/{call_id}/transfer", {"unit": "vp_ubnd"})
        assert (status, body["error"]["id"]) == (422, "transfer.unknown_unit")  # no hotline
        status, body = api(x, token, "POST", "/calls/nope-1.1/transfer", {"unit": "so_y_te"})
        assert (status, body["error"]["id"]) == (404, "transfer.call_not_found")
        assert grows(citizen, 0) and grows(op, index)
        assert unit.dialled() == []
        citizen.hangup()
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "disconnected"],
                          10)
    finally:
        unit.close()
        citizen.close()
    assert record(x, call_id)["transfers"] == []


def test_given_phone_consultation_when_transfer_button_with_replaces_then_unit_takes_caller(
        x: Stack, op: OperatorPhone) -> None:
    unit = UnitPhone(UNIT_PORT, answer_after=0.3)
    citizen = UnitPhone(answer_after=None)
    try:
        call_id, index = connect(x, op, citizen)
        mark = len(op.events)
        op.hold(index)
        op.dial(HOTLINE)  # from-operators: a unit's hotline is a consultation in the app
        (dialing,) = wait_until(lambda: [e for e in op.events[mark:]
                                         if e["event"] == "dialing"], 5)
        consult_index = dialing["index"]
        assert wait_until(lambda: [e for e in op.events[mark:] if e["event"] == "confirmed"
                                   and e["index"] == consult_index], 10), op.events[mark:]
        consult = f"{call_id}-consult1"
        assert wait_until(lambda: len(bridges(x).get(consult, [])) == 2, 10), bridges(x)
        assert wait_until(lambda: unit.rtp_rx(0) > 25, 5) and grows(op, consult_index)
        op.xfer_replaces(index, consult_index)
        assert transfer_final(op, mark) == 200
        assert wait_until(lambda: sorted(bridges(x).get(f"{call_id}-bridge", [])) == sorted(
            [call_id, f"{call_id}-unit1"]) and consult not in bridges(x), 5), bridges(x)
        assert grows(unit, 0) and grows(citizen, 0)
        citizen.hangup()
        assert unit.wait_for("disconnected", 1, 10)
    finally:
        unit.close()
        citizen.close()
    (t,) = record(x, call_id)["transfers"]
    assert (t["unit"], t["kind"], t["answered"], t["result"]) == (
        "so_y_te", "attended", True, "completed")
