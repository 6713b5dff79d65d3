"""Redis behind Sentinel: what a failover costs the line pool (docs/sentinel.md).

A private Sentinel set (callcenter/runtime/sentinel.py: primary, replica, three sentinels on
loopback) and the app's line pool over the clients of callcenter/redis_clients.py:

1. Failover time, ``--rounds`` times spaced by 2 x failover-timeout, then once right after:
   SIGKILL of the primary -> every sentinel names the replica (promoted), and -> the pool's
   own client is answered again by the new primary (what decides how long an app instance
   stays DEGRADED). The killed node is started again between rounds (it rejoins as a
   replica).
2. The price of making each pool take synchronous to the replica (``WAIT 1 100`` after the
   acquire script, the choice left out, see the docs): latency of ``--takes`` acquire+release
   pairs without WAIT, with WAIT and the replica up, with WAIT and the replica down.

Exit status 0 when every failover finished within ``--max-failover`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import fmt_ms, log, machine_summary, median, percentile, table  # noqa: E402

from callcenter.lines.redis import LinePool  # noqa: E402
from callcenter.redis_clients import RedisTarget, async_client  # noqa: E402
from callcenter.runtime.sentinel import SentinelSet  # noqa: E402

TENANT = "bench"


async def failover_round(redis_set: SentinelSet, n: int) -> tuple[float, float]:
    """One kill; (seconds until promoted, seconds until the pool's client is answered)."""
    target = RedisTarget("", tuple(redis_set.sentinels), redis_set.master_name)
    client = async_client(target, single_connection_client=True, socket_timeout=2.0,
                          socket_connect_timeout=2.0)
    pool = LinePool(client, f"bench-{n}", "pbx1")
    try:
        await pool.heartbeat()
        old = redis_set.kill_primary()
        t0 = time.monotonic()
        promoted = asyncio.create_task(asyncio.to_thread(redis_set.wait_failover, old, 60.0))
        answered_s = None
        while answered_s is None:
            try:
                await pool.heartbeat()
                answered_s = time.monotonic() - t0
            except Exception:  # noqa: BLE001 - down or not yet promoted, as the app sees it
                await asyncio.sleep(0.02)
        await promoted
        promoted_s = time.monotonic() - t0
        # wait_failover polls every 50 ms; the client may be first: report the earlier edge.
        await asyncio.to_thread(redis_set.revive, old)
        return min(promoted_s, answered_s), answered_s
    finally:
        await client.aclose()


async def takes(redis_set: SentinelSet, count: int, wait: bool) -> list[float]:
    """Latency (ms) of acquire (+ WAIT 1 100 when ``wait``) + release, ``count`` times."""
    target = RedisTarget("", tuple(redis_set.sentinels), redis_set.master_name)
    client = async_client(target, single_connection_client=True, socket_timeout=2.0)
    pool = LinePool(client, "bench-takes", "pbx1")
    out: list[float] = []
    try:
        await pool.heartbeat()
        for i in range(count):
            t = time.perf_counter()
            await pool.acquire(TENANT, f"t{i}", 1000, "day")
            if wait:
                await client.wait(1, 100)
            out.append((time.perf_counter() - t) * 1000)
            await pool.release(TENANT, f"t{i}")
    finally:
        await client.aclose()
    return out


def stop_replica(redis_set: SentinelSet) -> None:
    """SIGSTOP the replica: it stays connected and acknowledges nothing."""
    master = redis_set.master()
    for port, proc in redis_set.procs.items():
        if port in redis_set.data_ports and master and port != master[1]:
            proc.send_signal(signal.SIGSTOP)


def cont_replica(redis_set: SentinelSet) -> None:
    for port, proc in redis_set.procs.items():
        if port in redis_set.data_ports:
            proc.send_signal(signal.SIGCONT)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--takes", type=int, default=2000)
    ap.add_argument("--down-after-ms", type=int, default=1000)
    ap.add_argument("--failover-timeout-ms", type=int, default=5000)
    ap.add_argument("--max-failover", type=float, default=10.0)
    args = ap.parse_args()
    print(f"machine: {machine_summary()}")
    folder = Path(tempfile.mkdtemp(prefix="hotline-sentinel-bench-"))
    redis_set = SentinelSet(folder, down_after_ms=args.down_after_ms,
                            failover_timeout_ms=args.failover_timeout_ms)
    redis_set.start()
    failures: list[str] = []
    try:
        rows = []
        # A sentinel that took part in a failover (as leader or voter) starts no other for the
        # same master within 2 x failover-timeout: rounds are spaced by that much, and one
        # more round right after the last shows what a second failure that soon costs.
        spacing = 2 * args.failover_timeout_ms / 1000 + 1
        for n in range(args.rounds + 1):
            soon = n == args.rounds
            promoted_s, answered_s = await failover_round(redis_set, n)
            log(f"round {n + 1}{' (back to back)' if soon else ''}: promoted after "
                f"{promoted_s:.2f} s, pool answered after {answered_s:.2f} s")
            rows.append((f"{n + 1}{' (right after the previous)' if soon else ''}",
                         f"{promoted_s:.2f} s", f"{answered_s:.2f} s"))
            if answered_s > args.max_failover and not soon:
                failures.append(f"round {n + 1}: {answered_s:.1f} s > {args.max_failover} s")
            if n < args.rounds - 1:
                await asyncio.sleep(spacing)
        print(f"\nfailover, down-after-milliseconds {args.down_after_ms}, failover-timeout "
              f"{args.failover_timeout_ms} (rounds {spacing:.0f} s apart, the last at once):")
        print(table(["round", "sentinels agree", "pool client answered"], rows))
        series = {"acquire": await takes(redis_set, args.takes, wait=False),
                  "acquire + WAIT 1 100": await takes(redis_set, args.takes, wait=True)}
        stop_replica(redis_set)
        try:
            series["acquire + WAIT 1 100, replica stalled"] = await takes(
                redis_set, min(args.takes, 30), wait=True)
        finally:
            cont_replica(redis_set)
        print("\nline pool take latency (single connection, loopback):")
        print(table(["series", "n", "median", "p99"],
                    [(k, len(v), fmt_ms(median(v)), fmt_ms(percentile(v, 99)))
                     for k, v in series.items()]))
    finally:
        cont_replica(redis_set)
        redis_set.stop()
    print()
    print("RESULT: " + ("FAIL — " + "; ".join(failures) if failures else "PASS"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
