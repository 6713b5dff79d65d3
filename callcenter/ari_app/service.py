"""The Stasis application: one websocket to Asterisk, one task per call, reconcile on connect."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession, HeldLine
from callcenter.ari_app.client import AriClient, AriError, hangup_quietly
from callcenter.ari_app.dialback import DialbackManager
from callcenter.ari_app.listen import ListenManager
from callcenter.ari_app.node_loss import LostNodeCloser
from callcenter.backoff import Backoff
from callcenter.calls.codec import CALL_KEY, CALL_TTL_S, state_from_json, state_to_json
from callcenter.calls.node_loss import closed_elsewhere
from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig, Tenant
from callcenter.dialplan.contract import Verb, parse_stasis_args
from callcenter.ivr import menu as mn
from callcenter.lines.fallback import REDIS_DOWN
from callcenter.lines.shifts import active_shift, tenant_for_number
from callcenter.numbers import mask_number
from callcenter.queue.agent import AgentStatus
from callcenter.queue.rules import QueueConflict
from callcenter.transfers.ari import TransferEvents

log = logging.getLogger("callcenter.ari")

# The cause on the record of a call Asterisk lost when it stopped under it (seen on the next
# connect: a new Asterisk start time).
PBX_LOST_CAUSE = "Asterisk restarted: call lost"
# Each app instance says it serves its Stasis application (SET with expiry, every second);
# a peer finding the key gone for APP_ALIVE_MS takes the application's calls over.
APP_ALIVE_KEY = "hotline:stasis:{}"
APP_ALIVE_MS = 5000
PEER_GRACE_S = 2.0  # a peer's key must stay missing this long before its calls are taken
MOVE_WAIT_S = 60.0  # a channel asked to move that never arrived is forgotten after this

ADOPTABLE = (cm.Phase.GREETING, cm.Phase.HOLDING, cm.Phase.IVR, cm.Phase.QUEUED,
             cm.Phase.RINGING, cm.Phase.BRIDGED, cm.Phase.TRANSFERRED)
# Adopted in these phases a call resumes where it was (queue place, bridge) with Resume.
RESUMABLE = (cm.Phase.QUEUED, cm.Phase.RINGING, cm.Phase.BRIDGED, cm.Phase.TRANSFERRED)


def is_unit_leg(channel_id: str) -> bool:
    """Our legs to units' hotlines are named "<call>-unit<n>" (operators' "<call>-op<n>")."""
    return channel_id.rpartition("-")[2].startswith("unit")


def is_leg(channel_id: str) -> bool:
    """A leg we dialled for a call (an operator's or a unit's), never a citizen's call."""
    head, _, tail = channel_id.rpartition("-")
    kind = tail.rstrip("0123456789")
    return bool(head) and kind in ("op", "unit") and tail != kind


FeatureHandler = Callable[[dict[str, Any], list[str]], Coroutine[Any, Any, None]]
# Dispatch tables: an event of a type; a session's event; a StasisStart by its first argument
# (the channel and the args after the verb).
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
SessionHandler = Callable[[CallSession, dict[str, Any]], None]
StartHandler = Callable[[dict[str, Any], list[str]], Awaitable[None]]


def _first_arg(handler: Callable[[dict[str, Any], str], Awaitable[None]]) -> StartHandler:
    """A StasisStart handler of a verb that needs one argument (the contract checked it)."""
    async def on_start(channel: dict[str, Any], rest: list[str]) -> None:
        await handler(channel, rest[0])
    return on_start

IvrFor = Callable[[Tenant], cm.IvrContext | None]


def no_ivr(tenant: Tenant) -> cm.IvrContext | None:
    """Menus off: every admitted call hears the greeting, then music on hold."""
    return None


def playback_token(playback: dict[str, Any]) -> int:
    """The IVR token in our playback id "<channel>~<token>"; 0 for the call's own prompts."""
    _, _, tail = str(playback.get("id", "")).rpartition("~")
    return int(tail) if tail.isdigit() else 0


class StasisService:
    """Routes ARI events to call sessions; reconnects forever with backoff."""

    def __init__(self, ari: AriClient, deps: CallDeps, config: Callable[[], HotlineConfig],
                 ivr_for: IvrFor = no_ivr, features: FeatureHandler | None = None,
                 sessions: dict[str, CallSession] | None = None,
                 peers: tuple[str, ...] = ()):
        self.ari = ari
        # The other app instances' Stasis applications on this PBX (service.app_instances):
        # when one stops announcing itself, we take over its calls (take_over_peers).
        self.peers = peers
        # Channels asked to move to us from a dead peer (-> when): adopted, not new calls.
        self._taking_over: dict[str, float] = {}
        self._peer_missing: dict[str, float] = {}  # peer -> monotonic time first found silent
        self.deps = deps
        self.config = config
        self.ivr_for = ivr_for
        self.features = features  # operators' feature codes (*11 log in ...)
        # Call id -> its session; given when another part (the queue driver) reads the same map.
        self.sessions: dict[str, CallSession] = sessions if sessions is not None else {}
        self.listen = ListenManager(ari, self.sessions)  # supervisors listening in (listen.py)
        # Operators calling callers back (callbacks/); each call back's own call record.
        self.dialback = DialbackManager(ari, record=deps.write_dialback,
                                        node=lambda: self.config().service.node,
                                        link_call=deps.link_dialback)
        # Transfers to units' hotlines: the phone's button, consultations, units' legs.
        self.transfers = TransferEvents(ari, deps, self.sessions, config)
        # Calls of other nodes lost whole (every app of theirs gone): closed from here
        # (made at the first heartbeat, once the pool's instance is named).
        self._lost_nodes: LostNodeCloser | None = None
        self.connected = asyncio.Event()
        self.pbx_started: str | None = None  # Asterisk's start time, as last connected
        self.asterisk_restarts = 0  # times a reconnect found a new Asterisk (metrics)
        self._pbx_lost_calls = False  # the last connect found a new Asterisk: ours were lost
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}  # StasisEnd -> end, by call id
        self._runner: asyncio.Task[None] | None = None
        # Routing, in order: these event types first; then the listen-ins' legs; then the
        # events of a call's own channel (others ignored). StasisStart by the Stasis verb.
        self.event_handlers: dict[str, EventHandler] = {
            "StasisStart": self._on_start,
            "ChannelTransfer": self.transfers.on_transfer,
        }
        self.session_handlers: dict[str, SessionHandler] = {
            "PlaybackFinished": self._on_playback_finished,
            "ChannelDtmfReceived": self._on_dtmf,
            "ChannelHangupRequest": self._on_hangup_request,
            "ChannelDestroyed": self._on_destroyed,
            "StasisEnd": self._on_stasis_end,
        }
        self.start_handlers: dict[Verb, StartHandler] = {
            Verb.OPERATOR: _first_arg(self._on_operator_answer),
            Verb.UNIT: _first_arg(self.transfers.on_unit_answer),
            Verb.CONSULT: _first_arg(self.transfers.on_consult),
            Verb.AGENT: self._on_feature,
            Verb.SUPERVISOR: functools.partial(self._on_listen_leg, Verb.SUPERVISOR),
            Verb.SNOOP: functools.partial(self._on_listen_leg, Verb.SNOOP),
            Verb.DIALBACK: self.dialback_start,
        }

    def start(self) -> None:
        """Start the event loop task (owned here; `close` stops it first)."""
        self._runner = asyncio.create_task(self.run(), name="ari-events")

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, reconcile, dispatch; on loss wait and reconnect."""
        backoff = Backoff(initial=0.2, cap=5.0)
        while True:
            replaced = False
            try:
                async with contextlib.aclosing(self.ari.events()) as events:
                    async for event in events:
                        if event["type"] == "_Connected":
                            self.connected.set()  # (for announce; reconcile comes first)
                            await self._announce_quietly()
                            self.connected.clear()
                            await self._note_pbx_start()
                            await self.reconcile()
                            self.connected.set()
                            backoff.reset()
                            continue
                        if event["type"] == "ApplicationReplaced":
                            replaced = True
                            break
                        try:
                            await self.dispatch(event)
                        except Exception:  # one odd event must not cost the connection
                            log.exception("could not handle ARI event %s", event.get("type"))
                if replaced:
                    await self._stand_by()
                    continue
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, AriError) as e:
                log.warning("ARI connection lost or refused: %s", e)
            except Exception:
                log.exception("ARI event loop error")
            self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def _hand_over(self) -> bool:
        """Stopping while another app instance serves this PBX: leave our calls to it instead
        of ending them (no record here: the adopter writes it at the call's end). Their state
        is written once more in full (between changes only what adoption needs is kept up to
        date: CallSession._persist); our announcement is withdrawn so the peer takes them over
        after its grace. False (nothing done) without a live peer."""
        if not self.peers or not self.sessions or self.deps.pool.degraded:
            return False
        try:
            alive = [p for p in self.peers
                     if await self.deps.redis.exists(APP_ALIVE_KEY.format(p))]
            if not alive:
                return False
            handed = list(self.sessions.values())
            for session in handed:
                if session.task is not None:
                    session.task.cancel()
            await asyncio.gather(*(s.task for s in handed if s.task is not None),
                                 return_exceptions=True)
            for session in handed:
                if session.state.phase is not cm.Phase.ENDED:
                    await self.deps.redis.set(CALL_KEY.format(session.call_id),
                                              state_to_json(session.state), ex=CALL_TTL_S)
            await self.deps.redis.delete(APP_ALIVE_KEY.format(self.ari.app))
        except REDIS_DOWN as e:
            log.error("stopping: calls not handed over (Redis unreachable: %s)", e)
            return False
        log.warning("stopping: %d call(s) left to the other app instance(s) %s", len(handed),
                    ", ".join(alive))
        self.sessions.clear()
        self.deps.legs.clear()
        for task in list(self._tasks):  # feature codes in progress
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return True

    async def _note_pbx_start(self) -> None:
        """On each ARI connect: a new Asterisk start time means Asterisk restarted (its calls
        are gone; reconcile ends ours with their records). Logged and counted (/metrics)."""
        try:
            started = await self.ari.startup_time()
        except (aiohttp.ClientError, OSError, AriError) as e:
            log.debug("Asterisk start time not read: %s", e)
            return
        if started is None:
            return
        if self.pbx_started is not None and started != self.pbx_started:
            self.asterisk_restarts += 1
            self._pbx_lost_calls = True
            log.warning("Asterisk restarted (up since %s, was %s): %d call(s) of ours to end, "
                        "reconciling", started, self.pbx_started, len(self.sessions))
        self.pbx_started = started

    async def _stand_by(self) -> None:
        """Another app instance registered our Stasis app on this PBX and now receives its
        calls: hand them over (it adopts them from Redis: line, queue place, bridge), then
        wait until the application is free again and take over (active/standby)."""
        self.connected.clear()
        handed = list(self.sessions.values())
        log.warning("another instance took the Stasis app %s: handing over %d call(s) and "
                    "standing by until it is free", self.ari.app, len(handed))
        for session in handed:
            if session.task is not None:
                session.task.cancel()  # no hang-up, no record: the other instance goes on
        await asyncio.gather(*(s.task for s in handed if s.task is not None),
                             return_exceptions=True)
        self.sessions.clear()
        self.deps.legs.clear()
        while True:
            await asyncio.sleep(1.0)
            try:
                apps = await self.ari.request("GET", "/applications")
            except (aiohttp.ClientError, OSError, AriError) as e:
                log.debug("standby: PBX not answering: %s", e)
                continue
            if not any(a.get("name") == self.ari.app for a in apps or []):
                log.warning("Stasis app %s is free again: taking over", self.ari.app)
                return

    async def close(self, grace: float = 3.0) -> None:
        """Stop taking events, end every live call with its record, then stop the tasks."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self.connected.clear()
        await self.listen.close()
        await self.dialback.close()
        for timer in self._timers.values():
            timer.cancel()
        if await self._hand_over():
            return
        for session in list(self.sessions.values()):
            # Asterisk stops after us: write these calls' records now (line freed as well).
            session.events.put_nowait(cm.HungUp(utcnow(), None, "hotline service stopped"))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, session: CallSession, first: list[cm.Event]) -> None:
        task = asyncio.create_task(session.run(first), name=f"call:{session.call_id}")
        session.task = task
        self.sessions[session.call_id] = session
        self._tasks.add(task)

        def done(t: asyncio.Task[None], call_id: str = session.call_id) -> None:
            self._tasks.discard(t)
            if self.sessions.get(call_id) is session:
                del self.sessions[call_id]

        task.add_done_callback(done)

    # -- events ---------------------------------------------------------------------------
    async def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        log.debug("ARI event %s %s cause=%s", kind, event.get("channel", {}).get("id"),
                  event.get("cause"))
        first = self.event_handlers.get(kind) if isinstance(kind, str) else None
        if first is not None:
            await first(event)
            return
        if await self.listen.on_event(event):
            return  # a supervisor's leg or snoop channel (the calls' legs are only watched)
        if await self.dialback.on_event(event):
            return  # a call back's leg (the operator's or the citizen's)
        channel_id = None
        if "channel" in event:
            channel_id = event["channel"]["id"]
        elif kind == "PlaybackFinished":
            uri = event["playback"].get("target_uri", "")
            channel_id = uri.split(":", 1)[1] if uri.startswith("channel:") else None
        session = self.sessions.get(channel_id or "")
        if session is None:
            if channel_id in self.deps.legs:
                self._on_leg_event(kind, channel_id, event)
            return
        handler = self.session_handlers.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            handler(session, event)

    def _on_playback_finished(self, session: CallSession, event: dict[str, Any]) -> None:
        session.events.put_nowait(cm.PlaybackFinished(utcnow(),
                                                      playback_token(event["playback"])))

    def _on_dtmf(self, session: CallSession, event: dict[str, Any]) -> None:
        session.events.put_nowait(mn.Digit(utcnow(), str(event.get("digit", ""))))

    def _on_hangup_request(self, session: CallSession, event: dict[str, Any]) -> None:
        session.note_cause(event.get("cause"))

    def _on_destroyed(self, session: CallSession, event: dict[str, Any]) -> None:
        session.note_cause(event.get("cause"))
        session.events.put_nowait(session.hung_up())

    def _on_stasis_end(self, session: CallSession, event: dict[str, Any]) -> None:
        # ChannelDestroyed (with the cause) follows within milliseconds; should it not come,
        # end the call anyway so the line is freed well within a second. The timer is kept
        # by call id rather than named in its own callback: a handle whose callback refers to
        # the handle is a reference cycle, which kept each ended call's session alive until
        # the cyclic garbage collector came by (a soak, bench/soak.py, found 16 such).
        if session.call_id not in self._timers:
            self._timers[session.call_id] = asyncio.get_running_loop().call_later(
                0.3, self._end_anyway, session)

    def _end_anyway(self, session: CallSession) -> None:
        self._timers.pop(session.call_id, None)
        session.events.put_nowait(session.hung_up())

    def _on_leg_event(self, kind: str | None, leg: str, event: dict[str, Any]) -> None:
        """An operator's or a unit's leg: its end tells the caller's call (ring-out, no answer,
        hung up)."""
        if kind != "ChannelDestroyed":
            return
        call_id = self.deps.leg_gone(leg)  # also frees an operator waiting for it to go
        session = self.sessions.get(call_id) if call_id is not None else None
        if session is not None:
            gone: cm.Event = (cm.UnitGone(utcnow(), leg, event.get("cause")) if is_unit_leg(leg)
                              else cm.OperatorGone(utcnow(), leg, event.get("cause")))
            session.events.put_nowait(gone)

    async def _on_operator_answer(self, ch: dict[str, Any], call_id: str) -> None:
        """The operator picked up: confirm the offer still stands, then connect the caller."""
        leg = ch["id"]
        session = self.sessions.get(call_id)
        s = session.state if session is not None else None
        if (session is None or s is None or s.phase is not cm.Phase.RINGING
                or s.operator_channel != leg or s.ringing is None or s.tenant_id is None
                or self.deps.acd is None):
            log.info("call=%s: operator leg %s answered too late; hanging it up", call_id, leg)
            await hangup_quietly(self.ari, leg)
            return
        try:
            await self.deps.acd.answered(s.tenant_id, call_id, s.ringing)
        except QueueConflict as e:
            # The caller left, or the offer lapsed and went to someone else, as they picked up.
            log.info("call=%s: operator %s answered a withdrawn offer (%s); hanging up",
                     call_id, s.ringing, e)
            await hangup_quietly(self.ari, leg)
            return
        session.events.put_nowait(cm.OperatorAnswered(utcnow(), s.ringing))

    async def _on_start(self, event: dict[str, Any]) -> None:
        ch = event["channel"]
        if ch["id"] in self.sessions:
            return
        if self._taking_over.pop(ch["id"], None) is not None:
            await self._adopt_moved(ch)  # moved to us from a dead peer
            return
        verb, rest = parse_stasis_args(event.get("args") or [])
        handler = self.start_handlers.get(verb) if verb is not None else None
        if handler is not None:
            await handler(ch, rest)
        else:
            self._on_new_call(ch)

    async def dialback_start(self, ch: dict[str, Any], rest: list[str]) -> None:
        """A call back's leg answered (ari_app/dialback.py)."""
        await self.dialback.on_start(ch, rest)

    async def _on_listen_leg(self, verb: Verb, ch: dict[str, Any], rest: list[str]) -> None:
        """A supervisor's leg or a snoop channel of a listen-in (listen.py)."""
        await self.listen.on_start(ch, [verb.value, *rest])

    async def _on_feature(self, ch: dict[str, Any], rest: list[str]) -> None:
        """An operator's feature code (``*11`` ...): its own task; without one, straight back
        to the dialplan."""
        if self.features is None:
            await self.ari.continue_in_dialplan(ch["id"])
            return
        task: asyncio.Task[None] = asyncio.create_task(
            self.features(ch, [Verb.AGENT.value, *rest]), name=f"feature:{ch['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_new_call(self, ch: dict[str, Any]) -> None:
        """A citizen's call: its tenant and shift, then its own task."""
        now = utcnow()
        config = self.config()
        dialled = ch.get("dialplan", {}).get("exten", "")
        caller = ch.get("caller", {}).get("number", "") or "anonymous"
        state = cm.new_call(ch["id"], config.service.node, dialled, caller,
                            ch.get("linkedid") or ch["id"], now)
        tenant = tenant_for_number(config, dialled)
        if tenant is None:
            routed = cm.Routed(now, None)
        else:
            shift, _override = active_shift(tenant, now)
            routed = cm.Routed(now, tenant.id, shift.name, shift.lines,
                               queue=self.deps.acd is not None
                               and bool(tenant.operators.operators),
                               callback_when_full=shift.callback_when_full)
        # Written once Asterisk has been asked to answer or refuse the call (held lines).
        held: list[HeldLine] = [(log, logging.INFO, "call=%s arrived dialled=%s caller=%s "
                                 "tenant=%s", (ch["id"], dialled, mask_number(caller),
                                               tenant.id if tenant else "-"))]
        if log.isEnabledFor(logging.DEBUG):
            held.append((log, logging.DEBUG, "call=%s caller number %s", (ch["id"], caller)))
        self._spawn(CallSession(state, self.deps, self._ivr(tenant), held), [routed])

    def _ivr(self, tenant: Tenant | None) -> cm.IvrContext | None:
        """The tenant's menus and FAQ now; the call keeps them until it ends."""
        if tenant is None or tenant.ivr is None:
            return None
        try:
            return self.ivr_for(tenant)
        except Exception:  # no menus beats no answer: the caller still gets greeting + hold
            log.exception("tenant %s: IVR unavailable, calls get greeting and hold", tenant.id)
            return None

    # -- reconcile ------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """After (re)connecting: adopt calls we can continue, end the rest, rebuild pool use."""
        app = await self.ari.application()
        in_app = set(app.get("channel_ids", []))
        channels = {c["id"]: c for c in await self.ari.channels()}
        in_app -= await self.listen.reconcile(channels)  # listen legs are no callers
        in_app -= await self.dialback.reconcile(channels)  # nor call backs' legs
        # Sessions whose channel vanished while we were away end now (record written). When
        # Asterisk itself restarted (killed, crashed) the calls were lost, not ended by their
        # callers: their records say failed, with that cause.
        lost, self._pbx_lost_calls = self._pbx_lost_calls, False
        for call_id, session in list(self.sessions.items()):
            if call_id not in channels:
                session.events.put_nowait(cm.Failed(utcnow(), PBX_LOST_CAUSE) if lost
                                          else session.hung_up())
        tenants = {t.id for t in self.config().tenants}
        adopted: dict[str, list[str]] = {t: [] for t in tenants}
        queued: dict[str, list[str]] = {t: [] for t in tenants}  # adopted queue places
        for call_id in sorted(in_app - set(self.sessions)):
            if call_id in self.deps.legs:
                continue  # the leg of a call of ours (adopted just above, or live)
            if is_leg(call_id):
                # A leg whose call we could not adopt: it is nobody's call now.
                log.info("leg %s has no call any more: hanging it up", call_id)
                await hangup_quietly(self.ari, call_id)
                continue
            await self._adopt(call_id, channels.get(call_id), adopted, queued)
        try:
            await self._close_orphans(set(channels))
        except REDIS_DOWN as e:  # done when Redis is back (redis_back reconciles again)
            self.deps.pool.lost(e)
        await self._take_places(sorted(tenants), adopted, queued)

    # -- several app instances on one PBX ---------------------------------------------------
    async def announce(self) -> None:
        """While connected: tell the peers (Redis, expiring) that our application is served."""
        if self.connected.is_set():
            await self.deps.redis.set(APP_ALIVE_KEY.format(self.ari.app), self.deps.pool.instance,
                                      px=APP_ALIVE_MS)

    async def _announce_quietly(self) -> None:
        """Announce at once on connect: calls arrive before the first heartbeat, and a peer
        must not take them for a dead instance's."""
        try:
            await self.announce()
        except REDIS_DOWN as e:
            self.deps.pool.lost(e)

    async def take_over_peers(self) -> int:
        """Peers whose process stopped announcing (killed, crashed): move the channels still in
        their Stasis application into ours; each is adopted when its StasisStart reaches us
        (_adopt_moved: state, line and queue place from Redis). A channel hearing a prompt
        moves when the prompt ends. How many moves were asked for."""
        if not self.connected.is_set() or not self.peers or self.deps.pool.degraded:
            return 0
        now = time.monotonic()
        for channel_id, asked in list(self._taking_over.items()):
            if now - asked > MOVE_WAIT_S:  # hung up before it could move
                del self._taking_over[channel_id]
        moving = 0
        for peer in self.peers:
            if await self.deps.redis.exists(APP_ALIVE_KEY.format(peer)):
                self._peer_missing.pop(peer, None)
                continue
            # Gone for a while, not just between its connect and its first word.
            since = self._peer_missing.setdefault(peer, now)
            if now - since < PEER_GRACE_S:
                continue
            app = await self.ari.application_named(peer)
            # The dead application may go on listing channels already moved to us: those
            # are ours (a second move would take them out of Stasis and end the call).
            ids = [str(c) for c in (app or {}).get("channel_ids", [])
                   if str(c) not in self._taking_over and str(c) not in self.sessions
                   and str(c) not in self.deps.legs]
            if not ids:
                continue
            log.warning("app instance %s stopped serving its calls: taking over its %d "
                        "channel(s)", peer, len(ids))
            for channel_id in ids:
                self._taking_over[channel_id] = now
                try:
                    await self.ari.move(channel_id, self.ari.app)
                    moving += 1
                except AriError as e:  # hung up meanwhile
                    self._taking_over.pop(channel_id, None)
                    log.info("channel %s of %s not moved: %s", channel_id, peer, e)
        return moving

    async def close_lost_nodes(self) -> int:
        """Each heartbeat: close the calls of nodes whose every app instance stopped beating
        (node_loss.py); needs Redis, not our own Asterisk."""
        if self.deps.pool.degraded:
            return 0
        if self._lost_nodes is None:
            self._lost_nodes = LostNodeCloser(self.deps, self.config().service.node,
                                              self.deps.pool.instance)
        return await self._lost_nodes.sweep()

    async def _adopt_moved(self, channel: dict[str, Any]) -> None:
        """A channel moved to us from a dead peer entered our application: adopt its call (a
        leg is registered with its call, which is moved too)."""
        call_id = str(channel["id"])
        if call_id in self.deps.legs or is_leg(call_id):
            return
        tenants = sorted(t.id for t in self.config().tenants)
        adopted: dict[str, list[str]] = {t: [] for t in tenants}
        queued: dict[str, list[str]] = {t: [] for t in tenants}
        await self._adopt(call_id, channel, adopted, queued)
        await self._take_places([t for t in tenants if adopted[t]], adopted, queued)

    async def _shared_state(self, call_id: str) -> cm.CallState | None:
        """The call's state as Redis shares it; None when unknown or Redis is unreachable."""
        if self.deps.pool.degraded:
            return None
        try:
            raw = await self.deps.redis.get(CALL_KEY.format(call_id))
        except REDIS_DOWN as e:
            self.deps.pool.lost(e)
            return None
        return state_from_json(raw) if raw else None

    async def redis_back(self) -> None:
        """Redis answers again after an outage (the pool wrote our lines back): share our calls'
        states again and forget those that ended, free operators whose calls ended meanwhile,
        reconcile with Asterisk (lines of calls gone are dropped), and put callers who waited
        on hold back into the queue in their place (by the time they were queued)."""
        deps = self.deps
        for call_id in sorted(deps.unshared):
            session = self.sessions.get(call_id)
            key = CALL_KEY.format(call_id)
            if session is not None and session.state.phase is not cm.Phase.ENDED:
                await deps.redis.set(key, state_to_json(session.state), ex=CALL_TTL_S)
            else:
                await deps.redis.delete(key)
            deps.unshared.discard(call_id)
        if deps.acd is not None:
            while deps.unended:
                tenant_id, extension, call_id = deps.unended[0]
                try:
                    await deps.acd.call_ended(tenant_id, extension, call_id)
                except QueueConflict as e:
                    log.info("operator %s after Redis came back: %s", extension, e)
                deps.unended.pop(0)
        if self.connected.is_set():
            await self.reconcile()
        if deps.acd is None:
            return
        for session in list(self.sessions.values()):
            s = session.state
            if s.phase is not cm.Phase.QUEUED or s.tenant_id is None:
                continue
            placed = await deps.acd.enqueue(s.tenant_id, s.call_id, caller=s.caller,
                                            urgent=s.urgent, enqueued_at=s.queued_at)
            if placed:
                log.info("call=%s put back in the queue %s after the Redis outage", s.call_id,
                         s.tenant_id)
                deps.kick(s.tenant_id)

    async def _take_places(self, tenants: list[str], adopted: dict[str, list[str]],
                           queued: dict[str, list[str]]) -> None:
        """Per tenant: drop our lines of calls gone, take the adopted calls' lines and queue
        places, and look for operators."""
        keep = sorted(self.sessions)  # never drop a line a call of ours may hold or be taking
        for tenant_id in tenants:
            dropped, used = await self.deps.pool.reconcile(tenant_id, keep,
                                                           adopted.get(tenant_id, []))
            log.info("pool %s reconciled: in use %d (dropped %d stale lines)", tenant_id, used,
                     dropped)
            if self.deps.acd is not None:
                waiting = [c for c, ses in self.sessions.items()
                           if ses.state.phase in cm.QUEUE_PHASES
                           and ses.state.tenant_id == tenant_id]
                try:
                    dropped, taken = await self.deps.acd.reconcile(tenant_id, waiting,
                                                                   queued.get(tenant_id, []))
                except REDIS_DOWN as e:
                    self.deps.pool.lost(e)
                    continue
                if dropped or taken:
                    log.info("queue %s reconciled: %d stale places dropped, %d taken over",
                             tenant_id, dropped, taken)
                self.deps.kick(tenant_id)

    async def _adopt(self, call_id: str, channel: dict[str, Any] | None,
                     adopted: dict[str, list[str]], queued: dict[str, list[str]]) -> None:
        """Continue a call found in our application that no session of ours serves (after a
        restart, or moved to us from a dead peer) from its state in Redis; collect its line
        (``adopted``) and queue place (``queued``) per tenant for _take_places."""
        state = await self._shared_state(call_id)
        if state is not None and closed_elsewhere(state, self.config().service.node):
            # Our node was taken for lost (no app of ours beat for the TTL) but its Asterisk
            # kept the call: another node closed it with its record. Not ours to go on with.
            log.warning("call=%s was closed by another node while ours was lost (%s): "
                        "hanging it up", call_id, state.cause)
            await hangup_quietly(self.ari, call_id, "failure")
            await self.deps.redis.delete(CALL_KEY.format(call_id))
            return
        if (state is not None and state.phase in ADOPTABLE
                and state.tenant_id is not None and state.tenant_id in adopted):
            log.info("call=%s adopted in phase %s", call_id, state.phase.value)
            adopted[state.tenant_id].append(call_id)
            tenant = self.config().require_tenant(state.tenant_id)
            ivr = self._ivr(tenant)
            if state.phase in RESUMABLE:
                if state.phase in cm.QUEUE_PHASES:
                    queued[state.tenant_id].append(call_id)
                first: list[cm.Event] = [await self._resume_with(state)]
                for leg in (state.operator_channel, state.unit_channel):
                    if leg is not None:
                        first += await self._watch_leg(call_id, leg)
                self._spawn(CallSession(state, self.deps, ivr), first)
            elif state.phase is cm.Phase.IVR and ivr is not None and state.menu is not None:
                # Menus start again at the root (the path so far is kept).
                self._spawn(CallSession(state, self.deps, ivr), [cm.Resume(utcnow())])
            else:
                state = dataclasses.replace(state, phase=cm.Phase.GREETING)
                # Re-enter at GREETING: PlaybackFinished restarts music on hold.
                self._spawn(CallSession(state, self.deps), [cm.PlaybackFinished(utcnow())])
        elif state is not None:
            # Known but caught mid-admission or mid-rejection: end it cleanly, with a record.
            log.warning("call=%s found in phase %s after reconnect: ending it", call_id,
                        state.phase.value)
            self._spawn(CallSession(state, self.deps),
                        [cm.Failed(utcnow(), "service restarted during the call")])
        elif channel is not None:
            # Entered Stasis while we were (re)connecting; its StasisStart may be lost or
            # still buffered (then ignored, as the call is known): treat it as a new call.
            log.info("call=%s entered while we were away: handling it now", call_id)
            self._on_new_call(channel)

    async def _resume_with(self, state: cm.CallState) -> cm.Event:
        """How an adopted call goes on: ``Resume``, except for a call whose operator answered
        as its instance died. The queue had put the operator on the call (``answered``, which
        also takes the call out of the queue) but the call's shared state still said ringing:
        resumed, the call waited in a queue that no longer held it and the operator stayed "on
        call" for good (CI). It is connected now instead, in a bridge of its own (the one the
        dead instance may have begun is destroyed: a bridge cannot be made twice)."""
        extension, acd = state.ringing, self.deps.acd
        if (state.phase is not cm.Phase.RINGING or extension is None or acd is None
                or state.tenant_id is None or state.operator_channel is None):
            return cm.Resume(utcnow())
        try:
            agent = await acd.agent(state.tenant_id, extension)
        except REDIS_DOWN as e:
            self.deps.pool.lost(e)
            agent = None
        if agent is None or agent.status is not AgentStatus.ON_CALL \
                or agent.call_id != state.call_id:
            return cm.Resume(utcnow())
        log.info("call=%s: operator %s had answered as the instance serving it stopped: "
                 "connecting them", state.call_id, extension)
        try:
            await self.ari.destroy_bridge(cm.bridge_id(state.call_id))
        except AriError as e:
            log.warning("call=%s: bridge left by the stopped instance: %s", state.call_id, e)
        return cm.OperatorAnswered(utcnow(), extension)

    async def _watch_leg(self, call_id: str, leg: str) -> list[cm.Event]:
        """An adopted call's operator or unit leg: registered as the call's, and our application
        subscribed to it, so that its end reaches us. A leg the dead instance was ringing is in
        no Stasis application (it cannot be moved to us), one whose move failed stays in the
        dead one's: without the subscription their ChannelDestroyed goes to an application
        nobody reads, and the call's end would wait LEG_GONE_WAIT_S for it. After a restart
        under the same name Asterisk kept the subscription (asking again changes nothing). A
        leg gone already (422: no such event source; it ended while nobody listened): the
        call hears of it at once (after its Resume)."""
        try:
            await self.ari.subscribe_channel(leg)
        except AriError as e:
            if e.status == 422:
                log.info("call=%s: its leg %s ended while it was not served", call_id, leg)
                return [cm.UnitGone(utcnow(), leg, None) if is_unit_leg(leg)
                        else cm.OperatorGone(utcnow(), leg, None)]
            log.warning("call=%s: not subscribed to its leg %s: %s", call_id, leg, e)
        self.deps.legs[leg] = call_id
        return []

    def held_lines(self) -> dict[str, list[str]]:
        """Calls of ours holding a line, per tenant (to write back after a heartbeat lapse)."""
        held: dict[str, list[str]] = {}
        for call_id, session in self.sessions.items():
            s = session.state
            if s.line_held and s.tenant_id is not None:
                held.setdefault(s.tenant_id, []).append(call_id)
        return held

    async def _close_orphans(self, live: set[str]) -> None:
        """Calls of this node that ended while no app was connected still get their record."""
        node = self.config().service.node
        started = _ari_time(self.pbx_started)
        async for key in self.deps.redis.scan_iter(match=CALL_KEY.format("*"), count=500):
            raw = await self.deps.redis.get(key)
            if not raw:
                continue
            state = state_from_json(raw)
            if state.node != node or state.call_id in live or state.call_id in self.sessions:
                continue
            if closed_elsewhere(state, node):  # by another node while ours was lost
                await self.deps.redis.delete(key)
                continue
            log.info("call=%s ended while the service was away: writing its record",
                     state.call_id)
            # Arrived before this Asterisk started: lost with the one before (killed, crashed,
            # its whole machine down), not ended by its caller.
            end: cm.Event = (
                cm.Failed(utcnow(), PBX_LOST_CAUSE) if started is not None
                and _aware(state.arrived_at) < started
                else cm.HungUp(utcnow(), None, "ended while the hotline service was down"))
            self._spawn(CallSession(state, self.deps), [end])


def _ari_time(text: str | None) -> dt.datetime | None:
    """ARI's time (``2026-12-07T11:38:00.123+0000``) as an aware datetime; None if unreadable."""
    if not text:
        return None
    try:
        return _aware(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


# Where the composition root keeps the one StasisService; the console's call routes read it here.
STASIS = web.AppKey("stasis", StasisService)
