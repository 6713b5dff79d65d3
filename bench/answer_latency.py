"""P1 — answer latency: what the ARI app adds to INVITE -> 200 OK, against plain dialplan.

One `callcenter run` (one Asterisk). One SIPp run places interleaved calls, in random order
within each pair (fixed seed), to:

* the app:    1022 -> Stasis -> app takes a pool line in Redis -> ARI answer (200 OK);
* the plain:  HOTLINE_BENCH_PLAIN_NUMBER -> [bench-plain] Answer() (no app at all);
* with ``--bare``, also the floor: the plain number + ``b`` -> Stasis(<app>-bare), a bare ARI
  application (bench/bare_ari.py, a process of its own: the product's ARI client and pool
  Lua, nothing else) -> ARI answer; and the plain number + ``n``: the same application
  answering without the pool's Redis call. "app - bare" is then the product's own work,
  "bare - plain" what any Python ARI application of this design costs on this machine, and
  "bare - no pool" what the admission's Redis round trip costs on the wire.

So machine noise hits both series alike. Each call: INVITE, 200 OK, ACK, ~200 ms, BYE, at a
modest rate (default 10 calls/s, at most 10 at once): latency, not overload, is measured.
The pool has 50 lines, so no app call is refused. Per-call INVITE -> 200 OK comes from SIPp's
`-trace_msg` timestamps (microseconds). The first calls (warm-up) are left out of the figures.

Target: the app adds at most 3 ms at the median and 10 ms at p95 (P1); issue 20's tighter one,
at most +1.0 ms at the median and +2.0 ms at p95, is reported beside it. Afterwards the pool's lines
in use must be back to 0. Exit status 0 only when every call was answered and all targets are met.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    LOOPBACK,
    PLAIN_NUMBER,
    Hotline,
    finish,
    fmt_ms,
    log,
    machine_summary,
    median,
    parse_calls,
    percentile,
    run_sipp,
    sipp_summary,
    stop_on_signals,
    table,
)

APP_NUMBER = "1022"
BARE_NUMBER = PLAIN_NUMBER + "b"  # the dialplan's Stasis(<app>-bare) (bench only) ...
BARE_NOPOOL_NUMBER = PLAIN_NUMBER + "n"  # ... which answers this one without the pool
TARGET_MEDIAN_MS = 3.0
TARGET_P95_MS = 10.0
ISSUE20_MEDIAN_MS = 1.0
ISSUE20_P95_MS = 2.0


def call_plan(per_series: int, warmup: int, seed: int,
              numbers: tuple[str, ...] = (APP_NUMBER, PLAIN_NUMBER)) -> list[str]:
    """Dialled numbers in call order: warm-up rounds first (one call to each number), then
    rounds in random order."""
    rng = random.Random(seed)
    plan: list[str] = []
    for _ in range(warmup + per_series):
        round_ = list(numbers)
        rng.shuffle(round_)
        plan += round_
    return plan


class BareProcess:
    """bench/bare_ari.py beside the hotline: its ARI, its private Redis, its own Stasis app."""

    def __init__(self, hotline: Hotline):
        user, password = hotline.ari_credentials()
        env = {**os.environ, "BARE_ARI_PASSWORD": password}
        argv = [sys.executable, str(Path(__file__).resolve().parent / "bare_ari.py"),
                "--ari", f"http://{LOOPBACK}:{hotline.ari_port}", "--user", user,
                "--app", f"{hotline.stasis_app()}-bare",
                "--redis", f"unix://{hotline.state / 'redis.sock'}"]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.stop()
            raise RuntimeError(f"bench/bare_ari.py did not start: {first!r}")
        self.answered: int | None = None

    def stop(self) -> None:
        """SIGTERM, wait; the count of calls it answered (None if it did not say)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in (out or "").splitlines():
            if line.startswith("answered "):
                self.answered = int(line.split()[1])


def bootstrap_ci(a: list[float], b: list[float], stat: str, seed: int,
                 rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of stat(a) - stat(b) (stat: "median" or "p95")."""
    if not a or not b:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    f = median if stat == "median" else (lambda v: percentile(v, 95))
    diffs = sorted(f(rng.choices(a, k=len(a))) - f(rng.choices(b, k=len(b)))
                   for _ in range(rounds))
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds) - 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=250, help="measured calls per series")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured calls per series first")
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second (both series)")
    ap.add_argument("--concurrency", type=int, default=10, help="SIPp -l (calls at once)")
    ap.add_argument("--lines", type=int, default=50, help="pool lines (none may be refused)")
    ap.add_argument("--seed", type=int, default=1022)
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    ap.add_argument("--bare", action="store_true",
                    help="a third series: the floor, a bare ARI application (bench/bare_ari.py)")
    args = ap.parse_args(argv)

    stop_on_signals()
    machine = machine_summary()
    log(f"P1 answer latency — {machine}")
    numbers = (APP_NUMBER, PLAIN_NUMBER,
               *((BARE_NUMBER, BARE_NOPOOL_NUMBER) if args.bare else ()))
    plan = call_plan(args.calls, args.warmup, args.seed, numbers)
    hotline = Hotline(args.lines, plain_number=PLAIN_NUMBER, keep=args.keep,
                      log_level=args.log_level)
    failures: list[str] = []
    ok = False
    bare: BareProcess | None = None
    try:
        with hotline:
            if args.bare:
                bare = BareProcess(hotline)
            inf = hotline.workdir / "numbers.csv"
            inf.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in plan))
            log(f"placing {len(plan)} calls ({args.warmup} + {args.calls} per series, "
                f"interleaved) at {args.rate:g}/s, at most {args.concurrency} at once")
            run = run_sipp("answer_latency.xml", hotline, APP_NUMBER, calls=len(plan),
                           rate=args.rate, limit=args.concurrency, tag="p1",
                           timeout_s=int(len(plan) / args.rate) + 60,
                           extra=["-inf", str(inf)])
            log(f"SIPp finished in {run.elapsed:.1f} s with exit code {run.returncode}")
            if bare is not None:
                bare.stop()
            if run.returncode != 0:
                failures.append(f"SIPp exit code {run.returncode} (some calls failed)")
                log(sipp_summary(run))
            # Lines must come back: the last BYE has been answered; give the app a moment.
            in_use_1s: dict[str, int | None] = {}
            time.sleep(1.0)
            in_use_1s = hotline.in_use()
            in_use = in_use_1s
            end = time.monotonic() + 4
            while (in_use.get("api") or in_use.get("cli")) and time.monotonic() < end:
                time.sleep(0.5)
                in_use = hotline.in_use()
            stasis_calls = hotline.count_log(r"callcenter\.ari: call=\S+ arrived")
            answered_log = hotline.count_log(r"admitting -\[LineGranted\]-> greeting")
            refused_log = hotline.count_log(r"admitting -\[LineRefused\]->")
            warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
            try:
                records = hotline.records(2000)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                log(f"reading call records failed: {e}")
                records = []
        ok = True
    finally:
        if bare is not None and bare.proc.poll() is None:
            bare.stop()
        if not ok:
            hotline.cleanup(keep=True)

    calls = parse_calls(run.trace)
    ordered = sorted(calls.values(), key=lambda c: c.msgs[0].t)
    series: dict[str, list[float]] = {n: [] for n in numbers}
    trying: dict[str, list[float]] = {n: [] for n in numbers}
    seen = dict.fromkeys(numbers, 0)
    unanswered: list[str] = []
    slowest: list[tuple[float, str, str, float]] = []
    t0 = ordered[0].msgs[0].t if ordered else 0.0
    for c in ordered:
        number = c.dialled
        if number not in series:
            unanswered.append(f"{c.call_id}: unexpected number {number!r}")
            continue
        seen[number] += 1
        inv, ok200 = c.first_sent("INVITE"), c.first_response(200)
        ms = c.ms(inv, ok200)
        if ms is None or c.final_code() != 200:
            unanswered.append(f"{c.call_id} ({number}): responses {c.responses()}")
            continue
        if seen[number] <= args.warmup:
            continue
        series[number].append(ms)
        t100 = c.ms(inv, c.first_response(100))
        if t100 is not None:
            trying[number].append(t100)
        assert inv is not None
        slowest.append((ms, number, c.call_id, inv.t - t0))

    app, plain = series[APP_NUMBER], series[PLAIN_NUMBER]
    floor = series.get(BARE_NUMBER, [])
    nopool = series.get(BARE_NOPOOL_NUMBER, [])
    rows = []
    named = [("app (1022 via Stasis)", APP_NUMBER, app),
             (f"plain dialplan ({PLAIN_NUMBER})", PLAIN_NUMBER, plain)]
    if args.bare:
        named.append((f"bare ARI app ({BARE_NUMBER})", BARE_NUMBER, floor))
        named.append((f"bare, no pool ({BARE_NOPOOL_NUMBER})", BARE_NOPOOL_NUMBER, nopool))
    for name, number, vals in named:
        rows.append([name, len(vals), fmt_ms(median(vals)), fmt_ms(percentile(vals, 95)),
                     fmt_ms(percentile(vals, 99)), fmt_ms(max(vals) if vals else float("nan")),
                     fmt_ms(median(trying[number]))])
    d_med = median(app) - median(plain)
    d_p95 = percentile(app, 95) - percentile(plain, 95)
    r_med = median(app) / median(plain) if plain and median(plain) else float("nan")
    r_p95 = percentile(app, 95) / percentile(plain, 95) if plain else float("nan")
    ci_med = bootstrap_ci(app, plain, "median", args.seed)
    ci_p95 = bootstrap_ci(app, plain, "p95", args.seed)
    pass_med = d_med <= TARGET_MEDIAN_MS
    pass_p95 = d_p95 <= TARGET_P95_MS
    pool_ok = in_use.get("api") == 0 and in_use.get("cli") == 0
    enough = len(app) >= 200 and len(plain) >= 200 and (
        not args.bare or min(len(floor), len(nopool)) >= 200)
    date = dt.date.today().isoformat()

    print()
    print(f"## P1 answer latency, {date} ({machine})")
    print(f"{args.calls} measured calls per series (+{args.warmup} warm-up each), interleaved, "
          f"{args.rate:g} calls/s, at most {args.concurrency} at once, pool {args.lines} lines; "
          f"INVITE -> 200 OK per call from SIPp -trace_msg timestamps.")
    print()
    print(table(["series", "calls", "median ms", "p95 ms", "p99 ms", "max ms",
                 "100 Trying median ms"], rows))
    print()
    print(table(["app - plain", "value", "target", "result"], [
        ["median difference", f"{d_med:+.2f} ms", f"<= {TARGET_MEDIAN_MS:g} ms",
         "PASS" if pass_med else f"FAIL (over by {d_med - TARGET_MEDIAN_MS:.2f} ms)"],
        ["p95 difference", f"{d_p95:+.2f} ms", f"<= {TARGET_P95_MS:g} ms",
         "PASS" if pass_p95 else f"FAIL (over by {d_p95 - TARGET_P95_MS:.2f} ms)"],
        ["median difference, 95% bootstrap interval",
         f"{ci_med[0]:+.2f} .. {ci_med[1]:+.2f} ms", "-", "-"],
        ["p95 difference, 95% bootstrap interval",
         f"{ci_p95[0]:+.2f} .. {ci_p95[1]:+.2f} ms", "-", "-"],
        ["median difference, issue 20's target", f"{d_med:+.2f} ms",
         f"<= {ISSUE20_MEDIAN_MS:g} ms", "met" if d_med <= ISSUE20_MEDIAN_MS else "not met"],
        ["p95 difference, issue 20's target", f"{d_p95:+.2f} ms",
         f"<= {ISSUE20_P95_MS:g} ms", "met" if d_p95 <= ISSUE20_P95_MS else "not met"],
        ["median ratio app/plain", f"{r_med:.2f}x", "-", "-"],
        ["p95 ratio app/plain", f"{r_p95:.2f}x", "-", "-"],
        ["calls not answered 200", str(len(unanswered)), "0",
         "PASS" if not unanswered else "FAIL"],
        ["pool in use after the run", f"{in_use.get('api')} (API) / {in_use.get('cli')} (CLI)"
         f", 1 s after: {in_use_1s.get('api')}", "0", "PASS" if pool_ok else "FAIL"],
    ]))
    if args.bare:
        print()

        def diff(name: str, a: list[float], b: list[float]) -> list[str]:
            return [name, f"{median(a) - median(b):+.2f} ms",
                    f"{percentile(a, 95) - percentile(b, 95):+.2f} ms",
                    "{:+.2f} .. {:+.2f} ms".format(*bootstrap_ci(a, b, "median", args.seed))]

        print(table(["the floor (bare ARI app)", "median", "p95", "median 95% interval"], [
            diff("bare, no pool - plain: Stasis + ARI answer from Python", nopool, plain),
            diff("bare - bare, no pool: the pool's Redis call before the answer", floor,
                 nopool),
            diff("bare - plain: any Python ARI app of this design", floor, plain),
            diff("app - bare: the product's own work", app, floor),
        ]))
        print(f"bare ARI app: answered {bare.answered if bare else None} calls "
              f"(of {2 * (args.warmup + args.calls)})")
    print()
    if args.log_level.upper() in ("INFO", "DEBUG"):
        print(f"app log: {stasis_calls} calls entered Stasis, {answered_log} got a line, "
              f"{refused_log} refused, {warn_log} warning/error lines")
    else:
        print(f"app log (level {args.log_level}): {warn_log} warning/error lines")
    by_outcome: dict[str, int] = {}
    for r in records:
        key = f"{r.get('dialled')}:{r.get('outcome')}"
        by_outcome[key] = by_outcome.get(key, 0) + 1
    print("call records written (dialled:outcome count): "
          + (", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items())) or "none"))
    slowest.sort(reverse=True)
    short = {APP_NUMBER: "app", BARE_NUMBER: "bare", BARE_NOPOOL_NUMBER: "no pool"}
    print("slowest calls: " + ", ".join(
        f"{ms:.1f} ms ({short.get(n, 'plain')} at +{at:.1f} s)"
        for ms, n, _cid, at in slowest[:5]))
    for u in unanswered[:10]:
        print(f"  not answered: {u}")

    if not enough:
        failures.append(f"too few measured calls: app {len(app)}, plain {len(plain)} (< 200)")
    if unanswered:
        failures.append(f"{len(unanswered)} calls not answered with 200 OK")
    if not pass_med:
        failures.append(f"median difference {d_med:.2f} ms > {TARGET_MEDIAN_MS:g} ms")
    if not pass_p95:
        failures.append(f"p95 difference {d_p95:.2f} ms > {TARGET_P95_MS:g} ms")
    if not pool_ok:
        failures.append(f"pool lines still in use after the run: {in_use}")
    if args.bare and (bare is None or bare.answered != 2 * (args.warmup + args.calls)):
        failures.append(f"the bare ARI app answered {bare.answered if bare else None} calls, "
                        f"not {2 * (args.warmup + args.calls)}")
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
