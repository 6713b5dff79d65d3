"""The dispatcher against a stand-in sendsms (answers as told), and the DLR handler over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from callcenter.sms.dispatcher import SendsmsTarget
from callcenter.sms.dlr import dlr_signature
from callcenter.sms.store import SmsOutbox
from tests.support.kannel import (
    LOOPBACK,
    DlrServer,
    fast_dispatcher,
    free_port,
    wait_until,
)

NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"


@dataclass
class StandIn:
    """A sendsms that answers each request with the next of `replies` (then 202)."""

    url: str
    replies: list[int | str] = field(default_factory=list)  # status, or "hang"
    requests: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    inflight: int = 0
    max_inflight: int = 0


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    """A loopback HTTP server playing Kannel's sendsms."""
    port = free_port()
    state = StandIn(f"http://{LOOPBACK}:{port}/cgi-bin/sendsms")

    async def sendsms(request: web.Request) -> web.Response:
        state.requests.append(dict(request.query))
        state.inflight += 1
        state.max_inflight = max(state.max_inflight, state.inflight)
        try:
            reply = state.replies.pop(0) if state.replies else 202
            if reply == "hang":
                await asyncio.sleep(30)
            await asyncio.sleep(state.delay)
            assert isinstance(reply, int)
            body = "0: Accepted for delivery" if reply == 202 else "Something wrong"
            return web.Response(status=reply, text=body)
        finally:
            state.inflight -= 1

    app = web.Application()
    app.router.add_get("/cgi-bin/sendsms", sendsms)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield state
    await runner.cleanup()


def _target(stand_in: StandIn, dlr: DlrServer | None = None) -> SendsmsTarget:
    return SendsmsTarget(url=stand_in.url, username="u", password="p", sender="1022",
                         dlr_base_url=dlr.base_url if dlr else None,
                         dlr_key=dlr.key if dlr else "")


def _enqueue(box: SmsOutbox, n: int = 1, text: str = NOTICE) -> int:
    msg_id = box.enqueue(tenant="dongnai", to_number=f"0909{n:06d}", text=text,
                         purpose="resolve_notice", dedupe_key=f"k:{n}")
    assert msg_id is not None
    return msg_id


def _status(box: SmsOutbox, msg_id: int) -> str:
    m = box.get(msg_id)
    return m.status if m else "?"


# -- answers of the gateway ---------------------------------------------------------------


async def test_given_accepting_gateway_when_dispatched_then_sent_with_ucs2_and_signed_dlr_url(
        stand_in: StandIn, sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    msg_id = _enqueue(sms_outbox)
    d = fast_dispatcher(sms_outbox, _target(stand_in, dlr_server))
    d.start()
    try:
        await wait_until(lambda: _status(sms_outbox, msg_id) == "sent")
    finally:
        await d.stop()
    (q,) = stand_in.requests
    assert (q["to"], q["text"], q["coding"], q["charset"], q["from"]) == (
        "0909000001", NOTICE, "2", "UTF-8", "1022")
    assert q["dlr-mask"] == "31"
    url = urllib.parse.urlsplit(q["dlr-url"])
    assert url.path == "/sms/dlr"
    assert url.query == (f"id={msg_id}&k={dlr_signature(dlr_server.key, msg_id)}"
                         "&type=%d&smsc=%i&fid=%F&st=%A")  # Kannel's escapes arrive intact


async def test_given_gsm_text_when_dispatched_then_coding_0(
        stand_in: StandIn, sms_outbox: SmsOutbox) -> None:
    msg_id = _enqueue(sms_outbox, text="Hen gap lai {1022}")
    d = fast_dispatcher(sms_outbox, _target(stand_in))
    d.start()
    try:
        await wait_until(lambda: _status(sms_outbox, msg_id) == "sent")
    finally:
        await d.stop()
    (q,) = stand_in.requests
    assert (q["coding"], q["text"]) == ("0", "Hen gap lai {1022}")
    assert "dlr-url" not in q


@pytest.mark.parametrize("reply", [503, 500, 403])
async def test_given_gateway_busy_or_refusing_us_when_dispatched_then_retried_until_accepted(
        stand_in: StandIn, sms_outbox: SmsOutbox, reply: int) -> None:
    stand_in.replies = [reply, reply]
    msg_id = _enqueue(sms_outbox)
    d = fast_dispatcher(sms_outbox, _target(stand_in))
    d.start()
    try:
        await wait_until(lambda: _status(sms_outbox, msg_id) == "sent")
    finally:
        await d.stop()
    m = sms_outbox.get(msg_id)
    assert m is not None and m.attempts == 3 and len(stand_in.requests) == 3


async def test_given_gateway_rejects_request_when_dispatched_then_failed_not_retried(
        stand_in: StandIn, sms_outbox: SmsOutbox) -> None:
    stand_in.replies = [400]
    msg_id = _enqueue(sms_outbox)
    d = fast_dispatcher(sms_outbox, _target(stand_in))
    d.start()
    try:
        await wait_until(lambda: _status(sms_outbox, msg_id) == "failed")
        await asyncio.sleep(0.3)
    finally:
        await d.stop()
    m = sms_outbox.get(msg_id)
    assert m is not None and "HTTP 400" in (m.last_error or "")
    assert len(stand_in.requests) == 1


async def test_given_gateway_hangs_when_timed_out_then_kept_sending_then_requeued_once(
        stand_in: StandIn, sms_outbox: SmsOutbox) -> None:
    stand_in.replies = ["hang"]
    msg_id = _enqueue(sms_outbox)
    d = fast_dispatcher(sms_outbox, _target(stand_in), request_timeout=0.3,
                        stuck_after=dt.timedelta(seconds=1))
    d.start()
    try:
        await wait_until(lambda: "outcome unknown" in (sms_outbox.get(msg_id).last_error or ""),  # type: ignore[union-attr]
                         what="the timeout")
        assert _status(sms_outbox, msg_id) == "sending"  # not retried blindly
        await wait_until(lambda: _status(sms_outbox, msg_id) == "sent", what="the requeue")
    finally:
        await d.stop()
    assert len(stand_in.requests) == 2


async def test_given_ambiguous_send_when_report_arrives_then_sent_without_second_request(
        stand_in: StandIn, sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    stand_in.replies = ["hang"]
    msg_id = _enqueue(sms_outbox)
    d = fast_dispatcher(sms_outbox, _target(stand_in, dlr_server), request_timeout=0.3,
                        stuck_after=dt.timedelta(seconds=1))
    d.start()
    try:
        await wait_until(lambda: "outcome unknown" in (sms_outbox.get(msg_id).last_error or ""),  # type: ignore[union-attr]
                         what="the timeout")
        # The SMSC's ack proves the gateway had it after all.
        async with aiohttp.ClientSession() as http:
            sig = dlr_signature(dlr_server.key, msg_id)
            async with http.get(f"{dlr_server.base_url}?id={msg_id}&k={sig}&type=8") as resp:
                assert resp.status == 200
        await asyncio.sleep(1.5)  # past stuck_after: no requeue
    finally:
        await d.stop()
    assert _status(sms_outbox, msg_id) == "sent"
    assert len(stand_in.requests) == 1


async def test_given_slow_gateway_when_many_due_then_sent_concurrently(
        stand_in: StandIn, sms_outbox: SmsOutbox) -> None:
    stand_in.delay = 0.04  # Kannel with delivery reports: ~40 ms per request
    ids = [_enqueue(sms_outbox, n, text=f"Thong bao {n}") for n in range(64)]
    d = fast_dispatcher(sms_outbox, _target(stand_in), concurrency=16)
    d.start()
    try:
        await wait_until(lambda: sms_outbox.counts() == {"sent": 64}, what="64 sent")
    finally:
        await d.stop()
    assert stand_in.max_inflight >= 8
    assert sorted(int(q["to"][4:]) for q in stand_in.requests) == list(range(64))
    assert len(ids) == 64


async def test_given_dispatcher_stopped_mid_flight_when_restarted_then_nothing_stranded(
        stand_in: StandIn, sms_outbox: SmsOutbox) -> None:
    stand_in.delay = 0.2
    for n in range(10):
        _enqueue(sms_outbox, n)
    d = fast_dispatcher(sms_outbox, _target(stand_in), concurrency=4, drain_timeout=2.0)
    d.start()
    await wait_until(lambda: stand_in.inflight > 0, what="requests in flight")
    await d.stop()  # lets those in flight finish
    counts = sms_outbox.counts()
    assert "sending" not in counts and counts.get("sent", 0) >= 1
    d = fast_dispatcher(sms_outbox, _target(stand_in), concurrency=4)
    d.start()
    try:
        await wait_until(lambda: sms_outbox.counts() == {"sent": 10}, what="10 sent")
    finally:
        await d.stop()
    assert len(stand_in.requests) == 10


# -- delivery reports over HTTP -----------------------------------------------------------


async def test_given_reports_when_posted_then_validated_and_applied(
        sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    msg_id = _enqueue(sms_outbox)
    (m,) = sms_outbox.claim_due(dt.datetime.now(dt.UTC), 1)
    assert m.claim_token is not None
    sms_outbox.mark_sent(msg_id, m.claim_token, dt.datetime.now(dt.UTC))
    sig = dlr_signature(dlr_server.key, msg_id)
    cases = [
        (f"id={msg_id}&k={sig}&type=3", 400, "sms_dlr_bad_request"),
        (f"id=x&k={sig}&type=1", 400, "sms_dlr_bad_request"),
        (f"id={msg_id}&type=1", 403, "sms_dlr_bad_signature"),
        (f"id={msg_id}&k={dlr_signature('other', msg_id)}&type=1", 403,
         "sms_dlr_bad_signature"),
        (f"id=999&k={dlr_signature(dlr_server.key, 999)}&type=1", 404,
         "sms_dlr_unknown_message"),
        (f"id={msg_id}&k={sig}&type=1&smsc=fake&fid=abc&st=" + "x" * 201, 400,
         "sms_dlr_bad_request"),
    ]
    async with aiohttp.ClientSession() as http:
        for query, status, error in cases:
            async with http.get(f"{dlr_server.base_url}?{query}") as resp:
                assert (resp.status, (await resp.json())["error"]) == (status, error), query
        assert _status(sms_outbox, msg_id) == "sent"
        ok = f"id={msg_id}&k={sig}&type=1&smsc=fake&fid=abc-1&st=DELIVRD"
        async with http.get(f"{dlr_server.base_url}?{ok}") as resp:
            assert resp.status == 200
            assert await resp.json() == {"id": msg_id, "status": "delivered"}
    got = sms_outbox.get(msg_id)
    assert got is not None
    assert (got.status, got.dlr_type, got.smsc_id, got.smsc_message_id, got.dlr_detail) == (
        "delivered", 1, "fake", "abc-1", "DELIVRD")


@pytest.mark.parametrize("query", [
    "id={id}&k=%C3%A9{k1}&type=1",        # non-ASCII signature: compare_digest raised (500)
    "id={id}&k=%FF&type=1",               # not UTF-8 at all
    "id=%EF%BC%91&k={k}&type=1",          # fullwidth "1": int() took it as message 1
    "id={id}&k={k}&type=%D9%A8",          # Arabic-Indic "8": int() took it as type 8
    "id={id}&k={k}&type=1&fid=%00",       # NUL into the database (PostgreSQL refuses it)
    "id={id}&k={k}&type=1&smsc=s%C3%A9",  # SMSC ids are ASCII names
])
async def test_given_non_ascii_in_a_delivery_report_when_requested_then_400_or_403_not_500(
        sms_outbox: SmsOutbox, dlr_server: DlrServer, query: str) -> None:
    msg_id = _enqueue(sms_outbox)
    sig = dlr_signature(dlr_server.key, msg_id)
    url = f"{dlr_server.base_url}?{query.format(id=msg_id, k=sig, k1=sig[1:])}"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.json()
    assert (resp.status, body["error"]) in ((400, "sms_dlr_bad_request"),
                                            (403, "sms_dlr_bad_signature")), body
    assert _status(sms_outbox, msg_id) == "queued"  # nothing applied


async def test_given_smsc_reply_with_raw_bytes_when_reported_then_applied_with_text_cleaned(
        sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    msg_id = _enqueue(sms_outbox)
    sig = dlr_signature(dlr_server.key, msg_id)
    query = f"id={msg_id}&k={sig}&type=1&st=stat:DELIVRD%20text:%00T%C4%90"
    async with aiohttp.ClientSession() as http, \
            http.get(f"{dlr_server.base_url}?{query}") as resp:
        assert resp.status == 200
    got = sms_outbox.get(msg_id)
    assert got is not None and got.status == "delivered"
    assert got.dlr_detail == "stat:DELIVRD text:\ufffdTĐ"
