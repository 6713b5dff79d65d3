"""The deadline job as the app runs it: a named task sweeping in a thread, cancelled cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import pytest

from callcenter.tickets.jobs import deadline_job
from callcenter.tickets.rules import Forward
from callcenter.tickets.service import TicketService
from tests.support.tickets import OP, T0, Clock, make_service


async def test_given_late_ticket_when_job_runs_then_one_line_per_ticket_and_cancel_ends_it(
        database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T0)
    svc = make_service(database_url, tmp_path / "files", clock)
    try:
        code = svc.open("dongnai", OP, channel="phone", content="x", field="other", at=T0).code
        svc.act(code, OP, Forward(T0, OP, "vp_ubnd_tinh"))
        clock.now = T0 + dt.timedelta(days=2)  # 48 h later: past the 24 h deadline
        caplog.set_level(logging.INFO)
        task = asyncio.create_task(deadline_job(svc, interval_s=0.05), name="ticket-deadlines")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if any("is late" in r.getMessage() for r in caplog.records):
                break
        await asyncio.sleep(0.2)  # a few more sweeps: nothing marked twice
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        lines = [r.getMessage() for r in caplog.records if "is late" in r.getMessage()]
        assert lines == [f"ticket {code} (dongnai, vp_ubnd_tinh) is late: resolve deadline "
                         f"{(T0 + dt.timedelta(days=1)).isoformat()} passed (1 day(s) late)"]
    finally:
        svc.close()


async def test_given_database_gone_when_job_runs_then_error_logged_and_job_keeps_going(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.support.tickets import hotline_config

    cfg = hotline_config()
    svc = TicketService(f"sqlite:///{tmp_path / 'never-migrated.db'}", lambda: cfg,
                        tmp_path / "files")
    try:
        caplog.set_level(logging.INFO)
        task = asyncio.create_task(deadline_job(svc, interval_s=0.05))
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        errors = [r for r in caplog.records if "sweep failed" in r.getMessage()]
        assert len(errors) >= 2 and errors[0].levelno == logging.ERROR
    finally:
        svc.close()
