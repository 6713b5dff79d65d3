"""Transfers to units' hotlines through ARI: the phone's transfer button (``ChannelTransfer``),
an operator's consultation (Stasis verb ``consult``) and a unit's leg answering (verb
``unit``). The Stasis service registers these handlers in its dispatch tables.

Warm transfer: when the unit answers an operator's consultation and the call is linked to a
ticket, its leg hears the ticket's number and field (``rules.announcement``) as one ARI
playback of the prompt fragments; the transfer record names the ticket, and the ticket's
audit trail records the call transferred to the unit (``TicketService.transfer_call``: the
unit's users may read the ticket, their console lists it). Any failure there (store slow or
down, prompt not buildable, channel gone) is logged and the transfer goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient, AriError, hangup_quietly
from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig
from callcenter.numbers import dial_digits
from callcenter.tickets.config import Level2Unit, TicketPolicy
from callcenter.tickets.rules import Actor, Ticket
from callcenter.transfers import rules as xf

log = logging.getLogger("callcenter.ari")  # the Stasis service's log, as before the move


def operator_of(channel: dict[str, Any]) -> str:
    """The operator's extension of a channel of their phone ("PJSIP/101-0000001a" -> "101")."""
    name = str(channel.get("name", ""))
    return name.partition("/")[2].rpartition("-")[0]


TICKET_TIMEOUT_S = 2.0  # the unit waits at most this long for the ticket store
WARM_TRANSFER = Actor("warm-transfer", "system")  # who records a call transferred to a unit


class TicketsOfCalls(Protocol):
    """What the warm transfer needs of the ticket service (blocking)."""

    def tickets_of_call(self, call_id: str) -> list[Ticket]: ...
    def policy(self, tenant: str) -> TicketPolicy: ...
    def transfer_call(self, code: str, unit: str, call_id: str, actor: Actor) -> bool: ...


class CallTickets:
    """The ticket linked to a live call (the desk's LinkCall on its record id), for warm
    transfers; the store is asked in a thread with a timeout, and nothing raises."""

    def __init__(self, tickets: TicketsOfCalls, timeout_s: float = TICKET_TIMEOUT_S):
        self.tickets = tickets
        self.timeout_s = timeout_s

    def find(self, tenant: str, record_id: str) -> xf.WarmTicket | None:
        """Blocking: the newest of the tenant's tickets linked to the call record."""
        policy = self.tickets.policy(tenant)
        return xf.pick_ticket(xf.WarmTicket(t.code, t.field, policy.field_name(t.field))
                              for t in self.tickets.tickets_of_call(record_id)
                              if t.tenant == tenant)

    async def __call__(self, tenant: str, record_id: str) -> xf.WarmTicket | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.find, tenant, record_id),
                                          self.timeout_s)
        except TimeoutError:
            log.warning("call %s: no ticket from the store in %.1f s; no announcement",
                        record_id, self.timeout_s)
        except Exception as e:  # database away, tenant gone from the config ...
            log.warning("call %s: ticket lookup failed (%s); no announcement", record_id,
                        _first_line(e))
        return None

    async def transferred(self, code: str, unit: str, record_id: str) -> bool:
        """Record on the ticket that the call was transferred to ``unit`` (which may then read
        it); in a thread with the same time limit; a failure is logged, never raised. True:
        the ticket has it (now, or from before); False: not recorded."""
        try:
            new = await asyncio.wait_for(asyncio.to_thread(
                self.tickets.transfer_call, code, unit, record_id, WARM_TRANSFER),
                self.timeout_s)
        except TimeoutError:
            log.warning("call %s: ticket %s: transfer to %s not recorded in %.1f s", record_id,
                        code, unit, self.timeout_s)
            return False
        except Exception as e:  # database away, the unit gone from the config ...
            log.warning("call %s: ticket %s: transfer to %s not recorded (%s)", record_id,
                        code, unit, _first_line(e))
            return False
        if new:
            log.info("call %s: ticket %s: transferred to %s (the unit may read it)", record_id,
                     code, unit)
        return True


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


class TransferEvents:
    """The transfer-specific ARI events of the calls this instance owns."""

    def __init__(self, ari: AriClient, deps: CallDeps, sessions: Mapping[str, CallSession],
                 config: Callable[[], HotlineConfig]):
        self.ari = ari
        self.deps = deps  # deps.legs: our legs (operators', units', consultations) -> call id
        self.sessions = sessions  # the service's own map: call id -> its session
        self.config = config
        self.pending: set[asyncio.Task[None]] = set()  # warm transfers' lookups and prompts

    def units_of(self, tenant_id: str | None) -> tuple[Level2Unit, ...]:
        """The tenant's units one may transfer to (with a hotline)."""
        tenant = self.config().tenant(tenant_id)
        if tenant is None or tenant.tickets is None:
            return ()
        return xf.targets(tenant.tickets.units)

    def session_of_operator(self, extension: str) -> CallSession | None:
        """The call an operator is talking on now (phase BRIDGED), if this instance owns it."""
        return next((ses for ses in self.sessions.values()
                     if ses.state.operator == extension
                     and ses.state.phase is cm.Phase.BRIDGED), None)

    async def _reply(self, channel: str, state: str) -> None:
        try:
            await self.ari.transfer_progress(channel, state)
        except AriError as e:  # the leg is gone, or never was ours
            log.debug("transfer progress on %s: %s", channel, e)

    async def on_transfer(self, event: dict[str, Any]) -> None:
        """The phone's transfer button (a REFER handled by the app): blind to a number, or
        attended (Replaces) to complete a consultation."""
        if "state" in event:
            return  # the echo of our own transfer_progress
        source = str(event.get("referred_by", {}).get("source_channel", {}).get("id", ""))
        call_id = self.deps.legs.get(source)
        session = self.sessions.get(call_id or "")
        if session is None:
            log.info("transfer from %s: not a leg of a call of ours; declined", source)
            await self._reply(source, "channel_declined")
            return
        now = utcnow()
        refer_to = event.get("refer_to", {})
        if refer_to.get("destination_channel"):
            session.events.put_nowait(cm.TransferCompleted(now, "button", source))
            return
        s = session.state
        wanted = str(refer_to.get("requested_destination", {}).get("destination", ""))
        unit = xf.unit_for_number(self.units_of(s.tenant_id), wanted)
        why = xf.UNKNOWN_UNIT if unit is None else xf.request_refusal(s)
        if unit is None or why is not None or s.operator is None:
            log.info("call=%s: transfer by %s to %s refused: %s", s.call_id, s.operator,
                     wanted, why)
            await self._reply(source, "channel_declined")
            return
        assert unit.hotline is not None
        session.events.put_nowait(cm.TransferRequested(
            now, s.operator, unit.id, dial_digits(unit.hotline), "blind", "button",
            refer_channel=source))

    async def on_consult(self, ch: dict[str, Any], number: str) -> None:
        """The operator's phone dialled a unit's hotline while on a call: a consultation (the
        phone's transfer button completes it, hanging it up returns to the caller)."""
        extension = operator_of(ch)
        session = self.session_of_operator(extension)
        unit = None
        why: str | None = xf.NOT_BRIDGED
        if session is not None:
            unit = xf.unit_for_number(self.units_of(session.state.tenant_id), number)
            why = xf.UNKNOWN_UNIT if unit is None else xf.request_refusal(session.state)
        if session is None or unit is None or why is not None:
            log.info("operator %s consulting %s refused: %s", extension, number, why)
            await hangup_quietly(self.ari, ch["id"], "congestion")
            return
        assert unit.hotline is not None
        self.deps.legs[ch["id"]] = session.call_id
        session.events.put_nowait(cm.TransferRequested(
            utcnow(), extension, unit.id, dial_digits(unit.hotline), "attended", "button",
            consult_channel=ch["id"]))

    async def on_unit_answer(self, ch: dict[str, Any], call_id: str) -> None:
        """Our leg to a unit's hotline answered (hung up if its call has ended)."""
        session = self.sessions.get(call_id)
        if session is None:
            log.info("call=%s: unit leg %s answered after the call ended; hanging it up",
                     call_id, ch["id"])
            await hangup_quietly(self.ari, ch["id"])
            return
        s = session.state
        if (self.deps.call_ticket is not None and s.tenant_id is not None
                and xf.announces(s, ch["id"])):
            # The ticket store and prompt synthesis may be slow: not in the ARI event loop.
            task = asyncio.create_task(self._warm(session, s.tenant_id, ch["id"]),
                                       name=f"warm:{ch['id']}")
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            return
        session.events.put_nowait(cm.UnitAnswered(utcnow(), ch["id"]))

    async def _warm(self, session: CallSession, tenant: str, channel: str) -> None:
        """The unit answered a consultation: the call's ticket (if any) told to the call, then
        to the unit's leg."""
        assert self.deps.call_ticket is not None
        s = session.state
        unit = s.transfer.unit if s.transfer is not None else None
        record_id = f"{s.node}:{s.call_id}"
        ticket = await self.deps.call_ticket(tenant, record_id)
        session.events.put_nowait(cm.UnitAnswered(utcnow(), channel,
                                                  ticket.code if ticket else None))
        if ticket is not None:
            await self.announce(tenant, channel, ticket)
            if unit is not None and self.deps.call_transferred is not None:
                # After the announcement: the unit's console shows the ticket (read only).
                await self.deps.call_transferred(ticket.code, unit, record_id)

    async def announce(self, tenant: str, channel: str, ticket: xf.WarmTicket) -> None:
        """Play the ticket's announcement to the unit's leg (one playback of the fragments,
        in order); a failure is logged and the consultation goes on without it."""
        prompts = xf.announcement(ticket)
        library = self.deps.prompts
        if not prompts or library is None:
            return
        try:
            media = [await library.media(tenant, p) for p in prompts]
            await self.ari.play(channel, ",".join(media), f"warm-{channel}")
            log.info("unit leg %s: told ticket %s", channel, ticket.code)
        except Exception as e:  # no prompt files, espeak missing, the channel gone ...
            log.warning("unit leg %s: ticket %s not announced: %s", channel, ticket.code,
                        str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
