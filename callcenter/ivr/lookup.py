"""Status by phone, the adapter: a caller's tickets from the ticket store, read for the IVR.

``TicketLookup`` answers the menu's ``LookupTickets`` (callcenter.ivr.menu) with a
``LookupResult`` (callcenter.ivr.status). The queries are SQLAlchemy Core on the ticket
store's own tables and engine (``TicketService.db``), through the index on
``tickets.citizen_phone`` (``ix_tickets_citizen_phone``, migration 0004): by the caller's
number, the open tickets newest first; by a keyed-in number, the caller's ticket whose code
ends with it, or (``any_caller``, whole code typed) the code itself by primary key.

Blocking database work runs in a small pool of its own with a timeout: a database that hangs
holds at most ``WORKERS`` threads, never the event loop nor the threads the rest of the app
shares (FAQ reloads, prompt building, the ticket API); a caller whose lookup times out or
fails hears "the lookup is interrupted" and goes back to the menu (the menu's LookupDone with
``failed``). Nothing here raises into the call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import sqlalchemy as sa

from callcenter.clock import utcnow
from callcenter.ivr import status as sts
from callcenter.ivr.menu import LookupTickets
from callcenter.tickets import deadlines as dl
from callcenter.tickets import store as tst
from callcenter.tickets.config import TicketPolicy
from callcenter.tickets.rules import Ticket
from callcenter.tickets.service import caller_number

log = logging.getLogger("callcenter.ivr.lookup")

TIMEOUT_S = 3.0  # the caller hears silence at most this long before "interrupted"
WORKERS = 4


class TicketSource(Protocol):
    """What the lookup needs of the ticket service."""

    @property
    def db(self) -> tst.TicketDatabase: ...
    def policy(self, tenant: str) -> TicketPolicy: ...


def status_of(ticket: Ticket, policy: TicketPolicy, now: dt.datetime) -> sts.TicketStatus:
    """What may be said of a ticket: code, state, holder's name, due time (local), late."""
    unit = policy.unit(ticket.unit) if ticket.unit is not None else None
    due = ticket.resolve_due
    return sts.TicketStatus(
        code=ticket.code, state=ticket.state.value, unit=ticket.unit,
        unit_name=unit.name if unit is not None else None,
        due=dl.local(due, policy.timezone).replace(tzinfo=None) if due is not None else None,
        late=due is not None and now > due)


class TicketLookup:
    """Looks up callers' tickets for the IVR (one per app; ``close`` at shutdown)."""

    def __init__(self, tickets: TicketSource, *, timeout_s: float = TIMEOUT_S,
                 clock: Callable[[], dt.datetime] = utcnow, workers: int = WORKERS):
        self.tickets = tickets
        self.timeout_s = timeout_s
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ivr-lookup")

    def close(self) -> None:
        """Stop the threads (a lookup still stuck in the database is left to finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def find(self, tenant: str, caller: str, code: sts.TypedCode | None,
             any_caller: bool = False) -> sts.LookupResult:
        """Blocking: the open tickets of ``caller``'s number, or the ticket ``code`` names."""
        policy = self.tickets.policy(tenant)
        number = caller_number(caller)
        t = tst.TICKETS.c
        count_q: sa.Select[Any] | None = None
        if code is None:
            if not number:  # withheld or foreign number: no tickets of its own
                return sts.LookupResult()
            where = (t.tenant == tenant, t.citizen_phone == number,
                     t.state.in_(tst.OPEN_STATES))
            count_q = sa.select(sa.func.count()).select_from(tst.TICKETS).where(*where)
            query = (sa.select(tst.TICKETS).where(*where)
                     .order_by(t.received_at.desc(), t.code.desc()).limit(sts.MAX_READ))
        else:
            if any_caller and code.date is not None:
                mine: tuple[sa.ColumnElement[bool], ...] = (
                    t.code == policy.code_prefix + code.suffix(),)
            elif number:
                mine = (t.citizen_phone == number, t.code.endswith(code.suffix(), autoescape=True))
            else:
                return sts.LookupResult()
            query = (sa.select(tst.TICKETS).where(t.tenant == tenant, *mine)
                     .order_by(t.received_at.desc(), t.code.desc()).limit(1))
        with self.tickets.db.reading() as conn:
            rows = tst.tickets_from(conn, query)
            total = conn.execute(count_q).scalar_one() if count_q is not None else len(rows)
        now = self.clock()
        return sts.LookupResult(tuple(status_of(s.ticket, policy, now) for s in rows), total)

    async def __call__(self, tenant: str, caller: str, command: LookupTickets) -> sts.LookupResult:
        """The lookup the menu asked for; ``failed`` if the store errs or is too slow."""
        loop = asyncio.get_running_loop()
        try:
            job = loop.run_in_executor(self._pool, self.find, tenant, caller, command.code,
                                       command.any_caller)
            return await asyncio.wait_for(job, self.timeout_s)
        except TimeoutError:
            log.warning("status lookup for %s: no answer from the ticket store in %.1f s",
                        tenant, self.timeout_s)
        except Exception as e:  # database away, config without the tenant ...
            log.warning("status lookup for %s failed: %s", tenant,
                        str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
        return sts.UNAVAILABLE
