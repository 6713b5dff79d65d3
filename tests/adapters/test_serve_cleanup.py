"""``serve`` after a failed start: what the earlier contexts opened is closed, and the start's
own error is the one raised (seen: no Asterisk for the app, then "Event loop is closed"
tracebacks of an unclosed Redis client under it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from callcenter.app import serve
from callcenter.pbx.install import ProvisionError


async def test_given_a_context_fails_at_start_when_serving_then_earlier_ones_closed_and_error_kept(
        ) -> None:
    closed: list[str] = []

    async def opens(app: web.Application) -> AsyncIterator[None]:
        yield
        closed.append("redis")

    async def fails(app: web.Application) -> AsyncIterator[None]:
        raise ProvisionError("no Asterisk >= 20 on PATH and no ready rootfs")
        yield

    app = web.Application()
    app.cleanup_ctx.append(opens)
    app.cleanup_ctx.append(fails)
    with pytest.raises(ProvisionError, match="no ready rootfs"):
        await asyncio.wait_for(serve(app, asyncio.Event()), 10)
    assert closed == ["redis"]


async def test_given_a_cleanup_fails_after_a_failed_start_then_the_start_error_is_raised() -> None:
    async def breaks_on_close(app: web.Application) -> AsyncIterator[None]:
        yield
        raise OSError("socket already gone")

    async def fails(app: web.Application) -> AsyncIterator[None]:
        raise ProvisionError("no ready rootfs")
        yield

    app = web.Application()
    app.cleanup_ctx.append(breaks_on_close)
    app.cleanup_ctx.append(fails)
    with pytest.raises(ProvisionError):
        await asyncio.wait_for(serve(app, asyncio.Event()), 10)


async def test_given_a_stop_while_a_context_still_starts_when_serving_then_it_stops_at_once(
        ) -> None:
    """SIGTERM while the start waits (say on a database migration): the start is cancelled and
    the contexts already entered are closed, without waiting for the start to finish."""
    closed: list[str] = []
    waiting = asyncio.Event()
    cancelled: list[bool] = []

    async def opens(app: web.Application) -> AsyncIterator[None]:
        yield
        closed.append("redis")

    async def hangs(app: web.Application) -> AsyncIterator[None]:
        waiting.set()
        try:
            await asyncio.Event().wait()  # never set: a start that would take for ever
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        yield

    app = web.Application()
    app.cleanup_ctx.append(opens)
    app.cleanup_ctx.append(hangs)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, stop))
    await asyncio.wait_for(waiting.wait(), 10)
    stop.set()
    await asyncio.wait_for(serving, 5)
    assert cancelled == [True]
    assert closed == ["redis"]
