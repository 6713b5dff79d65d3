"""The ACD driver of two app instances on one real Redis: each call rings at its owner only,
once; offers made by the other instance arrive through pub/sub; waiting callers get their
announcements and callback offers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis

from callcenter import calls as cm
from callcenter.config.model import HotlineConfig, Shift, Tenant
from callcenter.phones.requalify import ReachabilityNews, news_of
from callcenter.queue import agent as ag
from callcenter.queue import rules as acd
from callcenter.queue.driver import QueueDriver
from callcenter.queue.policy import Operator, OperatorsConfig, QueuePolicy, SecretRef
from callcenter.queue.redis import AcdQueue
from callcenter.runtime.redis_server import PrivateRedis

TENANT = "dongnai"
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class FakeSession:
    """What the driver sees of a call's task: its id, its state, its event queue."""

    call_id: str
    state: cm.CallState
    events: asyncio.Queue[Any] = dataclasses.field(default_factory=asyncio.Queue)

    def drain(self) -> list[Any]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


def config(n_ops: int, policy: QueuePolicy) -> HotlineConfig:
    ops = tuple(Operator(str(100 + i), f"Op {i}", SecretRef("env", f"X{i}"))
                for i in range(1, n_ops + 1))
    tenant = Tenant(id=TENANT, name="Đồng Nai", timezone="Asia/Ho_Chi_Minh",
                    numbers=("1022",), shifts=(Shift("all", dt.time(0), dt.time(0), 15),),
                    operators=OperatorsConfig(operators=ops, queue=policy))
    return HotlineConfig(tenants=(tenant,))


def queued_session(call_id: str) -> FakeSession:
    state = dataclasses.replace(cm.new_call(call_id, "pbx1", "1022", "0909", call_id, T0),
                                phase=cm.Phase.QUEUED, tenant_id=TENANT)
    return FakeSession(call_id, state)


@pytest.fixture
async def clients(redis_server: PrivateRedis) -> AsyncIterator[list[aioredis.Redis]]:
    made = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    await made[0].flushall()
    yield made
    for c in made:
        await c.aclose()


async def staff(q: AcdQueue, cfg: HotlineConfig) -> None:
    tenant = cfg.tenants[0]
    q.set_policy(TENANT, tenant.operators.queue)
    await q.sync_operators(TENANT, tenant.operators.operators)
    for op in tenant.operators.operators:
        await q.agent_event(TENANT, op.extension, ag.Reachable())
        await q.agent_event(TENANT, op.extension, ag.LogIn())


async def until(predicate: Any, timeout: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_given_two_instances_when_calls_queue_then_each_rings_once_at_its_owner(
        clients: list[aioredis.Redis]) -> None:
    policy = QueuePolicy(wrap_up_s=0, retry_s=0, announce_every_s=0, callback_offer=False)
    cfg = config(6, policy)
    queues = [AcdQueue(c, f"inst-{i}", "pbx1") for i, c in enumerate(clients)]
    sessions: list[dict[str, FakeSession]] = [{}, {}]
    drivers = [QueueDriver(q, c, s, lambda: cfg, tick_s=0.2)  # type: ignore[arg-type]
               for q, c, s in zip(queues, clients, sessions, strict=True)]
    await staff(queues[0], cfg)
    queues[1].set_policy(TENANT, policy)
    for d in drivers:
        d.start()
    try:
        await asyncio.sleep(0.1)  # both subscribed
        # Ten calls, alternating owners, enqueued by their owner: six operators for ten calls.
        for n in range(10):
            owner = n % 2
            session = queued_session(f"c{n}")
            sessions[owner][session.call_id] = session
            await queues[owner].enqueue(TENANT, session.call_id, caller="0909")
            drivers[owner].kick(TENANT)
        all_sessions = [s for group in sessions for s in group.values()]
        await until(lambda: sum(not s.events.empty() for s in all_sessions) == 6)
        await asyncio.sleep(0.5)  # time for any double offer to show up
        offers = {s.call_id: s.drain() for s in all_sessions}
        rung = [o for evs in offers.values() for o in evs]
        assert all(isinstance(o, cm.Offered) for o in rung)
        assert len(rung) == 6  # one offer per ringing call, none twice
        assert len({o.extension for o in rung}) == 6  # each operator rings for one call only
        q, _ = await queues[0].load(TENANT)
        for call_id, evs in offers.items():
            entry = q.entry(call_id)
            assert entry is not None
            assert (entry.ringing is not None) == bool(evs)
            if evs:
                assert entry.ringing == evs[0].extension
    finally:
        for d in drivers:
            await d.close()


async def test_given_offer_made_by_other_instance_then_owner_gets_it_by_pubsub(
        clients: list[aioredis.Redis]) -> None:
    policy = QueuePolicy(wrap_up_s=0, retry_s=0, announce_every_s=0, callback_offer=False)
    cfg = config(1, policy)
    qa, qb = (AcdQueue(c, f"inst-{i}", "pbx1") for i, c in enumerate(clients))
    owner_sessions: dict[str, FakeSession] = {}
    owner = QueueDriver(qa, clients[0], owner_sessions, lambda: cfg,  # type: ignore[arg-type]
                        tick_s=60)
    other = QueueDriver(qb, clients[1], {}, lambda: cfg, tick_s=60)
    qa.set_policy(TENANT, policy)
    qb.set_policy(TENANT, policy)
    await qa.sync_operators(TENANT, cfg.tenants[0].operators.operators)
    session = queued_session("c-a")
    owner_sessions[session.call_id] = session
    await qa.enqueue(TENANT, session.call_id)

    async def offers_none(tenant: str) -> int:
        return 0

    # Each driver's own loop would make the offer when the operator's login reaches it (a
    # kick), racing the explicit offer below (seen under load in CI): here only that one
    # offers. The owner listens, the other's loop is not started.
    owner.offer_all = offers_none  # type: ignore[method-assign]
    owner.start()
    try:
        await asyncio.sleep(0.2)
        # The operator logs in through the other instance (its CLI, its HTTP API).
        await qb.agent_event(TENANT, "101", ag.Reachable())
        await qb.agent_event(TENANT, "101", ag.LogIn())
        assert await other.offer_all(TENANT) == 1  # the other instance makes the offer...
        await until(lambda: not session.events.empty())  # ...and the owner rings it
        offered = session.drain()
        assert offered == [cm.Offered(offered[0].at, "101", policy.ring_timeout_s, 0)]
    finally:
        await owner.close()
        await other.close()


async def test_given_long_wait_when_checked_then_announcement_then_callback_offer(
        clients: list[aioredis.Redis]) -> None:
    policy = QueuePolicy(announce_every_s=2, max_wait_s=4, callback_offer=True)
    cfg = config(1, policy)  # nobody logged in: the call waits
    clock_now = [T0]
    q = AcdQueue(clients[0], "inst-0", "pbx1", clock=lambda: clock_now[0])
    q.set_policy(TENANT, policy)
    await q.sync_operators(TENANT, cfg.tenants[0].operators.operators)
    session = queued_session("c-w")
    driver = QueueDriver(q, clients[0], {session.call_id: session},  # type: ignore[dict-item]
                         lambda: cfg)
    await q.enqueue(TENANT, session.call_id)
    await driver.wait_checks(TENANT)
    assert session.drain() == []  # nothing due yet
    clock_now[0] = T0 + dt.timedelta(seconds=2)
    await driver.wait_checks(TENANT)
    [tick] = session.drain()
    assert tick.kind == "announce"
    assert tick.text.startswith("Quý khách đang ở vị trí thứ 1 trong hàng chờ.")
    session.state = dataclasses.replace(session.state, announced_at=tick.at)
    clock_now[0] = T0 + dt.timedelta(seconds=4)
    await driver.wait_checks(TENANT)
    [tick] = session.drain()
    assert tick == cm.WaitTick(tick.at, "callback", acd.CALLBACK_OFFER_TEXT)
    snapshot = await q.snapshot(TENANT)
    assert snapshot["calls"][0]["callback_offers"] == 1  # type: ignore[index]


async def test_given_reachability_recorded_elsewhere_then_listener_gets_it_as_news(
        clients: list[aioredis.Redis]) -> None:
    """What re-qualifies a phone on the other nodes (phones/requalify.py): the agent event of
    another instance's Reachable/Unreachable reaches this instance's listener."""
    policy = QueuePolicy(wrap_up_s=0, retry_s=0, announce_every_s=0, callback_offer=False)
    cfg = config(1, policy)
    qa, qb = (AcdQueue(c, f"inst-{i}", "pbx1") for i, c in enumerate(clients))
    listener = QueueDriver(qa, clients[0], {}, lambda: cfg, tick_s=60)
    qb.set_policy(TENANT, policy)
    await qb.sync_operators(TENANT, cfg.tenants[0].operators.operators)
    news: list[ReachabilityNews] = []

    def heard(event: Mapping[str, Any]) -> None:
        if (item := news_of(event)) is not None:
            news.append(item)

    listener.on_agent_event = heard
    listener.offer_all = lambda tenant: asyncio.sleep(0, 0)  # type: ignore[method-assign]
    listener.start()
    try:
        await asyncio.sleep(0.2)  # subscribed
        await qb.agent_event(TENANT, "101", ag.Reachable())
        await qb.agent_event(TENANT, "101", ag.LogIn())
        await qb.agent_event(TENANT, "101", ag.Unreachable())
        await until(lambda: len(news) == 2)
        await asyncio.sleep(0.2)  # the log-in is no news
        assert news == [ReachabilityNews(TENANT, "101", True),
                        ReachabilityNews(TENANT, "101", False)]
    finally:
        await listener.close()
