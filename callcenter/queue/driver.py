"""The ACD driver: finds an operator for each queued call this instance owns, and keeps waiting
callers informed (position announcements, callback offer).

Offers are made by ``AcdQueue.offer_next`` (one Lua script: no call or operator is ever offered
twice, whichever instance asks). The instance owning the caller's channel rings the phone: when
this instance made the offer for its own call it hands it to the call's task at once; an offer
made by another instance reaches the owner as the ``offered`` event on ``hotline:events``. A
call joining the queue looks for an operator itself, in its enqueue script
(``AcdQueue.enqueue_offer``; the fast path measured by bench/queue_ring.py): a free operator is
rung without this driver.

When to look for offers: an operator became free (log-in, unpause, end of wrap-up, ring-out,
hang-up; from this instance directly, from others through pub/sub), a call joined on another
instance or an offer made as a call joined (more may be possible), and once a second per
tenant, which also ends due wrap-ups and takes back lapsed offers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis

from callcenter import calls as cm
from callcenter.ari_app.calls import CallSession
from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig
from callcenter.queue import rules as acd
from callcenter.queue.redis import EVENTS, AcdQueue

log = logging.getLogger("callcenter.queue")

# Agent events after which the operator may take a call (docs/live-state.md causes).
FREEING = {"log_in", "unpause", "reachable", "wrap_up_done", "call_ended", "no_answer",
           "offer_lost", "call_gone", "configured"}
# Queue events after which a call may be offered.
QUEUE_CHANGES = {"enqueued", "returned", "offer_lost", "dequeued"}


class QueueDriver:
    """Owns two tasks: the offer loop (with the 1 s tick) and the pub/sub listener."""

    def __init__(self, acd_queue: AcdQueue, redis: aioredis.Redis,
                 sessions: Mapping[str, CallSession], config: Callable[[], HotlineConfig],
                 tick_s: float = 1.0) -> None:
        self.acd = acd_queue
        self.redis = redis
        self.sessions = sessions
        self.config = config
        self.tick_s = tick_s
        self._dirty: set[str] = set()
        self._failing: set[str] = set()  # tenants whose last offers failed (logged once)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False  # redis-py may swallow a cancellation: the loops check this too
        # Called with every decoded agent event of any instance (the AMI side re-qualifies
        # an operator's phone on another node's reachability news); must not block.
        self.on_agent_event: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def instance(self) -> str:
        return self.acd.instance

    def tenants(self) -> list[str]:
        """Tenants with operators (only they have a queue)."""
        return [t.id for t in self.config().tenants if t.operators.operators]

    def kick(self, tenant: str) -> None:
        """Look for offers for ``tenant`` as soon as possible."""
        self._dirty.add(tenant)
        self._wake.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._offer_loop(), name="acd-offers"),
                       asyncio.create_task(self._listen(), name="acd-events")]

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- offers -----------------------------------------------------------------------------
    async def _offer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while not self._closing:
            timeout = max(0.0, next_tick - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            tick = loop.time() >= next_tick
            if tick:
                next_tick = loop.time() + self.tick_s
                self._dirty.update(self.tenants())
            dirty, self._dirty = self._dirty, set()
            for tenant in sorted(dirty):
                try:
                    await self.offer_all(tenant)
                    if tick:
                        await self.wait_checks(tenant)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # Redis blip: the next tick tries again
                    # Once per failing spell (Redis down for minutes must not flood the log).
                    level = logging.DEBUG if tenant in self._failing else logging.WARNING
                    self._failing.add(tenant)
                    log.log(level, "queue %s: offers failed: %r", tenant, e)
                else:
                    if tenant in self._failing:
                        self._failing.discard(tenant)
                        log.warning("queue %s: offers work again", tenant)

    async def offer_all(self, tenant: str) -> int:
        """Make every offer possible now; returns how many were made."""
        made = 0
        while (offer := await self.acd.offer_next(tenant)) is not None:
            made += 1
            if offer.entry.instance == self.instance:
                self.deliver(tenant, offer.call_id, offer.extension)
            # else: the owner rings it when the "offered" event reaches it.
        return made

    def deliver(self, tenant: str, call_id: str, extension: str) -> None:
        """Hand an offer for one of this instance's calls to the call's task."""
        session = self.sessions.get(call_id)
        if session is None:
            # Our place in the queue but no call any more (it just ended): give it back.
            log.info("queue %s: call=%s offered to %s is gone; dropping it", tenant, call_id,
                     extension)
            asyncio.get_running_loop().create_task(
                self._drop(tenant, call_id), name=f"acd-drop:{call_id}")
            return
        policy = self.acd.policy(tenant)
        session.events.put_nowait(cm.Offered(utcnow(), extension, policy.ring_timeout_s,
                                             policy.wrap_up_s))

    async def _drop(self, tenant: str, call_id: str) -> None:
        try:
            await self.acd.dequeue(tenant, call_id, "gone")
        except Exception as e:
            log.warning("queue %s: could not drop call=%s: %r", tenant, call_id, e)
        self.kick(tenant)

    # -- waiting callers --------------------------------------------------------------------
    async def wait_checks(self, tenant: str) -> None:
        """Announcements and callback offers due for this instance's waiting callers."""
        mine = [s for s in self.sessions.values()
                if s.state.tenant_id == tenant and s.state.phase is cm.Phase.QUEUED]
        if not mine:
            return
        q, now = await self.acd.load(tenant)
        policy = self.acd.policy(tenant)
        for session in mine:
            entry = q.entry(session.call_id)
            if entry is None:
                continue
            action = acd.wait_action(entry, now, policy, session.state.announced_at)
            if action is acd.WaitAction.OFFER_CALLBACK:
                await self.acd.callback_offered(tenant, session.call_id)
                session.events.put_nowait(cm.WaitTick(now, "callback",
                                                      acd.CALLBACK_OFFER_TEXT))
            elif action is acd.WaitAction.ANNOUNCE:
                position = acd.position(q, session.call_id) or 1
                text = acd.announcement_text(position, acd.estimate(q, session.call_id))
                session.events.put_nowait(cm.WaitTick(now, "announce", text))

    # -- other instances --------------------------------------------------------------------
    async def _listen(self) -> None:
        """Follow hotline:events: offers other instances made for our calls, freed operators,
        and every agent event for ``on_agent_event``."""
        delay = 0.2
        while not self._closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS)
                delay = 0.2
                async for message in pubsub.listen():
                    self._on_event(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                task = asyncio.current_task()
                if self._closing or (task is not None and task.cancelling()):
                    # redis-py may turn the cancellation of a read into ConnectionError.
                    raise asyncio.CancelledError from e
                log.warning("queue events subscription lost: %r", e)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_event(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            return
        tenant = event.get("tenant")
        if not isinstance(tenant, str):
            return
        kind = event.get("type")
        if kind == "queue":
            what = event.get("event")
            if (what == "offered" and event.get("instance") == self.instance
                    and event.get("offered_by") != self.instance):
                self.deliver(tenant, str(event.get("call_id")), str(event.get("extension")))
            elif what in QUEUE_CHANGES and event.get("offered_by") != self.instance:
                self.kick(tenant)
        elif kind == "agent":
            if event.get("cause") in FREEING:
                self.kick(tenant)
            if self.on_agent_event is not None:
                try:
                    self.on_agent_event(event)
                except Exception:
                    log.exception("agent event listener failed")
