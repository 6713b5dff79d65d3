"""Supervisors listen in on a live operator call from their own softphone (ARI snoop).

A supervisor asks (``POST /api/v1/calls/{id}/listen``); the app rings the supervisor's phone
(a PJSIP endpoint configured as an operator of the tenant, never logged in to the queue, so
it is never offered calls) as channel ``<call>-sup<hex>`` with Stasis args
``supervisor,<listen id>``. When it answers:

* ``listen``: a snoop channel on the operator's leg, spy ``both`` (caller and operator),
  whisper ``none``, and the supervisor's leg in a bridge of their own ``<call>-listen<hex>``.
  The call's own bridge and the caller's and operator's phones are not touched: no re-INVITE,
  nothing announced, nothing heard.
* ``whisper``: the same, whisper ``out``: the supervisor's voice is mixed into what the
  operator hears (the audio Asterisk sends to the operator's channel), not into the call.
* ``barge``: the supervisor's leg joins the call's mixing bridge: everyone hears everyone.

A listen-in ends when the supervisor hangs up, when it is stopped (``DELETE``), or when the
call or the operator's leg ends (the snoop channel dies with the operator's leg); then the
supervisor's leg, the snoop channel and the bridge of its own are removed. Each use is a
row in the audit log (``callcenter.store.listen_audit``) and INFO log lines without the
caller's number.

The service routes to ``ListenManager``: StasisStart with args ``supervisor,<id>`` or
``snoop,<id>`` (``on_start``) and every other event (``on_event``: events of our own legs are
consumed, those of the calls' legs only watched). Everything runs on the event loop; one lock
keeps a start request and the events of its legs in order.
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

from callcenter import calls as cm
from callcenter.ari_app.calls import CallSession
from callcenter.ari_app.client import AriClient, AriError, hangup_quietly
from callcenter.clock import utcnow
from callcenter.dialplan.contract import Verb, parse_stasis_args, stasis_args

log = logging.getLogger("callcenter.listen")

MODES: Final = ("listen", "whisper", "barge")
# ARI snoop directions per mode: (spy, whisper). "out" is what Asterisk sends to the spied
# channel (the operator hears it); "in" what the operator's phone sends.
SNOOP: Final = {"listen": ("both", "none"), "whisper": ("both", "out")}
RING_TIMEOUT_S = 30

# Our channels and bridges: "<call>-sup<hex>", "<call>-snoop<hex>", "<call>-listen<hex>".
OWN_CHANNEL = re.compile(r".+-(sup|snoop)[0-9a-f]{6}$")
OWN_BRIDGE = re.compile(r".+-listen[0-9a-f]{6}$")

# Refusal ids (stable, for the HTTP API) and their Vietnamese messages.
CALL_NOT_FOUND = "listen.call_not_found"
OTHER_INSTANCE = "listen.other_instance"
NOT_BRIDGED = "listen.not_bridged"
UNKNOWN_EXTENSION = "listen.unknown_extension"
OWN_CALL = "listen.own_call"
BUSY = "listen.busy"
NOT_LISTENING = "listen.none"
RING_FAILED = "listen.ring_failed"
UNAVAILABLE = "listen.unavailable"
MESSAGES: Final = {
    CALL_NOT_FOUND: "Không tìm thấy cuộc gọi đang diễn ra.",
    OTHER_INSTANCE: "Cuộc gọi do một phiên bản ứng dụng khác xử lý.",
    NOT_BRIDGED: "Cuộc gọi chưa được kết nối với tổng đài viên.",
    UNKNOWN_EXTENSION: "Số máy nhánh không phải máy của tổng đài.",
    OWN_CALL: "Không thể nghe xen bằng chính máy của tổng đài viên đang nghe cuộc gọi.",
    BUSY: "Máy nhánh này đang nghe xen một cuộc gọi khác.",
    NOT_LISTENING: "Không có ai đang nghe xen cuộc gọi này.",
    RING_FAILED: "Không gọi được tới máy của giám sát viên.",
    UNAVAILABLE: "Dịch vụ cuộc gọi tạm thời không sẵn sàng.",
}


class ListenRefused(Exception):
    """A listen-in request refused; ``id`` is one of the stable ids above."""

    def __init__(self, error_id: str):
        super().__init__(f"{error_id}: {MESSAGES[error_id]}")
        self.id = error_id


class ListenAudit(Protocol):
    """Where uses are recorded (``ListenAuditStore``; blocking, called in a thread)."""

    def requested(self, *, tenant: str, node: str | None, call_id: str, supervisor: str,
                  extension: str, operator: str | None, mode: str, at: dt.datetime) -> int: ...

    def started(self, id: int, at: dt.datetime) -> None: ...

    def ended(self, id: int, at: dt.datetime, reason: str) -> None: ...


def refusal_for(state: cm.CallState, extension: str, operators: tuple[str, ...]) -> str | None:
    """Why this call cannot be listened to from ``extension`` now (None: it can)."""
    if extension not in operators:
        return UNKNOWN_EXTENSION
    if state.phase is not cm.Phase.BRIDGED or state.operator_channel is None \
            or state.bridge is None:
        return NOT_BRIDGED
    if extension == state.operator:
        return OWN_CALL
    return None


def snoop_params(mode: str) -> tuple[str, str]:
    """ARI snoop (spy, whisper) of a mode that snoops; barge joins the bridge instead."""
    return SNOOP[mode]


@dataclasses.dataclass
class Listen:
    """One listen-in in progress (owned by the manager, changed on the event loop only)."""

    id: str  # the supervisor's leg: "<call>-sup<hex>"
    call_id: str
    tenant: str
    supervisor: str  # console user
    extension: str  # the supervisor's softphone
    operator: str | None
    operator_channel: str
    call_bridge: str
    mode: str
    audit_id: int | None
    audit: ListenAudit | None
    requested_at: dt.datetime
    answered_at: dt.datetime | None = None
    snoop: str | None = None
    bridge: str | None = None  # the bridge of its own (listen, whisper)

    def json(self) -> dict[str, Any]:
        """For the API (no caller number)."""
        return {"listen_id": self.id, "call_id": self.call_id, "operator": self.operator,
                "extension": self.extension, "mode": self.mode, "supervisor": self.supervisor,
                "status": "connected" if self.answered_at else "ringing"}


class ListenManager:
    """Listen-ins of this app instance, keyed by the supervisor's leg id."""

    def __init__(self, ari: AriClient, sessions: Mapping[str, CallSession],
                 clock: Callable[[], dt.datetime] = utcnow,
                 in_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread):
        self.ari = ari
        self.sessions = sessions
        self.clock = clock
        self.in_thread = in_thread
        self.listens: dict[str, Listen] = {}
        self._lock = asyncio.Lock()

    # -- requests -------------------------------------------------------------------------
    def of_call(self, call_id: str) -> list[Listen]:
        """Listen-ins on this call now."""
        return [li for li in self.listens.values() if li.call_id == call_id]

    async def start(self, session: CallSession, *, supervisor: str, extension: str, mode: str,
                    operators: tuple[str, ...], audit: ListenAudit | None) -> Listen:
        """Ring ``extension`` to listen in on this call (raises ListenRefused)."""
        if mode not in MODES:
            raise ValueError(f"listen mode {mode!r}")
        async with self._lock:
            s = session.state
            why = refusal_for(s, extension, operators)
            if why is None and any(li.extension == extension for li in self.listens.values()):
                why = BUSY
            if why is not None:
                raise ListenRefused(why)
            assert s.operator_channel is not None and s.bridge is not None
            now = self.clock()
            audit_id = None
            if audit is not None:
                audit_id = await self.in_thread(
                    audit.requested, tenant=s.tenant_id or "", node=s.node,
                    call_id=s.call_id, supervisor=supervisor, extension=extension,
                    operator=s.operator, mode=mode, at=now)
            tag = secrets.token_hex(3)
            li = Listen(id=f"{s.call_id}-sup{tag}", call_id=s.call_id, tenant=s.tenant_id or "",
                        supervisor=supervisor, extension=extension, operator=s.operator,
                        operator_channel=s.operator_channel, call_bridge=s.bridge, mode=mode,
                        audit_id=audit_id, audit=audit, requested_at=now)
            self.listens[li.id] = li
            try:
                await self.ari.originate(
                    f"PJSIP/{extension}", li.id, app_args=stasis_args(Verb.SUPERVISOR, li.id),
                    timeout_s=RING_TIMEOUT_S,
                    caller_id=f'"Giám sát {s.operator or ""}" <{s.operator or ""}>')
            except AriError as e:  # not registered, or refused at once
                log.warning("listen %s: could not ring supervisor phone %s: %s", li.id,
                            extension, e)
                await self._end(li, "ring failed")
                raise ListenRefused(RING_FAILED) from None
            log.info("listen %s: %s (phone %s) asked to %s call=%s operator=%s; ringing",
                     li.id, supervisor, extension, mode, s.call_id, s.operator)
            return li

    async def stop(self, call_id: str, reason: str = "stopped") -> list[Listen]:
        """End every listen-in on this call; those ended."""
        async with self._lock:
            ended = self.of_call(call_id)
            for li in ended:
                await self._end(li, reason)
            return ended

    async def close(self) -> None:
        """The service stops: end every listen-in (legs hung up, audit closed)."""
        async with self._lock:
            for li in list(self.listens.values()):
                await self._end(li, "service stopped")

    # -- events ---------------------------------------------------------------------------
    async def on_start(self, channel: dict[str, Any], args: list[str]) -> bool:
        """StasisStart of a supervisor's leg or a snoop channel; False if not ours."""
        verb, rest = parse_stasis_args(args)
        if verb not in (Verb.SUPERVISOR, Verb.SNOOP):
            return False
        async with self._lock:
            li = self.listens.get(rest[0] if rest else "")
            if li is None:
                log.info("listen leg %s entered after its listen-in ended; hanging it up",
                         channel.get("id"))
                await self._hangup(str(channel.get("id")))
            elif verb is Verb.SUPERVISOR:
                await self._connect(li)
            else:
                await self._add_snoop(li, str(channel["id"]))
        return True

    async def on_event(self, event: dict[str, Any]) -> bool:
        """Any other event: ends listen-ins whose legs went; True if the channel is ours."""
        if not self.listens:
            return False
        channel = event.get("channel", {}).get("id")
        kind = event.get("type")
        if channel is None:
            return False
        ours = any(channel in (li.id, li.snoop) for li in self.listens.values())
        if kind not in ("ChannelDestroyed", "StasisEnd"):
            return ours
        async with self._lock:
            for li in list(self.listens.values()):
                if channel == li.id:
                    await self._end(li, "supervisor hung up" if li.answered_at else "no answer")
                elif channel == li.snoop:
                    await self._end(li, "operator left")  # a snoop dies with the spied leg
                elif kind == "ChannelDestroyed" and channel == li.call_id:
                    await self._end(li, "call ended")
                elif kind == "ChannelDestroyed" and channel == li.operator_channel \
                        and li.mode != "barge":
                    await self._end(li, "operator left")
        return ours

    async def reconcile(self, channels: Mapping[str, dict[str, Any]]) -> set[str]:
        """After (re)connecting: end listen-ins whose legs vanished, hang up listen legs and
        bridges no listen-in of ours knows (a previous process's); the ids of our channels
        (the service must not take them for new calls)."""
        async with self._lock:
            for li in list(self.listens.values()):
                if li.id not in channels or li.call_id not in channels:
                    await self._end(li, "lost while reconnecting")
            known = {c for li in self.listens.values() for c in (li.id, li.snoop) if c}
            ours = {c for c in channels if OWN_CHANNEL.match(c)}
            for stale in sorted(ours - known):
                log.info("listen leg %s left from before: hanging it up", stale)
                await self._hangup(stale)
            known_bridges = {li.bridge for li in self.listens.values() if li.bridge}
            try:
                bridges = await self.ari.request("GET", "/bridges") or []
            except AriError as e:
                log.warning("listen: bridges not listed: %s", e)
                bridges = []
            for b in bridges:
                if OWN_BRIDGE.match(str(b.get("id", ""))) and b["id"] not in known_bridges:
                    await self._destroy(str(b["id"]))
            return ours

    # -- carrying out ---------------------------------------------------------------------
    async def _connect(self, li: Listen) -> None:
        """The supervisor answered: connect the leg as the mode wants."""
        session = self.sessions.get(li.call_id)
        if session is None or session.state.phase is not cm.Phase.BRIDGED \
                or session.state.operator_channel != li.operator_channel:
            await self._end(li, "call ended")
            return
        li.answered_at = self.clock()
        try:
            await self.ari.answer(li.id)
            if li.mode == "barge":
                await self.ari.add_to_bridge(li.call_bridge, [li.id])
            else:
                tag = li.id.rpartition("-sup")[2]
                li.bridge = f"{li.call_id}-listen{tag}"
                await self.ari.create_bridge(li.bridge)
                await self.ari.add_to_bridge(li.bridge, [li.id])
                spy, whisper = snoop_params(li.mode)
                snoop = f"{li.call_id}-snoop{tag}"
                li.snoop = snoop
                await self.ari.snoop(li.operator_channel, snoop, spy=spy, whisper=whisper,
                                     app_args=stasis_args(Verb.SNOOP, li.id))
        except AriError as e:  # a leg went meanwhile (its own event follows); end it all
            log.info("listen %s: not connected: %s", li.id, e)
            await self._end(li, "leg gone while connecting")
            return
        if li.audit is not None and li.audit_id is not None:
            await self._audit(li.audit.started, li.audit_id, li.answered_at)
        log.info("listen %s: %s connected to call=%s operator=%s (%s)", li.id, li.extension,
                 li.call_id, li.operator, li.mode)

    async def _add_snoop(self, li: Listen, channel: str) -> None:
        if li.bridge is None or channel != li.snoop:
            await self._hangup(channel)
            return
        try:
            await self.ari.add_to_bridge(li.bridge, [channel])
        except AriError as e:
            log.info("listen %s: snoop not bridged: %s", li.id, e)
            await self._end(li, "leg gone while connecting")

    async def _end(self, li: Listen, reason: str) -> None:
        """Remove a listen-in: hang up its legs, destroy its bridge, close its audit row."""
        if self.listens.pop(li.id, None) is None:
            return
        if li.mode == "barge" and li.answered_at is not None:
            try:  # leave the call's bridge first, so the caller's bridge never loses a beat
                await self.ari.remove_from_bridge(li.call_bridge, [li.id])
            except AriError:
                pass  # already out (hung up, or the bridge is gone with the call)
        await self._hangup(li.id)
        if li.snoop is not None:
            await self._hangup(li.snoop)
        if li.bridge is not None:
            await self._destroy(li.bridge)
        if li.audit is not None and li.audit_id is not None:
            await self._audit(li.audit.ended, li.audit_id, self.clock(), reason)
        log.info("listen %s: ended (%s) call=%s operator=%s extension=%s mode=%s", li.id,
                 reason, li.call_id, li.operator, li.extension, li.mode)

    async def _hangup(self, channel: str) -> None:
        await hangup_quietly(self.ari, channel)  # or died with the spied channel

    async def _destroy(self, bridge: str) -> None:
        try:
            await self.ari.destroy_bridge(bridge)
        except AriError as e:
            log.debug("listen bridge %s: %s", bridge, e)

    async def _audit(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            await self.in_thread(fn, *args)
        except Exception as e:  # the request row exists; a lost start/end time is logged
            log.error("listen audit not updated (%s%r): %r", fn.__name__, args[:1], e)
