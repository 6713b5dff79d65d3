"""The Redis line pool against a real redis-server (private, on a unix socket)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
import redis.asyncio as aioredis

from callcenter.lines.redis import INSTANCES, LinePool, lines_key
from callcenter.runtime.redis_server import PrivateRedis


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


async def test_given_restart_when_reconciled_then_adopted_taken_over_and_own_stale_dropped(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, _ = two_clients
    old = LinePool(a, "inst-old", "pbx1", ttl_ms=200)
    await old.heartbeat()
    for cid in ("c1", "c2", "c3"):
        assert await old.acquire("dongnai", cid, 5, "day")
    other = LinePool(a, "inst-x", "pbx1")  # another live instance on the same node
    await other.heartbeat()
    assert await other.acquire("dongnai", "x1", 5, "day")
    await asyncio.sleep(0.3)  # the old instance died: its heartbeat expired
    await other.heartbeat()
    new = LinePool(a, "inst-new", "pbx1")
    await new.heartbeat()
    dropped, used = await new.reconcile("dongnai", keep=[], adopt=["c2"])
    assert used == 2  # c2 adopted + x1 of the other live instance, never touched
    held = await a.hgetall(lines_key("dongnai"))
    assert sorted(k.decode() for k in held) == ["c2", "x1"]
    assert json.loads(held[b"c2"])["i"] == "inst-new"
    assert json.loads(held[b"x1"])["i"] == "inst-x"
    assert await a.hexists(INSTANCES, "inst-new")


async def test_given_reconnect_when_reconciled_then_own_gone_calls_dropped_kept_ones_stay(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    pool = LinePool(two_clients[0], "inst-a", "pbx1")
    await pool.heartbeat()
    for cid in ("c1", "c2", "c3"):
        assert await pool.acquire("dongnai", cid, 5, "day")
    dropped, used = await pool.reconcile("dongnai", keep=["c1", "c3", "c9"])
    assert (dropped, used) == (1, 2)


async def test_given_own_heartbeat_lapsed_when_acquiring_then_own_lines_not_reclaimed(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    pool = LinePool(two_clients[0], "inst-a", "pbx1", ttl_ms=200)
    await pool.heartbeat()
    for cid in ("c1", "c2", "c3"):
        assert await pool.acquire("dongnai", cid, 3, "day")
    await asyncio.sleep(0.3)  # e.g. Redis unreachable or the loop stalled past the TTL
    assert not await pool.acquire("dongnai", "c4", 3, "day")  # still full: our calls count
    assert (await pool.use("dongnai")).in_use == 3


async def test_given_redis_lost_its_data_when_heartbeat_notices_then_lines_written_back(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, _ = two_clients
    pool = LinePool(a, "inst-a", "pbx1")
    assert await pool.heartbeat()  # the first beat reports a lapse (nothing before it)
    assert not await pool.heartbeat()
    for cid in ("c1", "c2"):
        assert await pool.acquire("dongnai", cid, 2, "day")
    await a.flushall()  # a shared Redis restarted empty
    assert await pool.heartbeat()
    assert await pool.reassert("dongnai", ["c1", "c2"]) == 2
    assert not await pool.acquire("dongnai", "c3", 2, "day")


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


async def test_given_redis_silent_when_acquiring_then_timeout_and_later_replies_not_mixed_up(
        redis_server: PrivateRedis) -> None:
    """The pool's own timeout (not the client's socket_timeout, issue 20): a Redis that stops
    answering (SIGSTOP) fails the script within timeout_s; the late reply of that script never
    answers the next one (the connection it was sent on is closed)."""
    client = aioredis.Redis.from_url(redis_server.url, single_connection_client=True)
    pool = LinePool(client, "inst-a", "pbx1", timeout_s=0.3)
    await client.flushall()
    await pool.heartbeat()
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.acquire("dongnai", "c1", 1, "day")
        assert time.monotonic() - started < 1.5
    finally:
        os.kill(pid, signal.SIGCONT)
    # Redis ran the first script once it could (c1 holds the only line): c2 is refused, and
    # the first script's "granted" is not read as c2's answer.
    assert not await pool.acquire("dongnai", "c2", 1, "day")
    assert await pool.acquire("dongnai", "c1", 1, "day")
    assert (await pool.use("dongnai")).in_use == 1
    await client.aclose()


async def test_given_single_connection_when_many_scripts_at_once_then_each_gets_its_reply(
        redis_server: PrivateRedis) -> None:
    """The admissions' client (one connection, scripts written straight to it): concurrent
    acquires, heartbeats and releases share it without one reading another's reply."""
    client = aioredis.Redis.from_url(redis_server.url, single_connection_client=True)
    pool = LinePool(client, "inst-a", "pbx1", timeout_s=2.0)
    await client.flushall()
    await pool.heartbeat()
    results = await asyncio.gather(*(
        pool.acquire("dongnai", f"c{i}", 15, "day") if i % 3 else pool.heartbeat()
        for i in range(90)))
    granted = [f"c{i}" for i, ok in enumerate(results) if i % 3 and ok]
    assert len(granted) == 15
    assert granted == [f"c{i}" for i in range(90) if i % 3][:15]  # in the order sent
    assert await asyncio.gather(*(pool.release("dongnai", c) for c in granted)) == [True] * 15
    assert (await pool.use("dongnai")).in_use == 0
    await client.aclose()


async def test_given_scripts_flushed_when_acquiring_then_loaded_again_and_granted(
        redis_server: PrivateRedis) -> None:
    """Redis restarted or its scripts flushed: the pool's EVALSHA finds no script; it is
    loaded again and the call still gets its line."""
    client = aioredis.Redis.from_url(redis_server.url, single_connection_client=True)
    pool = LinePool(client, "inst-a", "pbx1", timeout_s=2.0)
    await client.flushall()
    await pool.heartbeat()
    await client.script_flush()
    assert await pool.acquire("dongnai", "c1", 1, "day")
    assert not await pool.acquire("dongnai", "c2", 1, "day")
    assert (await pool.use("dongnai")).in_use == 1
    await client.aclose()
