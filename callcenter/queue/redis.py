"""The operators' queue (ACD) in Redis: the rules of ``callcenter.queue.rules``, atomic in Lua.

Keys, per tenant (the ``{tenant}`` braces are a Redis Cluster hash tag: one slot per tenant, so
every script touches a single slot):
  hotline:acd:{tenant}:waiting         zset  call_id, score priority * 1e13 + enqueued ms
                                              (ringing calls stay in it: no-answer keeps the place)
  hotline:acd:{tenant}:calls           hash  call_id -> call JSON (see _call_to_json)
  hotline:acd:{tenant}:agents          hash  extension -> agent JSON (see _agent_to_json)
  hotline:acd:{tenant}:offer:{call_id} string JSON {extension, instance, expires_ms}, PX ring
                                              timeout + margin: an offer whose instance died
                                              expires and the next offer_next takes it back
  hotline:acd:{tenant}:handled         list  handle times (ms) of the last calls, newest first
  hotline:events                       pub/sub: {"type": "queue"|"agent", "tenant", ...}
The JSON shapes (snapshot and events) are documented in docs/live-state.md.

Every operation that touches a call and an agent together (offer, answer, no-answer, hang-up,
wrap-up, abandon) is one Lua script, so two app instances never double-offer a call or an agent.
An agent's own events (log in/out, pause, reachability) run the pure ``agents.step`` in Python
and are written back with a compare-and-set on the agent's version ``v`` (retried on conflict).

Time: every script takes "now" (ms) from ARGV[1]; empty means Redis's own clock (``TIME``), one
clock for all instances. Tests inject a clock to make time in state and idle order exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from callcenter.queue import agent as ag
from callcenter.queue import rules as acd
from callcenter.queue.policy import Operator, QueuePolicy
from callcenter.queue.rules import QueueConflict, QueueEntry, TenantQueue, from_ms, to_ms
from callcenter.redis_scripts import lua_script

log = logging.getLogger(__name__)

EVENTS = "hotline:events"
CAS_RETRIES = 20
# After a lost compare-and-set, a random pause before the next try (up to 1 ms times the
# tries so far): without it, N writers at once on one agent all read, one wins and the rest
# read again in step, so the last could need N rounds (CI saw 40 pause toggles give up).
CAS_BACKOFF_S = 0.001


async def _cas_backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, CAS_BACKOFF_S * (attempt + 1)))


def _prefix(tenant: str) -> str:
    return f"hotline:acd:{{{tenant}}}:"


def waiting_key(tenant: str) -> str:
    return _prefix(tenant) + "waiting"


def calls_key(tenant: str) -> str:
    return _prefix(tenant) + "calls"


def agents_key(tenant: str) -> str:
    return _prefix(tenant) + "agents"


def handled_key(tenant: str) -> str:
    return _prefix(tenant) + "handled"


def offer_key(tenant: str, call_id: str) -> str:
    return _prefix(tenant) + "offer:" + call_id


def _keys(tenant: str) -> list[str]:
    return [waiting_key(tenant), calls_key(tenant), agents_key(tenant), handled_key(tenant)]


# ---- Lua ------------------------------------------------------------------------------------
# The scripts are files in lua/ (package data). lua/lib.lua, the helpers that mirror
# callcenter.queue.agent and callcenter.queue.rules, goes in front of each one. Every script:
# KEYS = waiting, calls, agents, handled; ARGV[1] = now ms ('' = Redis TIME), ARGV[2] = tenant,
# ARGV[3] = offer key prefix; each file's first lines give its own arguments and its reply.
def _script(name: str) -> str:
    """The Lua script ``lua/<name>.lua`` with the shared helpers (``lua/lib.lua``) in front."""
    return lua_script("callcenter.queue", name, prelude="lib")


ENQUEUE = _script("enqueue")
DEQUEUE = _script("dequeue")
HOUSEKEEP = _script("housekeep")
OFFER_NEXT = _script("offer_next")
ANSWERED = _script("answered")
RING_OUT = _script("ring_out")
CALL_ENDED = _script("call_ended")
WRAP_UP_DONE = _script("wrap_up_done")
SET_AGENT = _script("set_agent")
SYNC_AGENTS = _script("sync_agents")
CALLBACK_OFFERED = _script("callback_offered")
RECONCILE = _script("reconcile")


# ---- JSON <-> domain ------------------------------------------------------------------------
def _ms(t: dt.datetime | None) -> int | None:
    return None if t is None else to_ms(t)


def _dt(v: Any) -> dt.datetime | None:
    return None if v is None else from_ms(int(v))


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Lua's cjson reads JSON null as a truthy sentinel: absent keys stand for None."""
    return {k: v for k, v in d.items() if v is not None}


def _agent_to_json(a: ag.AgentState) -> dict[str, Any]:
    return _compact({
        "extension": a.extension, "name": a.name, "status": a.status.value,
        "since": to_ms(a.since), "reachable": a.reachable, "reason": a.reason,
        "pending": a.pending, "pending_reason": a.pending_reason, "call_id": a.call_id,
        "idle_since": _ms(a.idle_since), "wrap_up_until": _ms(a.wrap_up_until),
        "last_call_end": _ms(a.last_call_end),
    })


def _agent_from_json(d: Mapping[str, Any]) -> tuple[ag.AgentState, int]:
    since = _dt(d["since"])
    assert since is not None
    state = ag.AgentState(
        extension=str(d["extension"]), status=ag.AgentStatus(d["status"]), since=since,
        name=str(d.get("name", "")), reachable=bool(d.get("reachable", False)),
        reason=d.get("reason"), pending=d.get("pending"), pending_reason=d.get("pending_reason"),
        call_id=d.get("call_id"), idle_since=_dt(d.get("idle_since")),
        wrap_up_until=_dt(d.get("wrap_up_until")), last_call_end=_dt(d.get("last_call_end")),
    )
    return state, int(d.get("v", 0))


def _call_to_json(e: QueueEntry, *, with_time: bool = True) -> dict[str, Any]:
    return _compact({
        "call_id": e.call_id, "priority": e.priority,
        "enqueued_at": to_ms(e.enqueued_at) if with_time else None,
        "caller": e.caller, "node": e.node, "instance": e.instance,
        "offered_to": ",".join(e.offered_to) or None, "declined": ",".join(e.declined) or None,
        "declined_at": _ms(e.declined_at), "ringing": e.ringing, "offered_at": _ms(e.offered_at),
        "offer_expires_at": _ms(e.offer_expires_at), "callback_offers": e.callback_offers,
    })


def _split(v: Any) -> tuple[str, ...]:
    return tuple(x for x in str(v).split(",") if x) if v else ()


def _call_from_json(tenant: str, d: Mapping[str, Any]) -> QueueEntry:
    enqueued = _dt(d["enqueued_at"])
    assert enqueued is not None
    return QueueEntry(
        call_id=str(d["call_id"]), tenant=tenant, enqueued_at=enqueued,
        priority=int(d.get("priority", acd.NORMAL)), caller=str(d.get("caller", "")),
        node=str(d.get("node", "")), instance=str(d.get("instance", "")),
        offered_to=_split(d.get("offered_to")), declined=_split(d.get("declined")),
        declined_at=_dt(d.get("declined_at")), ringing=d.get("ringing"),
        offered_at=_dt(d.get("offered_at")), offer_expires_at=_dt(d.get("offer_expires_at")),
        callback_offers=int(d.get("callback_offers", 0)),
    )


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class Offered:
    """An offer made by ``offer_next``: ring ``extension`` for ``entry`` (owned by
    ``entry.instance`` on ``entry.node``)."""

    call_id: str
    extension: str
    entry: QueueEntry


class AcdQueue:
    """Every tenant's operator queue, shared by all app instances through one Redis."""

    def __init__(self, redis: aioredis.Redis, instance: str, node: str,
                 policies: Mapping[str, QueuePolicy] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.redis = redis
        self.instance = instance
        self.node = node
        self._policies: dict[str, QueuePolicy] = dict(policies or {})
        self._clock = clock
        self._enqueue = redis.register_script(ENQUEUE)
        self._dequeue = redis.register_script(DEQUEUE)
        self._housekeep = redis.register_script(HOUSEKEEP)
        self._offer_next = redis.register_script(OFFER_NEXT)
        self._answered = redis.register_script(ANSWERED)
        self._ring_out = redis.register_script(RING_OUT)
        self._call_ended = redis.register_script(CALL_ENDED)
        self._wrap_up_done = redis.register_script(WRAP_UP_DONE)
        self._set_agent = redis.register_script(SET_AGENT)
        self._sync = redis.register_script(SYNC_AGENTS)
        self._callback = redis.register_script(CALLBACK_OFFERED)
        self._reconcile = redis.register_script(RECONCILE)

    # ---- configuration ---------------------------------------------------------------------
    def policy(self, tenant: str) -> QueuePolicy:
        """The tenant's queue policy (the defaults until ``set_policy``)."""
        return self._policies.get(tenant) or QueuePolicy()

    def set_policy(self, tenant: str, policy: QueuePolicy) -> None:
        """Use this policy from now on (start and config reload)."""
        self._policies[tenant] = policy

    async def sync_operators(self, tenant: str, operators: Iterable[Operator]) -> int:
        """Make the tenant's agents the configured operators; returns how many changed."""
        pairs = [[o.extension, o.name] for o in operators]
        return int(await self._run(self._sync, tenant, json.dumps(pairs, ensure_ascii=False)))

    # ---- calls ------------------------------------------------------------------------------
    async def enqueue(self, tenant: str, call_id: str, *, caller: str = "", urgent: bool = False,
                      priority: int | None = None,
                      enqueued_at: dt.datetime | None = None) -> bool:
        """Queue a call (now, or at ``enqueued_at`` for an adopted call keeping its place);
        False when it is already queued."""
        data = self._entry_json(tenant, call_id, caller, urgent, priority, enqueued_at)
        return bool(await self._run(self._enqueue, tenant, data))

    async def enqueue_offer(self, tenant: str, call_id: str, *, caller: str = "",
                            urgent: bool = False) -> tuple[bool, Offered | None]:
        """Queue a call now and make the next offer in the same script (``offer_next``'s, after
        its housekeeping): a caller who finds an operator free is offered to them without the
        driver's round trip. Returns (added, the offer made or None); the offer may be another,
        older call's (a declined one whose retry is due). Another offer may be possible too
        when one was made (several operators freed by the housekeeping): call ``offer_next``."""
        data = self._entry_json(tenant, call_id, caller, urgent, None, None)
        res = await self._run(self._enqueue, tenant, data, *self._offer_args(tenant))
        added = bool(int(res[0]))
        return added, (self._offered(tenant, res[1], res[2]) if len(res) > 2 else None)

    def _entry_json(self, tenant: str, call_id: str, caller: str, urgent: bool,
                    priority: int | None, enqueued_at: dt.datetime | None) -> str:
        prio = acd.priority_of(urgent) if priority is None else priority
        entry = QueueEntry(call_id, tenant, enqueued_at or acd.EPOCH, prio, caller, self.node,
                           self.instance)
        data = _call_to_json(entry, with_time=enqueued_at is not None)
        return json.dumps(data, ensure_ascii=False)

    async def dequeue(self, tenant: str, call_id: str,
                      reason: str = "abandoned") -> QueueEntry | None:
        """Take a call out (caller hung up, callback chosen): its ringing offer stops and the
        agent is free again. None when it was not queued (idempotent)."""
        raw = await self._run(self._dequeue, tenant, call_id, reason)
        return _call_from_json(tenant, json.loads(raw)) if raw else None

    async def offer_next(self, tenant: str) -> Offered | None:
        """Atomically pick the next (call, agent) and mark both offered; None when no pair.

        Ends due wrap-ups and takes back lost offers first. Call again until None."""
        res = await self._run(self._offer_next, tenant, *self._offer_args(tenant))
        return self._offered(tenant, res[0], res[1]) if res else None

    def _offer_args(self, tenant: str) -> tuple[int, int, str]:
        """offer_next's ARGV: ring ms (timeout + margin), retry ms, the offering instance."""
        p = self.policy(tenant)
        return (p.ring_timeout_s + acd.OFFER_MARGIN_S) * 1000, p.retry_s * 1000, self.instance

    @staticmethod
    def _offered(tenant: str, raw: Any, extension: Any) -> Offered:
        entry = _call_from_json(tenant, json.loads(raw))
        return Offered(entry.call_id, _text(extension), entry)

    async def answered(self, tenant: str, call_id: str, extension: str) -> QueueEntry:
        """The agent answered: the call leaves the queue, the agent is on the call. Raises
        QueueConflict ``offer_gone`` when the offer no longer stands (hang up the agent leg)."""
        raw = await self._run(self._answered, tenant, call_id, extension)
        if not raw:
            raise QueueConflict("offer_gone", f"{tenant}: call {call_id} is not ringing agent "
                                              f"{extension} any more")
        return _call_from_json(tenant, json.loads(raw))

    async def no_answer(self, tenant: str, call_id: str, extension: str) -> ag.AgentState:
        """The offer rang out or was declined: the call keeps its place, the agent is skipped
        for it. Raises QueueConflict ``offer_gone`` when the offer no longer stands."""
        auto = "1" if self.policy(tenant).auto_pause_on_no_answer else "0"
        raw = await self._run(self._ring_out, tenant, call_id, extension, "no_answer", auto)
        if not raw:
            raise QueueConflict("offer_gone", f"{tenant}: call {call_id} is not ringing agent "
                                              f"{extension} any more")
        return _agent_from_json(json.loads(raw))[0]

    async def call_ended(self, tenant: str, extension: str, call_id: str) -> ag.AgentState:
        """The bridged call ended: the agent goes to wrap-up (``wrap_up_until``). Raises
        QueueConflict ``not_on_call``."""
        p = self.policy(tenant)
        raw = await self._run(self._call_ended, tenant, extension, call_id, p.wrap_up_s * 1000,
                              p.handle_time_window)
        if not raw:
            raise QueueConflict("not_on_call", f"{tenant}: agent {extension} is not on call "
                                               f"{call_id}")
        return _agent_from_json(json.loads(raw))[0]

    async def wrap_up_done(self, tenant: str, extension: str) -> bool:
        """End the agent's wrap-up now ("ready"); False when not in wrap-up (a late timer)."""
        res = int(await self._run(self._wrap_up_done, tenant, extension))
        if res < 0:
            raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
        return res == 1

    async def expire_wrap_ups(self, tenant: str) -> list[str]:
        """End the wrap-ups that are due and take back lost offers; the extensions changed."""
        return [_text(x) for x in await self._run(self._housekeep, tenant)]

    async def callback_offered(self, tenant: str, call_id: str) -> int:
        """Count a callback offer made to a waiting caller; returns the count so far."""
        n = int(await self._run(self._callback, tenant, call_id))
        if n < 0:
            raise QueueConflict("not_queued", f"{tenant}: call {call_id} is not queued")
        return n

    async def reconcile(self, tenant: str, keep: Iterable[str],
                        adopt: Iterable[str] = ()) -> tuple[int, int]:
        """Drop this instance's queued calls not in ``keep`` and take over ``adopt``'s (after a
        reconnect or another instance's death); returns (dropped, adopted)."""
        dropped, adopted = await self._run(self._reconcile, tenant, self.instance,
                                           json.dumps(sorted(keep)), json.dumps(sorted(adopt)))
        return int(dropped), int(adopted)

    # ---- agents -----------------------------------------------------------------------------
    async def agent(self, tenant: str, extension: str) -> ag.AgentState | None:
        raw = await self.redis.hget(agents_key(tenant), extension)
        return _agent_from_json(json.loads(raw))[0] if raw else None

    async def agent_event(self, tenant: str, extension: str,
                          event: ag.Event) -> tuple[ag.AgentState, list[ag.Command]]:
        """Apply an agent's own event (LogIn, LogOut, Pause, Unpause, Reachable, Unreachable,
        WrapUpDone) with ``agents.step``; raises IllegalTransition as the pure machine does,
        QueueConflict ``unknown_agent`` for an extension not configured."""
        policy = self.policy(tenant)
        if isinstance(event, (ag.Offer, ag.Answered, ag.NoAnswer, ag.OfferLost, ag.CallEnded)):
            raise TypeError(f"{type(event).__name__} goes through offer_next/answered/no_answer/"
                            "call_ended/dequeue, which keep the call and the agent together")
        if isinstance(event, ag.WrapUpDone):
            before = await self.agent(tenant, extension)
            if before is None:
                raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
            ended = await self.wrap_up_done(tenant, extension)
            after = await self.agent(tenant, extension)
            assert after is not None
            if ended:
                log.info("%s", ag.describe(before, event, after))
            offer = ended and after.status is ag.AgentStatus.AVAILABLE
            return after, ([ag.OfferCalls()] if offer else [])
        for attempt in range(CAS_RETRIES):
            if attempt:
                await _cas_backoff(attempt)
            raw = await self.redis.hget(agents_key(tenant), extension)
            if raw is None:
                raise QueueConflict("unknown_agent", f"{tenant}: no agent {extension}")
            before, version = _agent_from_json(json.loads(raw))
            now = self._now() or await self._redis_now()
            after, cmds = ag.step(before, event, now, policy)
            if isinstance(event, ag.Unreachable) and before.status is ag.AgentStatus.RINGING:
                # The offer and the call change together: the ring-out script, not a plain set.
                assert before.call_id is not None
                res = await self._run(self._ring_out, tenant, before.call_id, extension,
                                      "unreachable", "0")
                if not res:
                    continue  # the offer ended meanwhile: decide again on the new state
                stored, _ = _agent_from_json(json.loads(res))
                log.info("%s", ag.describe(before, event, stored))
                return stored, cmds
            cause = _CAUSES.get(type(event), type(event).__name__.lower())
            data = json.dumps(_agent_to_json(after), ensure_ascii=False)
            if await self._run(self._set_agent, tenant, extension, str(version), data, cause):
                log.info("%s", ag.describe(before, event, after))
                return after, cmds
        raise QueueConflict("busy", f"{tenant}: agent {extension} kept changing; gave up after "
                                    f"{CAS_RETRIES} tries")

    # ---- reading ----------------------------------------------------------------------------
    async def load(self, tenant: str) -> tuple[TenantQueue, dt.datetime]:
        """The tenant's whole queue as one consistent value, and the time it was read."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrange(waiting_key(tenant), 0, -1)
        pipe.hgetall(calls_key(tenant))
        pipe.hgetall(agents_key(tenant))
        pipe.lrange(handled_key(tenant), 0, -1)
        pipe.time()
        _ids, calls, agents_raw, handled, (secs, micros) = await pipe.execute()
        now = self._now() or from_ms(int(secs) * 1000 + int(micros) // 1000)
        entries = tuple(_call_from_json(tenant, json.loads(v)) for v in calls.values())
        agents = tuple(sorted((_agent_from_json(json.loads(v))[0] for v in agents_raw.values()),
                              key=lambda a: a.extension))
        return TenantQueue(tenant, entries, agents, tuple(int(x) for x in handled)), now

    async def snapshot(self, tenant: str) -> dict[str, object]:
        """The live state of the tenant (docs/live-state.md), as ``callcenter queue --json``
        prints it and the console shows it."""
        q, now = await self.load(tenant)
        return acd.snapshot(q, now, self.policy(tenant))

    async def position(self, tenant: str, call_id: str) -> tuple[int | None, int | None]:
        """(position, estimated wait s) of a queued call for its announcement."""
        q, _ = await self.load(tenant)
        return acd.position(q, call_id), acd.estimate(q, call_id)

    # ---- internals --------------------------------------------------------------------------
    def _now(self) -> dt.datetime | None:
        return self._clock() if self._clock is not None else None

    async def _redis_now(self) -> dt.datetime:
        secs, micros = await self.redis.time()
        return from_ms(int(secs) * 1000 + int(micros) // 1000)

    async def _run(self, script: Any, tenant: str, *args: object) -> Any:
        now = self._now()
        argv = ["" if now is None else str(to_ms(now)), tenant, offer_key(tenant, ""), *args]
        return await script(keys=_keys(tenant), args=argv)


_CAUSES: dict[type, str] = {
    ag.LogIn: "log_in", ag.LogOut: "log_out", ag.Pause: "pause", ag.Unpause: "unpause",
    ag.Reachable: "reachable", ag.Unreachable: "unreachable",
}


# Where the composition root keeps the one AcdQueue; the console's queue, desk and wallboard
# routes read it there at request time (503 while it is not set).
ACD = web.AppKey("acd", AcdQueue)
