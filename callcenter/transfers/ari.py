"""Transfers to units' hotlines through ARI: the phone's transfer button (``ChannelTransfer``),
an operator's consultation (Stasis verb ``consult``) and a unit's leg answering (verb
``unit``). The Stasis service registers these handlers in its dispatch tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient, AriError, hangup_quietly
from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig
from callcenter.numbers import dial_digits
from callcenter.tickets.config import Level2Unit
from callcenter.transfers import rules as xf

log = logging.getLogger("callcenter.ari")  # the Stasis service's log, as before the move


def operator_of(channel: dict[str, Any]) -> str:
    """The operator's extension of a channel of their phone ("PJSIP/101-0000001a" -> "101")."""
    name = str(channel.get("name", ""))
    return name.partition("/")[2].rpartition("-")[0]


class TransferEvents:
    """The transfer-specific ARI events of the calls this instance owns."""

    def __init__(self, ari: AriClient, deps: CallDeps, sessions: Mapping[str, CallSession],
                 config: Callable[[], HotlineConfig]):
        self.ari = ari
        self.deps = deps  # deps.legs: our legs (operators', units', consultations) -> call id
        self.sessions = sessions  # the service's own map: call id -> its session
        self.config = config

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
        session.events.put_nowait(cm.UnitAnswered(utcnow(), ch["id"]))
