"""P8 — what one wallboard update costs as the day fills up: SQLite and PostgreSQL side by side.

Every update of a tenant's wallboard (debounced to at most two a second while events arrive,
and every 5 s) reads the day's finished call records (whole once every ``FULL_READ_S`` and
at midnight, otherwise only those written in the last ``RECORDS_OVERLAP``), the calls in
progress from Redis, and builds the figures (``callcenter.wallboard.http``:
``records_between``, ``live_calls``, ``build_state``). This measures those parts, through
product code, for a day holding
``--records`` finished calls (arrivals spread over the local day so far; a third of them
queued and answered) with ``--live`` calls in progress (each holding a line, its state in a
private Redis), ``--repeat`` times each. Đồng Nai's seeds: 15 lines by day; a busy day is
1 000–3 000 calls.

    .venv/bin/python bench/wallboard_state.py [--records 0,1000,3000,10000] [--live 15]
        [--repeat 30] [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    fmt_ms,
    log,
    machine_summary,
    percentile,
    postgres_database,
    table,
)

from callcenter.calls import CallState, Phase  # noqa: E402
from callcenter.calls.codec import CALL_KEY, state_to_json  # noqa: E402
from callcenter.config.file import load_config  # noqa: E402
from callcenter.config.model import Tenant  # noqa: E402
from callcenter.lines.redis import LinePool  # noqa: E402
from callcenter.runtime.redis_server import PrivateRedis  # noqa: E402
from callcenter.store.migrate import upgrade_head  # noqa: E402
from callcenter.store.models import CallRecord  # noqa: E402
from callcenter.store.records import CallRecordStore  # noqa: E402
from callcenter.wallboard.http import (  # noqa: E402
    FULL_READ_S,
    RECORDS_OVERLAP,
    build_state,
    live_calls,
    records_between,
)
from callcenter.wallboard.kpis import local_day_bounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def add_records(store: CallRecordStore, tenant: Tenant, now: dt.datetime, first: int,
                count: int, rng: random.Random) -> None:
    """``count`` finished calls of today (before ``now``), in one transaction."""
    start, _ = local_day_bounds(tenant.timezone, now)
    span = max((now - start).total_seconds() - 600, 1.0)
    rows: list[dict[str, Any]] = []
    for n in range(first, first + count):
        arrived = start + dt.timedelta(seconds=rng.uniform(0, span))
        queued = n % 3 == 0
        rows.append({
            "id": f"pbx1:bench-{n}", "node": "pbx1", "tenant": tenant.id, "dialled": "1022",
            "caller": f"09{n:08d}", "shift": "day", "pool_limit": 15, "arrived_at": arrived,
            "answered_at": arrived, "ended_at": arrived + dt.timedelta(seconds=90),
            "outcome": "answered" if queued else "abandoned", "linkedid": f"bench-{n}",
            "queued_at": arrived + dt.timedelta(seconds=20) if queued else None,
            "bridged_at": arrived + dt.timedelta(seconds=20 + rng.uniform(1, 40))
            if queued else None,
            "talk_ended_at": arrived + dt.timedelta(seconds=85) if queued else None,
            "operator": "101" if queued else None, "wrap_up_s": 10 if queued else None,
            "created_at": arrived + dt.timedelta(seconds=90)})  # written as the call ended
    if rows:
        with store.engine.begin() as conn:
            conn.execute(sa.insert(CallRecord.__table__), rows)


async def add_live(redis: aioredis.Redis, tenant: Tenant, now: dt.datetime, count: int) -> None:
    """``count`` calls in progress: a line each, half of them talking with an operator."""
    pool = LinePool(redis, "bench", "pbx1")
    for n in range(count):
        call_id = f"live-{n}"
        assert await pool.acquire(tenant.id, call_id, count, "day")
        arrived = now - dt.timedelta(seconds=60 + n)
        talking = n % 2 == 0
        state = CallState(call_id=call_id, node="pbx1", dialled="1022", caller="0909000000",
                          linkedid=call_id, arrived_at=arrived, tenant_id=tenant.id,
                          phase=Phase.BRIDGED if talking else Phase.QUEUED,
                          queued_at=arrived + dt.timedelta(seconds=10),
                          bridged_at=arrived + dt.timedelta(seconds=25) if talking else None)
        await redis.set(CALL_KEY.format(call_id), state_to_json(state))


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(milliseconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1000, out


async def measure(backend: str, url: str, tenant: Tenant, sizes: list[int], live: int,
                  repeat: int, redis: aioredis.Redis) -> list[list[str]]:
    upgrade_head(url)
    store = CallRecordStore(url)
    rng = random.Random(1022)
    now = dt.datetime.now(dt.UTC)
    start, end = local_day_bounds(tenant.timezone, now)
    rows: list[list[str]] = []
    have = 0
    try:
        for size in sizes:
            add_records(store, tenant, now, have, size - have, rng)
            have = size
            wholes, sinces, lives, builds, totals = [], [], [], [], []
            records_between(store, tenant.id, start, end)  # warm the connection pool
            for _ in range(repeat):
                t_whole, (records, _latest) = timed(records_between, store, tenant.id, start,
                                                    end)
                # What an update reads between whole reads: the last RECORDS_OVERLAP.
                t_since, _ = timed(records_between, store, tenant.id, start, end,
                                   now - RECORDS_OVERLAP)
                t0 = time.perf_counter()
                in_progress = await live_calls(redis, tenant.id)
                t_live = (time.perf_counter() - t0) * 1000
                t_build, state = timed(build_state, tenant, now, in_use=live, snapshot={},
                                       records=records, tickets=[], live=in_progress)
                assert len(records) == size and state["kpis"]["offered"] == size + live
                wholes.append(t_whole)
                sinces.append(t_since)
                lives.append(t_live)
                builds.append(t_build)
                totals.append(t_since + t_live + t_build)
            rows.append([backend, f"{size:,}", fmt_ms(percentile(wholes, 50)),
                         fmt_ms(percentile(sinces, 50)), fmt_ms(percentile(lives, 50)),
                         fmt_ms(percentile(builds, 50)), fmt_ms(percentile(totals, 50)),
                         fmt_ms(percentile(totals, 95)),
                         f"{percentile(totals, 50) / 500 * 100:.1f} %"])
            log(f"{backend} {size} records: total p50 {percentile(totals, 50):.1f} ms")
    finally:
        store.close()
    return rows


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="0,1000,3000,10000",
                    help="finished calls of the day, comma-separated sizes")
    ap.add_argument("--live", type=int, default=15, help="calls in progress")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    sizes = sorted({int(x) for x in args.records.split(",")})
    tenant = next(t for t in load_config(ROOT / "config" / "hotline.yaml").tenants
                  if t.id == "dongnai")
    with tempfile.TemporaryDirectory(prefix="hotline-bench-wall-") as tmp:
        server = PrivateRedis(Path(tmp) / "redis.sock")
        server.start()
        redis = aioredis.Redis.from_url(server.url)
        try:
            await add_live(redis, tenant, dt.datetime.now(dt.UTC), args.live)
            rows = await measure("SQLite", f"sqlite:///{Path(tmp) / 'wall.db'}", tenant,
                                 sizes, args.live, args.repeat, redis)
            if not args.no_postgres:
                url, drop = postgres_database(args.postgres_url, "wall")
                try:
                    rows += await measure("PostgreSQL", url, tenant, sizes, args.live,
                                          args.repeat, redis)
                finally:
                    drop()
        finally:
            await redis.aclose()
            server.stop()
    print(machine_summary())
    print(f"\nOne wallboard update of tenant {tenant.id}: {args.live} calls in progress, "
          f"{args.repeat} runs per size\n")
    print(table(["database", "records today", "whole day read p50",
                 "read since last p50", "live (Redis) p50", "figures p50", "update p50",
                 "update p95", "of a 0.5 s debounce"], rows))
    print(f"\nAn update reads the records written in the last {RECORDS_OVERLAP} (whole day "
          f"once every {FULL_READ_S:.0f} s and at midnight), the calls in progress, and "
          "computes the figures.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
