"""The composition root's e-mail in (app.py ``_mail_in_ctx``) with the mail context: a citizen's
message sent by SMTP to the app's intake becomes a ticket, and the automatic reply with its code
leaves through the outbox's dispatcher to a real SMTP server with nobody asking."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

from aiohttp import web

from callcenter import app as app_module
from callcenter.config.live import LiveConfig
from callcenter.config.model import HotlineConfig
from callcenter.mail.rules import MailConfig
from callcenter.mailin.rules import MailInConfig
from callcenter.runtime.ports import free_port
from callcenter.store.database import Database
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.rules import Actor
from callcenter.tickets.service import TicketService
from tests.support.smtp import SmtpServer
from tests.support.tickets import hotline_config

ADDRESS = "tongdai1022@dongnai.example"


async def _app(tmp_path: Path, cfg: HotlineConfig) -> tuple[web.AppRunner, TicketService]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    app = web.Application()
    app[app_module.CONFIG] = LiveConfig(tmp_path / "hotline.yaml", cfg)
    app[app_module.DATABASE] = database = Database(url)
    service = TicketService(url, app[app_module.CONFIG], tmp_path / "files")
    app[app_module.TICKETS] = service

    async def closing(app: web.Application) -> AsyncIterator[None]:
        yield
        service.close()
        database.close()

    app.cleanup_ctx.extend([closing, app_module._tasks_ctx, app_module._mail_ctx,
                            app_module._mail_in_ctx])
    runner = web.AppRunner(app)
    await runner.setup()
    return runner, service


def _send(port: int) -> None:
    msg = EmailMessage()
    msg["From"] = "Trần Văn Nam <nam@example.vn>"
    msg["To"] = ADDRESS
    msg["Subject"] = "Rác thải ùn ứ"
    msg["Message-ID"] = "<wiring.1@example.vn>"
    msg.set_content("Rác ùn ứ ở chợ Tân Hiệp đã một tuần.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


async def test_given_app_with_mail_in_when_citizen_writes_then_ticket_and_reply_arrives(
        tmp_path: Path) -> None:
    out = SmtpServer().start()
    port = free_port()
    cfg = replace(hotline_config(),
                  mail=MailConfig("127.0.0.1", "tongdai@dongnai.example", port=out.port),
                  mail_in=MailInConfig(addresses={ADDRESS: "dongnai"}, port=port))
    try:
        runner, service = await _app(tmp_path, cfg)
        try:
            await asyncio.to_thread(_send, port)
            for _ in range(100):
                if out.mails:
                    break
                await asyncio.sleep(0.1)
            [ticket] = service.list(Actor("gs", "supervisor"), tenant="dongnai")
        finally:
            await runner.cleanup()
    finally:
        out.stop()
    assert ticket.channel == "email"
    (mail,) = out.mails
    assert mail.rcpt_tos == ["nam@example.vn"]
    assert ticket.code in str(mail.message["Subject"])
    body = mail.message.get_body()
    assert body is not None and f"Mã phản ánh: {ticket.code}" in body.get_content()

