"""A node lost whole, closed from a surviving node (issue 19 point 4), against a real Redis and
a real database: its calls' records written once as failed with the node's name, their lines
and queue places released, the operators they held freed; a node with a live sibling instance
is not lost; a node that beats again is not touched."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps
from callcenter.ari_app.client import AriClient
from callcenter.ari_app.node_loss import LostNodeCloser
from callcenter.calls.codec import CALL_KEY, state_from_json, state_to_json
from callcenter.calls.node_loss import NODE_LOST_CAUSE
from callcenter.lines.fallback import ResilientPool
from callcenter.lines.nodes import NodeBeats
from callcenter.lines.redis import LinePool, lines_key
from callcenter.queue import agent as ag
from callcenter.queue.policy import Operator, QueuePolicy, SecretRef
from callcenter.queue.redis import AcdQueue, waiting_key
from callcenter.store.journal import RecordJournal
from callcenter.store.recorder import RecordWriter
from callcenter.store.records import CallRecordStore

TENANT = "dongnai"
T0 = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)


def call(call_id: str, node: str, **changes: Any) -> cm.CallState:
    state = cm.new_call(call_id, node, "1022", "0919000111", call_id, T0)
    return dataclasses.replace(state, tenant_id=TENANT, shift="day", limit=10, line_held=True,
                               answered_at=T0, **changes)


async def share(redis: aioredis.Redis, pool: LinePool, state: cm.CallState) -> None:
    """What the call's own app did: its line taken, its state shared."""
    assert await pool.acquire(TENANT, state.call_id, 10, "day")
    await redis.set(CALL_KEY.format(state.call_id), state_to_json(state))


def survivor(redis: aioredis.Redis, instance: str, writer: RecordWriter,
             acd: AcdQueue) -> LostNodeCloser:
    pool = LinePool(redis, instance, "node2")
    deps = CallDeps(ari=cast(AriClient, None), pool=ResilientPool(pool), redis=redis,
                    sounds_dir="/sounds", write_record=writer.write, acd=acd)
    return LostNodeCloser(deps, "node2", instance)


async def staffed(acd: AcdQueue) -> None:
    ops = [Operator(e, f"Tổng đài viên {e}", SecretRef("env", f"OP_{e}")) for e in ("101", "102")]
    await acd.sync_operators(TENANT, ops)
    for o in ops:
        await acd.agent_event(TENANT, o.extension, ag.Reachable())
        await acd.agent_event(TENANT, o.extension, ag.LogIn())


async def test_given_node_lost_whole_when_survivors_sweep_then_its_calls_closed_once(
        two_clients: tuple[aioredis.Redis, aioredis.Redis], store: CallRecordStore,
        tmp_path: Path) -> None:
    a, b = two_clients
    policy = {TENANT: QueuePolicy(wrap_up_s=0)}
    dead_pool = LinePool(a, "node1-dead", "node1", ttl_ms=300)
    dead_acd = AcdQueue(a, "node1-dead", "node1", policy)
    live_pool = LinePool(b, "node2-live", "node2")
    live_acd = AcdQueue(b, "node2-live", "node2", policy)
    await dead_pool.heartbeat()
    await live_pool.heartbeat()
    await staffed(live_acd)
    # node1's calls: talking with 101, ringing 102, waiting in the queue, in the IVR.
    talking = call("t", "node1", phase=cm.Phase.BRIDGED, operator="101",
                   operator_channel="t-op1", bridge="t-bridge", queue_enabled=True)
    ringing = call("r", "node1", phase=cm.Phase.RINGING, ringing="102",
                   operator_channel="r-op1", queue_enabled=True)
    waiting = call("w", "node1", phase=cm.Phase.QUEUED, queue_enabled=True)
    menus = call("m", "node1", phase=cm.Phase.IVR)
    assert await dead_acd.enqueue(TENANT, "t")
    offer = await dead_acd.offer_next(TENANT)
    assert offer is not None and (offer.call_id, offer.extension) == ("t", "101")
    await dead_acd.answered(TENANT, "t", "101")
    assert await dead_acd.enqueue(TENANT, "r")
    offer = await dead_acd.offer_next(TENANT)
    assert offer is not None and (offer.call_id, offer.extension) == ("r", "102")
    assert await dead_acd.enqueue(TENANT, "w")
    for state in (talking, ringing, waiting, menus):
        await share(a, dead_pool, state)
    # node2's own call waits in the queue too: never touched.
    mine = call("s", "node2", phase=cm.Phase.QUEUED, queue_enabled=True)
    await share(b, live_pool, mine)
    assert await live_acd.enqueue(TENANT, "s")

    await asyncio.sleep(0.5)  # node1's beat lapses (its only instance is gone)
    await live_pool.heartbeat()
    writer = RecordWriter(RecordJournal(tmp_path / "journal"), store)
    closers = [survivor(c, f"node2-{i}", writer, live_acd) for i, c in enumerate((a, b))]
    # Two survivors at once: each call closed by exactly one of them.
    counts = await asyncio.gather(*(c.sweep() for c in closers))
    assert sum(counts) == 4, counts
    await writer.flush_once()

    records = {r.id: r for r in store.last(10)}
    assert set(records) == {"node1:t", "node1:r", "node1:w", "node1:m"}
    assert {(r.node, r.outcome, r.cause) for r in records.values()} == {
        ("node1", "failed", NODE_LOST_CAUSE)}
    assert records["node1:t"].operator == "101"
    # Lines: only node2's call holds one. Queue: only node2's caller waits. Operators free.
    assert set(await a.hkeys(lines_key(TENANT))) == {b"s"}
    assert await a.zrange(waiting_key(TENANT), 0, -1) == [b"s"]
    for ext in ("101", "102"):
        agent = await live_acd.agent(TENANT, ext)
        assert agent is not None and agent.status is ag.AgentStatus.AVAILABLE, agent
    # Each lost call's ended state stays as the mark that it is closed.
    for call_id in ("t", "r", "w", "m"):
        raw = await a.get(CALL_KEY.format(call_id))
        assert raw is not None and state_from_json(raw).phase is cm.Phase.ENDED
    assert state_from_json(await a.get(CALL_KEY.format("s"))).phase is cm.Phase.QUEUED

    # Swept again (and by a newcomer knowing nothing): nothing more, no second record.
    newcomer = survivor(a, "node2-new", writer, live_acd)
    assert [await c.sweep() for c in (*closers, newcomer)] == [0, 0, 0]
    await writer.flush_once()
    assert store.count() == 4


async def test_given_node_with_a_live_sibling_instance_then_its_calls_are_not_closed(
        two_clients: tuple[aioredis.Redis, aioredis.Redis], store: CallRecordStore,
        tmp_path: Path) -> None:
    """One app instance of node1 died, the other lives (it adopts the calls from node1's own
    Asterisk): node1 is not lost."""
    a, b = two_clients
    dead = LinePool(a, "node1-a", "node1", ttl_ms=300)
    sibling = LinePool(a, "node1-b", "node1")
    await dead.heartbeat()
    await sibling.heartbeat()
    await share(a, dead, call("x", "node1", phase=cm.Phase.IVR))
    await asyncio.sleep(0.5)
    await sibling.heartbeat()
    writer = RecordWriter(RecordJournal(tmp_path / "journal"), store)
    acd = AcdQueue(b, "node2-live", "node2")
    closer = survivor(b, "node2-live", writer, acd)
    assert await closer.sweep() == 0
    assert state_from_json(await a.get(CALL_KEY.format("x"))).phase is cm.Phase.IVR


async def test_given_lost_node_beating_again_then_its_calls_cannot_be_claimed(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, _b = two_clients
    node1 = LinePool(a, "node1-a", "node1", ttl_ms=300)
    await node1.heartbeat()
    await share(a, node1, call("y", "node1", phase=cm.Phase.IVR))
    beats = NodeBeats(a)
    await asyncio.sleep(0.5)
    _, now = await beats.beats()
    assert (await beats.beats())[0]["node1"] < now  # lapsed
    await node1.heartbeat()  # back (its app restarted)
    assert (await beats.claim("y", "node2-x")).outcome == "alive"
    assert (await beats.claim("nope", "node2-x")).outcome == "gone"
    await asyncio.sleep(0.5)  # lost again: now one claim wins, the next finds it taken
    assert (await beats.claim("y", "node2-x")).outcome == "claimed"
    assert (await beats.claim("y", "node2-z")).outcome == "taken"
