"""End to end: an operator calls a caller back from the console on a real Asterisk.

One stack for the module: operator 101 (a pjsua2 phone, not logged in to the queue), the
outbound trunk to a "carrier" (a pjsua2 phone answering INVITEs on the trunk's port) with
caller id 02511022, an operator user "101" with an API token. A callback request exists; the
operator asks to call back (``POST /api/v1/callbacks/{id}/dial``): their own phone rings
first, and only when it answers does the carrier get an INVITE for the caller's number with
the hotline's caller id. Each side sends its own tone, so the recordings tell audio flowed
both ways. Each test ends with nothing left in Asterisk.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.callbacks.store import CallbackRequest, CallbackStore
from callcenter.store.data import CallRecordData
from callcenter.store.records import CallRecordStore
from tests.e2e.audio import heard
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.scenarios import (
    TENANT,
    api,
    api_token,
    assert_nothing_left,
    configure_tenant,
    record,
    running,
    since,
)
from tests.e2e.stack import Stack, free_port, wait_until
from tests.support.config_files import config_data

pytestmark = pytest.mark.pbx

OPERATOR = "101"
CARRIER_PORT = free_port(socket.SOCK_DGRAM)
CALLER_ID = "02511022"
CITIZEN = "0912345678"
OPERATOR_HZ, CITIZEN_HZ = 600, 425
HEARD = 0.1


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("dialback")),
              operators={OPERATOR: "dialback-e2e-101-pw"})
    configure_tenant(s, **config_data("e2e_operator_tenant.yaml"))
    s.config_data["trunk"]["outbound"] = {"host": "127.0.0.1", "port": CARRIER_PORT,
                                          "caller_id": CALLER_ID}
    s.write_config(s.config_data)
    with running(s):
        s.token = api_token(s, OPERATOR, "operator")  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def store(cstack: Stack) -> Iterator[CallbackStore]:
    st = CallbackStore(cstack.database_url)
    try:
        yield st
    finally:
        st.close()


def ask(store: CallbackStore, n: int) -> CallbackRequest:
    return store.request(TENANT, f"pbx1:e2e-dialback.{n}", CITIZEN,
                         dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))


def stored_record(stack: Stack, record_id: str) -> CallRecordData:
    """The call record as stored (with ``extra``, which the CLI does not show)."""
    records = CallRecordStore(stack.database_url)
    try:
        rec = wait_until(lambda: records.get(record_id), 10)
    finally:
        records.close()
    assert rec is not None, record_id
    return rec  # type: ignore[no-any-return]


def operator_phone(stack: Stack, tmp_path: Path, **kw: object) -> OperatorPhone:
    phone = stack.operator_phone(OPERATOR, audio=f"tone:{OPERATOR_HZ}",
                                 record_dir=tmp_path / "operator", **kw)
    assert phone.wait_registered() == 200
    return phone


def test_given_callback_when_operator_dials_then_own_phone_first_then_citizen_recorded_done(
        cstack: Stack, store: CallbackStore, tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    (tmp_path / "carrier").mkdir()
    req = ask(store, 1)
    op = operator_phone(cstack, tmp_path, auto_answer=1.0)
    carrier = UnitPhone(CARRIER_PORT, answer_after=0.5, audio=f"tone:{CITIZEN_HZ}",
                        record_dir=tmp_path / "carrier")
    try:
        status, body = api(cstack, "POST", f"/callbacks/{req.id}/dial",
                           token=cstack.token)  # type: ignore[attr-defined]
        assert status == 202, body
        incoming = wait_until(lambda: since(op, 0, "incoming"), 10)
        assert incoming, cstack.app_log_tail()
        assert carrier.of("incoming") == []  # nothing dialled out while the operator rings
        index = incoming[0]["index"]
        assert wait_until(lambda: since(op, 0, "confirmed"), 10)
        # A second call back from the same phone meanwhile: refused, in Vietnamese.
        other = ask(store, 2)
        status, body = api(cstack, "POST", f"/callbacks/{other.id}/dial",
                           token=cstack.token)  # type: ignore[attr-defined]
        assert status == 409 and body["error"]["id"] == "callback.operator_busy", body
        # The carrier gets the INVITE for the caller's number, from the hotline's number.
        got = wait_until(lambda: carrier.of("incoming"), 10)
        assert got, cstack.app_log_tail()
        assert carrier.dialled() == [CITIZEN]
        assert CALLER_ID in got[0]["remote_uri"], got[0]
        # Audio both ways.
        assert wait_until(lambda: carrier.rtp_rx(0) > 150 and op.rtp_rx(index) > 150, 10), (
            carrier.of("rtp"), cstack.app_log_tail())
        carrier.hangup()
        assert wait_until(lambda: since(op, 0, "disconnected"), 10)
    finally:
        carrier.close()
        op.close()
    assert heard(tmp_path / "carrier" / "call-0.wav", OPERATOR_HZ, last_s=2.0) >= HEARD
    assert heard(tmp_path / "operator" / f"call-{index}.wav", CITIZEN_HZ, last_s=2.0) >= HEARD
    done = wait_until(lambda: (r := store.get(req.id)) is not None and r.status == "done"
                      and r, 10)
    assert done, store.get(req.id)
    assert (done.handled_by, done.attempts, done.last_result) == (OPERATOR, 1, "answered")
    assert done.dial_call_id and done.recording
    recording = cstack.layout.recordings() / done.recording
    assert wait_until(lambda: recording.exists() and recording.stat().st_size > 8000, 10), (
        recording)
    assert store.get(other.id) == other  # the refused one untouched
    # The call back's own call record: outbound to the citizen, the operator, the recording.
    listed = record(cstack, done.dial_call_id.split(":", 1)[1], last=50, cli=True)
    assert (listed["id"], listed["outcome"]) == (done.dial_call_id, "dialback")
    rec = stored_record(cstack, done.dial_call_id)
    assert (rec.outcome, rec.dialled, rec.caller, rec.operator, rec.tenant) == (
        "dialback", CITIZEN, CALLER_ID, OPERATOR, TENANT), rec
    assert rec.answered_at and rec.ended_at and rec.recording == done.recording
    assert rec.extra == {"direction": "outbound", "callback_id": req.id, "by": OPERATOR,
                         "result": "answered", "ticket": None}, rec
    assert_nothing_left(cstack)


def test_given_operator_declines_then_nothing_dialled_request_stays_open(
        cstack: Stack, store: CallbackStore, tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    req = ask(store, 3)
    op = operator_phone(cstack, tmp_path)
    carrier = UnitPhone(CARRIER_PORT, answer_after=0.5)
    try:
        status, body = api(cstack, "POST", f"/callbacks/{req.id}/dial",
                           token=cstack.token)  # type: ignore[attr-defined]
        assert status == 202, body
        incoming = wait_until(lambda: since(op, 0, "incoming"), 10)
        assert incoming, cstack.app_log_tail()
        op.reject(incoming[0]["index"], 480)  # the operator does not take it
        assert wait_until(lambda: since(op, 0, "disconnected"), 10)
        assert wait_until(lambda: cstack.ari("/channels") == [], 10)
        assert carrier.of("incoming") == []  # the citizen was never dialled
    finally:
        carrier.close()
        op.close()
    assert store.get(req.id) == req  # open, no attempt counted
    assert_nothing_left(cstack)


def test_given_citizen_busy_then_attempt_counted_and_request_stays_open(
        cstack: Stack, store: CallbackStore, tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    req = ask(store, 4)
    op = operator_phone(cstack, tmp_path, auto_answer=0.3)
    carrier = UnitPhone(CARRIER_PORT, answer_after=None, reject_code=486)
    try:
        status, body = api(cstack, "POST", f"/callbacks/{req.id}/dial",
                           token=cstack.token)  # type: ignore[attr-defined]
        assert status == 202, body
        assert wait_until(lambda: carrier.of("incoming"), 15), cstack.app_log_tail()
        assert wait_until(lambda: since(op, 0, "disconnected"), 10)  # the operator's leg ends
    finally:
        carrier.close()
        op.close()
    got = wait_until(lambda: (r := store.get(req.id)) is not None and r.attempts == 1 and r, 10)
    assert got, store.get(req.id)
    assert (got.status, got.last_result, got.dial_call_id) == ("open", "busy", None)
    # Recorded all the same: dialled, never answered, no recording, the carrier's 486 cause.
    listed = wait_until(lambda: [r for r in cstack.records(20) if r["outcome"] == "dialback"
                                 and r["answered_at"] is None], 10)
    assert listed, cstack.records(20)
    rec = stored_record(cstack, listed[0]["id"])
    assert (rec.dialled, rec.recording, rec.cause_code) == (CITIZEN, None, 17), rec
    assert rec.extra is not None and (rec.extra["callback_id"], rec.extra["result"]) == (
        req.id, "busy")
    assert_nothing_left(cstack)
