"""The Redis line pool against a real redis-server (private, on a unix socket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from callcenter.queue.linepool import INSTANCES, LinePool, lines_key
from callcenter.queue.server import PrivateRedis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(Path(tmp_path_factory.mktemp("redis")) / "redis.sock")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def two_clients(
        redis_server: PrivateRedis) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    a = aioredis.Redis.from_url(redis_server.url)
    b = aioredis.Redis.from_url(redis_server.url)
    await a.flushall()
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_given_two_instances_when_many_acquire_concurrently_then_never_over_limit(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    pool_a = LinePool(a, "inst-a", "pbx1")
    pool_b = LinePool(b, "inst-b", "pbx1")
    await pool_a.heartbeat()
    await pool_b.heartbeat()
    attempts = [
        (pool_a if i % 2 else pool_b).acquire("dongnai", f"call-{i}", 15, "day")
        for i in range(200)
    ]
    results = await asyncio.gather(*attempts)
    assert sum(results) == 15
    assert (await pool_a.use("dongnai")).in_use == 15


async def test_given_held_line_when_released_then_free_and_second_release_is_noop(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    pool = LinePool(two_clients[0], "inst-a", "pbx1")
    await pool.heartbeat()
    assert await pool.acquire("dongnai", "c1", 1, "night")
    assert not await pool.acquire("dongnai", "c2", 1, "night")
    assert await pool.release("dongnai", "c1")
    assert not await pool.release("dongnai", "c1")
    assert await pool.acquire("dongnai", "c2", 1, "night")


async def test_given_same_call_when_acquired_twice_then_one_line(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    pool = LinePool(two_clients[0], "inst-a", "pbx1")
    await pool.heartbeat()
    assert await pool.acquire("dongnai", "c1", 2, "day")
    assert await pool.acquire("dongnai", "c1", 2, "day")
    assert (await pool.use("dongnai")).in_use == 1


async def test_given_dead_instance_when_its_heartbeat_expires_then_lines_reclaimed(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    dead = LinePool(a, "inst-dead", "pbx1", ttl_ms=200)
    alive = LinePool(b, "inst-alive", "pbx1")
    await dead.heartbeat()
    await alive.heartbeat()
    assert await dead.acquire("dongnai", "c1", 2, "day")
    assert await dead.acquire("dongnai", "c2", 2, "day")
    assert not await alive.acquire("dongnai", "c3", 2, "day")
    await asyncio.sleep(0.3)  # inst-dead stops beating: its lines are reclaimed on next acquire
    assert await alive.acquire("dongnai", "c3", 2, "day")
    assert await alive.acquire("dongnai", "c4", 2, "day")
    held = await b.hgetall(lines_key("dongnai"))
    assert {json.loads(v)["i"] for v in held.values()} == {"inst-alive"}


async def test_given_restart_when_reconciled_then_pool_is_exactly_live_channels(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, _ = two_clients
    old = LinePool(a, "inst-old", "pbx1")
    await old.heartbeat()
    for cid in ("c1", "c2", "c3"):
        assert await old.acquire("dongnai", cid, 5, "day")
    other_node = LinePool(a, "inst-x", "pbx2")
    await other_node.heartbeat()
    assert await other_node.acquire("dongnai", "x1", 5, "day")
    new = LinePool(a, "inst-new", "pbx1")
    await new.heartbeat()
    dropped, used = await new.reconcile("dongnai", ["c2"])  # c1, c3 hung up while we were away
    assert (dropped, used) == (2, 2)  # c2 of this node + x1 of the other node
    held = await a.hgetall(lines_key("dongnai"))
    assert sorted(k.decode() for k in held) == ["c2", "x1"]
    assert json.loads(held[b"c2"])["i"] == "inst-new"
    assert await a.hexists(INSTANCES, "inst-new")


async def test_given_pool_change_when_acquired_then_event_published(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = two_clients
    pubsub = b.pubsub()
    await pubsub.subscribe("hotline:events")
    await pubsub.get_message(timeout=1)
    pool = LinePool(a, "inst-a", "pbx1")
    await pool.heartbeat()
    await pool.acquire("dongnai", "c1", 3, "day")
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert msg is not None
    assert json.loads(msg["data"]) == {"type": "pool", "tenant": "dongnai", "in_use": 1,
                                       "limit": 3, "shift": "day"}
    await pubsub.aclose()
