"""P7: SMS throughput, outbox -> dispatcher -> Kannel (bearerbox + smsbox) -> fakesmsc.

For each mode (without and with delivery reports) the benchmark starts a Kannel of its own
on free loopback ports with the test SMSC fakesmsc, makes a fresh outbox (SQLite in WAL
mode by default, or `--database-url` PostgreSQL, in a fresh database), queues `--messages`
texts (the seeds' resolve notice: UCS-2, two parts each) to distinct numbers, starts the
product's dispatcher and measures:

* accepted/s: messages Kannel accepted (outbox rows "sent") per second;
* arrived/s: whole messages at fakesmsc (both parts, joined and decoded) per second —
  the figure P7 is about, target >= 200/s;
* with reports: delivered/s, until every row is "delivered" through the app's DLR handler.

Then it checks that nothing was lost or sent twice: every number got exactly one message,
with the exact text, and fakesmsc saw exactly 2 x messages parts.

    .venv/bin/python bench/sms_throughput.py [--messages 2000] [--concurrency 16,32]
        [--database-url postgresql://...] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LOOPBACK, free_port, log, machine_summary, stop_on_signals, table  # noqa: E402

from callcenter.sms import fakesmsc  # noqa: E402
from callcenter.sms.config import SmsSettings  # noqa: E402
from callcenter.sms.credentials import load_kannel_secrets  # noqa: E402
from callcenter.sms.dispatcher import SendsmsTarget, SmsDispatcher  # noqa: E402
from callcenter.sms.dlr import DLR_PATH, SMS_DLR, DlrReceiver, add_routes  # noqa: E402
from callcenter.sms.kannel import KannelGateway, KannelStartError, free_settings  # noqa: E402
from callcenter.sms.parts import sms_parts  # noqa: E402
from callcenter.sms.store import SmsOutbox, enqueue  # noqa: E402
from callcenter.store.migrate import upgrade_head  # noqa: E402
from callcenter.store.urls import normalise_url  # noqa: E402

NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
TARGET_PER_S = 200.0
MARKER = b"Got message"


@dataclass
class RunResult:
    """One mode's figures and checks."""

    mode: str
    concurrency: int
    messages: int
    accepted_s: float
    arrived_s: float
    delivered_s: float | None
    parts_seen: int
    problems: list[str]

    @property
    def arrived_per_s(self) -> float:
        return self.messages / self.arrived_s if self.arrived_s else 0.0


def _fresh_database(base_url: str | None, workdir: Path, name: str) -> tuple[str, str | None]:
    """(URL of an empty database, name to drop afterwards or None for SQLite)."""
    if base_url is None:
        return f"sqlite:///{workdir / name / 'hotline.db'}", None
    admin = sa.create_engine(normalise_url(base_url), isolation_level="AUTOCOMMIT")
    db = f"hotline_bench_{name}_{int(time.time())}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return normalise_url(base_url).set(database=db).render_as_string(hide_password=False), db


def _drop_database(base_url: str, db: str) -> None:
    admin = sa.create_engine(normalise_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    admin.dispose()


async def _serve_dlr(outbox: SmsOutbox, key: str) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app[SMS_DLR] = DlrReceiver(outbox, key)
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    return runner, f"http://{LOOPBACK}:{port}{DLR_PATH}"


def _count_parts(path: Path) -> int:
    try:
        return path.read_bytes().count(MARKER)
    except FileNotFoundError:
        return 0


async def run_mode(mode: str, with_dlr: bool, n: int, concurrency: int, workdir: Path,
                   database_url: str | None, timeout: float) -> RunResult:
    """Queue n notices, dispatch them through a fresh Kannel, and time what arrives."""
    folder = workdir / mode
    folder.mkdir(parents=True)
    url, dropme = _fresh_database(database_url, workdir, mode)
    upgrade_head(url)
    outbox = SmsOutbox(url)
    secrets = load_kannel_secrets(folder)
    gateway = KannelGateway(free_settings(), secrets, folder / "kannel")
    dlr_runner: web.AppRunner | None = None
    problems: list[str] = []
    parts_per_msg = sms_parts(NOTICE).parts
    numbers = [f"09{i:08d}" for i in range(n)]
    try:
        for attempt in range(3):
            try:
                await asyncio.to_thread(gateway.start)
                break
            except KannelStartError:  # a port taken meanwhile: other ports
                if attempt == 2:
                    raise
                gateway = KannelGateway(free_settings(), secrets, folder / "kannel")
        with outbox.engine.begin() as conn:
            for i, to in enumerate(numbers):
                enqueue(conn, tenant="dongnai", to_number=to, text=NOTICE,
                        purpose="resolve_notice", dedupe_key=f"resolve:DN-{mode}-{i:06d}")
        dlr_base = None
        if with_dlr:
            dlr_runner, dlr_base = await _serve_dlr(outbox, secrets.dlr_key)
        target = SendsmsTarget(url=gateway.sendsms_url, username=secrets.sendsms_user,
                               password=secrets.sendsms_password, sender="1022",
                               dlr_base_url=dlr_base, dlr_key=secrets.dlr_key)
        dispatcher = SmsDispatcher(outbox, target, concurrency=concurrency, poll_interval=0.05)
        log(f"{mode}: {n} messages queued; dispatching (concurrency {concurrency})")
        t0 = time.monotonic()
        dispatcher.start()
        accepted = arrived = delivered = 0.0
        deadline = t0 + timeout
        next_db_check = 0.0
        try:
            while time.monotonic() < deadline:
                now = time.monotonic()
                if not arrived and _count_parts(gateway.fakesmsc_log) >= n * parts_per_msg:
                    arrived = now - t0
                if now >= next_db_check:  # the outbox is read less often: it is under load
                    counts = await asyncio.to_thread(outbox.counts)
                    if not accepted and counts.get("sent", 0) + counts.get("delivered", 0) == n:
                        accepted = time.monotonic() - t0
                    if with_dlr and not delivered and counts.get("delivered", 0) == n:
                        delivered = time.monotonic() - t0
                    next_db_check = now + 0.1
                if arrived and accepted and (delivered or not with_dlr):
                    break
                await asyncio.sleep(0.01)
        finally:
            await dispatcher.stop()
        if not (arrived and accepted and (delivered or not with_dlr)):
            problems.append(f"{mode}: not done within {timeout:.0f} s "
                            f"(outbox {await asyncio.to_thread(outbox.counts)})")
        await asyncio.sleep(0.5)  # late duplicates would show now
        got = fakesmsc.received(gateway.fakesmsc_log)
        per_number = Counter(m.receiver for m in got)
        parts_seen = _count_parts(gateway.fakesmsc_log)
        lost = [x for x in numbers if per_number[x] == 0]
        twice = [x for x, c in per_number.items() if c > 1]
        wrong = [m.receiver for m in got if m.text != NOTICE or m.parts != parts_per_msg]
        if lost:
            problems.append(f"{mode}: {len(lost)} lost (e.g. {lost[:3]})")
        if twice:
            problems.append(f"{mode}: {len(twice)} sent twice (e.g. {twice[:3]})")
        if wrong:
            problems.append(f"{mode}: {len(wrong)} with wrong text or parts")
        if parts_seen != n * parts_per_msg:
            problems.append(f"{mode}: fakesmsc saw {parts_seen} parts, "
                            f"expected {n * parts_per_msg}")
        return RunResult(mode, concurrency, n, accepted, arrived, delivered if with_dlr else None,
                         parts_seen, problems)
    finally:
        if dlr_runner is not None:
            await dlr_runner.cleanup()
        await asyncio.to_thread(gateway.stop)
        outbox.close()
        if dropme and database_url:
            _drop_database(database_url, dropme)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--concurrency", default=f"16,{SmsSettings().concurrency}",
                   help="requests in flight, one run per value (default: 16 and the "
                        "product's default)")
    p.add_argument("--database-url", help="PostgreSQL server URL (default: SQLite, WAL)")
    p.add_argument("--timeout", type=float, default=120.0, help="per mode, seconds")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, outbox)")
    args = p.parse_args()
    stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-sms-"))
    log(f"P7 SMS throughput: {machine_summary()}")
    log(f"work folder {workdir}; database "
        f"{'PostgreSQL' if args.database_url else 'SQLite (WAL)'}")
    results: list[RunResult] = []
    levels = [int(x) for x in str(args.concurrency).split(",")]
    try:
        for concurrency in levels:
            for mode, with_dlr in (("no-dlr", False), ("dlr", True)):
                results.append(asyncio.run(run_mode(
                    f"{mode}-c{concurrency}", with_dlr, args.messages, concurrency, workdir,
                    args.database_url, args.timeout)))
    finally:
        failed = any(r.problems for r in results) or len(results) < 2 * len(levels)
        if args.keep or failed:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def fmt(seconds: float | None) -> str:
        return "-" if not seconds else f"{seconds:.2f} s"

    print()
    print(f"P7, {dt.date.today()}: {args.messages} resolve notices per run (UCS-2, 2 parts "
          f"each), {'PostgreSQL' if args.database_url else 'SQLite (WAL)'}; target: "
          f">= {TARGET_PER_S:.0f}/s at the product's default concurrency "
          f"({SmsSettings().concurrency})")
    print()
    print(table(
        ["delivery reports", "concurrency", "messages", "parts at fakesmsc",
         "all accepted by Kannel", "all arrived at fakesmsc", "arrived / s",
         "all delivered (DLR)", "lost", "twice"],
        [["with (mask 31)" if r.delivered_s is not None else "without", r.concurrency,
          r.messages, r.parts_seen, fmt(r.accepted_s), fmt(r.arrived_s),
          f"{r.arrived_per_s:.0f}", fmt(r.delivered_s),
          sum("lost" in x for x in r.problems), sum("twice" in x for x in r.problems)]
         for r in results]))
    failures = [x for r in results for x in r.problems]
    failures += [f"{r.mode}: {r.arrived_per_s:.0f} messages/s < {TARGET_PER_S:.0f}"
                 for r in results
                 if r.arrived_per_s < TARGET_PER_S and r.concurrency == SmsSettings().concurrency]
    print()
    if failures:
        print("RESULT: FAIL — " + "; ".join(failures))
        return 1
    print("RESULT: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
