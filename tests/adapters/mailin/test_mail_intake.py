"""E-mail in over real SMTP (smtplib to the aiosmtpd intake on loopback, a real TicketService
on SQLite and PostgreSQL): a message to the tenant's address becomes an ``email`` ticket with
its good attachments and an automatic reply queued in the mail outbox (bad files named in it);
the same Message-ID again opens nothing; a reply in the thread (our reply's Message-ID, the
original's, or the code in the subject) is added to the ticket's audit trail; other addresses
get 550, big messages 552, a flooding sender 550 5.7.1; a database error is 451 with nothing
half-done; automatic messages open a ticket but get no reply."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.config.file import load_config
from callcenter.mail.dispatcher import message_id as outbox_message_id
from callcenter.mail.store import MailOutbox, OutboxMail
from callcenter.mailin.intake import IntakeHandler, MailIntake, start_intake
from callcenter.mailin.rules import MailInConfig
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.rules import Actor, Ticket
from callcenter.tickets.service import TicketService
from tests.support import api as support

ADDRESS = "tongdai1022@dongnai.gov.vn"
SUPERVISOR = Actor("giamsat", "supervisor")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x11" * 600
PDF = b"%PDF-1.4\n" + b"0" * 300


@dataclass
class Intake:
    port: int
    service: TicketService
    outbox: MailOutbox
    database_url: str
    woken: list[int]

    async def send(self, msg: EmailMessage, to: str = ADDRESS) -> None:
        def go() -> None:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
                smtp.send_message(msg, to_addrs=[to])
        await asyncio.to_thread(go)

    async def refused(self, msg: EmailMessage, to: str = ADDRESS) -> tuple[int, str]:
        """The SMTP code and text of a refusal (fails if the message was taken)."""
        try:
            await self.send(msg, to)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[to]
            return code, text.decode()
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
            err = e.smtp_error
            return e.smtp_code, err.decode() if isinstance(err, bytes) else err
        raise AssertionError("the message was taken")

    def tickets(self) -> list[Ticket]:
        return list(self.service.list(SUPERVISOR, tenant="dongnai"))

    def mails(self) -> list[OutboxMail]:
        return self.outbox.recent()


@pytest.fixture
def field() -> str:
    return "other"


@pytest.fixture
async def intake(database_url: str, tmp_path: Path, field: str) -> AsyncIterator[Intake]:
    upgrade_head(database_url)
    path = tmp_path / "hotline.yaml"
    path.write_text(support.CONFIG, encoding="utf-8")
    config = load_config(path)
    service = TicketService(database_url, lambda: config, tmp_path / "files",
                            upload_limits=support.UPLOAD_LIMITS)
    cfg = MailInConfig(addresses={ADDRESS: "dongnai"}, port=0, max_bytes=200_000,
                       per_sender_per_day=3, field=field)
    woken: list[int] = []
    handler = IntakeHandler(MailIntake(service, lambda: cfg, lambda: "noreply@dongnai.gov.vn"),
                            lambda: woken.append(1))
    server = await start_intake(handler, cfg)
    port = server.sockets[0].getsockname()[1]
    outbox = MailOutbox(database_url)
    try:
        yield Intake(port, service, outbox, database_url, woken)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        outbox.close()
        service.close()


def petition(message_id: str = "<p1@example.vn>", sender: str = "hoa@example.vn",
             subject: str = "Đường ĐT769 ngập sâu", body: str = "Nước ngập tới đầu gối.",
             ) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Nguyễn Thị Hoa <{sender}>"
    msg["To"] = ADDRESS
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)  # non-ASCII: sent as UTF-8, the subject RFC 2047-encoded
    return msg


async def test_given_petition_with_files_when_sent_then_email_ticket_files_and_reply(
        intake: Intake) -> None:
    msg = petition()
    msg.add_attachment(JPEG, maintype="image", subtype="jpeg", filename="ảnh.jpg")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="don.pdf")
    msg.add_attachment(b"MZ\x90\x00", maintype="application", subtype="octet-stream",
                       filename="chay-thu.exe")
    await intake.send(msg)
    [ticket] = intake.tickets()
    assert ticket.channel == "email" and ticket.citizen_name == "Nguyễn Thị Hoa"
    assert "Nước ngập tới đầu gối." in ticket.content
    assert ticket.content.endswith("E-mail liên hệ: hoa@example.vn")
    files = intake.service.attachments(ticket.code, SUPERVISOR)
    assert sorted(f.file_name for f in files) == ["don.pdf", "ảnh.jpg"]
    [mail] = intake.mails()
    assert mail.to == ("hoa@example.vn",) and mail.purpose == "mail_receipt"
    assert ticket.code in mail.subject and f"Mã phản ánh: {ticket.code}" in mail.body
    assert "- chay-thu.exe" in mail.body  # the refused file, named
    assert intake.woken  # the dispatcher is told to send now


async def test_given_same_message_id_when_sent_again_then_one_ticket_one_reply(
        intake: Intake) -> None:
    await intake.send(petition())
    await intake.send(petition(body="Gửi lại lần hai"))
    assert len(intake.tickets()) == 1 and len(intake.mails()) == 1


async def test_given_reply_to_our_receipt_when_sent_then_added_to_ticket(
        intake: Intake) -> None:
    await intake.send(petition())
    [ticket] = intake.tickets()
    [mail] = intake.mails()
    ours = outbox_message_id(mail, "noreply@dongnai.gov.vn")  # what the dispatcher sends
    reply = petition("<p2@example.vn>", subject=f"Re: {mail.subject}",
                     body="Bổ sung: đã ngập thêm 20 cm.")
    reply["In-Reply-To"] = ours
    reply.add_attachment(JPEG + b"2", maintype="image", subtype="jpeg", filename="them.jpg")
    await intake.send(reply)
    assert len(intake.tickets()) == 1 and len(intake.mails()) == 1  # no new ticket, no reply
    notes = [e for e in intake.service.audit(ticket.code, SUPERVISOR)
             if e.event == "citizen_mail"]
    assert len(notes) == 1 and "Bổ sung: đã ngập thêm 20 cm." in notes[0].detail
    assert "them.jpg" in [f.file_name for f in intake.service.attachments(ticket.code,
                                                                          SUPERVISOR)]


async def test_given_reference_to_original_or_code_in_subject_then_same_ticket(
        intake: Intake) -> None:
    await intake.send(petition())
    [ticket] = intake.tickets()
    by_ref = petition("<p3@example.vn>", subject="Thêm thông tin", body="Lần 1")
    by_ref["References"] = "<p1@example.vn>"
    await intake.send(by_ref)
    await intake.send(petition("<p4@example.vn>", subject=f"Hỏi tiến độ {ticket.code}",
                               body="Lần 2"))
    assert len(intake.tickets()) == 1
    details = [e.detail for e in intake.service.audit(ticket.code, SUPERVISOR)
               if e.event == "citizen_mail"]
    assert len(details) == 2 and "Lần 1" in details[0] and "Lần 2" in details[1]


async def test_given_unknown_recipient_when_sent_then_550_and_nothing(intake: Intake) -> None:
    code, _ = await intake.refused(petition(), to="someone@gmail.com")
    assert code == 550 and intake.tickets() == []


async def test_given_too_big_message_when_sent_then_552(intake: Intake) -> None:
    msg = petition()
    msg.add_attachment(b"\x00" * 300_000, maintype="application", subtype="pdf",
                       filename="lon.pdf")
    code, _ = await intake.refused(msg)
    assert code == 552 and intake.tickets() == []


async def test_given_flooding_sender_when_over_limit_then_550_5_7_1(intake: Intake) -> None:
    for i in range(3):
        await intake.send(petition(f"<f{i}@example.vn>"))
    code, text = await intake.refused(petition("<f9@example.vn>"))
    assert code == 550 and "5.7.1" in text and len(intake.tickets()) == 3


async def test_given_database_error_when_sent_then_451_and_nothing_half_done(
        intake: Intake) -> None:
    # A real database failure inside the ticket's transaction: the outbox table is gone, so
    # queueing the reply fails after the ticket row was written. All of it rolls back.
    engine = sa.create_engine(intake.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE mail_attachments"))
        conn.execute(sa.text("DROP TABLE mail_messages"))
    engine.dispose()
    code, _ = await intake.refused(petition())
    assert code == 451
    assert intake.tickets() == []


async def test_given_auto_submitted_when_sent_then_ticket_but_no_reply(intake: Intake) -> None:
    msg = petition("<auto@example.vn>")
    msg["Auto-Submitted"] = "auto-replied"
    await intake.send(msg)
    assert len(intake.tickets()) == 1 and intake.mails() == []
    assert not intake.woken


async def test_given_bounce_when_sent_then_taken_but_nothing_stored(intake: Intake) -> None:
    msg = petition("<bounce@mx.example.vn>", sender="MAILER-DAEMON@mx.example.vn",
                   subject="Undelivered Mail Returned to Sender")
    await intake.send(msg)
    assert intake.tickets() == [] and intake.mails() == []


async def test_given_out_of_office_in_thread_when_sent_then_not_added(intake: Intake) -> None:
    await intake.send(petition())
    [ticket] = intake.tickets()
    ooo = petition("<ooo@example.vn>", subject=f"Vắng mặt: {ticket.code}", body="Tôi nghỉ phép")
    ooo["Auto-Submitted"] = "auto-replied"
    await intake.send(ooo)
    assert len(intake.tickets()) == 1
    assert [e for e in intake.service.audit(ticket.code, SUPERVISOR)
            if e.event == "citizen_mail"] == []


@pytest.mark.parametrize("field", ["no_such_field"])
async def test_given_ticket_rules_refuse_when_sent_then_554_not_retried(
        intake: Intake) -> None:
    code, _ = await intake.refused(petition())
    assert code == 554 and intake.tickets() == []
