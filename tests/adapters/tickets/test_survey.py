"""The satisfaction survey on a real database (SQLite, PostgreSQL): the question goes out with
the resolve SMS, a citizen's "1"/"2" is recorded and acts (a "2" reopens and texts the unit),
Kannel's retries change nothing, the reports count the answers; and the HTTP MO route with
its key."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import ClientSession, web

from callcenter.config.model import HotlineConfig
from callcenter.sms.config import LOOPBACK
from callcenter.sms.mo import MO_PATH, SMS_MO, IncomingSms, MoReceiver, add_routes, mo_url
from callcenter.sms.parts import sms_parts
from callcenter.sms.store import SmsOutbox
from callcenter.tickets import reports as rp
from callcenter.tickets import store as st
from callcenter.tickets.config import RESOLVED_TEXT, SURVEY_QUESTION, SurveyPolicy, policy_of
from callcenter.tickets.replies import reply_handler
from callcenter.tickets.rules import Accept, Actor, Forward, Reopen, Resolve, Ticket, TicketState
from callcenter.tickets.service import TicketService
from tests.support.kannel import free_port
from tests.support.tickets import GT, OP, SUP, T0, YT, Clock, hotline_config, make_service

H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
S = TicketState
CITIZEN = "0912345678"
KEY = "test-mo-key"


def survey_config(enabled: bool = True, reply_days: int = 7) -> HotlineConfig:
    """The repository's config with Đồng Nai's survey on (or off)."""
    cfg = hotline_config()
    dongnai = cfg.tenants[0]
    policy = replace(policy_of(dongnai), survey=SurveyPolicy(enabled, SURVEY_QUESTION,
                                                             reply_days))
    return replace(cfg, tenants=(replace(dongnai, tickets=policy), *cfg.tenants[1:]))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TicketService]:
    s = make_service(database_url, tmp_path / "files", clock, survey_config())
    yield s
    s.close()


@pytest.fixture
def outbox(svc: TicketService) -> SmsOutbox:
    return SmsOutbox(svc.db.engine)


def resolved(svc: TicketService, clock: Clock, *, phone: str = CITIZEN, field: str = "health",
             unit: Actor = YT) -> Ticket:
    """A ticket of `phone`, forwarded, accepted and resolved by `unit` one hour later."""
    clock.now += H
    t = svc.open("dongnai", OP, channel="phone", content="Trạm y tế xã đóng cửa", field=field,
                 citizen_phone=phone, at=clock.now)
    svc.act(t.code, OP, Forward(clock.now, OP, str(unit.unit)))
    svc.act(t.code, unit, Accept(clock.now, unit))
    clock.now += H
    return svc.act(t.code, unit, Resolve(clock.now, unit, "Trạm đã mở cửa lại"))


def texts_to(outbox: SmsOutbox, number: str) -> list[tuple[str, str]]:
    return [(m.purpose, m.text) for m in reversed(outbox.recent(limit=100))
            if m.to_number == number]


def replies(svc: TicketService) -> list[tuple[str | None, str, str | None]]:
    r = st.REPLIES.c
    with svc.db.reading() as conn:
        return [(row.message_id, row.outcome, row.code) for row in conn.execute(
            sa.select(r.message_id, r.outcome, r.code).order_by(r.id))]


# ---- the question goes out --------------------------------------------------------------------
def test_given_survey_on_when_resolved_then_the_sms_asks_in_two_parts_and_the_ask_is_kept(
        svc: TicketService, outbox: SmsOutbox, clock: Clock) -> None:
    t = resolved(svc, clock)
    [(purpose, text)] = [x for x in texts_to(outbox, CITIZEN) if x[0] == "resolve_notice"]
    assert text == f"{RESOLVED_TEXT} {SURVEY_QUESTION}"
    msg = next(m for m in outbox.recent() if m.purpose == "resolve_notice")
    assert (msg.coding, msg.parts) == ("ucs2", 2) == (sms_parts(text).coding, 2)
    [a] = svc.survey_asks(t.code, SUP)
    assert (a.phone, a.asked_at, a.until, a.answer) == (CITIZEN, clock.now, clock.now + 7 * DAY,
                                                        None)


def test_given_survey_off_when_resolved_then_the_seeds_text_alone_and_no_ask(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    svc = make_service(database_url, tmp_path / "files", clock, survey_config(enabled=False))
    try:
        t = resolved(svc, clock)
        box = SmsOutbox(svc.db.engine)
        assert ("resolve_notice", RESOLVED_TEXT) in texts_to(box, CITIZEN)
        assert svc.survey_asks(t.code, SUP) == []
        assert svc.citizen_reply(message_id="m1", from_number=CITIZEN, to_number="1022",
                                 text="2").outcome == "no_survey"
        assert svc.get(t.code, SUP).state is S.RESOLVED
    finally:
        svc.close()


# ---- answers ----------------------------------------------------------------------------------
def test_given_a_2_when_replied_then_reopened_as_the_citizen_and_the_unit_is_texted(
        svc: TicketService, outbox: SmsOutbox, clock: Clock) -> None:
    t = resolved(svc, clock)
    clock.now += DAY
    got = svc.citizen_reply(message_id="6f1c-01", from_number="+84912345678", to_number="1022",
                            text=" 2 ")
    assert (got.outcome, got.code, got.reopened) == ("not_resolved", t.code, True)
    after = svc.get(t.code, SUP)
    assert (after.state, after.unit) == (S.REOPENED, None)
    assert after.reopen_reason is not None and "chưa được giải quyết" in after.reopen_reason
    last = svc.audit(t.code, SUP)[-1]
    assert (last.event, last.actor.user_id, last.actor.role) == ("reopen", "citizen-sms",
                                                                 "system")
    assert (last.from_state, last.to_state) == (S.RESOLVED, S.REOPENED)
    [(purpose, text)] = texts_to(outbox, "0900000102")[-1:]  # Sở Y tế's focal person
    assert purpose == "reopen_notice"
    assert text.startswith(f"Tổng đài 1022: công dân phản hồi phản ánh {t.code} (Y tế")
    assert "chưa được giải quyết" in text
    [a] = svc.survey_asks(t.code, SUP)
    assert (a.answer, a.until) == ("not_resolved", a.asked_at + 7 * DAY)
    assert replies(svc) == [("6f1c-01", "not_resolved", t.code)]


def test_given_a_1_when_replied_then_satisfaction_recorded_and_the_ticket_stays(
        svc: TicketService, outbox: SmsOutbox, clock: Clock) -> None:
    t = resolved(svc, clock)
    sent = len(outbox.recent(limit=100))
    clock.now += H
    got = svc.citizen_reply(message_id="m-1", from_number=CITIZEN, to_number="1022", text="1")
    assert (got.outcome, got.reopened) == ("satisfied", False)
    assert svc.get(t.code, SUP).state is S.RESOLVED
    last = svc.audit(t.code, SUP)[-1]
    assert (last.event, last.actor.user_id, last.from_state, last.to_state) == (
        "satisfied", "citizen-sms", S.RESOLVED, S.RESOLVED)
    assert svc.survey_asks(t.code, SUP)[0].answer == "satisfied"
    assert len(outbox.recent(limit=100)) == sent  # nothing texted back


def test_given_kannel_delivers_the_same_mo_twice_then_the_second_changes_nothing(
        svc: TicketService, outbox: SmsOutbox, clock: Clock) -> None:
    t = resolved(svc, clock)
    first = svc.citizen_reply(message_id="uuid-7", from_number=CITIZEN, to_number="1022",
                              text="2")
    audit, texts, version = (len(svc.audit(t.code, SUP)), len(outbox.recent(limit=100)),
                             svc.get(t.code, SUP).version)
    again = svc.citizen_reply(message_id="uuid-7", from_number=CITIZEN, to_number="1022",
                              text="2")
    assert (first.outcome, again.outcome, again.code) == ("not_resolved", "duplicate", t.code)
    assert (len(svc.audit(t.code, SUP)), len(outbox.recent(limit=100)),
            svc.get(t.code, SUP).version) == (audit, texts, version)
    # The SMSC sending it again under a new id: the first answer counts, nothing moves.
    other = svc.citizen_reply(message_id="uuid-8", from_number=CITIZEN, to_number="1022",
                              text="1")
    assert (other.outcome, other.code) == ("already_answered", t.code)
    assert svc.get(t.code, SUP).version == version
    assert svc.survey_asks(t.code, SUP)[0].answer == "not_resolved"
    assert [o for _, o, _ in replies(svc)] == ["not_resolved", "already_answered"]


def test_given_other_text_or_no_question_when_replied_then_recorded_only(
        svc: TicketService, clock: Clock) -> None:
    t = resolved(svc, clock)
    version = svc.get(t.code, SUP).version
    assert svc.citizen_reply(message_id="a", from_number=CITIZEN, to_number="1022",
                             text="hai").outcome == "unrecognised"
    assert svc.citizen_reply(message_id="b", from_number="0987000111", to_number="1022",
                             text="2").outcome == "no_survey"
    assert svc.get(t.code, SUP).version == version
    assert replies(svc) == [("a", "unrecognised", t.code), ("b", "no_survey", None)]


def test_given_the_window_passed_when_replied_then_no_survey(
        svc: TicketService, clock: Clock) -> None:
    t = resolved(svc, clock)
    clock.now += 7 * DAY + H
    got = svc.citizen_reply(message_id="late", from_number=CITIZEN, to_number="1022", text="2")
    assert (got.outcome, svc.get(t.code, SUP).state) == ("no_survey", S.RESOLVED)


def test_given_two_resolved_tickets_when_replied_then_the_latest_notice_gets_it(
        svc: TicketService, clock: Clock) -> None:
    older = resolved(svc, clock)
    newer = resolved(svc, clock, field="transport", unit=GT)
    got = svc.citizen_reply(message_id="x", from_number=CITIZEN, to_number="1022", text="2")
    assert got.code == newer.code
    assert (svc.get(newer.code, SUP).state, svc.get(older.code, SUP).state) == (S.REOPENED,
                                                                               S.RESOLVED)


def test_given_an_operator_reopened_it_first_when_the_2_comes_then_recorded_and_left(
        svc: TicketService, clock: Clock) -> None:
    t = resolved(svc, clock)
    svc.act(t.code, OP, Reopen(clock.now, OP, "Kết quả chưa đầy đủ"))
    version = svc.get(t.code, SUP).version
    got = svc.citizen_reply(message_id="y", from_number=CITIZEN, to_number="1022", text="2")
    assert (got.outcome, got.reopened) == ("not_resolved", False)
    after = svc.get(t.code, SUP)
    assert (after.state, after.version) == (S.REOPENED, version)
    last = svc.audit(t.code, SUP)[-1]
    assert last.event == "survey_reply" and "ticket.illegal_transition" in last.detail


# ---- reports ----------------------------------------------------------------------------------
def test_given_answers_when_reported_then_counted_per_unit_field_and_in_the_league(
        svc: TicketService, clock: Clock) -> None:
    a = resolved(svc, clock)  # Sở Y tế, health: "1"
    svc.citizen_reply(message_id="r1", from_number=CITIZEN, to_number="1022", text="1")
    b = resolved(svc, clock, phone="0987000111")  # Sở Y tế, health: "2" (reopened)
    svc.citizen_reply(message_id="r2", from_number="0987000111", to_number="1022", text="2")
    resolved(svc, clock, phone="0987000222", field="transport", unit=GT)  # no answer
    assert svc.get(b.code, SUP).unit is None and svc.get(a.code, SUP).unit == "so_y_te"
    reports = svc.reports
    period = reports.period("dongnai", date="2026-11-23")
    s = reports.summary("dongnai", period, now=clock.now)
    assert (s.total.satisfied, s.total.not_resolved, s.total.no_answer) == (1, 1, 1)
    by_unit = {r.key: r.counts for r in s.by_unit}
    # The "2" counts for the unit that resolved it, though the ticket is back at level 1.
    assert (by_unit["so_y_te"].satisfied, by_unit["so_y_te"].not_resolved) == (1, 1)
    assert (by_unit["so_gtvt"].no_answer, by_unit[None].not_resolved) == (1, 0)
    by_field = {r.key: r.counts for r in s.by_field}
    assert (by_field["health"].satisfied, by_field["health"].not_resolved,
            by_field["transport"].no_answer) == (1, 1, 1)
    league = {r.unit: r for r in reports.league("dongnai", period, now=clock.now)}
    assert (league["so_y_te"].satisfied, league["so_y_te"].not_resolved,
            league["so_y_te"].no_answer) == (1, 1, 0)
    assert (league["so_gtvt"].satisfied, league["so_gtvt"].no_answer) == (0, 1)
    unit_table = rp.summary_tables(s)[0]
    headers = [c.header for c in unit_table.columns]
    assert headers[-3:] == ["Hài lòng", "Chưa được giải quyết", "Chưa phản hồi"]
    assert unit_table.rows[-1]["not_resolved"] == 1  # the totals row
    lt = rp.league_table("Đồng Nai", list(league.values()), period, clock.now)
    assert [c.header for c in lt.columns][-3:] == headers[-3:]
    assert "Hài lòng" in rp.summary_csv(s).splitlines()[0]


# ---- the HTTP route (Kannel's sms-service get-url) ------------------------------------------
@dataclass
class MoServer:
    base: str  # http://127.0.0.1:PORT
    got: list[IncomingSms]


@pytest.fixture
async def mo_server(svc: TicketService) -> AsyncIterator[MoServer]:
    got: list[IncomingSms] = []
    handle = reply_handler(lambda: svc)

    async def recording(msg: IncomingSms) -> object:
        got.append(msg)
        if msg.text == "boom":
            raise RuntimeError("database down")
        return await handle(msg)

    app = web.Application()
    app[SMS_MO] = MoReceiver(KEY, recording)
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield MoServer(f"http://{LOOPBACK}:{port}", got)
    await runner.cleanup()


def kannel_url(server: MoServer, key: str = KEY, **values: str) -> str:
    """The URL Kannel fetches, with its escapes filled in as smsbox would."""
    from urllib.parse import quote

    url = mo_url(server.base, key)
    for escape, name in (("%I", "id"), ("%p", "from"), ("%P", "to"), ("%a", "text")):
        url = url.replace(escape, quote(values.get(name, ""), safe=""))
    return url


async def test_given_no_or_a_wrong_key_when_called_then_403_and_nothing_recorded(
        svc: TicketService, clock: Clock, mo_server: MoServer) -> None:
    t = resolved(svc, clock)
    async with ClientSession() as http:
        for url in (f"{mo_server.base}{MO_PATH}?from={CITIZEN}&to=1022&text=2",
                    kannel_url(mo_server, "wrong-key", id="i1", **{"from": CITIZEN},
                               to="1022", text="2"),
                    kannel_url(mo_server, "ключ", id="i1", **{"from": CITIZEN}, text="2")):
            async with http.get(url) as resp:
                assert resp.status == 403
                assert (await resp.json())["error"] == "sms_mo_forbidden"
    assert mo_server.got == [] and replies(svc) == []
    assert svc.get(t.code, SUP).state is S.RESOLVED


async def test_given_the_key_when_kannel_passes_a_2_then_200_empty_and_reopened(
        svc: TicketService, clock: Clock, mo_server: MoServer) -> None:
    t = resolved(svc, clock)
    url = kannel_url(mo_server, id="0b5c6f4e-5d0c-4c0c-9b8e-3d7f0d1f2a3b",
                     **{"from": "+84912345678"}, to="1022", text="2")
    async with ClientSession() as http:
        for _ in range(2):  # smsbox retrying: the same message id
            async with http.get(url) as resp:
                assert resp.status == 200
                assert await resp.read() == b""
    assert svc.get(t.code, SUP).state is S.REOPENED
    assert [o for _, o, _ in replies(svc)] == ["not_resolved"]
    assert mo_server.got[0] == IncomingSms("0b5c6f4e-5d0c-4c0c-9b8e-3d7f0d1f2a3b",
                                           "+84912345678", "1022", "2")


async def test_given_a_text_when_passed_then_200_and_no_reply_body(
        svc: TicketService, clock: Clock, mo_server: MoServer) -> None:
    resolved(svc, clock)
    async with ClientSession() as http:
        async with http.get(kannel_url(mo_server, id="k1", **{"from": CITIZEN}, to="1022",
                                       text="Cảm ơn tổng đài")) as resp:
            assert (resp.status, await resp.read()) == (200, b"")
    assert replies(svc)[0][1] == "unrecognised"


async def test_given_a_bad_sender_or_a_failing_store_then_400_or_503(
        mo_server: MoServer) -> None:
    async with ClientSession() as http:
        async with http.get(kannel_url(mo_server, id="k2", **{"from": "abc"}, text="1")) as r:
            assert (r.status, (await r.json())["error"]) == (400, "sms_mo_bad_request")
        # Not recorded: 503, so smsbox tries again (http-request-retry).
        async with http.get(kannel_url(mo_server, id="k3", **{"from": CITIZEN},
                                       text="boom")) as r:
            assert (r.status, (await r.json())["error"]) == (503, "sms_mo_unavailable")
