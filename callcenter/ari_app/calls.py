"""Each call's task: feeds Asterisk events to the pure call machine and carries out its commands."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from callcenter import calls as cm
from callcenter.ari_app.client import AriClient, AriError, ChannelGone
from callcenter.calls.causes import cause_text
from callcenter.calls.codec import CALL_KEY, CALL_TTL_S, shared_view, state_to_json
from callcenter.clock import utcnow
from callcenter.dialplan.contract import Verb, stasis_args
from callcenter.ivr import menu as mn
from callcenter.ivr import status as ivr_status
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.lines.fallback import REDIS_DOWN, ResilientPool
from callcenter.lines.offers import OfferSlots
from callcenter.queue.redis import AcdQueue
from callcenter.queue.rules import QUEUE_UNAVAILABLE_TEXT, QueueConflict
from callcenter.store.data import CallRecordData

if TYPE_CHECKING:
    from callcenter.transfers.rules import WarmTicket

log = logging.getLogger("callcenter.call")


@dataclasses.dataclass
class CallDeps:
    """What a call's task needs from the service (all owned by the composition root)."""

    ari: AriClient
    pool: ResilientPool
    redis: aioredis.Redis
    sounds_dir: str  # as Asterisk sees it
    write_record: Callable[[cm.CallState], Awaitable[None]]
    prompts: PromptLibrary | None = None  # IVR prompts (None: no tenant has menus)
    acd: AcdQueue | None = None  # the operators' queue (None: calls wait on hold)
    # The operators' legs of our calls: leg channel id -> the caller's call id.
    legs: dict[str, str] = dataclasses.field(default_factory=dict)
    # Calls waiting for legs of theirs to end (EndOperatorCall.after): leg -> set when gone.
    leg_ended: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)
    kick: Callable[[str], None] = lambda tenant: None  # "look for an operator for this tenant"
    # (tenant, call id, extension): an offer made here for another call of this instance
    # (QueueDriver.deliver; the default drops it: the offer lapses and is made again).
    offered: Callable[[str, str, str], None] = lambda tenant, call_id, extension: None
    # (call, source) -> the callback request stored; source queue | pool_full.
    save_callback: Callable[[cm.CallState, str], Awaitable[None]] | None = None
    # Pool-full callback offer slots (None: no offer, the busy message as before).
    offers: OfferSlots | None = None
    # A call back's call record (RecordWriter.write_data; None: not written) and the link of
    # that record to its request's ticket (ticket code, record id; None: not linked).
    write_dialback: Callable[[CallRecordData], Awaitable[None]] | None = None
    link_dialback: Callable[[str, str], Awaitable[None]] | None = None
    # Calls whose state in Redis is out of date (not written while Redis was unreachable):
    # written again, or deleted if they ended, when it is back (StasisService.redis_back).
    unshared: set[str] = dataclasses.field(default_factory=set)
    # Operators' calls that ended while Redis was unreachable: (tenant, extension, call id).
    unended: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    # Status by phone: (tenant, caller, command) -> the tickets to read (callcenter.ivr.lookup;
    # never raises, answers ``failed`` on an outage). None: every lookup is "interrupted".
    lookup: Callable[[str, str, mn.LookupTickets],
                     Awaitable[ivr_status.LookupResult]] | None = None
    # Warm transfers: (tenant, call record id) -> the ticket linked to the call, or None
    # (callcenter.transfers.ari.CallTickets; never raises). None: units hear no ticket.
    call_ticket: Callable[[str, str], Awaitable[WarmTicket | None]] | None = None
    # ... and (ticket code, unit, call record id) -> recorded on the ticket, so the unit may
    # read it (CallTickets.transferred; never raises). None: not recorded.
    call_transferred: Callable[[str, str, str], Awaitable[bool]] | None = None


    def leg_gone(self, leg: str) -> str | None:
        """A leg of ours is gone (its ChannelDestroyed, or a 404 hanging it up): forget it and
        wake a call waiting for it; the call id it belonged to (None: not ours, or known
        gone)."""
        ended = self.leg_ended.pop(leg, None)
        if ended is not None:
            ended.set()
        return self.legs.pop(leg, None)


# How long an ended call waits for the operator's leg to go before freeing them anyway: the
# leg's ChannelDestroyed comes within milliseconds of the hang-up; never seeing it (events lost
# in a reconnect) must not keep an operator out of the queue.
LEG_GONE_WAIT_S = 5.0
# Within that wait, how often Asterisk is asked whether a leg whose ChannelDestroyed has not
# come is still there (GET /channels/{id}: 404 once destroyed): an end we were never told of
# (the event lost in a reconnect, a leg whose events go to another application) frees the
# operator as soon as the leg is really gone, not after the whole wait.
LEG_CHECK_S = 0.5
# A log line held back: (logger, level, message, args).
HeldLine = tuple[logging.Logger, int, str, tuple[object, ...]]


class CallSession:
    """Owns one call's state; its events arrive through a queue, in order."""

    def __init__(self, state: cm.CallState, deps: CallDeps, ivr: cm.IvrContext | None = None,
                 held: list[HeldLine] | None = None):
        self.state = state
        # A new call's INFO lines (its arrival, its first transitions) wait until Asterisk has
        # been asked to answer or refuse it: each line costs the event loop ~40 µs on the
        # caller's path (issue 20, bench/answer_wire.py). None: lines go out as they come.
        self._held = held
        self.deps = deps
        self.ivr = ivr  # the tenant's menus and FAQ as they were when the call arrived
        self.events: asyncio.Queue[cm.Event] = asyncio.Queue()
        self._playbacks = 0
        self._timer: asyncio.TimerHandle | None = None
        self.cause_code: int | None = None  # last hang-up cause Asterisk told us
        self.task: asyncio.Task[None] | None = None
        self._shared: tuple[object, ...] | None = None  # shared_view as last written to Redis
        # Status lookups running (mn.LookupTickets): each its own task, its answer coming back
        # as an event, so that keys and a hang-up are taken meanwhile; cancelled at the end.
        self._lookups: set[asyncio.Task[None]] = set()
        self.writes = 0  # state writes to Redis (set and delete), for tests and benchmarks
        self._moh: asyncio.Task[None] | None = None  # see _moh_meanwhile

    def note_cause(self, code: int | None) -> None:
        """Remember a real cause (ChannelHangupRequest/ChannelDestroyed; 0 means none)."""
        if code:
            self.cause_code = code

    def hung_up(self) -> cm.HungUp:
        """The event that ends the call, with the best cause known now."""
        return cm.HungUp(utcnow(), self.cause_code, cause_text(self.cause_code))

    @property
    def call_id(self) -> str:
        return self.state.call_id

    def _label(self) -> str:
        s = self.state
        return f"call={s.call_id} tenant={s.tenant_id or '-'} dialled={s.dialled}"

    def _info(self, msg: str, *args: object) -> None:
        if self._held is not None:
            self._held.append((log, logging.INFO, msg, args))
        else:
            log.info(msg, *args)

    def _release_held(self) -> None:
        """Write the held lines (in their order, before anything logged after them)."""
        held, self._held = self._held, None
        for logger, level, msg, args in held or ():
            logger.log(level, msg, *args)

    async def run(self, first: list[cm.Event]) -> None:
        """Process events until the call ends; an exception ends this call only."""
        for ev in first:
            self.events.put_nowait(ev)
        try:
            if first:
                await self._apply(self.events.get_nowait())
            self._release_held()
            # After the time-critical first answer/reject: ChannelDestroyed (with the hang-up
            # cause) only reaches us after StasisEnd if we subscribe to the channel itself.
            try:
                await self.deps.ari.subscribe_channel(self.call_id)
            except AriError as e:
                log.debug("%s: no channel subscription: %s", self._label(), e)
            while self.state.phase is not cm.Phase.ENDED or not self.events.empty():
                event = await self.events.get()
                await self._apply(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._release_held()
            log.exception("%s: call task failed; ending the call", self._label())
            await self._apply(cm.Failed(utcnow(), "internal error"))
        finally:
            self._release_held()
            self._disarm()
            await self._stop_lookups()

    async def _stop_lookups(self) -> None:
        """Cancel the status lookups still running and wait for them (none outlives the call)."""
        lookups = list(self._lookups)
        for task in lookups:
            task.cancel()
        if lookups:
            await asyncio.gather(*lookups, return_exceptions=True)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, token: int) -> None:
        self._timer = None
        self.events.put_nowait(mn.TimerFired(utcnow(), token))

    async def _apply(self, event: cm.Event) -> None:
        pending: collections.deque[cm.Event] = collections.deque([event])
        self._moh = None
        try:
            while pending:
                await self._step(pending)
                if not pending and self._moh is not None:
                    follow = await self._moh_answer(self._moh)
                    if follow is not None:
                        pending.append(follow)
        finally:
            if self._moh is not None:  # this call's task was cancelled: nobody to read it
                if self._moh.done():
                    self._moh.cancelled() or self._moh.exception()  # (read: not logged)
                else:
                    self._moh.cancel()
            self._moh = None
        await self._persist()

    async def _step(self, pending: collections.deque[cm.Event]) -> None:
        """The machine's step for the next event, its commands carried out (their events
        appended to ``pending``)."""
        ev = pending.popleft()
        before = self.state.phase
        node_before = self.state.menu.node if self.state.menu else None
        try:
            self.state, commands = cm.step(self.state, ev, self.ivr)
        except cm.IllegalTransition as e:
            self._release_held()
            log.warning("%s: ignored %s", self._label(), e)
            return
        if before is not self.state.phase:
            self._info("%s: %s -[%s]-> %s", self._label(), before.value, type(ev).__name__,
                       self.state.phase.value)
        node = self.state.menu.node if self.state.menu else None
        if node != node_before:
            self._info("%s: ivr %s -[%s]-> %s", self._label(), node_before or "-",
                       type(ev).__name__, node)
        if self.state.phase is cm.Phase.ENDED:
            for task in self._lookups:  # nobody to tell the answer to (awaited in run)
                task.cancel()
        for i, command in enumerate(commands):
            if isinstance(command, cm.StartMoh) and i + 1 < len(commands) and self._moh is None:
                follow = await self._moh_meanwhile()
            else:
                follow = await self._execute(command)
            if follow is not None:
                pending.append(follow)

    async def _moh_meanwhile(self) -> cm.Event | None:
        """Music on hold asked for, its answer read only once the commands after it and the
        events they bring are done (``_apply``): a caller going to the queue is queued, and
        their operator rung, while Asterisk starts the music, as app_queue joins its queue
        before its music starts (P5). A failure is handled as ``_execute``'s, later."""
        try:
            self._moh = await self.deps.ari.send_start_moh(self.call_id)
        except Exception as e:
            return self._failed(cm.StartMoh(), e)
        return None

    async def _moh_answer(self, answer: asyncio.Task[None]) -> cm.Event | None:
        self._moh = None
        try:
            await answer
        except Exception as e:
            return self._failed(cm.StartMoh(), e)
        return None

    async def _execute(self, command: cm.Command) -> cm.Event | None:
        s, d = self.state, self.deps
        try:
            match command:
                case cm.AcquireLine(tenant_id, limit):
                    ok = await d.pool.acquire(tenant_id, s.call_id, limit, s.shift or "")
                    return cm.LineGranted(utcnow()) if ok else cm.LineRefused(utcnow())
                case cm.ReleaseLine(tenant_id):
                    await d.pool.release(tenant_id, s.call_id)
                case cm.HoldOffer(tenant_id, slots):
                    return await self._hold_offer(tenant_id, slots)
                case cm.ReleaseOffer(tenant_id):
                    if d.offers is not None:
                        await d.offers.release(tenant_id, s.call_id)
                case cm.Answer():
                    await d.ari.answer(s.call_id)
                    self._release_held()
                    return cm.Answered(utcnow())
                case cm.Progress():
                    await d.ari.progress(s.call_id)
                    self._release_held()
                case cm.Play(tenant_id, prompt_id, token):
                    self._playbacks += 1
                    media = f"sound:{d.sounds_dir}/{tenant_id}/{prompt_id}"
                    # A token names the playback as mn.Say does (StopSaying, PlaybackFinished).
                    name = f"{s.call_id}~{token}" if token else f"{s.call_id}~p{self._playbacks}"
                    await d.ari.play(s.call_id, media, name)
                case cm.StartMoh():
                    await d.ari.start_moh(s.call_id)
                case cm.Hangup(reason):
                    await d.ari.hangup(s.call_id, reason)
                    self._release_held()
                case cm.WriteRecord():
                    self._disarm()
                    await d.write_record(s)
                case mn.Say(prompt, token):
                    assert d.prompts is not None and s.tenant_id is not None
                    media = await d.prompts.media(s.tenant_id, prompt)
                    await d.ari.play(s.call_id, media, f"{s.call_id}~{token}")
                case mn.StopSaying(token):
                    # Barge-in: a 404 means the prompt ended on its own just now (its
                    # PlaybackFinished carries a token the menu no longer waits for).
                    await d.ari.stop_playback(f"{s.call_id}~{token}")
                case mn.StartTimer(token, seconds):
                    self._disarm()
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(seconds, self._fire, token)
                case mn.CancelTimer():
                    self._disarm()
                case mn.LookupTickets(token):
                    # The store may take up to its timeout: the call goes on taking its events
                    # (keys are typed ahead in the menu, a hang-up ends the call at once).
                    task = asyncio.create_task(self._look_up(command),
                                               name=f"lookup:{s.call_id}:{token}")
                    self._lookups.add(task)
                    task.add_done_callback(self._lookups.discard)
                case _:
                    return await self._execute_queue(command)
        except Exception as e:
            return self._failed(command, e)
        return None

    def _failed(self, command: cm.Command, e: Exception) -> cm.Event | None:
        """The event a command's failure brings (None: none)."""
        s = self.state
        if isinstance(e, ChannelGone):
            # The caller hung up while we acted: the ChannelDestroyed event ends the call too.
            return self.hung_up() if s.phase is not cm.Phase.ENDED else None
        # Redis, ARI or disk trouble: end this call cleanly, not the rest.
        self._release_held()
        what = type(command).__name__
        if s.phase is cm.Phase.ENDED:
            # Winding down: carry on with the remaining commands (the record above all).
            log.error("%s: %s failed while ending the call: %r", self._label(), what, e)
            return None
        log.error("%s: %s failed: %r", self._label(), what, e)
        return cm.Failed(utcnow(), f"{what} failed")

    async def _look_up(self, command: mn.LookupTickets) -> None:
        """One status lookup (its own task): the answer goes into the call's events as
        LookupDone, as a timer's or a prompt's end does; cancelled if the call ends first."""
        s, d = self.state, self.deps
        result = ivr_status.UNAVAILABLE
        if d.lookup is not None and s.tenant_id is not None:
            try:
                result = await d.lookup(s.tenant_id, s.caller, command)
            except asyncio.CancelledError:
                raise
            except Exception:  # the lookup answers "failed" itself; the caller must not hang
                log.exception("%s: status lookup failed", self._label())
        log.info("%s: status lookup (%s): %s", self._label(),
                 "keyed-in code" if command.code else "caller's number",
                 "interrupted" if result.failed else f"{result.total} found")
        self.events.put_nowait(mn.LookupDone(utcnow(), command.token, result))

    async def _hold_offer(self, tenant_id: str, slots: int) -> cm.Event:
        """One of the tenant's pool-full offer slots, or the plain busy message: without the
        slots' store, or with Redis unreachable, no call is answered past the paid lines."""
        d = self.deps
        if d.offers is None or d.pool.degraded:
            return cm.OfferRefused(utcnow())
        try:
            ok = await d.offers.hold(tenant_id, self.call_id, slots)
        except REDIS_DOWN as e:
            d.pool.lost(e)
            return cm.OfferRefused(utcnow())
        if not ok:
            self._info("%s: lines full and every callback offer slot taken: busy message",
                       self._label())
        return cm.OfferGranted(utcnow()) if ok else cm.OfferRefused(utcnow())

    async def _execute_queue(self, command: cm.Command) -> cm.Event | None:
        """The operators' queue, their legs and the bridge (errors other than the caller's own
        channel vanishing end the call, as for every command)."""
        s, d = self.state, self.deps
        match command:
            case cm.StopMoh():
                try:
                    await d.ari.stop_moh(s.call_id)
                except AriError as e:  # no music playing; a hang-up also brings its own event
                    log.debug("%s: stop music: %s", self._label(), e)
            case cm.Enqueue(tenant_id, urgent):
                assert d.acd is not None
                try:
                    _added, offer = await d.acd.enqueue_offer(tenant_id, s.call_id,
                                                              caller=s.caller, urgent=urgent)
                except REDIS_DOWN as e:
                    # The queue lives in Redis: tell the caller, offer a callback, keep them on
                    # hold; they are queued in their place when Redis is back (redis_back).
                    d.pool.lost(e)
                    log.warning("%s: queue unreachable (Redis): callback offered", self._label())
                    return cm.WaitTick(utcnow(), "unavailable", QUEUE_UNAVAILABLE_TEXT)
                log.info("%s: queued for an operator%s", self._label(),
                         " (urgent)" if urgent else "")
                if offer is None:
                    return None  # no operator free now: the driver offers when one is
                # Maybe more offers now (operators freed by the script's housekeeping).
                d.kick(tenant_id)
                if offer.call_id == s.call_id:
                    # Free operator: ring them now, without the driver's round trip (P5).
                    policy = d.acd.policy(tenant_id)
                    return cm.Offered(utcnow(), offer.extension, policy.ring_timeout_s,
                                      policy.wrap_up_s)
                if offer.entry.instance == d.acd.instance:
                    d.offered(tenant_id, offer.call_id, offer.extension)
                # else: its owner rings it when the "offered" event reaches it.
            case cm.Dequeue(tenant_id, reason, extension, after):
                assert d.acd is not None
                await self._legs_gone(after, extension or "-")
                try:
                    entry = await d.acd.dequeue(tenant_id, s.call_id, reason)
                except REDIS_DOWN as e:
                    # Not in a queue we can reach: the rebuild after Redis drops its place.
                    d.pool.lost(e)
                    log.warning("%s: queue place not removed (Redis unreachable)", self._label())
                    return None
                if entry is None and extension is not None:
                    # The operator's answer was counted as the caller left: end their call.
                    try:
                        await d.acd.call_ended(tenant_id, extension, s.call_id)
                    except QueueConflict:
                        pass
                d.kick(tenant_id)
            case cm.RingOperator(extension, channel, timeout_s):
                d.legs[channel] = s.call_id
                try:
                    await d.ari.originate(f"PJSIP/{extension}", channel,
                                          app_args=stasis_args(Verb.OPERATOR, s.call_id),
                                          timeout_s=timeout_s, caller_id=s.caller,
                                          originator=s.call_id)
                except AriError as e:  # not registered, or refused at once: a ring-out
                    log.warning("%s: could not ring operator %s: %s", self._label(), extension, e)
                    d.legs.pop(channel, None)
                    return cm.OperatorGone(utcnow(), channel, None)
                log.info("%s: ringing operator %s", self._label(), extension)
            case cm.ReturnOffer(tenant_id, extension):
                assert d.acd is not None
                try:
                    await d.acd.no_answer(tenant_id, s.call_id, extension)
                except QueueConflict:
                    pass  # the offer had lapsed already (taken back by the queue)
                except REDIS_DOWN as e:  # the offer lapses in Redis by itself
                    d.pool.lost(e)
                log.info("%s: operator %s did not answer; the call keeps its place",
                         self._label(), extension)
                d.kick(tenant_id)
            case cm.HangupChannel(channel):
                try:
                    await d.ari.hangup(channel, "normal")
                except AriError as e:
                    # Gone already (hung up on its own): nothing to wait for (_legs_gone).
                    if e.status == 404:
                        d.leg_gone(channel)
            case cm.BridgeOperator(bridge, operator_channel, recording):
                await d.ari.create_bridge(bridge)
                try:
                    await d.ari.add_to_bridge(bridge, [s.call_id, operator_channel])
                except AriError as e:
                    if e.status not in (400, 422):
                        raise
                    # 400 "channel not found" / 422 "not in Stasis": the caller or the
                    # operator hung up as the operator answered. That channel's own end
                    # (HungUp, OperatorGone) ends the call as usual; not a failure.
                    log.info("%s: a leg left as the operator answered: %s", self._label(), e)
                    return None
                log.info("%s: bridged with operator %s", self._label(), s.operator)
                await self._transfers_to_app(operator_channel)
                try:
                    await d.ari.record_bridge(bridge, recording)
                except AriError as e:  # talking matters more than the recording
                    log.error("%s: recording not started: %s", self._label(), e)
                    self.state = dataclasses.replace(self.state, recording=None)
            case cm.EndOperatorCall(tenant_id, extension, after):
                assert d.acd is not None
                await self._legs_gone(after, extension)
                try:
                    await d.acd.call_ended(tenant_id, extension, s.call_id)
                except QueueConflict as e:
                    log.warning("%s: %s", self._label(), e)
                except REDIS_DOWN as e:
                    # The operator is freed when Redis is back (StasisService.redis_back).
                    d.pool.lost(e)
                    d.unended.append((tenant_id, extension, s.call_id))
                    log.warning("%s: operator %s not freed yet (Redis unreachable)",
                                self._label(), extension)
                d.kick(tenant_id)
            case cm.DestroyBridge(bridge):
                try:
                    await d.ari.destroy_bridge(bridge)
                except AriError as e:
                    log.debug("%s: bridge %s: %s", self._label(), bridge, e)
            case cm.SaveCallback(_tenant, source):
                if d.save_callback is None:
                    log.error("%s: callback requested but no store to keep it", self._label())
                else:
                    try:
                        await d.save_callback(s, source)
                        log.info("%s: callback requested (%s)", self._label(), source)
                    except Exception as e:  # the call record (outcome callback) still keeps it
                        log.error("%s: callback request not stored (%r); the call record "
                                  "keeps it with outcome callback", self._label(), e)
            case _:
                return await self._execute_transfer(command)
        return None

    async def _legs_gone(self, legs: tuple[str, ...], extension: str) -> None:
        """Wait until these legs of ours (just hung up) are gone, at most LEG_GONE_WAIT_S: an
        operator is offered the next call only once Asterisk has let go of their phone's call.
        ARI's hang-up returns as soon as the hang-up is queued; the BYE leaves when the
        channel's own thread runs, just before its ChannelDestroyed (issue 19.3). A leg whose
        ChannelDestroyed is late is looked up every LEG_CHECK_S (_still_there)."""
        d = self.deps
        waiting = {leg: d.leg_ended.setdefault(leg, asyncio.Event())
                   for leg in legs if leg in d.legs}  # not in legs: gone already
        if not waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEG_GONE_WAIT_S
        try:
            while left := [e for e in waiting.values() if not e.is_set()]:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("%s: operator %s's leg(s) %s not gone after %.0f s; freeing "
                                "the operator anyway", self._label(), extension,
                                ",".join(leg for leg, e in waiting.items() if not e.is_set()),
                                LEG_GONE_WAIT_S)
                    return
                try:
                    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in left)),
                                           min(LEG_CHECK_S, remaining))
                except TimeoutError:
                    for leg, ended in waiting.items():
                        if not ended.is_set() and not await self._still_there(leg):
                            log.info("%s: leg %s gone without its ChannelDestroyed reaching "
                                     "us", self._label(), leg)
                            d.leg_gone(leg)
        finally:
            for leg, ended in waiting.items():
                if d.leg_ended.get(leg) is ended:
                    del d.leg_ended[leg]

    async def _still_there(self, leg: str) -> bool:
        """Whether Asterisk still has ``leg``; unsure (ARI unreachable) counts as there."""
        try:
            return await self.deps.ari.channel_exists(leg)
        except Exception as e:  # noqa: BLE001 (ARI unreachable, socket closed: keep waiting)
            log.debug("%s: leg %s not looked up: %s", self._label(), leg, e)
            return True

    async def _transfers_to_app(self, channel: str) -> None:
        """The phone's transfer button reaches the app (ChannelTransfer) instead of Asterisk's
        own transfer, which would leave the caller alone if the unit did not answer."""
        try:
            await self.deps.ari.set_variable(channel, "PJSIP_TRANSFER_HANDLING()", "ari-only")
        except AriError as e:  # the call goes on; only the phone's button will not transfer
            log.warning("%s: transfer button not handled by the app: %s", self._label(), e)

    async def _execute_transfer(self, command: cm.Command) -> cm.Event | None:
        """Transfers to units' hotlines: their legs, the consultation bridge, the REFER's answer.
        Legs that vanished meanwhile are normal (each brings its own event)."""
        s, d = self.state, self.deps
        match command:
            case cm.DialUnit(number, channel, timeout_s):
                d.legs[channel] = s.call_id
                try:
                    await d.ari.originate(f"PJSIP/{number}@trunk-out", channel,
                                          app_args=stasis_args(Verb.UNIT, s.call_id),
                                          timeout_s=timeout_s,
                                          caller_id=s.caller, originator=s.call_id)
                except AriError as e:  # no outbound trunk, or refused at once
                    log.warning("%s: could not dial unit %s: %s", self._label(),
                                s.transfer.unit if s.transfer else "-", e)
                    d.legs.pop(channel, None)
                    return cm.UnitGone(utcnow(), channel, None)
                log.info("%s: dialling unit %s (%s transfer by %s)", self._label(),
                         s.transfer.unit if s.transfer else "-",
                         s.transfer.kind if s.transfer else "-", s.operator)
            case cm.TransferProgress(channel, state):
                try:
                    await d.ari.transfer_progress(channel, state)
                except AriError as e:  # the phone's leg is gone (or left Stasis)
                    log.debug("%s: transfer progress %s: %s", self._label(), state, e)
            case cm.AnswerLeg(channel):
                await self._leg_op(d.ari.answer(channel), "answer", channel)
            case cm.CreateBridge(bridge):
                await d.ari.create_bridge(bridge)
            case cm.MoveToBridge(channel, bridge, from_bridge):
                if from_bridge is not None:
                    await self._leg_op(d.ari.remove_from_bridge(from_bridge, [channel]),
                                       "leave bridge", channel)
                await self._leg_op(d.ari.add_to_bridge(bridge, [channel]), "join bridge",
                                   channel)
                if channel == s.operator_channel or channel == (
                        s.transfer.consult_channel if s.transfer else None):
                    await self._transfers_to_app(channel)
            case cm.BridgeMoh(bridge, on):
                try:
                    if on:
                        await d.ari.start_bridge_moh(bridge)
                    else:
                        await d.ari.stop_bridge_moh(bridge)
                except AriError as e:  # music is comfort, not the call
                    log.debug("%s: bridge music %s: %s", self._label(), on, e)
            case _:
                raise TypeError(f"unknown command {command!r}")
        return None

    async def _leg_op(self, op: Awaitable[None], what: str, channel: str) -> None:
        """One ARI action on another leg: that leg hanging up meanwhile is not the caller's."""
        try:
            await op
        except AriError as e:
            if e.status not in (404, 409, 422):
                raise
            log.info("%s: %s %s: %s", self._label(), what, channel, e)

    async def _persist(self) -> None:
        """Share the call's state in Redis so a restarted or other instance can adopt it:
        only when what it reads changed (codec.shared_view), not after every event (a prompt
        ending, a timer, a queue announcement change nothing another instance needs)."""
        key = CALL_KEY.format(self.state.call_id)
        ended = self.state.phase is cm.Phase.ENDED
        shared = () if ended else shared_view(self.state)  # (): deleted
        if shared == self._shared:
            return
        if self.deps.pool.degraded:  # not tried per event: written when Redis is back
            self.deps.unshared.add(self.state.call_id)
            return
        try:
            self.writes += 1
            if ended:
                await self.deps.redis.delete(key)
            else:
                await self.deps.redis.set(key, state_to_json(self.state), ex=CALL_TTL_S)
            self._shared = shared
        except Exception as e:  # best effort: a Redis blip must not cut the caller off
            self.deps.unshared.add(self.state.call_id)
            log.warning("%s: call state not shared in Redis: %r", self._label(), e)

