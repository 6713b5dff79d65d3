"""Every Redis client of the app and the CLIs comes from here: REDIS_URL, or Sentinel.

``RedisTarget.of(settings)`` says where live state is: a URL (REDIS_URL, else the private
server's socket), or a service watched by sentinels (REDIS_SENTINELS + REDIS_SENTINEL_MASTER,
docs/sentinel.md). The clients built for a Sentinel target are redis-py's Sentinel clients:
each new connection asks the sentinels for the primary's address, and a connection to a
primary that died or was demoted fails and is made again to the promoted replica.

Those connection pools count the switches of primary they saw (``master_switches``): writes the
old primary acknowledged but had not yet copied to its replica are lost in a failover, so the
app writes its lines back and reconciles after each switch (app.py's heartbeat, lines/fallback).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelConnection
from redis.connection import Connection as SyncConnection
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel as SyncSentinel
from redis.sentinel import SentinelManagedConnection as SyncSentinelConnection

from callcenter.config.settings import Settings

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True)
class RedisTarget:
    """Where live state is: ``url``, unless ``sentinels`` and ``master`` are given."""

    url: str
    sentinels: tuple[Address, ...] = ()
    master: str | None = None
    password: str | None = None  # the data nodes' (Sentinel mode; a URL carries its own)
    sentinel_password: str | None = None

    @classmethod
    def of(cls, settings: Settings, url: str | None = None) -> RedisTarget:
        """From the settings; ``url`` (a private server's) stands in for an unset REDIS_URL."""
        return cls(url or settings.redis_url or f"unix://{settings.private_redis_socket}",
                   settings.redis_sentinels, settings.redis_sentinel_master,
                   settings.redis_password, settings.redis_sentinel_password)

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.sentinels and self.master)

    def __str__(self) -> str:
        """For logs and errors: never a password."""
        if self.uses_sentinel:
            return (f"Sentinel service {self.master!r} via "
                    + ",".join(f"{h}:{p}" for h, p in self.sentinels))
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        hidden = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=hidden))

    def _sentinel_kwargs(self, timeout: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def _data_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.password and "password" not in options:
            return {**options, "password": self.password}
        return options


# redis-py 8.2's connections reconnect, when a command finds their socket closed, through
# connect_check_health() to the host and port they last had, not through the Sentinel
# connection's connect() that asks the sentinels: a single-connection client (the line pool's)
# then knocked at the dead primary for good (seen here: every beat refused after the replica
# was promoted). These ask the sentinels on every reconnection of a primary's connection.
class FollowingConnection(AsyncSentinelConnection):
    """A primary's connection that asks the sentinels where the primary is on reconnecting."""

    async def connect_to(self, address: Any) -> None:
        self.host, self.port = address
        await AsyncConnection.connect_check_health(
            self, check_health=self.connection_pool.check_connection, retry_socket_connect=False)

    async def connect_check_health(self, check_health: bool = True,
                                   retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await AsyncConnection.connect_check_health(self, check_health, retry_socket_connect)


class SyncFollowingConnection(SyncSentinelConnection):
    """``FollowingConnection`` for the blocking client."""

    def connect_to(self, address: Any) -> None:
        self.host, self.port = address
        SyncConnection.connect_check_health(
            self, check_health=self.connection_pool.check_connection, retry_socket_connect=False)

    def connect_check_health(self, check_health: bool = True,
                             retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        SyncConnection.connect_check_health(self, check_health, retry_socket_connect)


class FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool that also counts the switches of primary it has seen."""

    switches = 0

    def __init__(self, service_name: str, sentinel_manager: AsyncSentinel, **kwargs: Any):
        kwargs.setdefault("connection_class", FollowingConnection)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]

    async def get_master_address(self) -> Any:
        before = self.master_address
        address = await super().get_master_address()  # type: ignore[no-untyped-call]
        if before is not None and address != before:
            self.switches += 1
            log.warning("Redis primary of %r moved from %s:%s to %s:%s (Sentinel failover)",
                        self.service_name, before[0], before[1], address[0], address[1])
        return address

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # the client is closing (a switch closes idle ones only)
            await self.sentinel_manager.aclose()


class BlockingFollowingPool(FollowingPool, aioredis.BlockingConnectionPool):
    """``FollowingPool`` that waits for a free connection instead of failing at the cap."""


@functools.cache
def _sending_in_loop(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` whose commands leave in the caller's own turn of the event loop.

    redis-py (8.x) gives every connection a socket_timeout (5 s unless set) and sends each
    command of such a connection through ``asyncio.wait_for``: a task of its own per command,
    the command leaving one loop turn late and its caller woken two turns later (9 of the 28
    turns between a queued caller and the operator's ring, issue 20: bench/queue_profile.py).
    Here the send keeps the same limit with ``asyncio.timeout`` (no task) and fails as redis-py
    does, with its TimeoutError, the connection closed; reads are untouched (redis-py already
    times them with ``asyncio.timeout``)."""

    async def send_packed_command(self: AbstractConnection, command: Any,
                                  check_health: bool = True) -> None:
        limit = self.socket_timeout
        if not limit:
            await base.send_packed_command(self, command, check_health)
            return
        self.socket_timeout = None  # (only for this send: no wait_for inside)
        try:
            async with asyncio.timeout(limit):
                await base.send_packed_command(self, command, check_health)
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = limit

    return type(f"{base.__name__}SendingInLoop", (base,),
                {"send_packed_command": send_packed_command, "__doc__": base.__doc__})


def _sends_in_loop(pool: aioredis.ConnectionPool) -> None:
    """Make the pool's connections send in the caller's loop turn (before any is made)."""
    pool.connection_class = _sending_in_loop(pool.connection_class)  # type: ignore[arg-type]


def _async_sentinel(target: RedisTarget, timeout: float | None) -> AsyncSentinel:
    return AsyncSentinel(list(target.sentinels), sentinel_kwargs=target._sentinel_kwargs(timeout))


def async_client(target: RedisTarget, *, single_connection_client: bool = False,
                 **options: Any) -> aioredis.Redis:
    """A redis.asyncio client of ``target``'s primary (``options``: socket timeouts ...)."""
    if not target.uses_sentinel:
        client = aioredis.Redis.from_url(
            target.url, single_connection_client=single_connection_client, **options)
        _sends_in_loop(client.connection_pool)
        return client
    sentinel = _async_sentinel(target, options.get("socket_connect_timeout"))
    pool = FollowingPool(str(target.master), sentinel, **target._data_kwargs(options))
    _sends_in_loop(pool)
    client = aioredis.Redis(connection_pool=pool,
                            single_connection_client=single_connection_client)
    client.auto_close_connection_pool = True  # aclose() closes the pool (and the sentinels')
    return client


def blocking_pool(target: RedisTarget, *, max_connections: int, timeout: float,
                  **options: Any) -> aioredis.BlockingConnectionPool:
    """A bounded pool of connections to ``target``'s primary: a request past
    ``max_connections`` waits up to ``timeout`` s for a free one (app.py's shared client)."""
    if not target.uses_sentinel:
        pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
            target.url, max_connections=max_connections, timeout=timeout, **options)
    else:
        sentinel = _async_sentinel(target, options.get("socket_connect_timeout"))
        pool = BlockingFollowingPool(
            str(target.master), sentinel, max_connections=max_connections, timeout=timeout,
            **target._data_kwargs(options))
    _sends_in_loop(pool)
    return pool


def sync_client(target: RedisTarget, **options: Any) -> redis.Redis:
    """A blocking (sync) client of ``target``'s primary."""
    if not target.uses_sentinel:
        return redis.Redis.from_url(target.url, **options)
    timeout = options.get("socket_connect_timeout")
    sentinel = SyncSentinel(list(target.sentinels),
                            sentinel_kwargs=target._sentinel_kwargs(timeout))
    client: redis.Redis = sentinel.master_for(
        str(target.master), connection_class=SyncFollowingConnection,
        **target._data_kwargs(options))
    return client


def answers(target: RedisTarget, timeout: float = 1.0) -> bool:
    """True when ``target``'s primary answers PING (through the sentinels when so set)."""
    try:
        client = sync_client(target, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def master_switches(client: object) -> int:
    """How many times ``client``'s pool found the primary moved (0 without Sentinel)."""
    return int(getattr(getattr(client, "connection_pool", None), "switches", 0))
