"""P6: tickets + call records written per second (durable), and reports over 1 000 000 tickets.

Both backends in one run, printed side by side: SQLite (a fresh file, WAL, ``synchronous=FULL``:
every commit fsyncs the WAL) and PostgreSQL (a fresh database on ``--postgres-url``'s server,
its default ``fsync=on``, ``synchronous_commit=on``). Everything goes through product code.

Writes (one "pair" = one call record + one ticket opened from it, linked, with its audit entry):

* **one by one**: each pair is ``CallRecordStore.insert_once`` then ``TicketService.open(...,
  call_ids=[id])``: two durable commits per pair, as the app does them (the record writer and
  an operator; on PostgreSQL a third, asynchronous commit takes the code number).
  ``--threads`` / ``--sqlite-threads`` workers at once.
* **batched**: per batch, the call records in one transaction (``CallRecordStore.insert_many``
  is not in the product, so this is a plain multi-row INSERT of the same rows) and the
  tickets with ``TicketService.open_many`` (intake of forms and imports): two commits per
  ``--batch`` pairs, in ``--processes`` (PostgreSQL) or ``--sqlite-processes`` worker
  processes of ``--batch-threads`` threads each, as several app instances would write (one
  Python process is held to one CPU by the GIL; SQLite still has one writer at a time, the
  processes overlap their Python work with each other's commits). Target: >= 3 000 pairs/s.

Reports: ``--report-tickets`` tickets (default 1 000 000) of one tenant over ``--days`` days
are bulk-loaded (SQLite: executemany in one transaction; PostgreSQL: COPY; then ANALYZE),
timed separately; then the daily report (target <= 2 s), the weekly and monthly reports, the
late and unprocessed lists and the league table are each run 5 times (median, max).

    .venv/bin/python bench/tickets_throughput.py [--pairs 3000] [--batched-pairs 30000]
        [--batch 500] [--threads 8] [--sqlite-threads 1] [--processes 2]
        [--sqlite-processes 2] [--batch-threads 1]
        [--report-tickets 1000000] [--days 120]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--no-postgres] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    log,
    machine_summary,
    postgres_database,
    stop_on_signals,
    table,
)

from callcenter.config.file import load_config  # noqa: E402
from callcenter.config.model import HotlineConfig  # noqa: E402
from callcenter.store.data import CallRecordData  # noqa: E402
from callcenter.store.migrate import upgrade_head  # noqa: E402
from callcenter.store.models import CallRecord  # noqa: E402
from callcenter.store.records import CallRecordStore  # noqa: E402
from callcenter.store.urls import normalise_url  # noqa: E402
from callcenter.tickets.reports import TicketReports  # noqa: E402
from callcenter.tickets.rules import Actor  # noqa: E402
from callcenter.tickets.service import NewTicket, TicketService  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_PAIRS_S = 3000.0
TARGET_DAILY_S = 2.0
TENANT = "dongnai"
OP = Actor("bench", "operator")
FIELDS = ("health", "social_security", "essential_goods", "transport", "security_order",
          "information", "admin_procedures", "prices_fraud", "other")
UNITS = ("so_y_te", "so_ldtbxh", "so_cong_thuong", "so_gtvt", "cong_an_tinh", "so_tttt",
         "ubnd_bien_hoa", "ubnd_long_thanh", "ubnd_nhon_trach", "vp_ubnd_tinh")
CONTENT = "Phản ánh của công dân về tình trạng {} tại khu dân cư, đề nghị cơ quan chức năng xử lý."


@dataclass
class Backend:
    """One database under test and its figures."""

    name: str
    url: str
    durability: str = ""
    figures: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    drop: Callable[[], None] | None = None


# ---- databases --------------------------------------------------------------------------------
def sqlite_backend(work: Path, tag: str) -> Backend:
    return Backend("SQLite", f"sqlite:///{work / f'{tag}.db'}")


def postgres_backend(admin_url: str, tag: str) -> Backend:
    url, drop = postgres_database(admin_url, tag)
    return Backend("PostgreSQL", url, drop=drop)


def durability(svc: TicketService) -> str:
    with svc.db.reading() as conn:
        if conn.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            return f"journal_mode={mode}, synchronous={names.get(int(sync or 0), sync)}"
        fsync = conn.exec_driver_sql("SHOW fsync").scalar()
        sc = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        method = conn.exec_driver_sql("SHOW wal_sync_method").scalar()
        return f"fsync={fsync}, synchronous_commit={sc}, wal_sync_method={method}"


# ---- writes -----------------------------------------------------------------------------------
def call_record(n: int, at: dt.datetime, tag: str) -> CallRecordData:
    return CallRecordData(
        id=f"bench:{tag}.{n}", node="bench", tenant=TENANT, dialled="1022",
        caller=f"09{n % 100_000_000:08d}", shift="day", pool_limit=15, arrived_at=at,
        answered_at=at + dt.timedelta(seconds=3), ended_at=at + dt.timedelta(seconds=90),
        outcome="answered", cause="16 Normal Clearing", cause_code=16, linkedid=f"{tag}.{n}",
        extra=None)


def _request(n: int, rec_id: str, at: dt.datetime) -> NewTicket:
    return NewTicket(channel="phone", content=CONTENT.format(n), field=FIELDS[n % len(FIELDS)],
                     citizen_phone=f"09{n % 100_000_000:08d}", call_ids=(rec_id,), at=at)


def one_by_one(b: Backend, config: HotlineConfig, files: Path, pairs: int,
               threads: int) -> float:
    """Pairs/s writing each call record and ticket in its own transaction."""
    svc = TicketService(b.url, lambda: config, files)
    store = CallRecordStore(b.url)
    b.durability = durability(svc)
    at = dt.datetime.now(dt.UTC)
    counter = iter(range(pairs))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                rec = call_record(n, at, "one")
                store.insert_once(rec)
                r = _request(n, rec.id, at)
                svc.open(TENANT, OP, channel=r.channel, content=r.content, field=r.field,
                         citizen_phone=r.citizen_phone, call_ids=r.call_ids, at=r.at)
        except BaseException as e:  # reported below
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    svc.close()
    store.close()
    if errors:
        raise RuntimeError(f"one-by-one writes failed: {errors[0]!r}")
    return pairs / elapsed


def _batched_part(url: str, first: int, last: int, batch: int, threads: int,
                  tag: str) -> tuple[float, float]:
    """Write pairs [first, last) in batches with ``threads`` threads; (start, end) monotonic."""
    config = load_config(ROOT / "config" / "hotline.yaml")
    svc = TicketService(url, lambda: config, Path(tempfile.gettempdir()))
    records = cast(sa.Table, CallRecord.__table__)
    at = dt.datetime.now(dt.UTC)
    starts = iter(range(first, last, batch))
    lock = threading.Lock()
    errors: list[BaseException] = []
    columns = [c.name for c in records.columns if c.name != "created_at"]

    def work() -> None:
        try:
            while True:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                ns = range(start, min(start + batch, last))
                recs = [call_record(n, at, tag) for n in ns]
                rows = [{c: getattr(r, c) for c in columns} for r in recs]
                with svc.db.writing() as conn:
                    conn.execute(sa.insert(records), rows)
                svc.open_many(TENANT, OP, [_request(n, r.id, at) for n, r in zip(ns, recs,
                                                                                strict=True)])
        except BaseException as e:  # reported below
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    began = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ended = time.monotonic()
    svc.close()
    if errors:
        raise RuntimeError(f"batched writes failed: {errors[0]!r}")
    return began, ended


def _process_part(args: tuple[str, int, int, int, int, str]) -> tuple[float, float]:
    return _batched_part(*args)


def batched(b: Backend, pairs: int, batch: int, threads: int, processes: int) -> float:
    """Pairs/s writing call records and tickets ``batch`` at a time (two commits a batch).

    ``processes`` > 1: that many worker processes (as several app instances would), each with
    its own service and ``threads`` threads, share the pairs; wall time from the first start
    to the last end (CLOCK_MONOTONIC is system-wide).
    """
    if processes <= 1:
        began, ended = _batched_part(b.url, 0, pairs, batch, threads, "batch")
        return pairs / (ended - began)
    import multiprocessing

    share = -(-pairs // processes)
    parts = [(b.url, i * share, min(pairs, (i + 1) * share), batch, threads, f"batch{i}")
             for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        spans = pool.map(_process_part, parts)
    return pairs / (max(e for _, e in spans) - min(s for s, _ in spans))


def check_writes(b: Backend, expected: int) -> None:
    """Every pair is there: tickets, links, call records; no code twice."""
    engine = sa.create_engine(normalise_url(b.url))
    try:
        with engine.connect() as conn:
            tickets = conn.execute(sa.text("SELECT count(*), count(DISTINCT code) FROM tickets")
                                   ).one()
            links = conn.execute(sa.text("SELECT count(*) FROM ticket_calls")).scalar_one()
            calls = conn.execute(sa.text("SELECT count(*) FROM call_records")).scalar_one()
            audit = conn.execute(sa.text("SELECT count(*) FROM ticket_audit")).scalar_one()
    finally:
        engine.dispose()
    got = (tickets[0], tickets[1], links, calls, audit)
    if got != (expected,) * 5:
        b.failures.append(f"{b.name}: after the writes expected {expected} tickets (distinct "
                          f"codes), links, call records, audit entries; got {got}")


# ---- bulk seed for the reports ----------------------------------------------------------------
_SEED_COLUMNS = ("code", "tenant", "channel", "content", "field", "received_at", "state",
                 "citizen_phone", "urgent", "unit", "forwarded_at", "accepted_at",
                 "resolved_at", "closed_at", "resolve_due", "result", "publishable", "version",
                 "updated_at")


def _same(v: Any) -> Any:
    return v


def seed_rows(n: int, days: int, end: dt.datetime, seed: int = 1022,
              t: Callable[[dt.datetime | None], Any] = _same,
              b: Callable[[bool], Any] = _same) -> Iterator[tuple[Any, ...]]:
    """``n`` tickets over ``days`` days before ``end``, in a realistic mix of fates (UTC);
    times through ``t`` and booleans through ``b`` (the driver's form)."""
    rng = random.Random(seed)
    span = days * 86400
    start = end - dt.timedelta(seconds=span)
    per_day: dict[str, int] = {}
    H = dt.timedelta(hours=1)
    recent = end - 5 * 24 * H  # open tickets only among the last 5 days
    for i in range(n):
        received = start + dt.timedelta(seconds=span * i / n + rng.random())
        day = (received + 7 * H).strftime("%Y%m%d")
        seq = per_day.get(day, 0) + 1
        per_day[day] = seq
        due = received + 24 * H
        fate = rng.random()
        if fate < 0.30 and received < recent:
            fate += 0.30  # the backlog is recent: older tickets were handled long ago
        unit: str | None = UNITS[rng.randrange(len(UNITS))]
        forwarded = received + dt.timedelta(minutes=rng.randrange(2, 60))
        fwd: dt.datetime | None = forwarded
        acc: dt.datetime | None = None
        res: dt.datetime | None = None
        closed: dt.datetime | None = None
        result: str | None = None
        version = 1
        if fate < 0.12:
            state, unit, fwd, res, closed = "answered", None, None, received, received
            result = "Trả lời theo bộ câu hỏi thường gặp"
        elif fate < 0.16:
            state, unit, fwd = "new", None, None
            version = 0
        elif fate < 0.22:
            state = "forwarded"
        elif fate < 0.30:
            state, acc, version = "in_progress", forwarded + H, 2
        else:
            acc = forwarded + H
            res = received + dt.timedelta(minutes=rng.randrange(60, 40 * 60))
            state, result, version = ("closed", "Đã giải quyết", 4) if fate < 0.8 else (
                "resolved", "Đã giải quyết", 3)
            closed = res + H if state == "closed" else None
        yield (f"DN-{day}-{seq:04d}", TENANT, "phone", CONTENT.format(i),
               FIELDS[i % len(FIELDS)], t(received), state, f"09{i % 100_000_000:08d}",
               b(False), unit, t(fwd), t(acc), t(res), t(closed), t(due), result, b(True),
               version, t(closed or res or acc or fwd or received))


def _sqlite_time(v: dt.datetime | None) -> str | None:
    # The form SQLAlchemy's SQLite DateTime stores (naive UTC, microseconds): comparisons in
    # the reports are string comparisons of this exact form.
    return None if v is None else v.replace(tzinfo=None).isoformat(" ", "microseconds")


def seed(b: Backend, n: int, days: int, end: dt.datetime) -> float:
    """Bulk-load ``n`` report tickets; seconds taken (load + ANALYZE)."""
    started = time.perf_counter()
    engine = sa.create_engine(normalise_url(b.url))
    try:
        if engine.dialect.name == "sqlite":
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA synchronous=OFF")  # a bulk load, not the product's writes
                names, marks = ", ".join(_SEED_COLUMNS), ", ".join("?" * len(_SEED_COLUMNS))
                sql = f"INSERT INTO tickets ({names}) VALUES ({marks})"  # noqa: S608
                chunk: list[tuple[Any, ...]] = []
                for row in seed_rows(n, days, end, t=_sqlite_time, b=int):
                    chunk.append(row)
                    if len(chunk) == 50_000:
                        cur.executemany(sql, chunk)
                        chunk.clear()
                if chunk:
                    cur.executemany(sql, chunk)
                raw.commit()
                cur.execute("ANALYZE")
                raw.commit()
            finally:
                raw.close()
        else:
            raw = engine.raw_connection()
            try:
                dbapi: Any = raw.driver_connection
                with dbapi.cursor() as cur:
                    with cur.copy(f"COPY tickets ({', '.join(_SEED_COLUMNS)}) FROM STDIN") as cp:
                        for row in seed_rows(n, days, end):
                            cp.write_row(row)
                dbapi.commit()
                dbapi.autocommit = True
                with dbapi.cursor() as cur:
                    cur.execute("VACUUM ANALYZE tickets")
            finally:
                raw.close()
    finally:
        engine.dispose()
    return time.perf_counter() - started


def timed(fn: Callable[[], object], runs: int = 5) -> tuple[float, float]:
    fn()  # warm-up (connection pool, statement cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def report_timings(b: Backend, config: HotlineConfig, end: dt.datetime) -> dict[str, str]:
    r = TicketReports(b.url, lambda: config)
    now = end
    local_end = (end + dt.timedelta(hours=7)).date()
    day = local_end - dt.timedelta(days=2)
    iso = day.isocalendar()
    week = f"{iso[0]}-W{iso[1]:02d}"
    month = f"{day:%Y-%m}"
    out: dict[str, str] = {}
    try:
        s = r.daily(TENANT, day, now=now)
        out["daily: tickets in the day"] = f"{s.total.received:,}"
        med, worst = timed(lambda: r.daily(TENANT, day, now=now))
        out["daily report (median / max of 5)"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms"
        if worst > TARGET_DAILY_S:
            b.failures.append(f"{b.name}: daily report took {worst:.2f} s > {TARGET_DAILY_S} s")
        wk = r.weekly(TENANT, week, now=now)
        med, worst = timed(lambda: r.weekly(TENANT, week, now=now))
        out["weekly: tickets in the week"] = f"{wk.total.received:,}"
        out["weekly report"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms"
        period = r.period(TENANT, month=month)
        mo = r.summary(TENANT, period, now=now)
        med, worst = timed(lambda: r.summary(TENANT, period, now=now))
        out["monthly: tickets in the month"] = f"{mo.total.received:,}"
        out["monthly report"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms"
        late = r.late(TENANT, now=now)
        med, worst = timed(lambda: r.late(TENANT, now=now), runs=3)
        out["late list"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms ({len(late):,} rows)"
        unp = r.unprocessed(TENANT, now=now)
        med, worst = timed(lambda: r.unprocessed(TENANT, now=now), runs=3)
        out["unprocessed list"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms ({len(unp):,} rows)"
        med, worst = timed(lambda: r.league(TENANT, period, now=now), runs=3)
        out["league table, one month"] = f"{med * 1000:.0f} / {worst * 1000:.0f} ms"
    finally:
        r.close()
    return out


# ---- main -------------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=3000, help="one-by-one pairs per backend")
    p.add_argument("--batched-pairs", type=int, default=30000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--threads", type=int, default=8, help="writer threads on PostgreSQL")
    p.add_argument("--batch-threads", type=int, default=1,
                   help="threads per batched writer process")
    p.add_argument("--processes", type=int, default=2,
                   help="batched writer processes on PostgreSQL")
    p.add_argument("--sqlite-processes", type=int, default=2,
                   help="batched writer processes on SQLite")
    p.add_argument("--sqlite-threads", type=int, default=1,
                   help="writer threads on SQLite (it has one writer at a time)")
    p.add_argument("--report-tickets", type=int, default=1_000_000, help="0: no reports")
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--postgres-url", default=os.environ.get(
        "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the SQLite files and databases")
    args = p.parse_args()
    stop_on_signals()
    config = load_config(ROOT / "config" / "hotline.yaml")
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-p6-"))
    log(f"P6 tickets: {machine_summary()}; work folder {work}")
    makers: list[Callable[[str], Backend]] = [lambda tag: sqlite_backend(work, tag)]
    if not args.no_postgres:
        makers.append(lambda tag: postgres_backend(args.postgres_url, tag))
    results: list[Backend] = []
    made: list[Backend] = []
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the seeds' last instant, both
    try:
        for make in makers:
            w = make("writes")
            made.append(w)
            log(f"{w.name}: migrating")
            upgrade_head(w.url)
            threads = args.sqlite_threads if w.name == "SQLite" else args.threads
            log(f"{w.name}: {args.pairs} pairs one by one, {threads} threads")
            one = one_by_one(w, config, work / "files", args.pairs, threads)
            procs = args.processes if w.name == "PostgreSQL" else args.sqlite_processes
            bt = args.batch_threads
            log(f"{w.name}: {args.batched_pairs} pairs in batches of {args.batch}, "
                f"{procs} process(es) x {bt} thread(s)")
            many = batched(w, args.batched_pairs, args.batch, bt, procs)
            check_writes(w, args.pairs + args.batched_pairs)
            w.figures["durability"] = w.durability
            w.figures["writers: one by one / batched"] = (
                f"{threads} thread(s) / {procs} process(es) x {bt} thread(s)")
            w.figures["one by one (2 durable commits per pair)"] = f"{one:,.0f} pairs/s"
            w.figures[f"batched ({args.batch} pairs, 2 durable commits per batch)"] = (
                f"{many:,.0f} pairs/s")
            if max(one, many) < TARGET_PAIRS_S:
                w.failures.append(f"{w.name}: {max(one, many):.0f} pairs/s < "
                                  f"{TARGET_PAIRS_S:.0f}")
            results.append(w)
            if args.report_tickets <= 0:
                continue
            r = make("reports")
            made.append(r)
            upgrade_head(r.url)
            log(f"{r.name}: seeding {args.report_tickets:,} tickets over {args.days} days")
            seconds = seed(r, args.report_tickets, args.days, end)
            w.figures["seed (bulk load + ANALYZE)"] = (
                f"{seconds:.1f} s ({args.report_tickets / seconds:,.0f} rows/s)")
            log(f"{r.name}: reports")
            w.figures.update(report_timings(r, config, end))
            w.failures += r.failures
    finally:
        for b in made:
            if b.drop is not None and not args.keep:
                try:
                    b.drop()
                except Exception as e:  # a leftover database is named in the log
                    log(f"could not drop the {b.name} database: {e}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    keys = list(dict.fromkeys(k for b in results for k in b.figures))
    print()
    print(table(["P6", *(b.name for b in results)],
                [[k, *(b.figures.get(k, "-") for b in results)] for k in keys]))
    failures = [f for b in results for f in b.failures]
    print()
    print("RESULT: PASS" if not failures else "RESULT: FAIL — " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
