"""The app's Redis clients send each command in the caller's own turn of the event loop (no
task per command, issue 20) and still give up on a Redis that stops answering, against a real
redis-server (private, on a unix socket)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.redis_clients import RedisTarget, async_client, blocking_pool
from callcenter.runtime.redis_server import PrivateRedis


async def _tasks_made_by(commands: Any) -> int:
    """How many asyncio tasks ``commands()`` creates."""
    loop = asyncio.get_running_loop()
    made = 0

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal made
        made += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        await commands()
    finally:
        loop.set_task_factory(None)
    return made


async def test_given_app_clients_when_commands_sent_then_no_task_per_command(
        redis_server: PrivateRedis) -> None:
    target = RedisTarget(redis_server.url)
    pool = blocking_pool(target, max_connections=4, timeout=5, socket_connect_timeout=2)
    shared = aioredis.Redis(connection_pool=pool)
    single = async_client(target, single_connection_client=True, socket_timeout=2)
    plain = aioredis.Redis.from_url(redis_server.url)  # redis-py as it comes: 5 s timeout
    try:
        for client in (shared, single, plain):
            await client.ping()  # connected before counting

        async def twenty(client: aioredis.Redis) -> None:
            for i in range(20):
                await client.set(f"k{i}", i)

        assert await _tasks_made_by(lambda: twenty(shared)) == 0
        assert await _tasks_made_by(lambda: twenty(single)) == 0
        assert await _tasks_made_by(lambda: twenty(plain)) >= 20  # what this avoids
        assert [int(v) for v in await shared.mget([f"k{i}" for i in range(20)])] \
            == list(range(20))
    finally:
        for client in (shared, single, plain):
            await client.aclose()
        await pool.disconnect()


async def test_given_redis_silent_when_app_client_asks_then_redis_timeout_and_recovers(
        redis_server: PrivateRedis) -> None:
    client = async_client(RedisTarget(redis_server.url), socket_timeout=0.3)
    await client.set("who", "before")
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.set("who", "during")
        assert time.monotonic() - started < 1.5
    finally:
        os.kill(pid, signal.SIGCONT)
    # The late reply of the command that timed out never answers a later one.
    assert await client.get("who") == b"during"
    assert await client.set("who", "after") and await client.get("who") == b"after"
    await client.aclose()
