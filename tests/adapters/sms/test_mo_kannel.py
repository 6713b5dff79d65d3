"""Citizens' SMS through a real Kannel: fakesmsc (the phone's SMSC) -> bearerbox -> smsbox's
sms-service -> the app's /sms/mo with its key -> the ticket service, which reopens on a "2"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web

from callcenter.sms.config import LOOPBACK, SmsSettings
from callcenter.sms.credentials import load_kannel_secrets
from callcenter.sms.kannel import KannelGateway, render_config
from callcenter.sms.mo import SMS_MO, MoReceiver, add_routes, mo_url
from callcenter.sms.service import app_mo_url
from callcenter.tickets import store as st
from callcenter.tickets.config import SURVEY_QUESTION, SurveyPolicy, policy_of
from callcenter.tickets.replies import reply_handler
from callcenter.tickets.rules import Accept, Forward, Resolve, TicketState
from callcenter.tickets.service import TicketService
from tests.support.kannel import free_port, started_gateway, wait_until
from tests.support.tickets import OP, SUP, T0, YT, Clock, hotline_config, make_service

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_given_an_mo_url_when_rendered_then_smsbox_calls_it_and_answers_nothing(
        tmp_path: Path) -> None:
    secrets = load_kannel_secrets(tmp_path)
    assert secrets.mo_key and secrets.mo_key not in (secrets.dlr_key,
                                                     secrets.admin_password)
    url = app_mo_url("0.0.0.0", 8088, secrets.mo_key)  # noqa: S104 - the app's bind
    assert url == (f"http://127.0.0.1:8088/sms/mo?k={secrets.mo_key}"
                   "&id=%I&from=%p&to=%P&text=%a")
    text = render_config(SmsSettings(), secrets, tmp_path, url)
    service = text[text.index("group = sms-service"):]
    assert f'get-url = "{url}"' in service
    assert "max-messages = 0" in service and "omit-empty = true" in service
    assert 'text = "' not in service
    without = render_config(SmsSettings(), secrets, tmp_path)
    assert "get-url" not in without and 'text = "Tổng đài 1022"' in without


@dataclass
class Stack:
    svc: TicketService
    clock: Clock
    gateway: KannelGateway


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The ticket service on SQLite behind /sms/mo, and a Kannel whose smsbox calls it."""
    cfg = hotline_config()
    dongnai = cfg.tenants[0]
    cfg = replace(cfg, tenants=(replace(dongnai, tickets=replace(
        policy_of(dongnai), survey=SurveyPolicy(True, SURVEY_QUESTION, 7))),
        *cfg.tenants[1:]))
    clock = Clock(T0)
    svc = make_service(f"sqlite:///{tmp_path / 'db' / 'hotline.db'}", tmp_path / "files",
                       clock, cfg)
    key = load_kannel_secrets(tmp_path).mo_key  # the gateway's own secrets file, same folder
    app = web.Application()
    app[SMS_MO] = MoReceiver(key, reply_handler(lambda: svc))
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    gateway: KannelGateway | None = None
    try:
        gateway = started_gateway(tmp_path, mo_url=mo_url(f"http://{LOOPBACK}:{port}", key),
                                  interactive_fakesmsc=True)
        yield Stack(svc, clock, gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        await runner.cleanup()
        svc.close()


def _outcomes(svc: TicketService) -> list[tuple[str | None, str]]:
    r = st.REPLIES.c
    with svc.db.reading() as conn:
        return [(row.message_id, row.outcome) for row in conn.execute(
            sa.select(r.message_id, r.outcome).order_by(r.id))]


async def test_given_a_citizen_texts_2_through_kannel_then_the_ticket_is_reopened(
        stack: Stack) -> None:
    svc, clock = stack.svc, stack.clock
    t = svc.open("dongnai", OP, channel="phone", content="Trạm y tế xã đóng cửa",
                 field="health", citizen_phone="0912345678", at=clock.now)
    svc.act(t.code, OP, Forward(clock.now, OP, "so_y_te"))
    svc.act(t.code, YT, Accept(clock.now, YT))
    svc.act(t.code, YT, Resolve(clock.now, YT, "Trạm đã mở cửa lại"))
    # Another number's text first: recorded, nothing happens to the ticket.
    stack.gateway.send_mo("84987000111", "1022", "hai")
    # One line at a time: fakesmsc reads stdin with stdio (a second line already buffered
    # would wait for a third), so the next goes once the first has arrived.
    await wait_until(lambda: len(_outcomes(svc)) == 1, 20, "the first MO to reach the app")
    stack.gateway.send_mo("84912345678", "1022", "2")  # the citizen's phone, as SMSCs send it
    await wait_until(lambda: svc.get(t.code, SUP).state is TicketState.REOPENED, 20,
                     "the MO to reach the app and reopen the ticket")
    got = _outcomes(svc)
    assert [o for _, o in got] == ["unrecognised", "not_resolved"]
    # Kannel's own message id (%I) arrives: a retry would be recognised.
    assert all(mid is not None and UUID.fullmatch(mid) for mid, _ in got), got
    last = svc.audit(t.code, SUP)[-1]
    assert (last.event, last.actor.user_id) == ("reopen", "citizen-sms")


def test_given_a_gateway_without_interactive_fakesmsc_when_sending_mo_then_refused(
        tmp_path: Path) -> None:
    gateway = KannelGateway(SmsSettings(), load_kannel_secrets(tmp_path), tmp_path)
    with pytest.raises(RuntimeError):
        gateway.send_mo("0912345678", "1022", "2")
