"""Issue 20 — where the app's own time goes on the answer path (P1), per step, in CPU time.

A wall-clock benchmark (bench/answer_latency.py) needs an idle machine; this one does not: it
counts the CPU time of the app's event-loop thread (``CLOCK_THREAD_CPUTIME_ID``), which other
processes on the machine do not change much (caches and frequency aside).

It drives the product's own code in one process: ``StasisService`` with its ``CallSession``s,
the real ``AriClient`` (REST over the event websocket, as in production), the real line pool
(``ResilientPool`` over ``LinePool``, Lua in a private ``redis-server`` on a unix socket, one
already open connection as app.py gives it), the call state shared in the same Redis, logging
through the product's queue thread (``cli._setup_logging``) at INFO, and the P1 benchmark's
config (tenant dongnai, 1022, one whole-day shift, no menus: greeting then hold). Asterisk is
replaced by a small ARI websocket server in a thread of its own (its CPU is not counted): it
sends each call's events as Asterisk 22 does (StasisStart; ChannelStateChange, PlaybackStarted
after the answer and the greeting; ChannelHangupRequest, PlaybackFinished, StasisEnd,
ChannelDestroyed at the caller's BYE) and answers every REST request at once.

Calls are placed one at a time (nothing else runs), so for each call:

* **P1 total** = the app thread's CPU clock read (from the server's thread) just before the
  StasisStart is sent, and again once the ``answer`` request has arrived and the app waits for
  its response (idle): everything the app did before the caller can be answered.
* **per step** (a second pass, ``--steps``): the product's functions are wrapped; each wrapped
  function's CPU (its own, not that of wrapped functions it calls; a coroutine only while it
  runs, not while it waits) is summed per step: event decode (``json.loads`` of the event),
  dispatch, routing (tenant, shift, new state), session + task creation, call machine
  (``calls.step``), pool call (``ResilientPool.acquire``: the redis-py command, Lua reply),
  logging (``Logger._log``: record, formatting, the queue), the ``answer`` request (request id,
  JSON, websocket frame), state write (``CallSession._persist``), other ARI requests. "loop and
  rest" is the P1 total minus the steps: asyncio's scheduling (the reader task, the event
  queue, the call's task start), aiohttp's frame reading, the wrappers' own cost.
* the whole call's CPU (arrival to the last event) and its Redis commands (INFO commandstats)
  and ARI requests, per call.

* with ``--bare``, the same P1 total for a bare ARI application (``BareApp``: the same client
  and pool, only the Lua call and ``answer``): the floor of this design in Python.

Usage: ``.venv/bin/python bench/answer_profile.py [--calls 400] [--warmup 50] [--steps]
[--bare] [--log-level INFO]`` (about 20 s). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_ari import BareApp  # noqa: E402
from common import (  # noqa: E402
    TENANT,
    Measured,
    bench_config,
    measure_calls,
    table,
    told_when_requested,
)

from callcenter import (
    app,  # noqa: E402
    cli,  # noqa: E402
)
from callcenter import calls as cm  # noqa: E402
from callcenter.ari_app import client as ari_client  # noqa: E402
from callcenter.ari_app.calls import CallDeps, CallSession  # noqa: E402
from callcenter.ari_app.client import AriClient  # noqa: E402
from callcenter.ari_app.service import StasisService  # noqa: E402
from callcenter.config.parse import parse_config  # noqa: E402
from callcenter.lines.fallback import ResilientPool  # noqa: E402
from callcenter.lines.redis import LinePool  # noqa: E402
from callcenter.queue.driver import QueueDriver  # noqa: E402
from callcenter.queue.redis import AcdQueue  # noqa: E402
from callcenter.redis_clients import RedisTarget, async_client, blocking_pool  # noqa: E402
from callcenter.runtime.redis_server import PrivateRedis  # noqa: E402

APP = "hotline-bench"
NODE = "benchpbx"


def thread_cpu_ns(ident: int) -> int:
    """The CPU time of another thread of this process (Linux: its per-thread clock)."""
    return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))


# ---- the stand-in for Asterisk ------------------------------------------------------------------
class FakeAsterisk:
    """An ARI websocket (events + REST over the websocket) in its own thread and event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ws: web.WebSocketResponse | None = None
        self.requests: list[tuple[str, str]] = []
        self.connected = threading.Event()
        self.answered: dict[str, Callable[[], Any]] = {}  # call id -> told once answered
        self.app_thread = 0  # ident of the app's thread (to read its CPU clock)
        self.p1_cpu_ns: dict[str, int] = {}  # call id -> app thread CPU before StasisStart
        self.p1_total_ns: dict[str, int] = {}
        self.answer_delay_s = 0.002  # let the app go idle before the answer's response
        self._thread = threading.Thread(target=self._run, name="fake-asterisk", daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.ws = ws
        self.connected.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "RESTRequest":
                await self._rest(ws, data)
        return ws

    async def _rest(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        method, uri = data["method"], data["uri"].split("?", 1)[0]
        self.requests.append((method, uri))
        status, body = 204, ""
        if method == "GET" and uri == f"applications/{APP}":
            status, body = 200, json.dumps({"name": APP, "channel_ids": []})
        elif method == "GET" and uri.startswith("applications/"):
            status, body = 404, '{"message": "Application not found"}'
        elif method == "GET" and uri == "channels":
            status, body = 200, "[]"
        elif method == "GET" and uri == "asterisk/info":
            status, body = 200, json.dumps({"status": {"startup_time": "2026-12-07T09:00:00"}})
        elif method == "POST" and "/play/" in uri:
            status, body = 201, json.dumps({"id": uri.rsplit("/", 1)[1], "state": "queued"})
        ends = window_end(method, uri)
        if ends is not None:
            await asyncio.sleep(self.answer_delay_s)  # the app waits, idle, for this response
            if ends in self.p1_cpu_ns:
                self.p1_total_ns[ends] = (thread_cpu_ns(self.app_thread)
                                          - self.p1_cpu_ns.pop(ends))
        await ws.send_str(json.dumps({
            "type": "RESTResponse", "request_id": data["request_id"], "status_code": status,
            "reason_phrase": "OK", "uri": data["uri"],
            "content_type": "application/json" if body else "", "message_body": body}))
        if ends is not None:
            told = self.answered.pop(ends, None)
            if told is not None:
                told()
        if uri.endswith("/answer"):
            await self._send(_event("ChannelStateChange", _channel(uri.split("/")[1], "Up")))
        elif method == "POST" and "/play/" in uri:
            call_id, playback = uri.split("/")[1], uri.rsplit("/", 1)[1]
            await self._send(_event("PlaybackStarted", playback=_playback(playback, call_id)))

    async def _send(self, event: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(event))

    def send(self, events: list[dict[str, Any]], measure: str | None = None) -> None:
        """Send events in order, from the server's thread (nothing of it runs on the app's
        loop); ``measure``: note the app's CPU clock first."""
        async def go() -> None:
            if measure is not None:
                self.p1_cpu_ns[measure] = thread_cpu_ns(self.app_thread)
            for event in events:
                await self._send(event)
        asyncio.run_coroutine_threadsafe(go(), self.loop)

    def stop(self) -> None:
        async def down() -> None:
            if self.ws is not None:
                await self.ws.close()
            if self._runner is not None:
                await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


_T = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC).isoformat()


def window_end(method: str, uri: str) -> str | None:
    """The call whose measured window a request ends: its ``answer`` (P1), or the originate
    of its first operator leg "<call>-op1" (P5, bench/queue_profile.py)."""
    parts = uri.split("/")
    if method == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "answer":
        return parts[1]
    if method == "POST" and len(parts) == 2 and parts[0] == "channels" \
            and parts[1].endswith("-op1"):
        return parts[1].removesuffix("-op1")
    return None


def _channel(call_id: str, state: str = "Ring") -> dict[str, Any]:
    """A channel as Asterisk 22 describes a trunk call to 1022."""
    return {"id": call_id, "name": f"PJSIP/trunk-{zlib.crc32(call_id.encode()):08x}",
            "state": state, "protocol_id": f"{call_id}-sipp@127.0.0.1",
            "caller": {"name": "", "number": "0912345678"},
            "connected": {"name": "", "number": ""}, "accountcode": "",
            "dialplan": {"context": "from-trunk", "exten": "1022", "priority": 2,
                         "app_name": "Stasis", "app_data": APP},
            "creationtime": _T, "language": "vi", "linkedid": call_id,
            "tenantid": ""}


def _playback(playback_id: str, call_id: str) -> dict[str, Any]:
    return {"id": playback_id, "media_uri": "sound:/x/greeting", "target_uri": f"channel:{call_id}",
            "language": "vi", "state": "playing"}


def _event(kind: str, channel: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "timestamp": _T, "asterisk_id": "02:42:ac:11:00:02",
                             "application": APP}
    if channel is not None:
        event["channel"] = channel
    event.update(extra)
    return event


# ---- per-step CPU accounting ------------------------------------------------------------------
class Steps:
    """Exclusive CPU per step: a wrapped function's time minus that of wrapped ones inside it."""

    def __init__(self) -> None:
        self.totals: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self.p1_totals: collections.Counter[str] = collections.Counter()
        self._stack: list[list[int]] = []  # per open segment: [children ns]
        self.on = False
        self.p1 = False  # between StasisStart sent and `answer` sent

    @contextlib.contextmanager
    def segment(self, step: str) -> Iterator[None]:
        if not self.on:
            yield
            return
        self._stack.append([0])
        t0 = time.thread_time_ns()
        try:
            yield
        finally:
            spent = time.thread_time_ns() - t0
            children = self._stack.pop()[0]
            self.totals[step] += spent - children
            self.counts[step] += 1
            if self.p1:
                self.p1_totals[step] += spent - children
                if step in ("answer request", "originate request"):
                    self.p1 = False  # the window's last step (P1; P5 in queue_profile)
            if self._stack:
                self._stack[-1][0] += spent

    def sync(self, step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with self.segment(step):
                return fn(*a, **kw)
        return wrapper

    def coro(self, step: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        """A coroutine function whose every run between two awaits is a segment of ``step``."""
        steps = self

        class Timed:
            def __init__(self, inner: Any, name: str) -> None:
                self.inner, self.name = inner, name

            def __await__(self) -> Any:
                it = self.inner.__await__()
                value: Any = None
                exc: BaseException | None = None
                while True:
                    with steps.segment(self.name):
                        try:
                            yielded = it.throw(exc) if exc is not None else it.send(value)
                        except StopIteration as stop:
                            return stop.value
                    exc = None
                    try:
                        value = yield yielded
                    except BaseException as e:  # noqa: BLE001 - handed to the inner coroutine
                        exc, value = e, None

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            name = step(*a, **kw) if callable(step) else step
            return Timed(fn(*a, **kw), name)
        return wrapper


def instrument(steps: Steps) -> None:
    """Wrap the product's functions, one step each (this process only)."""
    class Json:
        dumps = staticmethod(json.dumps)
        loads = staticmethod(steps.sync("event decode", json.loads))
    ari_client.json = Json  # type: ignore[assignment]
    ss = StasisService
    ss.dispatch = steps.coro("dispatch", ss.dispatch)  # type: ignore[method-assign]
    ss._on_new_call = steps.sync("routing", ss._on_new_call)  # type: ignore[method-assign]
    ss._spawn = steps.sync("session + task creation", ss._spawn)  # type: ignore[method-assign]
    CallSession.__init__ = steps.sync(  # type: ignore[method-assign]
        "session + task creation", CallSession.__init__)
    cm.step = steps.sync("call machine", cm.step)
    ResilientPool.acquire = steps.coro(  # type: ignore[method-assign]
        "pool call (Redis Lua)", ResilientPool.acquire)
    ResilientPool.release = steps.coro(  # type: ignore[method-assign]
        "pool release (Redis Lua)", ResilientPool.release)
    CallSession._persist = steps.coro("state write", CallSession._persist)  # type: ignore[method-assign]
    CallSession._apply = steps.coro("call task (apply, execute)", CallSession._apply)  # type: ignore[method-assign]
    logging.Logger._log = steps.sync("logging", logging.Logger._log)  # type: ignore[method-assign]

    def which(self: AriClient, method: str, path: str, **params: Any) -> str:
        ends = window_end(method, path.lstrip("/"))
        if ends is None:
            return "other ARI requests"
        return "answer request" if path.endswith("/answer") else "originate request"
    AriClient.request = steps.coro(which, AriClient.request)  # type: ignore[method-assign]
    if hasattr(AriClient, "send"):  # (not before 2026-12-07: older commits profiled too)
        AriClient.send = steps.coro(which, AriClient.send)  # type: ignore[method-assign]
    # The operators' queue (bench/queue_profile.py): its scripts and the offer loop.
    for name in ("enqueue", "enqueue_offer", "dequeue", "offer_next", "call_ended",
                 "no_answer"):
        if hasattr(AcdQueue, name):
            setattr(AcdQueue, name, steps.coro("queue (Redis Lua)", getattr(AcdQueue, name)))
    timed_loop = steps.coro("queue driver (offer loop)", QueueDriver._offer_loop)

    async def offer_loop(self: QueueDriver) -> None:  # create_task wants a coroutine
        await timed_loop(self)
    QueueDriver._offer_loop = offer_loop  # type: ignore[method-assign]


# ---- the run ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Pass:
    p1_ns: list[int]
    call_ns: list[int]
    steps: Steps
    measured: Measured


async def run_pass(redis_url: str, calls: int, warmup: int, steps: Steps,
                   bare: bool = False) -> Pass:
    fake = FakeAsterisk()
    fake.app_thread = threading.get_ident()
    fake.start()
    config = parse_config(bench_config(sip_port=5060, ari_port=fake.port, ami_port=5038,
                                       http_port=8088, rtp=(32000, 32100), lines=50),
                          "answer_profile")
    # The Redis clients as app.py makes them: the pool's own single connection with its
    # timeouts, the shared client over a bounded pool of warm connections.
    target = RedisTarget(redis_url)
    # (Since issue 20 the scripts' timeout is LinePool's, before it the client's.)
    pool_timeout_in_pool = "timeout_s" in inspect.signature(LinePool).parameters
    pool_client = async_client(
        target, single_connection_client=True, socket_connect_timeout=app.REDIS_CONNECT_S,
        socket_timeout=None if pool_timeout_in_pool else app.REDIS_POOL_TIMEOUT_S)
    shared = blocking_pool(target, max_connections=app.REDIS_CONNECTIONS,
                           timeout=app.REDIS_WAIT_S, driver_info=None,
                           socket_connect_timeout=app.REDIS_CONNECT_S)
    client = aioredis.Redis(connection_pool=shared)
    await app.warm_up(shared, app.REDIS_WARM_CONNECTIONS)
    stats = aioredis.Redis.from_url(redis_url)
    session = aiohttp.ClientSession()
    ari = AriClient(f"http://127.0.0.1:{fake.port}", "u", "p", APP, session)
    line_pool = LinePool(pool_client, instance=f"{NODE}-profile", node=NODE,
                         **({"timeout_s": app.REDIS_POOL_TIMEOUT_S} if pool_timeout_in_pool
                            else {}))
    pool = ResilientPool(line_pool)
    await client.ping()
    await line_pool.heartbeat()
    records: list[cm.CallState] = []

    async def write_record(state: cm.CallState) -> None:
        records.append(state)

    deps = CallDeps(ari=ari, pool=pool, redis=client, sounds_dir="/var/lib/hotline/sounds",
                    write_record=write_record)
    service: StasisService | BareApp = (BareApp(ari, line_pool, TENANT) if bare
                                        else StasisService(ari, deps, lambda: config))
    service.start()
    while not service.connected.is_set():
        await asyncio.sleep(0.01)
    p1: list[int] = []
    whole: list[int] = []

    async def one_call(call_id: str, measured: bool) -> None:
        answered = told_when_requested(fake, call_id)
        cpu0 = time.thread_time_ns()
        steps.p1 = steps.on
        fake.send([_event("StasisStart", _channel(call_id), args=[])], call_id)
        await answered
        await asyncio.sleep(0.005)  # greeting playback request and its event
        if isinstance(service, BareApp):
            ended: asyncio.Future[Any] = asyncio.ensure_future(service.done[call_id].wait())
        else:
            task = service.sessions[call_id].task
            assert task is not None
            ended = task
        ch = _channel(call_id, "Up")
        fake.send([
            _event("ChannelHangupRequest", ch, cause=16),
            _event("PlaybackFinished",
                   playback={**_playback(f"{call_id}~p1", call_id), "state": "done"}),
            _event("StasisEnd", ch),
            _event("ChannelDestroyed", ch, cause=16, cause_txt="Normal Clearing")])
        await asyncio.wait([ended])
        if measured:
            whole.append(time.thread_time_ns() - cpu0)
            p1.append(fake.p1_total_ns.pop(call_id))
        else:
            fake.p1_total_ns.pop(call_id, None)

    result = await measure_calls(fake, stats, steps, calls=calls, warmup=warmup,
                                 first_id="1765100000.1", call=one_call)
    await service.close()
    await session.close()
    for r in (pool_client, client, stats):
        await r.aclose()
    await shared.disconnect()
    fake.stop()
    if not bare and len(records) != warmup + calls:
        raise SystemExit(f"{len(records)} call records for {warmup + calls} calls")
    return Pass(p1, whole, steps, result)


@contextlib.contextmanager
def private_redis_quietly(prefix: str, log_level: str) -> Iterator[str]:
    """A private redis-server on a unix socket (its URL) for the passes, the product's logging
    set up at ``log_level`` with its stderr sent to /dev/null meanwhile."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        redis = PrivateRedis(Path(tmp) / "redis.sock")
        redis.start()
        devnull = open(os.devnull, "w")  # noqa: SIM115 - the log thread writes here
        real_stderr = sys.stderr
        try:
            sys.stderr = devnull
            cli._setup_logging(log_level)
            yield redis.url
        finally:
            sys.stderr = real_stderr
            redis.stop()
            devnull.close()


def us(ns: float) -> str:
    return f"{ns / 1000:.1f}"


P1_STEPS = ("event decode", "dispatch", "routing", "session + task creation",
            "call task (apply, execute)", "call machine", "pool call (Redis Lua)", "logging",
            "answer request")


def report(base: Pass, probed: Pass | None, floor: Pass | None, calls: int,
           log_level: str) -> str:
    out = [f"calls: {calls} (one at a time), log level {log_level}, Python "
           f"{sys.version.split()[0]}, pid {os.getpid()}", ""]
    rows = [["P1: StasisStart -> `answer` sent (app thread CPU, no probes)",
             us(statistics.median(base.p1_ns)), us(statistics.mean(base.p1_ns)),
             us(sorted(base.p1_ns)[int(len(base.p1_ns) * 0.95) - 1])],
            ["whole call: arrival .. last event (incl. the P1 part)",
             us(statistics.median(base.call_ns)), us(statistics.mean(base.call_ns)),
             us(sorted(base.call_ns)[int(len(base.call_ns) * 0.95) - 1])]]
    if floor is not None:
        rows.append(["P1 of a bare ARI app (BareApp: pool + `answer` only)",
                     us(statistics.median(floor.p1_ns)), us(statistics.mean(floor.p1_ns)),
                     us(sorted(floor.p1_ns)[int(len(floor.p1_ns) * 0.95) - 1])])
    out.append(table(["app thread CPU per call", "median µs", "mean µs", "p95 µs"], rows))
    if probed is not None:
        s = probed.steps
        n = len(probed.p1_ns)
        out += ["", "Per step, whole call, exclusive CPU (second pass, functions wrapped):", ""]
        step_rows = [[name, us(total / n), f"{s.counts[name] / n:.1f}"]
                     for name, total in s.totals.most_common()]
        probed_total = statistics.mean(probed.call_ns)
        rest = probed_total - sum(s.totals.values()) / n
        step_rows.append(["loop and rest (total minus steps)", us(rest), "-"])
        step_rows.append(["**whole call, probed**", us(probed_total), "-"])
        out.append(table(["step", "µs per call", "runs per call"], step_rows))
        out += ["", "Per step, P1 only (StasisStart -> `answer` sent), exclusive CPU:", ""]
        p1_rows = [[name, us(s.p1_totals[name] / n)] for name in P1_STEPS]
        p1_probed = statistics.mean(probed.p1_ns)
        p1_rows.append(["loop and rest (total minus steps)",
                        us(p1_probed - sum(s.p1_totals.values()) / n)])
        p1_rows.append(["**P1 total, probed**", us(p1_probed)])
        out.append(table(["step", "µs per call"], p1_rows))
    out += ["", "Redis commands per call (INFO commandstats; those inside Lua scripts too), "
            "and Redis's own time for them:", ""]
    cmds = base.measured.redis_cmds
    out.append(table(["command", "per call", "µs in Redis per call"],
                     [[k, f"{v / calls:.2f}", f"{cmds.get(k + ' µs', 0) / calls:.1f}"]
                      for k, v in sorted(cmds.items()) if not k.endswith(" µs")
                      and k != "info"]))
    out += ["", "ARI requests per call:", ""]
    out.append(table(["request", "per call"],
                     [[k, f"{v / calls:.2f}"] for k, v in sorted(base.measured.ari.items())]))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--steps", action="store_true", help="also the per-step pass")
    ap.add_argument("--bare", action="store_true",
                    help="also the floor: a bare ARI application (BareApp) on the same parts")
    args = ap.parse_args()
    with private_redis_quietly("hotline-profile-", args.log_level) as url:
        base = asyncio.run(run_pass(url, args.calls, args.warmup, Steps()))
        floor = None
        if args.bare:
            floor = asyncio.run(run_pass(url, args.calls, args.warmup, Steps(), bare=True))
        probed = None
        if args.steps:
            steps = Steps()
            instrument(steps)
            probed = asyncio.run(run_pass(url, args.calls, args.warmup, steps))
    print(report(base, probed, floor, args.calls, args.log_level))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
