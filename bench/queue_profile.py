"""Issue 20 — P5's path in the app, in CPU time: greeting over -> the operator's phone is rung.

The same harness as bench/answer_profile.py (the product's StasisService and call tasks, the
real ARI client over a stand-in Asterisk, the line pool, and here the operators' queue:
``AcdQueue`` in the same private Redis and the ``QueueDriver`` that makes offers), with the
tenant of bench/queue_ring.py: four operators (logged in, reachable), wrap-up 0, no
announcements. One caller at a time: StasisStart, answer, greeting; then the greeting's
PlaybackFinished starts the window (P5's clock starts at MusicOnHoldStart, our first request
after it) and the originate of the operator's leg "<call>-op1" ends it: music on hold, the
queue entry, the driver's offer, the offer to the call's task, the state write, the originate.
The caller then hangs up while the phone rings (the offer is withdrawn, the operator free).

Per call: the app thread's CPU in that window (no probes), and with ``--steps`` per step
(exclusive CPU of the wrapped functions, as answer_profile), the Redis commands and ARI
requests of the whole call, and the asyncio loop turns in the window.

Usage: ``.venv/bin/python bench/queue_profile.py [--calls 300] [--warmup 30] [--steps]``
(~20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from answer_profile import (  # noqa: E402
    APP,
    NODE,
    FakeAsterisk,
    Steps,
    _channel,
    _event,
    _playback,
    instrument,
    private_redis_quietly,
    us,
)
from common import (  # noqa: E402
    TENANT,
    bench_config,
    measure_calls,
    table,
    told_when_requested,
)

from callcenter import app  # noqa: E402
from callcenter import calls as cm  # noqa: E402
from callcenter.ari_app.calls import CallDeps  # noqa: E402
from callcenter.ari_app.client import AriClient  # noqa: E402
from callcenter.ari_app.service import StasisService  # noqa: E402
from callcenter.config.parse import parse_config  # noqa: E402
from callcenter.lines.fallback import ResilientPool  # noqa: E402
from callcenter.lines.redis import LinePool  # noqa: E402
from callcenter.queue import agent as ag  # noqa: E402
from callcenter.queue.driver import QueueDriver  # noqa: E402
from callcenter.queue.redis import AcdQueue  # noqa: E402
from callcenter.redis_clients import RedisTarget, async_client, blocking_pool  # noqa: E402

OPERATORS = ("101", "102", "103", "104")
NO_SHARED_TIMEOUT = "--no-shared-timeout" in sys.argv


def tenant_extra() -> dict[str, Any]:
    """bench/queue_ring.py's tenant: four operators, no announcements, wrap-up 0."""
    return {
        "prompts": {"greeting": "Xin chào."},
        "operators": [{"extension": ext, "name": f"Tổng đài viên {ext}",
                       "secret_env": f"HOTLINE_OP_{ext}"} for ext in OPERATORS],
        "queue": {"ring_timeout_s": 15, "retry_s": 5, "wrap_up_s": 0, "max_wait_s": 3600,
                  "announce_every_s": 0, "callback_offer": False},
    }


async def run_pass(redis_url: str, calls: int, warmup: int,
                   steps: Steps) -> dict[str, Any]:
    fake = FakeAsterisk()
    fake.app_thread = threading.get_ident()
    fake.start()
    config = parse_config(bench_config(sip_port=5060, ari_port=fake.port, ami_port=5038,
                                       http_port=8088, rtp=(32000, 32100), lines=50,
                                       tenant_extra=tenant_extra()), "queue_profile")
    target = RedisTarget(redis_url)
    import inspect
    in_pool = "timeout_s" in inspect.signature(LinePool).parameters
    pool_client = async_client(
        target, single_connection_client=True, socket_connect_timeout=app.REDIS_CONNECT_S,
        socket_timeout=None if in_pool else app.REDIS_POOL_TIMEOUT_S)
    # redis-py 8 gives every connection a 5 s socket_timeout unless told otherwise, and sent
    # each command of such a connection through asyncio.wait_for (a task, two loop turns):
    # --no-shared-timeout (no timeout at all) is how that was found; redis_clients now sends
    # without the task and keeps the timeout, so both give the same turns.
    extra = {"socket_timeout": None} if NO_SHARED_TIMEOUT else {}
    shared = blocking_pool(target, max_connections=app.REDIS_CONNECTIONS,
                           timeout=app.REDIS_WAIT_S, driver_info=None,
                           socket_connect_timeout=app.REDIS_CONNECT_S, **extra)
    client = aioredis.Redis(connection_pool=shared)
    await app.warm_up(shared, app.REDIS_WARM_CONNECTIONS)
    stats = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    session = aiohttp.ClientSession()
    ari = AriClient(f"http://127.0.0.1:{fake.port}", "u", "p", APP, session)
    line_pool = LinePool(pool_client, instance=f"{NODE}-profile", node=NODE,
                         **({"timeout_s": app.REDIS_POOL_TIMEOUT_S} if in_pool else {}))
    pool = ResilientPool(line_pool)
    await line_pool.heartbeat()
    acd = AcdQueue(client, pool.instance, NODE)
    await app.apply_queue_config(acd, config)
    for ext in OPERATORS:
        await acd.agent_event(TENANT, ext, ag.LogIn())
        await acd.agent_event(TENANT, ext, ag.Reachable())
    sessions: dict[str, Any] = {}
    driver = QueueDriver(acd, client, sessions, lambda: config)
    records: list[cm.CallState] = []

    async def write_record(state: cm.CallState) -> None:
        records.append(state)

    deps = CallDeps(ari=ari, pool=pool, redis=client, sounds_dir="/var/lib/hotline/sounds",
                    write_record=write_record, acd=acd, kick=driver.kick)
    service = StasisService(ari, deps, lambda: config, sessions=sessions)
    driver.start()
    service.start()
    while not service.connected.is_set():
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    turns = [0]
    counting = [False]
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        if counting[0]:
            turns[0] += 1
        run_once()

    loop._run_once = counted  # type: ignore[attr-defined]
    window: list[int] = []
    window_turns: list[int] = []

    async def one_call(call_id: str, measured: bool) -> None:
        answered = told_when_requested(fake, call_id)
        fake.send([_event("StasisStart", _channel(call_id), args=[])])
        await answered
        await asyncio.sleep(0.005)  # the greeting's play request, its PlaybackStarted
        rung = told_when_requested(fake, call_id)  # now: the operator leg's originate
        turns[0] = 0
        counting[0] = True
        steps.p1 = steps.on  # (the P5 window here)
        fake.send([_event("PlaybackFinished", playback={
            **_playback(f"{call_id}~p1", call_id), "state": "done"})], call_id)
        await rung
        counting[0] = False
        if measured:
            window.append(fake.p1_total_ns.pop(call_id))
            window_turns.append(turns[0])
        else:
            fake.p1_total_ns.pop(call_id, None)
        await asyncio.sleep(0.003)
        task = sessions[call_id].task
        ch, leg = _channel(call_id, "Up"), _channel(f"{call_id}-op1", "Ringing")
        fake.send([_event("ChannelHangupRequest", ch, cause=16), _event("StasisEnd", ch),
                   _event("ChannelDestroyed", ch, cause=16, cause_txt="Normal Clearing"),
                   _event("ChannelDestroyed", leg, cause=16, cause_txt="Normal Clearing")])
        await asyncio.wait([task])
        await asyncio.sleep(0.003)  # the operator freed (offer withdrawn) before the next

    result = await measure_calls(fake, stats, steps, calls=calls, warmup=warmup,
                                 first_id="1765200000.1", call=one_call)
    loop._run_once = run_once  # type: ignore[attr-defined]
    await service.close()
    await driver.close()
    await session.close()
    for r in (pool_client, client, stats):
        await r.aclose()
    await shared.disconnect()
    fake.stop()
    if len(records) != warmup + calls:
        raise SystemExit(f"{len(records)} call records for {warmup + calls} calls")
    rung_calls = sum(1 for r in records if r.legs >= 1)
    if rung_calls != warmup + calls:
        raise SystemExit(f"only {rung_calls} of {warmup + calls} calls rang an operator")
    return {"window": window, "turns": window_turns, "cmds": result.redis_cmds,
            "ari": result.ari, "steps": steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--steps", action="store_true")
    ap.add_argument("--no-shared-timeout", action="store_true",
                    help="experiment: the shared Redis client without any socket_timeout "
                         "(not what app.py does)")
    args = ap.parse_args()
    with private_redis_quietly("hotline-qprofile-", args.log_level) as url:
        base = asyncio.run(run_pass(url, args.calls, args.warmup, Steps()))
        probed = None
        if args.steps:
            steps = Steps()
            instrument(steps)
            probed = asyncio.run(run_pass(url, args.calls, args.warmup, steps))
    w = base["window"]
    out = [f"calls: {args.calls} (one at a time), log level {args.log_level}", ""]
    out.append(table(["greeting over -> operator's leg originated", "median", "mean", "p95"], [
        ["app thread CPU, µs", us(statistics.median(w)), us(statistics.mean(w)),
         us(sorted(w)[int(len(w) * 0.95) - 1])],
        ["asyncio loop turns", statistics.median(base["turns"]),
         f"{statistics.mean(base['turns']):.1f}", "-"]]))
    if probed is not None:
        s: Steps = probed["steps"]
        n = len(probed["window"])
        rows = [[name, us(total / n)] for name, total in s.totals.most_common()]
        rows.append(["**whole call, probed steps**", us(sum(s.totals.values()) / n)])
        out += ["", "Per step, the whole call, exclusive CPU (functions wrapped):", ""]
        out.append(table(["step", "µs per call"], rows))
        window_probed = statistics.mean(probed["window"])
        rows = [[name, us(total / n)] for name, total in s.p1_totals.most_common()]
        rows.append(["loop and rest (total minus steps)",
                     us(window_probed - sum(s.p1_totals.values()) / n)])
        rows.append(["**window total, probed**", us(window_probed)])
        out += ["", "Per step, greeting over -> operator's leg originated, exclusive CPU:", ""]
        out.append(table(["step", "µs per call"], rows))
    out += ["", "Redis commands per call (whole call; inside Lua scripts too):", ""]
    cmds = base["cmds"]
    out.append(table(["command", "per call", "µs in Redis per call"],
                     [[k, f"{v / args.calls:.2f}", f"{cmds.get(k + ' µs', 0) / args.calls:.1f}"]
                      for k, v in sorted(cmds.items()) if not k.endswith(" µs")
                      and k != "info"]))
    out += ["", "ARI requests per call:", ""]
    out.append(table(["request", "per call"],
                     [[k, f"{v / args.calls:.2f}"] for k, v in sorted(base["ari"].items())]))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
