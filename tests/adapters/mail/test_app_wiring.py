"""The composition root's mail context (app.py ``_mail_ctx``) with its owned tasks, on a real
SQLite database and a real SMTP server: a report falls due and arrives with nobody asking;
without ``mail:`` the same app starts and stops and queues nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from callcenter import app as app_module
from callcenter.config.live import LiveConfig
from callcenter.config.model import HotlineConfig
from callcenter.mail.rules import MailConfig, ReportRule, ReportsPolicy
from callcenter.mail.store import MailOutbox
from callcenter.store.database import Database
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.service import TicketService
from tests.support.smtp import SmtpServer
from tests.support.tickets import hotline_config


def _config(port: int | None) -> HotlineConfig:
    cfg = hotline_config()
    # A daily report whose time passed a minute ago (local): due now, whatever the date.
    at = (dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=7)))
          - dt.timedelta(minutes=1)).time().replace(second=0, microsecond=0)
    dongnai = replace(cfg.tenants[0], reports=ReportsPolicy(
        (ReportRule("daily", at, ("vanphong@dongnai.example",)),)))
    mail = None if port is None else MailConfig("127.0.0.1", "tongdai@dongnai.example",
                                                port=port)
    return replace(cfg, tenants=(dongnai, *cfg.tenants[1:]), mail=mail)


async def _run_app(tmp_path: Path, cfg: HotlineConfig, until: asyncio.Event | None) -> None:
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

    app.cleanup_ctx.extend([closing, app_module._tasks_ctx, app_module._mail_ctx])
    runner = web.AppRunner(app)
    await runner.setup()  # runs the contexts' start-up
    try:
        assert {t.get_name() for t in app[app_module.TASKS]} >= {"mail-dispatcher",
                                                                 "report-mails"}
        if until is not None:
            await asyncio.wait_for(until.wait(), 30)
        else:
            await asyncio.sleep(1.0)
    finally:
        await runner.cleanup()  # cancels the owned tasks
    assert app[app_module.TASKS] == [] or all(t.done() for t in app[app_module.TASKS])


async def test_given_app_with_mail_when_report_due_then_it_arrives_by_itself(
        tmp_path: Path) -> None:
    server = SmtpServer().start()
    try:
        arrived = asyncio.Event()

        async def watch() -> None:
            while not server.mails:
                await asyncio.sleep(0.1)
            arrived.set()

        watcher = asyncio.create_task(watch())
        await _run_app(tmp_path, _config(server.port), arrived)
        watcher.cancel()
    finally:
        server.stop()
    (mail,) = server.mails
    assert str(mail.message["Subject"]).startswith("[Tổng đài 1022 Đồng Nai] Báo cáo ngày ")
    box = MailOutbox(f"sqlite:///{tmp_path / 'hotline.db'}")
    try:
        assert box.counts() == {"sent": 1}
    finally:
        box.close()


async def test_given_app_without_mail_section_when_run_then_nothing_queued(
        tmp_path: Path) -> None:
    await _run_app(tmp_path, _config(None), None)
    box = MailOutbox(f"sqlite:///{tmp_path / 'hotline.db'}")
    try:
        assert box.counts() == {}
    finally:
        box.close()
