"""Mailed reports against real parts: the outbox on SQLite and PostgreSQL, a real SMTP server
(aiosmtpd on loopback), the real ticket reports and openpyxl reading the attachment back."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from callcenter.config.model import HotlineConfig
from callcenter.mail.dispatcher import MailDispatcher
from callcenter.mail.reports import ReportMailer, send_report_now
from callcenter.mail.rules import MailConfig, ReportRule, ReportsPolicy
from callcenter.mail.sender import MailServer, server_from_config, server_of
from callcenter.mail.store import XLSX, Attachment, MailOutbox
from callcenter.runtime.ports import free_port
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.rules import Forward
from callcenter.tickets.service import TicketService
from tests.support.concurrency import run_together
from tests.support.schema import model_diff
from tests.support.smtp import SmtpServer
from tests.support.tickets import OP, Clock, hotline_config, make_service
from tests.support.tls import make_cert

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = dt.date(2026, 12, 6)  # a Sunday
REPORT_TIME = dt.datetime(2026, 12, 7, 7, 30, tzinfo=VN).astimezone(dt.UTC)  # Monday 07:30
TO = ("vanphong@dongnai.example", "bcd@dongnai.example")


def _config(port: int, **mail: object) -> HotlineConfig:
    cfg = hotline_config()
    dongnai = replace(cfg.tenants[0], reports=ReportsPolicy((
        ReportRule("daily", dt.time(7, 30), TO),
        ReportRule("weekly", dt.time(7, 30), TO[:1], weekday=0))))
    return replace(cfg, tenants=(dongnai, *cfg.tenants[1:]), mail=MailConfig(
        host="127.0.0.1", port=port, sender="Tổng đài 1022 <tongdai1022@dongnai.example>",
        **mail))  # type: ignore[arg-type]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def outbox(database_url: str) -> Iterator[MailOutbox]:
    upgrade_head(database_url)
    box = MailOutbox(database_url)
    yield box
    box.close()


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[TicketService]:
    """Three tickets received on 6/12/2026 in Đồng Nai: one answered, one forwarded, one open."""
    clock = Clock(dt.datetime(2026, 12, 6, 9, 0, tzinfo=VN).astimezone(dt.UTC))
    svc = make_service(database_url, tmp_path / "files", clock)
    svc.open("dongnai", OP, channel="phone", content="Hỏi giờ tiêm vắc xin", field="health",
             answer="Từ 7 giờ đến 17 giờ tại trạm y tế phường.")
    clock.now += dt.timedelta(hours=1)
    t = svc.open("dongnai", OP, channel="phone", content="Đèn giao thông hỏng ở ngã tư",
                 field="transport")
    svc.act(t.code, OP, Forward(clock.now, OP, "so_gtvt"))
    clock.now += dt.timedelta(hours=1)
    svc.open("dongnai", OP, channel="phone", content="Phản ánh tiếng ồn ban đêm",
             field="security_order")
    yield svc
    svc.close()


def _dispatcher(box: MailOutbox, cfg: HotlineConfig, clock: Clock) -> MailDispatcher:
    return MailDispatcher(box, lambda: server_of(cfg.mail), clock=clock, rand=lambda: 0.0)


# ---- the outbox -----------------------------------------------------------------------------
def test_given_migrated_database_when_compared_then_mail_tables_match_models(
        database_url: str) -> None:
    assert model_diff(database_url, ["mail_messages", "mail_attachments"]) == []


def test_given_same_key_twice_when_enqueued_then_one_mail_with_its_attachment(
        outbox: MailOutbox) -> None:
    file = Attachment("a.xlsx", XLSX, b"PK\x03\x04 not really")
    first = outbox.enqueue("dongnai", ["a@b.example"], "Chủ đề", "Nội dung", [file],
                           purpose="test", dedupe_key="k1", now=REPORT_TIME)
    again = outbox.enqueue("dongnai", ["a@b.example"], "Chủ đề", "Nội dung", [file],
                           purpose="test", dedupe_key="k1", now=REPORT_TIME)
    assert first is not None and again is None
    assert outbox.counts() == {"queued": 1}
    assert outbox.attachments(first) == [file]


@pytest.mark.parametrize(("to", "why"), [([], "at least one recipient"),
                                         (["not-an-address"], "not a mail address")])
def test_given_bad_recipients_when_enqueued_then_refused(outbox: MailOutbox, to: list[str],
                                                         why: str) -> None:
    with pytest.raises(ValueError, match=why):
        outbox.enqueue("dongnai", to, "s", "b", purpose="test", dedupe_key="k", now=REPORT_TIME)


def test_given_two_claimers_racing_when_claim_due_then_each_mail_claimed_once(
        outbox: MailOutbox) -> None:
    for i in range(20):
        outbox.enqueue("dongnai", ["a@b.example"], f"s{i}", "b", purpose="test",
                       dedupe_key=f"k{i}", now=REPORT_TIME)
    claimed: list[int] = []

    def claim() -> None:
        claimed.extend(m.id for m in outbox.claim_due(REPORT_TIME, 15))

    assert run_together(claim, 2) == []
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 20


# ---- report mails through a real SMTP server ------------------------------------------------
def test_given_daily_report_due_when_scheduled_and_dispatched_then_mail_with_xlsx_arrives(
        outbox: MailOutbox, service: TicketService, smtp: SmtpServer) -> None:
    cfg = _config(smtp.port)
    clock = Clock(REPORT_TIME)
    mailer = ReportMailer(outbox, lambda: service.reports, lambda: cfg)
    queued = mailer.tick(REPORT_TIME)
    assert [q.dedupe_key for q in queued] == ["report:daily:dongnai:2026-12-06",
                                              "report:weekly:dongnai:2026-W49"]
    assert asyncio.run(_dispatcher(outbox, cfg, clock).run_once()) == 2
    by_subject = {m.message["Subject"]: m for m in smtp.mails}
    daily = by_subject["[Tổng đài 1022 Đồng Nai] Báo cáo ngày 06/12/2026"]
    assert daily.rcpt_tos == list(TO)
    assert daily.mail_from == "tongdai1022@dongnai.example"
    body = daily.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Báo cáo ngày 06/12/2026 — Tổng đài 1022 Đồng Nai: tiếp nhận 3 "
                           "phản ánh, kiến nghị; đã xử lý 1 (trả lời tại cấp 1: 1, ")
    assert "lúc 07:30 ngày 07/12/2026" in text
    (att,) = list(daily.message.iter_attachments())
    assert att.get_filename() == "bao-cao-ngay-dongnai-2026-12-06.xlsx"
    assert att.get_content_type() == XLSX
    wb = load_workbook(io.BytesIO(att.get_content()))
    assert wb.sheetnames[:2] == ["Theo đơn vị", "Theo lĩnh vực"]
    sheet = wb["Theo lĩnh vực"]
    assert "ngày 06/12/2026" in str(sheet["A1"].value)
    rows = list(sheet.iter_rows(min_row=5, values_only=True))
    assert rows[-1][1] == "Tổng cộng" and rows[-1][2] == 3  # received
    weekly = by_subject["[Tổng đài 1022 Đồng Nai] Báo cáo tuần 49/2026 (30/11/2026 - "
                        "06/12/2026)"]
    (watt,) = list(weekly.message.iter_attachments())
    assert "Xếp hạng" in load_workbook(io.BytesIO(watt.get_content())).sheetnames
    assert {m.status for m in outbox.recent()} == {"sent"}


def test_given_scheduler_twice_and_two_instances_when_due_then_report_sent_exactly_once(
        outbox: MailOutbox, service: TicketService, smtp: SmtpServer,
        database_url: str) -> None:
    cfg = replace(_config(smtp.port), tenants=tuple(
        replace(t, reports=ReportsPolicy((ReportRule("daily", dt.time(7, 30), TO),)))
        if t.id == "dongnai" else t for t in hotline_config().tenants))
    clock = Clock(REPORT_TIME + dt.timedelta(minutes=5))
    other_box = MailOutbox(database_url)  # the second app instance: its own engine
    try:
        mailers = [ReportMailer(b, lambda: service.reports, lambda: cfg)
                   for b in (outbox, other_box)]
        assert len(mailers[0].tick(clock.now)) == 1
        assert mailers[0].tick(clock.now + dt.timedelta(minutes=1)) == []  # runs again
        assert mailers[1].tick(clock.now) == []  # the other instance: already in the outbox
        fresh = [ReportMailer(b, lambda: service.reports, lambda: cfg)
                 for b in (outbox, other_box)]
        assert run_together(lambda: fresh.pop().tick(clock.now), 2) == []

        async def two_dispatchers() -> list[int]:
            return list(await asyncio.gather(_dispatcher(outbox, cfg, clock).run_once(),
                                             _dispatcher(other_box, cfg, clock).run_once()))

        assert sorted(asyncio.run(two_dispatchers())) == [0, 1]
        assert asyncio.run(two_dispatchers()) == [0, 0]
    finally:
        other_box.close()
    assert len(smtp.mails) == 1
    assert outbox.counts() == {"sent": 1}


def test_given_smtp_server_down_when_dispatched_then_retried_with_backoff_and_sent_when_back(
        outbox: MailOutbox, service: TicketService, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    cfg = replace(_config(port), tenants=tuple(
        replace(t, reports=ReportsPolicy((ReportRule("daily", dt.time(7, 30), TO),)))
        if t.id == "dongnai" else t for t in hotline_config().tenants))
    clock = Clock(REPORT_TIME)
    (queued,) = ReportMailer(outbox, lambda: service.reports, lambda: cfg).tick(clock.now)
    dispatcher = _dispatcher(outbox, cfg, clock)
    with caplog.at_level(logging.ERROR, logger="callcenter.mail.dispatcher"):
        assert asyncio.run(dispatcher.run_once()) == 1
    mail = outbox.get(queued.mail_id or 0)
    assert mail is not None and mail.status == "queued" and mail.attempts == 1
    assert mail.next_attempt_at == clock.now + dt.timedelta(seconds=15)  # 30 s, jitter 0
    assert "ConnectionRefusedError" in (mail.last_error or "")
    assert any(r.levelno == logging.ERROR and "not sent (try 1)" in r.getMessage()
               for r in caplog.records)
    clock.now += dt.timedelta(seconds=15)
    assert asyncio.run(dispatcher.run_once()) == 1  # still down: the wait doubles
    mail = outbox.get(queued.mail_id or 0)
    assert mail is not None and mail.attempts == 2
    assert mail.next_attempt_at == clock.now + dt.timedelta(seconds=30)
    server = SmtpServer(port).start()
    try:
        clock.now += dt.timedelta(seconds=10)
        assert asyncio.run(dispatcher.run_once()) == 0  # not due yet
        clock.now += dt.timedelta(seconds=20)
        assert asyncio.run(dispatcher.run_once()) == 1
    finally:
        server.stop()
    mail = outbox.get(queued.mail_id or 0)
    assert mail is not None and mail.status == "sent" and mail.attempts == 3
    assert len(server.mails) == 1


def test_given_refused_recipient_when_dispatched_then_failed_not_retried(
        outbox: MailOutbox, smtp: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(server: object, session: object, envelope: object, address: str,
                     rcpt_options: object) -> str:
        return "550 5.1.1 no such user"

    smtp.inbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    cfg = _config(smtp.port)
    mail_id = outbox.enqueue("dongnai", ["nobody@dongnai.example"], "Thử", "Nội dung",
                             purpose="test", dedupe_key="t1", now=REPORT_TIME)
    with caplog.at_level(logging.ERROR, logger="callcenter.mail.dispatcher"):
        asyncio.run(_dispatcher(outbox, cfg, Clock(REPORT_TIME)).run_once())
    mail = outbox.get(mail_id or 0)
    assert mail is not None and mail.status == "failed" and "550" in (mail.last_error or "")
    assert any("refused for good" in r.getMessage() for r in caplog.records)


def test_given_starttls_and_login_when_sent_then_delivered_over_tls(
        outbox: MailOutbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = make_cert(tmp_path / "tls", "smtp")
    server = SmtpServer(tls=(str(pair.cert), str(pair.key)), login=("tongdai", "mk-bi-mat"))
    server.start()
    try:
        monkeypatch.setenv("TEST_SMTP_USER", "tongdai")
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "mk-bi-mat")
        cfg = _config(server.port, starttls=True, ca_file=str(pair.cert),
                      username_env="TEST_SMTP_USER", password_env="TEST_SMTP_PASSWORD")
        mail_id = outbox.enqueue("dongnai", ["a@dongnai.example"], "Thử TLS", "Nội dung",
                                 purpose="test", dedupe_key="tls1", now=REPORT_TIME)
        asyncio.run(_dispatcher(outbox, cfg, Clock(REPORT_TIME)).run_once())
        mail = outbox.get(mail_id or 0)
        assert mail is not None and mail.status == "sent", mail
        assert [m.message["Subject"] for m in server.mails] == ["Thử TLS"]
        # Without STARTTLS this server refuses the mail (it requires TLS): retried, not lost.
        plain = _config(server.port)
        second = outbox.enqueue("dongnai", ["a@dongnai.example"], "Không TLS", "Nội dung",
                                purpose="test", dedupe_key="tls2", now=REPORT_TIME)
        asyncio.run(_dispatcher(outbox, plain, Clock(REPORT_TIME)).run_once())
        mail = outbox.get(second or 0)
        assert mail is not None and mail.status != "sent"
        assert len(server.mails) == 1
    finally:
        server.stop()


def test_given_login_env_unset_when_server_from_config_then_error_names_variable() -> None:
    cfg = MailConfig("127.0.0.1", "a@b.example", username_env="NO_SUCH_USER_VAR",
                     password_env="NO_SUCH_PASSWORD_VAR")
    with pytest.raises(Exception, match="NO_SUCH_USER_VAR, NO_SUCH_PASSWORD_VAR"):
        server_from_config(cfg, env={})
    assert server_from_config(cfg, env={"NO_SUCH_USER_VAR": "u",
                                        "NO_SUCH_PASSWORD_VAR": "p"}) == MailServer(
        "127.0.0.1", 25, "a@b.example", False, None, "u", "p")


def test_given_send_now_when_called_then_mail_sent_at_once_under_its_own_key(
        outbox: MailOutbox, service: TicketService, smtp: SmtpServer) -> None:
    cfg = _config(smtp.port)
    ReportMailer(outbox, lambda: service.reports, lambda: cfg).tick(REPORT_TIME)
    queued, mail = send_report_now(outbox, service.reports, cfg, "dongnai", "daily",
                                   REPORT_TIME, day=DAY)
    assert mail is not None and mail.status == "sent" and mail.to == TO
    assert queued.dedupe_key.startswith("report:daily:dongnai:2026-12-06:manual:")
    assert [m.message["Subject"] for m in smtp.mails] == [
        "[Tổng đài 1022 Đồng Nai] Báo cáo ngày 06/12/2026"]


async def test_given_job_and_dispatcher_tasks_running_when_report_due_then_mail_arrives_alone(
        outbox: MailOutbox, service: TicketService, smtp: SmtpServer) -> None:
    """The app's two tasks (as app.py's _mail_ctx runs them): nobody calls anything."""
    from callcenter.mail.reports import report_job

    cfg = _config(smtp.port)
    clock = Clock(REPORT_TIME - dt.timedelta(seconds=1))
    mailer = ReportMailer(outbox, lambda: service.reports, lambda: cfg)
    dispatcher = MailDispatcher(outbox, lambda: server_of(cfg.mail), clock=clock,
                                poll_interval=30.0)
    tasks = [asyncio.create_task(dispatcher.run()),
             asyncio.create_task(report_job(mailer, dispatcher.wake, interval_s=0.2,
                                            clock=clock))]
    def subjects() -> list[str]:
        return sorted(str(m.message["Subject"]) for m in smtp.mails)

    async def until(n: int) -> None:
        for _ in range(150):
            if len(smtp.mails) >= n:
                return
            await asyncio.sleep(0.1)

    try:
        # Started at 07:29:59 on Monday 7/12: the latest reports due (yesterday's daily, for
        # 5/12, and last Monday's weekly) were never sent: they go out at once (catch-up).
        await until(2)
        assert subjects() == [
            "[Tổng đài 1022 Đồng Nai] Báo cáo ngày 05/12/2026",
            "[Tổng đài 1022 Đồng Nai] Báo cáo tuần 48/2026 (23/11/2026 - 29/11/2026)"]
        await asyncio.sleep(0.5)
        assert len(smtp.mails) == 2  # the job keeps running: nothing twice
        clock.now = REPORT_TIME  # 07:30: today's reports fall due
        await until(4)
        await asyncio.sleep(0.5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert subjects()[:2] == [
        "[Tổng đài 1022 Đồng Nai] Báo cáo ngày 05/12/2026",
        "[Tổng đài 1022 Đồng Nai] Báo cáo ngày 06/12/2026"]
    assert len(smtp.mails) == 4


async def test_given_wake_while_a_batch_is_sent_when_batch_done_then_looks_again_at_once() -> None:
    """A report queued (wake) while the dispatcher sends a batch is not lost to its poll wait
    (CI saw the second of two catch-up reports wait the 30 s poll under load)."""
    class Outbox:
        def requeue_stuck(self, now: dt.datetime, after: dt.timedelta) -> int:
            return 0

    looks: list[float] = []

    class Probe(MailDispatcher):
        async def run_once(self, ids: list[int] | None = None) -> int:
            looks.append(asyncio.get_running_loop().time())
            if len(looks) == 1:
                self.wake()  # queued while this batch was being sent
            return 0

    dispatcher = Probe(Outbox(), lambda: None, poll_interval=30.0)  # type: ignore[arg-type]
    task = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(100):
            if len(looks) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(looks) >= 2, "the wake during the batch was lost: the next look waits 30 s"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _blocking_send(started: threading.Event, release: threading.Event) -> Any:
    def send(*args: object) -> None:
        started.set()
        release.wait(10)
    return send


async def _cancel_mid_send(outbox: MailOutbox, *, server_answers: bool,
                           drain_timeout: float) -> None:
    """Two mails due; the dispatcher is cancelled while the first is with the SMTP server."""
    for key in ("k1", "k2"):
        outbox.enqueue("dongnai", ["a@b.example"], key, "b", purpose="test", dedupe_key=key,
                       now=REPORT_TIME)
    started, release = threading.Event(), threading.Event()
    server = MailServer("127.0.0.1", 25, "tongdai@dongnai.example")
    dispatcher = MailDispatcher(outbox, lambda: server, clock=Clock(REPORT_TIME),
                                drain_timeout=drain_timeout,
                                send=_blocking_send(started, release))
    task = asyncio.create_task(dispatcher.run_once())
    assert await asyncio.to_thread(started.wait, 5)
    task.cancel()
    try:
        if server_answers:
            await asyncio.sleep(0.1)
            release.set()  # the server says 250 OK after we were told to stop
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        release.set()


async def test_given_stop_while_a_mail_is_with_the_server_when_it_is_taken_then_recorded_sent(
        outbox: MailOutbox) -> None:
    """A mail the server took during shutdown is "sent", not left "sending" for the stuck
    sweep to send twice (CI saw the app's report mail arrive and stay "sending"); the mail
    not yet begun goes back to the queue."""
    await _cancel_mid_send(outbox, server_answers=True, drain_timeout=5.0)
    assert {m.subject: m.status for m in outbox.recent()} == {"k1": "sent", "k2": "queued"}


async def test_given_stop_while_server_hangs_when_drain_times_out_then_left_sending_and_said(
        outbox: MailOutbox, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "callcenter.mail.dispatcher"):
        await _cancel_mid_send(outbox, server_answers=False, drain_timeout=0.05)
    assert {m.subject: m.status for m in outbox.recent()} == {"k1": "sending", "k2": "queued"}
    assert "stays \"sending\"" in caplog.text
