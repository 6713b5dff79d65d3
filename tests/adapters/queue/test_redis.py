"""The operators' queue in Redis (real private redis-server): atomic offers across instances, the
same decisions as the pure rules, snapshot and pub/sub events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from callcenter.queue import agent as ag
from callcenter.queue import rules as acd
from callcenter.queue.policy import Operator, QueuePolicy, SecretRef
from callcenter.queue.redis import (
    AcdQueue,
    Offered,
    agents_key,
    calls_key,
    offer_key,
    waiting_key,
)
from callcenter.queue.rules import QueueConflict, QueueEntry, TenantQueue

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
TENANT = "dongnai"
NODE = "pbx1"


class Clock:
    """A shared, settable clock (stands for Redis's TIME, which all instances share)."""

    def __init__(self, t: dt.datetime = T0) -> None:
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)


def operators(n: int) -> list[Operator]:
    return [Operator(str(101 + i), f"Tổng đài viên {i + 1}", SecretRef("env", f"OP_{101 + i}"))
            for i in range(n)]


async def staffed(q: AcdQueue, n: int, clock: Clock | None = None,
                  step_s: float = 1.0) -> None:
    """n operators configured, reachable and logged in (101 first: the longest idle)."""
    await q.sync_operators(TENANT, operators(n))
    for o in operators(n):
        await q.agent_event(TENANT, o.extension, ag.Reachable())
        await q.agent_event(TENANT, o.extension, ag.LogIn())
        if clock is not None:
            clock.advance(step_s)


def check_one_to_one(q: TenantQueue) -> None:
    """Every ringing call rings exactly one agent, who rings for exactly that call."""
    ringing_calls = {e.call_id: e.ringing for e in q.entries if e.ringing is not None}
    ringing_agents = {a.extension: a.call_id for a in q.agents
                      if a.status is ag.AgentStatus.RINGING}
    assert len(set(ringing_calls.values())) == len(ringing_calls)
    assert {v: k for k, v in ringing_calls.items()} == ringing_agents


# ---- concurrency ----------------------------------------------------------------------------
async def test_given_two_instances_when_offer_next_hammered_then_never_double_offer(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    policy = QueuePolicy(wrap_up_s=0, retry_s=0)
    qa = AcdQueue(a, "inst-a", NODE, {TENANT: policy})  # Redis's own clock
    qb = AcdQueue(b, "inst-b", NODE, {TENANT: policy})
    await staffed(qa, 12)
    rnd = random.Random(5)
    enqueued = answered = 0
    outstanding: dict[str, str] = {}  # call -> extension, offers not yet resolved
    for _ in range(60):
        joining = []
        for _ in range(rnd.randint(0, 8)):
            enqueued += 1
            q, urgent = rnd.choice((qa, qb)), rnd.random() < 0.2
            if rnd.random() < 0.5:
                await q.enqueue(TENANT, f"call-{enqueued}", urgent=urgent)
            else:  # queued and offered in one script, while the other offers below run
                joining.append(q.enqueue_offer(TENANT, f"call-{enqueued}", urgent=urgent))
        results = await asyncio.gather(*[(qa if i % 2 else qb).offer_next(TENANT)
                                         for i in range(30)],
                                       *joining)
        results = [r[1] if isinstance(r, tuple) else r for r in results]
        offers = [r for r in results if r is not None]
        calls = [o.call_id for o in offers]
        exts = [o.extension for o in offers]
        assert len(set(calls)) == len(calls), "a call was offered twice"
        assert len(set(exts)) == len(exts), "an agent was offered two calls"
        assert not set(calls) & set(outstanding), "a ringing call was offered again"
        assert not set(exts) & set(outstanding.values()), "a ringing agent was offered again"
        outstanding.update((o.call_id, o.extension) for o in offers)
        state, _ = await qa.load(TENANT)
        check_one_to_one(state)
        assert {e.call_id: e.ringing for e in state.entries if e.ringing} == outstanding
        # Resolve some offers, both instances at once, while offers keep being made.
        resolving = rnd.sample(sorted(outstanding), k=len(outstanding) // 2)
        jobs: list[Any] = []
        for cid in resolving:
            ext = outstanding.pop(cid)
            inst = rnd.choice((qa, qb))
            if rnd.random() < 0.6:
                async def answer_and_hang_up(q: AcdQueue = inst, c: str = cid,
                                             x: str = ext) -> str:
                    await q.answered(TENANT, c, x)
                    await q.call_ended(TENANT, x, c)
                    return "answered"
                jobs.append(answer_and_hang_up())
            else:
                jobs.append(inst.no_answer(TENANT, cid, ext))
        jobs += [(qa if i % 2 else qb).offer_next(TENANT) for i in range(10)]
        for r in await asyncio.gather(*jobs):
            if r == "answered":
                answered += 1
            elif isinstance(r, Offered):
                assert r.call_id not in outstanding
                assert r.extension not in outstanding.values()
                outstanding[r.call_id] = r.extension
        state, _ = await qb.load(TENANT)
        check_one_to_one(state)
    state, _ = await qa.load(TENANT)
    assert answered + len(state.entries) == enqueued  # nothing lost, nothing answered twice
    assert answered > 100


async def test_given_two_instances_when_same_agent_logs_in_twice_then_exactly_one_wins(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    qa, qb = AcdQueue(a, "inst-a", NODE), AcdQueue(b, "inst-b", NODE)
    await qa.sync_operators(TENANT, operators(1))
    results = await asyncio.gather(qa.agent_event(TENANT, "101", ag.LogIn()),
                                   qb.agent_event(TENANT, "101", ag.LogIn()),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["IllegalTransition", "tuple"]


async def test_given_concurrent_pause_toggles_then_every_change_applied_once(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    qa, qb = AcdQueue(a, "inst-a", NODE), AcdQueue(b, "inst-b", NODE)
    await staffed(qa, 1)
    events: list[ag.Event] = [ag.Pause("break") if i % 2 else ag.Unpause() for i in range(40)]
    results = await asyncio.gather(*[(qa if i % 3 else qb).agent_event(TENANT, "101", e)
                                     for i, e in enumerate(events)], return_exceptions=True)
    ok = [r for r in results if isinstance(r, tuple)]
    # Each toggle applied, refused as not applying to the state it met, or (40 writers on one
    # agent) refused as busy after its tries: told why, never applied twice or half.
    assert all(isinstance(r, (tuple, ag.IllegalTransition))
               or (isinstance(r, QueueConflict) and r.id == "busy") for r in results), results
    raw = await a.hget(agents_key(TENANT), "101")
    assert raw is not None
    stored = json.loads(raw)
    # v: 1 configured + 1 reachable + 1 log-in + one per successful toggle (0-based from -1)
    assert stored["v"] == 2 + len(ok)
    assert ok  # some toggles won; the losers were told why (IllegalTransition)


# ---- the pure rules, kept in Redis ----------------------------------------------------------
def same_state(redis_q: TenantQueue, pure_q: TenantQueue) -> None:
    assert {e.call_id: e for e in redis_q.entries} == {e.call_id: e for e in pure_q.entries}
    assert {a.extension: a for a in redis_q.agents} == {a.extension: a for a in pure_q.agents}
    assert redis_q.handle_ms == pure_q.handle_ms


def recovery(a: ag.AgentState) -> ag.Event:
    """The event that brings an agent back towards taking calls."""
    if not a.reachable:
        return ag.Reachable()
    back: dict[ag.AgentStatus, ag.Event] = {
        ag.AgentStatus.LOGGED_OUT: ag.LogIn(), ag.AgentStatus.PAUSED: ag.Unpause(),
        ag.AgentStatus.WRAP_UP: ag.WrapUpDone()}
    return back.get(a.status, ag.Reachable())


WEIGHTS = {"enqueue": 2, "offer": 3, "answer": 3, "ring_out": 2, "hangup": 1, "end": 3,
           "agent": 3, "wait": 2, "callback": 1, "housekeep": 1, "stale_answer": 1}


@pytest.mark.parametrize("seed", range(10))
async def test_given_random_operations_then_redis_decides_as_the_pure_rules(
        two_clients: tuple[aioredis.Redis, aioredis.Redis], seed: int) -> None:
    rnd = random.Random(seed)
    policy = QueuePolicy(wrap_up_s=rnd.choice((0, 10)), retry_s=rnd.choice((0, 5)),
                         auto_pause_on_no_answer=rnd.random() < 0.5, handle_time_window=3)
    clock = Clock()
    a, b = two_clients
    insts = [AcdQueue(a, "inst-a", NODE, {TENANT: policy}, clock),
             AcdQueue(b, "inst-b", NODE, {TENANT: policy}, clock)]
    ops = operators(4)
    await insts[0].sync_operators(TENANT, ops)
    pure = acd.sync_agents(TenantQueue(TENANT), [(o.extension, o.name) for o in ops], clock())
    exts = [o.extension for o in ops]
    for ext in exts:  # everyone starts logged in and reachable; the events then vary it
        for ev in (ag.Reachable(), ag.LogIn()):
            await insts[0].agent_event(TENANT, ext, ev)
            pure, _ = acd.agent_event(pure, ext, ev, clock(), policy)
        clock.advance(1)
    n = 0
    seen: dict[str, int] = {}  # what the run exercised (asserted below)
    agent_events: list[ag.Event] = [ag.LogIn(), ag.LogOut(), ag.Pause("break"), ag.Unpause(),
                                    ag.Reachable(), ag.Unreachable(), ag.WrapUpDone()]
    for _ in range(200):
        q = rnd.choice(insts)
        op = rnd.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        now = clock()
        redis_result: Any
        pure_result: Any
        try:
            if op == "enqueue":
                n += 1
                urgent = rnd.random() < 0.3
                redis_result = await q.enqueue(TENANT, f"c{n}", caller="0912000111",
                                               urgent=urgent)
                pure, pure_result = acd.enqueue(pure, QueueEntry(
                    f"c{n}", TENANT, now, acd.priority_of(urgent), "0912000111", NODE,
                    q.instance))
            elif op == "offer":
                got = await q.offer_next(TENANT)
                pure, m = acd.offer_next(pure, now, policy)
                redis_result = None if got is None else (got.call_id, got.extension)
                pure_result = None if m is None else (m.call_id, m.extension)
            elif op in ("answer", "ring_out"):
                ringing = [e for e in pure.ordered() if e.ringing]
                if not ringing:
                    continue
                e = rnd.choice(ringing)
                assert e.ringing is not None
                if op == "answer":
                    redis_result = (await q.answered(TENANT, e.call_id, e.ringing)).call_id
                    pure, got_e = acd.answered(pure, e.call_id, e.ringing, now)
                    pure_result = got_e.call_id
                else:
                    redis_result = (await q.no_answer(TENANT, e.call_id, e.ringing)).status
                    pure = acd.no_answer(pure, e.call_id, e.ringing, now, policy)
                    pure_agent = pure.agent(e.ringing)
                    assert pure_agent is not None
                    pure_result = pure_agent.status
            elif op == "stale_answer":
                if not pure.entries:
                    continue
                e = rnd.choice(pure.entries)
                ext = rnd.choice(exts)
                if e.ringing == ext:
                    continue
                with pytest.raises(QueueConflict) as r1:
                    await q.answered(TENANT, e.call_id, ext)
                with pytest.raises(QueueConflict) as r2:
                    acd.answered(pure, e.call_id, ext, now)
                redis_result, pure_result = r1.value.id, r2.value.id
            elif op == "hangup":
                if not pure.entries:
                    continue
                e = rnd.choice(pure.entries)
                got_d = await q.dequeue(TENANT, e.call_id)
                pure, pure_d = acd.dequeue(pure, e.call_id, now)
                redis_result, pure_result = got_d, pure_d
            elif op == "end":
                on_call = [x for x in pure.agents if x.status is ag.AgentStatus.ON_CALL]
                if not on_call:
                    continue
                x = rnd.choice(on_call)
                assert x.call_id is not None
                redis_result = await q.call_ended(TENANT, x.extension, x.call_id)
                pure = acd.call_ended(pure, x.extension, x.call_id, now, policy)
                pure_result = pure.agent(x.extension)
            elif op == "agent":
                ext = rnd.choice(exts)
                event = rnd.choice(agent_events)
                current = pure.agent(ext)
                assert current is not None
                if rnd.random() < 0.6 and not current.offerable:
                    event = recovery(current)
                try:
                    redis_result = (await q.agent_event(TENANT, ext, event))[0]
                except ag.IllegalTransition as exc:
                    redis_result = str(exc)
                try:
                    if isinstance(event, ag.WrapUpDone):
                        pure = acd.wrap_up_done(pure, ext, now, policy)
                    else:
                        pure, _ = acd.agent_event(pure, ext, event, now, policy)
                    pure_result = pure.agent(ext)
                except ag.IllegalTransition as exc:
                    pure_result = str(exc)
            elif op == "wait":
                clock.advance(rnd.choice((0.001, 1, 3, 6, 11, 25)))
                continue
            elif op == "callback":
                if not pure.entries:
                    continue
                e = rnd.choice(pure.entries)
                redis_result = await q.callback_offered(TENANT, e.call_id)
                pure = acd.callback_offered(pure, e.call_id)
                got_cb = pure.entry(e.call_id)
                assert got_cb is not None
                pure_result = got_cb.callback_offers
            else:
                await q.expire_wrap_ups(TENANT)
                pure = acd.housekeep(pure, now, policy)
                redis_result = pure_result = None
        except QueueConflict as exc:  # pragma: no cover - the choices above avoid conflicts
            raise AssertionError(f"{op}: unexpected {exc}") from exc
        assert redis_result == pure_result, op
        kind = f"{op}:illegal" if op == "agent" and isinstance(pure_result, str) else op
        if op == "offer" and pure_result is None:
            kind = "offer:none"
        seen[kind] = seen.get(kind, 0) + 1
        loaded, _ = await q.load(TENANT)
        same_state(loaded, pure)
        check_one_to_one(loaded)
    assert seen.get("offer", 0) >= 8 and seen.get("agent", 0) >= 5, seen
    assert seen.get("answer", 0) + seen.get("ring_out", 0) >= 5, seen
    assert seen.get("agent:illegal", 0) >= 1, seen


# ---- scenarios ------------------------------------------------------------------------------
async def test_given_no_answer_when_call_returns_then_keeps_its_place_and_next_agent_rings(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await staffed(q, 2, clock)
    for cid in ("c1", "c2", "c3"):
        await q.enqueue(TENANT, cid)
        clock.advance(1)
    first = await q.offer_next(TENANT)
    assert first is not None and (first.call_id, first.extension) == ("c1", "101")
    clock.advance(15)
    await q.no_answer(TENANT, "c1", "101")
    calls = (await q.snapshot(TENANT))["calls"]
    assert isinstance(calls, list)
    assert [(c["call_id"], c["position"]) for c in calls] == [("c1", 1), ("c2", 2), ("c3", 3)]
    again = await q.offer_next(TENANT)
    assert again is not None and (again.call_id, again.extension) == ("c1", "102")
    assert again.entry.offered_to == ("101", "102")
    assert again.entry.enqueued_at == T0 + dt.timedelta(seconds=2)
    nxt = await q.offer_next(TENANT)
    assert nxt is not None and (nxt.call_id, nxt.extension) == ("c2", "101")


async def test_given_free_operator_when_enqueue_offer_then_that_call_offered_in_one_script(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    pubsub = b.pubsub()
    await pubsub.subscribe("hotline:events")
    await pubsub.get_message(timeout=1)
    clock = Clock()
    q = AcdQueue(a, "inst-a", NODE, {TENANT: QueuePolicy(ring_timeout_s=15)}, clock=clock)
    await staffed(q, 2, clock)
    added, offer = await q.enqueue_offer(TENANT, "c1", caller="0912345678")
    assert added and offer is not None
    assert (offer.call_id, offer.extension) == ("c1", "101")  # the longest idle
    assert offer.entry.instance == "inst-a" and offer.entry.caller == "0912345678"
    state, _ = await q.load(TENANT)
    check_one_to_one(state)
    assert [(e.call_id, e.ringing) for e in state.entries] == [("c1", "101")]
    stored = json.loads(await a.get(offer_key(TENANT, "c1")))
    assert (stored["extension"], stored["instance"]) == ("101", "inst-a")
    assert await a.pttl(offer_key(TENANT, "c1")) > 15_000  # ring timeout + margin
    messages = []
    while (msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)):
        messages.append(json.loads(msg["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    queue = [m for m in messages if m["type"] == "queue"]
    # The instance that queued it looked for an operator already: offered_by on both events.
    assert [(m["event"], m["call_id"], m["offered_by"]) for m in queue] == [
        ("enqueued", "c1", "inst-a"), ("offered", "c1", "inst-a")]
    # A second try adds nothing and offers nothing more (one call, one phone).
    assert await q.enqueue_offer(TENANT, "c1") == (False, None)
    assert await q.offer_next(TENANT) is None


async def test_given_no_free_operator_when_enqueue_offer_then_queued_for_the_driver(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, {TENANT: QueuePolicy(wrap_up_s=0)},
                 clock=clock)
    await staffed(q, 1, clock)
    assert (await q.enqueue_offer(TENANT, "c1"))[1] is not None  # 101 rings for c1
    clock.advance(1)
    assert await q.enqueue_offer(TENANT, "c2") == (True, None)
    state, _ = await q.load(TENANT)
    assert sorted((e.call_id, e.ringing) for e in state.entries) == [("c1", "101"),
                                                                      ("c2", None)]
    clock.advance(1)
    await q.answered(TENANT, "c1", "101")
    await q.call_ended(TENANT, "101", "c1")  # free again (no wrap-up): the driver's offer
    nxt = await q.offer_next(TENANT)
    assert nxt is not None and (nxt.call_id, nxt.extension) == ("c2", "101")


async def test_given_older_call_due_again_when_enqueue_offer_then_the_older_call_offered(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, {TENANT: QueuePolicy(retry_s=5)},
                 clock=clock)
    await staffed(q, 1, clock)
    first = await q.enqueue_offer(TENANT, "c1")
    assert first[1] is not None and first[1].extension == "101"
    clock.advance(15)
    await q.no_answer(TENANT, "c1", "101")  # 101 declined c1: c1 waits 5 s before 101 again
    clock.advance(1)
    # c2 joins while 101 is free: 101 has declined c1 and c1's retry is not due, so c2 rings.
    added, offer = await q.enqueue_offer(TENANT, "c2")
    assert added and offer is not None and (offer.call_id, offer.extension) == ("c2", "101")
    clock.advance(15)
    await q.no_answer(TENANT, "c2", "101")
    clock.advance(5)
    # c3 joins once both retries are due: the queue's order decides, c1 first, not c3.
    added, offer = await q.enqueue_offer(TENANT, "c3")
    assert added and offer is not None and (offer.call_id, offer.extension) == ("c1", "101")


async def test_given_urgent_call_when_enqueued_last_then_offered_first(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await q.enqueue(TENANT, "c1")
    clock.advance(1)
    await q.enqueue(TENANT, "c2")
    clock.advance(1)
    await q.enqueue(TENANT, "u1", urgent=True)
    await staffed(q, 1, clock)
    got = await q.offer_next(TENANT)
    assert got is not None and got.call_id == "u1" and got.entry.urgent
    members = await two_clients[0].zrange(waiting_key(TENANT), 0, -1)
    assert members == [b"u1", b"c1", b"c2"]


async def test_given_unreachable_or_paused_agent_when_offering_then_never_rung(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await staffed(q, 3, clock)
    await q.agent_event(TENANT, "101", ag.Unreachable())
    await q.agent_event(TENANT, "102", ag.Pause("meeting"))
    await q.enqueue(TENANT, "c1")
    await q.enqueue(TENANT, "c2")
    got = await q.offer_next(TENANT)
    assert got is not None and got.extension == "103"
    assert await q.offer_next(TENANT) is None


async def test_given_phone_unreachable_while_ringing_then_call_back_and_next_agent(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await staffed(q, 2, clock)
    await q.enqueue(TENANT, "c1")
    got = await q.offer_next(TENANT)
    assert got is not None and got.extension == "101"
    agent, cmds = await q.agent_event(TENANT, "101", ag.Unreachable())
    assert (agent.status, agent.reachable) == (ag.AgentStatus.AVAILABLE, False)
    assert ag.RequeueCall("c1") in cmds
    assert not await two_clients[0].exists(offer_key(TENANT, "c1"))
    got = await q.offer_next(TENANT)
    assert got is not None and got.extension == "102"


async def test_given_wrap_up_when_offering_then_waits_until_it_ends(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, {TENANT: QueuePolicy(wrap_up_s=10)}, clock)
    await staffed(q, 1, clock)
    await q.enqueue(TENANT, "c1")
    await q.enqueue(TENANT, "c2")
    assert await q.offer_next(TENANT) is not None
    await q.answered(TENANT, "c1", "101")
    clock.advance(60)
    agent = await q.call_ended(TENANT, "101", "c1")
    assert agent.status is ag.AgentStatus.WRAP_UP
    assert agent.wrap_up_until == clock() + dt.timedelta(seconds=10)
    clock.advance(9.999)
    assert await q.offer_next(TENANT) is None
    assert await q.expire_wrap_ups(TENANT) == []
    clock.advance(0.001)
    assert await q.expire_wrap_ups(TENANT) == ["101"]
    got = await q.offer_next(TENANT)
    assert got is not None and got.call_id == "c2"
    snap = await q.snapshot(TENANT)
    assert snap["average_handle_s"] == 70.0


async def test_given_ready_early_when_wrap_up_done_then_available_and_late_timer_is_noop(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await staffed(q, 1, clock)
    await q.enqueue(TENANT, "c1")
    await q.offer_next(TENANT)
    await q.answered(TENANT, "c1", "101")
    await q.call_ended(TENANT, "101", "c1")
    agent, cmds = await q.agent_event(TENANT, "101", ag.WrapUpDone())
    assert agent.status is ag.AgentStatus.AVAILABLE and cmds == [ag.OfferCalls()]
    assert not await q.wrap_up_done(TENANT, "101")


async def test_given_dead_instance_offer_when_its_key_expires_then_taken_back(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    dead = AcdQueue(a, "inst-dead", NODE)
    alive = AcdQueue(b, "inst-alive", NODE)
    await staffed(alive, 1)
    await alive.enqueue(TENANT, "c1")
    got = await dead.offer_next(TENANT)
    assert got is not None
    ttl = await a.pttl(offer_key(TENANT, "c1"))
    assert 19_000 < ttl <= (15 + acd.OFFER_MARGIN_S) * 1000
    assert await alive.offer_next(TENANT) is None  # still ringing
    await a.delete(offer_key(TENANT, "c1"))  # what the TTL does when nobody reports back
    again = await alive.offer_next(TENANT)
    assert again is not None and (again.call_id, again.extension) == ("c1", "101")
    assert again.entry.declined == ()  # not the agent's ring-out
    raw = await a.get(offer_key(TENANT, "c1"))
    assert raw is not None and json.loads(raw)["instance"] == "inst-alive"


async def test_given_caller_hangs_up_while_ringing_when_dequeued_then_agent_free(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    q = AcdQueue(two_clients[0], "inst-a", NODE)
    await staffed(q, 1)
    await q.enqueue(TENANT, "c1", caller="0912345678")
    await q.offer_next(TENANT)
    gone = await q.dequeue(TENANT, "c1")
    assert gone is not None and gone.ringing == "101" and gone.caller == "0912345678"
    assert await q.dequeue(TENANT, "c1") is None
    agent = await q.agent(TENANT, "101")
    assert agent is not None and agent.status is ag.AgentStatus.AVAILABLE
    assert not await two_clients[0].exists(offer_key(TENANT, "c1"), calls_key(TENANT),
                                           waiting_key(TENANT))
    with pytest.raises(QueueConflict) as info:
        await q.answered(TENANT, "c1", "101")
    assert info.value.id == "offer_gone"


async def test_given_restart_when_reconciled_then_gone_calls_dropped_and_adopted_taken_over(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    mine = AcdQueue(a, "inst-a", NODE)
    other = AcdQueue(b, "inst-b", NODE)
    for cid in ("a1", "a2"):
        await mine.enqueue(TENANT, cid)
    for cid in ("b1", "b2"):
        await other.enqueue(TENANT, cid)
    assert await mine.reconcile(TENANT, keep=["a2"], adopt=["b1"]) == (1, 1)
    q, _ = await mine.load(TENANT)
    assert {e.call_id: e.instance for e in q.entries} == {"a2": "inst-a", "b1": "inst-a",
                                                          "b2": "inst-b"}


async def test_given_enqueued_at_when_adopting_then_place_kept_and_duplicates_ignored(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    clock.advance(100)
    await q.enqueue(TENANT, "new")
    assert await q.enqueue(TENANT, "old", enqueued_at=T0)
    assert not await q.enqueue(TENANT, "old")
    state, _ = await q.load(TENANT)
    assert [e.call_id for e in state.ordered()] == ["old", "new"]


async def test_agent_event_guards(two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    q = AcdQueue(two_clients[0], "inst-a", NODE)
    with pytest.raises(QueueConflict) as info:
        await q.agent_event(TENANT, "999", ag.LogIn())
    assert info.value.id == "unknown_agent"
    await q.sync_operators(TENANT, operators(1))
    with pytest.raises(TypeError):
        await q.agent_event(TENANT, "101", ag.Offer("c1"))
    await q.agent_event(TENANT, "101", ag.LogIn())
    with pytest.raises(ag.IllegalTransition, match="unknown pause reason"):
        await q.agent_event(TENANT, "101", ag.Pause("lunch"))


async def test_sync_operators_adds_renames_and_removes_logged_out_only(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    q = AcdQueue(two_clients[0], "inst-a", NODE)
    await staffed(q, 3)
    await q.agent_event(TENANT, "103", ag.LogOut())
    renamed = [Operator("101", "Lan", SecretRef("env", "X")), Operator("104", "Minh",
                                                                       SecretRef("env", "Y"))]
    assert await q.sync_operators(TENANT, renamed) == 3  # 103 removed, 101 renamed, 104 added
    state, _ = await q.load(TENANT)
    assert [(a.extension, a.name, a.status.value) for a in state.agents] == [
        ("101", "Lan", "available"), ("102", "Tổng đài viên 2", "available"),
        ("104", "Minh", "logged_out")]
    assert await q.sync_operators(TENANT, renamed) == 0


# ---- live state: snapshot and events --------------------------------------------------------
async def test_given_live_queue_when_snapshot_then_pure_shape_of_the_stored_state(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    clock = Clock()
    q = AcdQueue(two_clients[0], "inst-a", NODE, clock=clock)
    await staffed(q, 3, clock)
    await q.agent_event(TENANT, "103", ag.Pause("paperwork"))
    await q.enqueue(TENANT, "c1", caller="0912345678")
    clock.advance(5)
    await q.enqueue(TENANT, "u1", urgent=True)
    await q.enqueue(TENANT, "c2")
    await q.offer_next(TENANT)
    clock.advance(7)
    snap = await q.snapshot(TENANT)
    state, now = await q.load(TENANT)
    assert now == clock()
    assert snap == acd.snapshot(state, now, q.policy(TENANT))
    assert json.loads(json.dumps(snap)) == snap  # plain JSON
    counts = snap["counts"]
    assert isinstance(counts, dict)
    assert (counts["queued"], counts["waiting"], counts["ringing"], counts["urgent"],
            counts["longest_wait_s"]) == (3, 2, 1, 1, 12)
    agents = snap["agents"]
    assert isinstance(agents, list)
    assert [(x["extension"], x["state"], x["reason_label"]) for x in agents] == [
        ("101", "ringing", None), ("102", "available", None), ("103", "paused", "Xử lý hồ sơ")]
    assert agents[2]["time_in_state_s"] == 12 and agents[0]["time_in_state_s"] == 7


async def test_given_changes_when_made_then_published_on_hotline_events(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    pubsub = b.pubsub()
    await pubsub.subscribe("hotline:events")
    await pubsub.get_message(timeout=1)
    clock = Clock()
    q = AcdQueue(a, "inst-a", NODE, clock=clock)
    await q.sync_operators(TENANT, operators(1))
    await q.agent_event(TENANT, "101", ag.Reachable())
    await q.agent_event(TENANT, "101", ag.LogIn())
    await q.enqueue(TENANT, "c1", caller="0912345678", urgent=True)
    await q.offer_next(TENANT)
    await q.answered(TENANT, "c1", "101")
    await q.call_ended(TENANT, "101", "c1")
    messages: list[dict[str, Any]] = []
    while (msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)):
        messages.append(json.loads(msg["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    summary = [(m["type"], m.get("cause") or m.get("event")) for m in messages]
    assert summary == [
        ("agent", "configured"), ("agent", "reachable"), ("agent", "log_in"),
        ("queue", "enqueued"), ("agent", "offer"), ("queue", "offered"), ("agent", "answered"),
        ("queue", "answered"), ("agent", "call_ended"),
    ]
    assert all(m["tenant"] == TENANT and m["at_ms"] == acd.to_ms(T0) for m in messages)
    enq = messages[3]
    assert {k: enq[k] for k in ("call_id", "priority", "urgent", "queued", "caller")} == {
        "call_id": "c1", "priority": 0, "urgent": True, "queued": 1, "caller": "0912345678"}
    offered = messages[5]
    assert (offered["extension"], offered["instance"], offered["node"], offered["offered_by"]) \
        == ("101", "inst-a", NODE, "inst-a")
    assert messages[7]["wait_ms"] == 0 and messages[7]["queued"] == 0
    # An agent event carries the snapshot's agent object (without the time-derived keys).
    state, now = await q.load(TENANT)
    snap_agent = acd.snapshot(state, now)["agents"][0]  # type: ignore[index]
    ended = messages[8]
    expected = {k: v for k, v in snap_agent.items()
                if k not in ("time_in_state_s", "reason_label")}
    assert {k: v for k, v in ended.items() if k not in ("type", "tenant", "cause", "at_ms")} \
        == expected
    for m in messages:
        if m["type"] == "agent":
            assert set(m) == set(expected) | {"type", "tenant", "cause", "at_ms"}
