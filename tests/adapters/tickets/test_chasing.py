"""Chasing late units through TicketService.sweep on SQLite and PostgreSQL, with the shipped
Đồng Nai config (tickets.chasing: at the deadline, 07:30 Mon-Fri, escalate after 2 days) and a
settable clock: SMS in the real outbox with dedupe keys, e-mail commands handed to a mail
sender, audit events, nothing twice."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from callcenter.config.model import HotlineConfig
from callcenter.sms.store import SmsOutbox
from callcenter.tickets import store as st
from callcenter.tickets.config import policy_of
from callcenter.tickets.rules import Forward, Resolve
from callcenter.tickets.service import TicketService
from tests.support.concurrency import run_together
from tests.support.tickets import OP, SUP, T0, Clock, hotline_config, make_service

VN = ZoneInfo("Asia/Ho_Chi_Minh")
M = dt.timedelta(minutes=1)
UNIT = "ubnd_vinh_cuu"
HEALTH_PHONE, SOCIAL_PHONE = "0900000408", "0900000208"  # the shipped example numbers
HEAD_PHONE, OFFICE_PHONE = "0900000508", "0900000100"
HEAD_MAIL, OFFICE_MAIL = "ubnd.vinhcuu@dongnai.example", "vp.ubnd@dongnai.example"


def local(d: int, h: int, mi: int = 0) -> dt.datetime:
    """A local time in the week of T0 (2026-11-23, a Monday), as UTC."""
    return dt.datetime(2026, 11, d, h, mi, tzinfo=VN).astimezone(dt.UTC)


DUE = local(24, 10)  # T0 is Monday 10:00 local; 24 h to resolve


@dataclass
class SentMail:
    tenant: str
    to: str
    subject: str
    body: str
    purpose: str
    dedupe_key: str


class MailRecorder:
    """A MailSender keeping what it is given, once per dedupe key (as the outbox will)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: dict[str, SentMail] = {}
        self.calls = 0
        self.fail = fail

    def enqueue(self, tenant: str, to: str, subject: str, body: str,
                attachments: Sequence[Any] = (), *, purpose: str, dedupe_key: str,
                now: dt.datetime) -> object:
        self.calls += 1
        if self.fail:
            raise OSError("mail outbox unavailable")
        self.sent.setdefault(dedupe_key, SentMail(tenant, to, subject, body, purpose, dedupe_key))
        return None


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def mail() -> MailRecorder:
    return MailRecorder()


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: Clock,
        mail: MailRecorder) -> Iterator[TicketService]:
    s = make_service(database_url, tmp_path / "files", clock, mail=mail)
    yield s
    s.close()


@pytest.fixture
def outbox(svc: TicketService) -> SmsOutbox:
    return SmsOutbox(svc.db.engine)


def forwarded(svc: TicketService, field: str = "health") -> str:
    t = svc.open("dongnai", OP, channel="phone", content="Trạm y tế xã đóng cửa", field=field,
                 place="vinh_cuu", citizen_phone="0912345678", at=T0)
    svc.act(t.code, OP, Forward(T0 + 2 * M, OP, UNIT))
    return t.code


def sms(outbox: SmsOutbox, purpose: str) -> list[tuple[str, str]]:
    return sorted((m.to_number, m.dedupe_key) for m in outbox.recent(limit=1000)
                  if m.purpose == purpose)


def events(svc: TicketService, code: str) -> list[str]:
    return [e.event for e in svc.audit(code, SUP)]


def test_given_late_ticket_when_deadline_passes_then_health_person_chased_once(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = forwarded(svc)
    before = svc.sweep(DUE - M)
    assert before.chased == () and before.reminded == (code,)  # the reminder, 2 h ahead
    first = svc.sweep(DUE)  # the exact deadline minute
    assert first.chased == (code,) and first.escalated == ()
    assert [m.code for m in first.late] == []  # 'late' is marked once the due time is past
    assert svc.sweep(DUE + M).chased == ()  # a second sweep sends nothing
    assert sms(outbox, "chase") == [(HEALTH_PHONE, f"{code}:chase:{DUE.isoformat()}:"
                                                   f"{HEALTH_PHONE}")]
    text = outbox.by_dedupe_key(f"{code}:chase:{DUE.isoformat()}:{HEALTH_PHONE}")
    assert text is not None and code in text.text and "UBND huyện Vĩnh Cửu" in text.text
    assert events(svc, code).count("chase") == 1
    assert svc.get(code, SUP).version == 3  # forward, remind, chase (each a versioned event)
    assert svc.get(code, SUP).chased_at == DUE


def test_given_chased_at_deadline_when_next_working_morning_then_chased_at_0730_local(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = forwarded(svc)
    svc.sweep(DUE + M)
    assert svc.sweep(local(24, 18)).chased == ()
    assert svc.sweep(local(25, 7, 29)).chased == ()
    assert svc.sweep(local(25, 7, 30)).chased == (code,)
    keys = [k for _, k in sms(outbox, "chase")]
    assert keys == sorted([f"{code}:chase:{DUE.isoformat()}:{HEALTH_PHONE}",
                           f"{code}:chase:{local(25, 7, 30).isoformat()}:{HEALTH_PHONE}"])
    stored = _stored(svc, code)
    assert stored.chase_at == local(26, 7, 30)  # the next morning is scheduled


def test_given_two_days_late_when_swept_over_days_then_escalated_once_by_sms_and_email(
        svc: TicketService, outbox: SmsOutbox, mail: MailRecorder) -> None:
    code = forwarded(svc, field="social_security")
    for now in (DUE + M, local(25, 7, 30), local(26, 7, 30)):  # Thu 07:30 < due + 2 days
        assert svc.sweep(now).escalated == ()
    fri = svc.sweep(local(27, 7, 30))
    assert fri.chased == (code,) and fri.escalated == (code,)
    for now in (local(28, 7, 30), local(29, 7, 30)):  # the weekend: nothing
        assert svc.sweep(now).chased == ()
    assert svc.sweep(local(30, 7, 30)).escalated == ()  # Monday: chased, not escalated again
    slot = local(27, 7, 30).isoformat()
    assert sms(outbox, "escalation") == sorted([
        (HEAD_PHONE, f"{code}:escalation:{slot}:{HEAD_PHONE}"),
        (OFFICE_PHONE, f"{code}:escalation:{slot}:{OFFICE_PHONE}")])
    assert {p for p, _ in sms(outbox, "chase")} == {SOCIAL_PHONE}  # 5 chases, social person
    assert len(sms(outbox, "chase")) == 5
    escalations = [m for m in mail.sent.values() if m.purpose == "escalation"]
    assert sorted(m.to for m in escalations) == sorted([HEAD_MAIL, OFFICE_MAIL])
    assert all(m.dedupe_key.startswith(f"{code}:escalation:{slot}:") for m in escalations)
    assert all(code in m.subject and "trễ hạn" in m.subject for m in escalations)
    ev = events(svc, code)
    assert ev.count("chase") == 5 and ev.count("escalate") == 1 and ev.count("email") == 2
    detail = next(e.detail for e in svc.audit(code, SUP) if e.event == "escalate")
    assert "Chủ tịch UBND huyện Vĩnh Cửu" in detail and "Văn phòng UBND tỉnh" in detail


def test_given_two_instances_when_sweeping_at_once_then_one_chase_one_sms(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    a = make_service(database_url, tmp_path / "files", clock)
    b = TicketService(database_url, a.config, tmp_path / "files", clock=clock)
    try:
        code = forwarded(a)
        a.sweep(DUE + M)  # chased at the deadline
        results: list[tuple[str, ...]] = []
        turn = itertools.count()

        def sweep_on_one_of_two() -> None:  # threads alternate between the two instances
            instance = (a, b)[next(turn) % 2]
            results.append(instance.sweep(local(25, 7, 31)).chased)

        errors = run_together(sweep_on_one_of_two, 4)
        assert errors == []
        assert sum(len(r) for r in results) == 1
        assert len(sms(SmsOutbox(a.db.engine), "chase")) == 2
        assert events(a, code).count("chase") == 2
    finally:
        a.close()
        b.close()


def test_given_no_mail_sender_when_escalating_then_emails_audited_unsent_sms_still_sent(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    s = make_service(database_url, tmp_path / "files", clock)
    try:
        code = forwarded(s)
        s.sweep(local(27, 7, 30))  # one chase, already two days late: escalates
        ev = events(s, code)
        assert ev.count("escalate") == 1 and ev.count("email_unsent") == 2
        assert len(sms(SmsOutbox(s.db.engine), "escalation")) == 2
    finally:
        s.close()


def test_given_failing_mail_sender_when_escalating_then_chase_kept_and_failure_audited(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    broken = MailRecorder(fail=True)
    s = make_service(database_url, tmp_path / "files", clock, mail=broken)
    try:
        code = forwarded(s)
        assert s.sweep(local(27, 7, 30)).escalated == (code,)
        assert broken.calls == 2
        assert events(s, code).count("email_failed") == 2
        assert s.get(code, SUP).escalated_at is not None
    finally:
        s.close()


def test_given_resolved_ticket_when_swept_later_then_not_chased(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = forwarded(svc)
    svc.sweep(DUE + M)
    svc.act(code, SUP, Resolve(DUE + 2 * M, SUP, "Đã xử lý"))
    assert svc.sweep(local(25, 7, 30)).chased == ()
    assert _stored(svc, code).chase_at is None
    assert len(sms(outbox, "chase")) == 1


def test_given_chasing_switched_off_when_slot_comes_then_nothing_sent_and_unscheduled(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    cfg: list[HotlineConfig] = [hotline_config()]
    upgrade = make_service(database_url, tmp_path / "files", clock)
    upgrade.close()
    s = TicketService(database_url, lambda: cfg[0], tmp_path / "files", clock=clock)
    try:
        code = forwarded(s)
        dongnai = cfg[0].tenants[0]
        off = replace(dongnai, tickets=replace(policy_of(dongnai), chasing=None))
        cfg[0] = replace(cfg[0], tenants=(off, *cfg[0].tenants[1:]))
        assert s.sweep(DUE + M).chased == ()
        assert _stored(s, code).chase_at is None
        assert "chase" not in events(s, code)
    finally:
        s.close()


def test_given_migrated_database_when_inspected_then_chase_columns_and_index_exist(
        svc: TicketService) -> None:
    inspector = sa.inspect(svc.db.engine)
    columns = {c["name"] for c in inspector.get_columns("tickets")}
    assert {"chase_at", "chased_at", "escalated_at"} <= columns
    assert "ix_tickets_state_chase_at" in {i["name"] for i in inspector.get_indexes("tickets")}


def _stored(svc: TicketService, code: str) -> st.StoredTicket:
    with svc.db.reading() as conn:
        found = st.load(conn, code)
    assert found is not None
    return found


def test_given_chasing_switched_on_after_forwarding_when_swept_then_late_ticket_chased(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    dongnai = hotline_config().tenants[0]
    off = replace(dongnai, tickets=replace(policy_of(dongnai), chasing=None))
    cfg: list[HotlineConfig] = [replace(hotline_config(), tenants=(off,))]
    s = make_service(database_url, tmp_path / "files", clock, config=cfg[0])
    s.config = lambda: cfg[0]
    try:
        code = forwarded(s)
        assert _stored(s, code).chase_at is None  # forwarded while chasing was off
        assert s.sweep(local(25, 7, 30)).chased == ()
        cfg[0] = hotline_config()  # switched on (a reloaded config)
        assert s.sweep(local(25, 7, 31)).chased == (code,)
        assert _stored(s, code).chase_at == local(26, 7, 30)
        assert s.sweep(local(25, 7, 32)).chased == ()
    finally:
        s.close()
