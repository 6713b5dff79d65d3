"""Calling a caller back from the console (ARI): the operator's phone first, then the citizen.
(Here beside the other ARI adapters, not in ``callbacks/``: the Stasis service must not
import a web slice.)

``DialbackManager.start`` rings the operator's softphone (``PJSIP/<extension>``) as channel
``cb<request>-<hex>-op`` with Stasis args ``dialback,<dialback id>,operator``. Nothing is
dialled out before the operator answers: when they do, their leg goes into a bridge of its own
(``cb<request>-<hex>``, music on hold while dialling) and the hotline calls the citizen
through the outbound trunk (``PJSIP/<number>@trunk-out``, caller id
``trunk.outbound.caller_id``) as channel ``cb<request>-<hex>-out``, args
``dialback,<id>,citizen``. When the citizen answers they join the bridge and the bridge is
recorded (``<tenant>-<yyyymmdd>-cb<request>-<hex>.wav`` in the recordings folder, like inbound
calls). The end:

* the operator does not answer (or rejects): nothing was dialled; the request stays open,
  nothing counted;
* the citizen is busy / does not answer / the trunk fails: the operator hears the busy tone
  (``BUSY_TONE_S``), then their leg is hung up; the attempt is counted on the request
  (``attempts``, ``last_result``), which stays open;
* after they talked, either side hanging up ends both: the request is done, handled by the
  user, with the citizen leg's channel id and the recording.

Once the citizen was dialled, the call back leaves a call record of its own
(``<node>:<citizen leg>``, outcome ``dialback``, ``dialback_record``): the number called, the
operator, when the citizen answered, the recording, and in ``extra`` the direction, the
callback request, its ticket and the attempt's result.

The service routes StasisStart with verb ``dialback`` to ``on_start`` and every other event
to ``on_event`` first (``ari_app/service.py``). One lock keeps requests and events in order.
Log lines never carry the citizen's number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from callcenter.ari_app.client import AriClient, AriError, hangup_quietly
from callcenter.calls import dialback as rules
from callcenter.calls.causes import cause_text
from callcenter.clock import utcnow
from callcenter.dialplan.contract import Verb, stasis_args
from callcenter.store.data import DIALBACK, CallRecordData

log = logging.getLogger("callcenter.ari_app.dialback")

RING_OPERATOR_S: Final = 30
RING_CITIZEN_S: Final = 40
# The citizen was not reached: the operator hears the busy tone this long, then the call ends.
BUSY_TONE_S: Final = 2.5
OWN_LEG: Final = re.compile(r"cb[0-9]+-[0-9a-f]{6}-(op|out)$")


class DialRefused(Exception):
    """A call back refused; ``id`` is one of ``rules``' ids."""

    def __init__(self, error_id: str):
        super().__init__(f"{error_id}: {rules.MESSAGES[error_id]}")
        self.id = error_id


class CallbackWriter(Protocol):
    """What the dialer writes (``callbacks.store.CallbackStore``; blocking, called in a
    thread; a request closed meanwhile raises its CallbackError, a ValueError)."""

    def done(self, id: int, by: str, note: str | None = None, *,
             at: dt.datetime | None = None, dial_call_id: str | None = None,
             recording: str | None = None) -> Any: ...

    def attempt(self, id: int, result: str, *, at: dt.datetime) -> Any: ...

    def get(self, id: int) -> Any: ...


class CallbackLike(Protocol):
    """The request called back (``callbacks.store.CallbackRequest``)."""

    @property
    def id(self) -> int: ...

    @property
    def tenant(self) -> str: ...

    @property
    def caller(self) -> str: ...


@dataclasses.dataclass
class Dialback:
    """One call back in progress (changed on the event loop only)."""

    id: str  # "cb<request>-<hex>": also the bridge id
    callback_id: int
    tenant: str
    user: str
    extension: str
    number: str
    recording: str  # file name without extension
    store: CallbackWriter
    caller_id: str | None = None  # what the citizen sees (trunk.outbound.caller_id)
    state: str = "ringing_operator"  # ringing_operator | dialling | connected
    answered_at: dt.datetime | None = None  # the citizen answered
    started_at: dt.datetime | None = None  # the operator asked to call back
    dialled_at: dt.datetime | None = None  # the citizen's leg was originated
    cause: int | None = None  # the citizen leg's hang-up cause (ChannelDestroyed)

    @property
    def operator_leg(self) -> str:
        return f"{self.id}-op"

    @property
    def citizen_leg(self) -> str:
        return f"{self.id}-out"

    def json(self) -> dict[str, Any]:
        """For the API (no number)."""
        return {"dialback_id": self.id, "callback_id": self.callback_id,
                "extension": self.extension, "user": self.user, "status": self.state}


def dialback_record(d: Dialback, node: str, ended_at: dt.datetime, result: str,
                    ticket: str | None = None) -> CallRecordData:
    """The call record of a call back whose citizen leg was dialled (``result``: answered,
    or the attempt's busy | no_answer | failed)."""
    talked = d.state == "connected"
    return CallRecordData(
        id=f"{node}:{d.citizen_leg}", node=node, tenant=d.tenant, dialled=d.number,
        caller=d.caller_id or "-", shift=None, pool_limit=None,
        arrived_at=d.started_at or d.dialled_at or ended_at, answered_at=d.answered_at,
        ended_at=ended_at, outcome=DIALBACK, cause=cause_text(d.cause), cause_code=d.cause,
        linkedid=d.id, operator=d.extension, bridged_at=d.answered_at,
        talk_ended_at=ended_at if talked else None,
        recording=f"{d.recording}.wav" if talked and d.recording else None,
        extra={"direction": "outbound", "callback_id": d.callback_id, "by": d.user,
               "result": result, "ticket": ticket})


class DialbackManager:
    """Call backs of this app instance, keyed by their id. ``record``: writes a call back's
    call record (the RecordWriter's ``write_data``; None: none written); ``node``: this
    Asterisk node's name (config ``service.node``), the records' id prefix; ``link_call``:
    links that record to the request's ticket, when it names one."""

    def __init__(self, ari: AriClient, clock: Callable[[], dt.datetime] = utcnow,
                 in_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread,
                 busy_tone_s: float = BUSY_TONE_S,
                 record: Callable[[CallRecordData], Awaitable[None]] | None = None,
                 node: Callable[[], str] = lambda: "pbx1",
                 link_call: Callable[[str, str], Awaitable[None]] | None = None):
        self.ari = ari
        self.record = record
        self.link_call = link_call  # (ticket code, call record id): on the ticket's history
        self.node = node
        self.busy_tone_s = busy_tone_s
        self._lingering: set[asyncio.Task[None]] = set()  # operator legs hearing the tone
        self.clock = clock
        self.in_thread = in_thread
        self.dialbacks: dict[str, Dialback] = {}
        self._lock = asyncio.Lock()

    def busy_extensions(self) -> set[str]:
        """Extensions on a call back now (ringing or talking)."""
        return {d.extension for d in self.dialbacks.values()}

    def dialling(self, callback_id: int) -> bool:
        return any(d.callback_id == callback_id for d in self.dialbacks.values())

    async def start(self, callback: CallbackLike, *, user: str, extension: str,
                    caller_id: str | None, store: CallbackWriter) -> Dialback:
        """Ring ``extension`` for this request (checked by the caller with rules.dial_refusal;
        re-checked here against this instance's call backs). Raises DialRefused."""
        async with self._lock:
            if self.dialling(callback.id):
                raise DialRefused(rules.DIALLING)
            if extension in self.busy_extensions():
                raise DialRefused(rules.OPERATOR_BUSY)
            now = self.clock()
            did = f"cb{callback.id}-{secrets.token_hex(3)}"
            d = Dialback(id=did, callback_id=callback.id, tenant=callback.tenant, user=user,
                         extension=extension, number=callback.caller,
                         recording=f"{callback.tenant}-{now:%Y%m%d}-{did}", store=store,
                         caller_id=caller_id, started_at=now)
            self.dialbacks[did] = d
            try:
                await self.ari.originate(
                    f"PJSIP/{extension}", d.operator_leg,
                    app_args=stasis_args(Verb.DIALBACK, did, "operator"),
                    timeout_s=RING_OPERATOR_S,
                    caller_id=f'"Goi lai {callback.caller}" <{callback.caller}>')
            except AriError as e:  # not registered, or refused at once
                log.warning("dialback %s: could not ring operator phone %s: %s", did,
                            extension, e)
                self.dialbacks.pop(did, None)
                raise DialRefused(rules.RING_FAILED) from None
            log.info("dialback %s: %s rings phone %s for callback request %d", did, user,
                     extension, callback.id)
            return d

    # -- events ---------------------------------------------------------------------------
    async def on_start(self, channel: dict[str, Any], rest: list[str]) -> None:
        """StasisStart of a call back's leg (``rest``: dialback id, operator | citizen)."""
        async with self._lock:
            d = self.dialbacks.get(rest[0] if rest else "")
            role = rest[1] if len(rest) > 1 else ""
            cid = str(channel.get("id"))
            if d is None or cid not in (d.operator_leg, d.citizen_leg):
                log.info("dialback leg %s entered after its call back ended; hanging up", cid)
                await hangup_quietly(self.ari, cid)
                return
            try:
                if role == "operator" and d.state == "ringing_operator":
                    await self._dial_citizen(d)
                elif role == "citizen" and d.state == "dialling":
                    await self._connect(d)
            except AriError as e:  # a leg went meanwhile; its own event ends the call back
                log.info("dialback %s: %s", d.id, e)
                await self._end(d, "leg gone", rules.FAILED if d.state != "connected" else None)

    async def on_event(self, event: dict[str, Any]) -> bool:
        """Any other event: True when its channel is one of our legs (then consumed)."""
        if not self.dialbacks:
            return False
        channel = event.get("channel", {}).get("id")
        if channel is None:
            return False
        found = next((d for d in self.dialbacks.values()
                      if channel in (d.operator_leg, d.citizen_leg)), None)
        if found is None:
            return False
        if event.get("type") != "ChannelDestroyed":
            return True
        async with self._lock:
            d = self.dialbacks.get(found.id)
            if d is None:
                return True
            cause = event.get("cause")
            if channel == d.operator_leg:
                if d.state == "ringing_operator":
                    await self._end(d, "operator did not answer", None)
                elif d.state == "dialling":
                    await self._end(d, "operator hung up before the citizen answered", None)
                else:
                    await self._end(d, "operator hung up", None)
            else:
                d.cause = cause if isinstance(cause, int) and cause else None
                if d.state == "connected":
                    await self._end(d, "citizen hung up", None)
                else:
                    await self._end(d, "citizen not reached",
                                    rules.attempt_result(cause if isinstance(cause, int)
                                                         else None))
        return True

    async def reconcile(self, channels: Mapping[str, dict[str, Any]]) -> set[str]:
        """After (re)connecting: end call backs whose legs vanished, hang up call back legs
        no call back of ours knows (a previous process's); the ids of our legs (not to be
        taken for citizens' calls)."""
        async with self._lock:
            for d in list(self.dialbacks.values()):
                live = d.citizen_leg if d.state == "connected" else d.operator_leg
                if live not in channels:
                    await self._end(d, "lost while reconnecting", None)
            known = {leg for d in self.dialbacks.values()
                     for leg in (d.operator_leg, d.citizen_leg)}
            ours = {c for c in channels if OWN_LEG.match(c)}
            for stale in sorted(ours - known):
                log.info("dialback leg %s left from before: hanging it up", stale)
                await hangup_quietly(self.ari, stale)
            return ours

    async def close(self) -> None:
        """The service stops: end every call back (legs hung up; talked ones marked done)."""
        async with self._lock:
            for d in list(self.dialbacks.values()):
                await self._end(d, "service stopped", None)
        for task in list(self._lingering):
            task.cancel()  # its finally hangs the leg up
        await asyncio.gather(*self._lingering, return_exceptions=True)

    # -- carrying out ---------------------------------------------------------------------
    def _linger(self, leg: str) -> None:
        """Play the busy tone to the operator's leg, then hang it up (its own task)."""
        async def tone_then_hangup() -> None:
            try:
                await self.ari.play(leg, "tone:busy", f"{leg}~busy")
                await asyncio.sleep(self.busy_tone_s)
            except AriError as e:  # hung up meanwhile
                log.debug("dialback leg %s: no busy tone: %s", leg, e)
            finally:
                await hangup_quietly(self.ari, leg)

        task = asyncio.create_task(tone_then_hangup(), name=f"dialback-busy:{leg}")
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _dial_citizen(self, d: Dialback) -> None:
        await self.ari.answer(d.operator_leg)
        await self.ari.create_bridge(d.id)
        await self.ari.add_to_bridge(d.id, [d.operator_leg])
        d.state = "dialling"
        d.dialled_at = self.clock()
        try:  # the operator hears music, not silence, while the citizen's phone rings
            await self.ari.start_bridge_moh(d.id)
        except AriError as e:
            log.debug("dialback %s: no music while dialling: %s", d.id, e)
        try:
            await self.ari.originate(
                f"PJSIP/{d.number}@trunk-out", d.citizen_leg,
                app_args=stasis_args(Verb.DIALBACK, d.id, "citizen"),
                timeout_s=RING_CITIZEN_S, caller_id=d.caller_id,
                originator=d.operator_leg)
        except AriError as e:  # no outbound trunk, or refused at once
            log.warning("dialback %s: citizen not dialled: %s", d.id, e)
            await self._end(d, "citizen not dialled", rules.FAILED)
            return
        log.info("dialback %s: operator %s answered; calling the citizen", d.id, d.extension)

    async def _write_record(self, d: Dialback, now: dt.datetime, result: str) -> None:
        if self.record is None:
            return
        ticket: str | None = None
        try:
            current = await self.in_thread(d.store.get, d.callback_id)
            ticket = getattr(current, "ticket", None)
        except Exception as e:  # the record matters more than naming the ticket in it
            log.warning("dialback %s: ticket of request %d unknown: %r", d.id, d.callback_id, e)
        rec = dialback_record(d, self.node(), now, result, ticket)
        try:
            await self.record(rec)
        except Exception as e:  # the writer holds what it cannot store; this is a bug
            log.error("dialback %s: call record not written: %r", d.id, e)
        if ticket is not None and self.link_call is not None:
            try:
                await self.link_call(ticket, rec.id)
            except Exception as e:  # the call and its record stand; the link can be redone
                log.warning("dialback %s: call not linked to ticket %s: %r", d.id, ticket, e)

    async def _connect(self, d: Dialback) -> None:
        d.state = "connected"
        d.answered_at = self.clock()
        try:
            await self.ari.stop_bridge_moh(d.id)
        except AriError as e:
            log.debug("dialback %s: music not stopped: %s", d.id, e)
        await self.ari.add_to_bridge(d.id, [d.citizen_leg])
        try:
            await self.ari.record_bridge(d.id, d.recording)
        except AriError as e:  # talking matters more than the recording
            log.error("dialback %s: recording not started: %s", d.id, e)
            d.recording = ""
        log.info("dialback %s: citizen answered; connected with %s", d.id, d.extension)

    async def _end(self, d: Dialback, reason: str, result: str | None) -> None:
        """Remove a call back: hang up its legs, destroy its bridge, write what came of it
        (``result``: an unanswered attempt's; None and connected: done)."""
        if self.dialbacks.pop(d.id, None) is None:
            return
        await hangup_quietly(self.ari, d.citizen_leg)
        if result is not None and d.state == "dialling" and self.busy_tone_s > 0:
            self._linger(d.operator_leg)  # busy tone first, so they know it did not go through
        else:
            await hangup_quietly(self.ari, d.operator_leg)
        if d.state != "ringing_operator":
            try:
                await self.ari.destroy_bridge(d.id)
            except AriError as e:
                log.debug("dialback bridge %s: %s", d.id, e)
        now = self.clock()
        try:
            if d.state == "connected":
                await self.in_thread(
                    d.store.done, d.callback_id, d.user,
                    f"Gọi lại từ máy {d.extension}", at=now,
                    dial_call_id=f"{self.node()}:{d.citizen_leg}",  # its call record's id
                    recording=f"{d.recording}.wav" if d.recording else None)
            elif result is not None:
                await self.in_thread(d.store.attempt, d.callback_id, result, at=now)
        except ValueError as e:  # closed meanwhile by someone else: nothing to write
            log.info("dialback %s: request not updated: %s", d.id, e)
        except Exception as e:  # the call happened; a lost write is logged
            log.error("dialback %s: request %d not updated: %r", d.id, d.callback_id, e)
        if d.state != "ringing_operator":  # the citizen was dialled: the call's own record
            await self._write_record(d, now, rules.ANSWERED if d.state == "connected"
                                     else result or rules.FAILED)
        log.info("dialback %s: ended (%s) callback request %d state %s result %s", d.id,
                 reason, d.callback_id, d.state, result)
