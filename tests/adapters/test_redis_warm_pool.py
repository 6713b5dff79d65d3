"""The app's shared Redis pool opens its working set at start (app.warm_up), so a long run's
descriptors do not creep up with each new high-water mark of requests in flight (P9)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from callcenter.app import REDIS_WARM_CONNECTIONS, warm_up
from callcenter.runtime.redis_server import PrivateRedis


async def _clients(url: str) -> int:
    probe = aioredis.Redis.from_url(url)
    try:
        return len(await probe.client_list())
    finally:
        await probe.aclose()


async def test_given_warm_pool_when_requests_burst_then_no_connection_opened(
        redis_server: PrivateRedis) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_server.url, max_connections=32)
    client = aioredis.Redis(connection_pool=pool)
    try:
        base = await _clients(redis_server.url)
        await warm_up(pool, REDIS_WARM_CONNECTIONS)
        assert await _clients(redis_server.url) == base + REDIS_WARM_CONNECTIONS
        # as many requests in flight as the warm set: served without a new connection
        await asyncio.gather(*(client.blpop([f"k{i}"], timeout=0.2)
                               for i in range(REDIS_WARM_CONNECTIONS)))
        assert await _clients(redis_server.url) == base + REDIS_WARM_CONNECTIONS
    finally:
        await client.aclose()
        await pool.disconnect()
