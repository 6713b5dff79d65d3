"""The deadline job: ``TicketService.sweep`` in a thread, every ``interval_s`` seconds.

It marks tickets whose forward or resolve clock ran out (one log line per ticket, once per due
time), sends the units' reminders before their deadlines and chases late units after them
(``tickets.chasing``: at the deadline, every working morning, escalation once). A failing
sweep (the database is down) is logged and tried again at the next interval; the job only
ends when cancelled. Several app instances may run it at once: marking is one conditional
UPDATE and a reminder or chase is a versioned domain event whose SMS has a dedupe key, so
nothing is marked or sent twice.

Wiring, in ``callcenter/app.py`` (after ``_store_ctx``, which migrates the database)::

    from callcenter.tickets.jobs import deadline_job
    from callcenter.tickets.service import TicketService

    TICKETS = web.AppKey("tickets", TicketService)

    async def _tickets_ctx(app: web.Application) -> AsyncIterator[None]:
        s = app[SETTINGS]
        service = TicketService(s.database_url, app[CONFIG], s.state_dir / "ticket-files")
        app[TICKETS] = service
        job = _owned(app, deadline_job(service), "ticket-deadlines")
        yield
        job.cancel()      # before closing the engine (_tasks_ctx's own cleanup runs last)
        await asyncio.gather(job, return_exceptions=True)
        service.close()

    app.cleanup_ctx.append(_tickets_ctx)   # after _tasks_ctx, _store_ctx and CONFIG are set
"""

from __future__ import annotations

import asyncio
import logging
import time

from callcenter.tickets.service import SweepResult, TicketService

log = logging.getLogger("callcenter.tickets.jobs")


async def deadline_job(service: TicketService, interval_s: float = 60) -> None:
    """Sweep ticket deadlines every ``interval_s`` seconds until cancelled."""
    while True:
        started = time.monotonic()
        try:
            result: SweepResult = await asyncio.to_thread(service.sweep)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database may be away for a while: try again later
            log.error("ticket deadline sweep failed (retrying in %ss): %s", interval_s,
                      str(e).splitlines()[0][:300] if str(e) else repr(e))
        else:
            # sweep already logs each ticket it marks (callcenter.tickets); one summary here.
            if (result.late or result.forward_late or result.reminded or result.failed
                    or result.chased):
                log.info("ticket deadline sweep: %d late, %d forward-late, %d reminded, "
                         "%d chased, %d escalated, %d failed", len(result.late),
                         len(result.forward_late), len(result.reminded), len(result.chased),
                         len(result.escalated), len(result.failed))
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
