"""The floor of P1: a bare ARI application, in a process of its own, beside `callcenter run`.

Issue 20 measures the product against "a bare ARI application (aiohttp websocket, one Redis
Lua call for the pool, `Answer`)": the least any Python application of this design does before
a caller is answered. ``BareApp`` is that, on the product's own parts: the same ``AriClient``
(REST over the event websocket), the same ``LinePool`` Lua admission on a single, already open
Redis connection (as app.py builds it), and for a StasisStart only the pool's call and
``answer``, inline in the event loop: no routing, no call task, no state, no log line (a call
dialled as a number ending in ``n`` skips the pool: ARI's answer alone). The line is freed
when the channel leaves the application (StasisEnd: Asterisk sends a ChannelDestroyed after it
only to an application subscribed to the channel).

bench/answer_latency.py ``--bare`` starts it (``python bench/bare_ari.py``) on the hotline's
ARI under its own Stasis application (``<stasis app>-bare``, dialled as the plain number +
``b``, or + ``n`` without the pool) and its private Redis, with a tenant key of its own;
bench/answer_profile.py ``--bare`` runs ``BareApp`` in-process against its fake Asterisk.

Usage (normally through answer_latency.py): ``BARE_ARI_PASSWORD=P bare_ari.py --ari URL
--user U --app NAME --redis URL``; prints ``ready`` once its websocket is up, stops on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.ari_app.client import AriClient  # noqa: E402
from callcenter.lines.redis import LinePool  # noqa: E402
from callcenter.redis_clients import RedisTarget, async_client  # noqa: E402

BARE_TENANT = "bench-bare"  # its own lines key: never the product's tenant's
BARE_LINES = 50


class BareApp:
    """The least any Python ARI application of this shape does (the issue's "bare ARI app"):
    the same websocket client and line pool, and for a StasisStart only the pool's Lua call
    and ``answer``, inline in the event loop (no routing, no call task, no state, no log);
    the line is freed at StasisEnd."""

    def __init__(self, ari: AriClient, pool: LinePool, tenant: str = BARE_TENANT) -> None:
        self.ari, self.pool, self.tenant = ari, pool, tenant
        self.connected = asyncio.Event()
        self.done: dict[str, asyncio.Event] = {}
        self.pooled: set[str] = set()
        self.answered = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bare-ari")

    async def _run(self) -> None:
        async with contextlib.aclosing(self.ari.events()) as events:
            async for event in events:
                kind = event["type"]
                if kind == "_Connected":
                    self.connected.set()
                elif kind == "StasisStart":
                    call_id = event["channel"]["id"]
                    self.done[call_id] = asyncio.Event()
                    if event["channel"].get("dialplan", {}).get("exten", "").endswith("n"):
                        await self.ari.answer(call_id)  # no pool: ARI's answer alone
                        self.answered += 1
                    elif await self.pool.acquire(self.tenant, call_id, BARE_LINES, "allday"):
                        self.pooled.add(call_id)
                        await self.ari.answer(call_id)
                        self.answered += 1
                elif kind == "StasisEnd":
                    call_id = event["channel"]["id"]
                    if call_id in self.pooled:
                        self.pooled.discard(call_id)
                        await self.pool.release(self.tenant, call_id)
                    self.done.pop(call_id, asyncio.Event()).set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = async_client(RedisTarget(args.redis), single_connection_client=True)
    await redis.ping()  # the connection open before the first call, as app.py has it
    pool = LinePool(redis, instance=f"bare-{args.app}", node="bare")
    async with aiohttp.ClientSession() as session:
        app = BareApp(AriClient(args.ari, args.user, args.password, args.app, session), pool)
        app.start()
        try:
            async with asyncio.timeout(30):
                await app.connected.wait()
        except TimeoutError:
            print("bare ARI app: not connected within 30 s", file=sys.stderr, flush=True)
            await app.close()
            return 1
        print("ready", flush=True)
        await stop.wait()
        await app.close()
    print(f"answered {app.answered}", flush=True)
    await redis.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ari", required=True, help="http://host:port of Asterisk's HTTP server")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default=os.environ.get("BARE_ARI_PASSWORD"),
                    help="(default: $BARE_ARI_PASSWORD, kept out of the process list)")
    ap.add_argument("--app", required=True, help="the Stasis application's name")
    ap.add_argument("--redis", required=True, help="the hotline's Redis URL")
    args = ap.parse_args(argv)
    if not args.password:
        ap.error("--password or $BARE_ARI_PASSWORD is required")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
