"""P2 — burst: 50 simultaneous INVITEs to 1022 against a pool of 15 lines.

One `callcenter run`. SIPp sends all INVITEs within ~50 ms (-r 1000 -l 50 -m 50). Each call
either gets 200 OK (answered: held 2.5 s, then BYE) or 183 Session Progress with the busy
message as early media; refused callers alternate between hanging up after ~1.5 s (CANCEL,
expect 487) and listening to the whole message until the hotline's 486 Busy Here.

Targets: exactly `lines` answered and the rest refused with 183 (never answered); every
refused call gets its 183 within 500 ms of its INVITE; after everyone has hung up (plus 1.5 s)
no pool line is left in use. Exit status 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    TENANT,
    Hotline,
    SippCall,
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

NUMBER = "1022"
TARGET_183_MS = 500.0


def classify(c: SippCall) -> str:
    """answered | busy-486 | busy-cancelled | other (with the reason)."""
    codes = c.responses()
    finals = [x for x in codes if x >= 200]
    got183 = 183 in codes
    if finals[:1] == [200] and not got183:
        bye_ok = 200 in c.responses("BYE")
        return "answered" if bye_ok else f"other: answered but BYE got {c.responses('BYE')}"
    if got183 and finals[:1] == [486]:
        return "busy-486"
    if got183 and finals[:1] == [487] and c.first_sent("CANCEL") is not None:
        return "busy-cancelled"
    return f"other: INVITE responses {codes}"


class PoolWatcher:
    """Polls /api/pool while the burst runs: the highest `in_use` seen (must not exceed lines)."""

    def __init__(self, hotline: Hotline, interval: float = 0.05):
        self.hotline = hotline
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for row in self.hotline.pool_api():
                if row.get("tenant") == TENANT and isinstance(row.get("in_use"), int):
                    self.peak = max(self.peak, row["in_use"])
                    self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> PoolWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50, help="simultaneous INVITEs")
    ap.add_argument("--lines", type=int, default=15, help="pool lines")
    ap.add_argument("--rate", type=float, default=1000.0, help="SIPp -r (calls per second)")
    ap.add_argument("--settle", type=float, default=1.5,
                    help="seconds after the last call ends before reading the pool")
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)

    stop_on_signals()
    machine = machine_summary()
    log(f"P2 burst — {machine}")
    hotline = Hotline(args.lines, keep=args.keep, log_level=args.log_level)
    failures: list[str] = []
    ok = False
    try:
        with hotline:
            inf = hotline.workdir / "burst.csv"
            # field1: 0 = a refused caller hangs up after ~1.5 s, 1 = waits for the 486.
            inf.write_text("SEQUENTIAL\n" + "".join(f"{NUMBER};{i % 2};\n"
                                                    for i in range(args.calls)))
            log(f"burst: {args.calls} INVITEs to {NUMBER} at -r {args.rate:g}, "
                f"pool of {args.lines} lines")
            with PoolWatcher(hotline) as watcher:
                run = run_sipp("burst.xml", hotline, NUMBER, calls=args.calls, rate=args.rate,
                               limit=args.calls, tag="p2", timeout_s=60,
                               extra=["-inf", str(inf)])
            log(f"SIPp finished in {run.elapsed:.1f} s with exit code {run.returncode}; "
                f"peak pool use seen {watcher.peak} ({watcher.samples} samples)")
            if run.returncode != 0:
                log(sipp_summary(run))
            time.sleep(args.settle)
            in_use = hotline.in_use()
            in_use_late = in_use
            if in_use.get("api") or in_use.get("cli"):
                time.sleep(5)  # tell a slow release apart from a leak
                in_use_late = hotline.in_use()
            try:
                outcomes = Counter(r.get("outcome") for r in hotline.records(500))
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                log(f"reading call records failed: {e}")
                outcomes = Counter()
            granted = hotline.count_log(r"admitting -\[LineGranted\]-> greeting")
            refused = hotline.count_log(r"admitting -\[LineRefused\]-> busy_message")
            warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
        ok = True
    finally:
        if not ok:
            hotline.cleanup(keep=True)

    calls = parse_calls(run.trace)
    by_kind: dict[str, list[SippCall]] = {}
    for c in calls.values():
        by_kind.setdefault(classify(c), []).append(c)
    answered = by_kind.get("answered", [])
    busy486 = by_kind.get("busy-486", [])
    cancelled = by_kind.get("busy-cancelled", [])
    busy = busy486 + cancelled
    others = [(k, c) for k, cs in by_kind.items() if k.startswith("other") for c in cs]
    missing = args.calls - len(calls)

    # Timings of every call that got a 183 (busy), and of the answered ones.
    t183 = [m for c in calls.values() if 183 in c.responses()
            for m in [c.ms(c.first_sent("INVITE"), c.first_response(183))] if m is not None]
    t200 = [m for c in answered
            for m in [c.ms(c.first_sent("INVITE"), c.first_response(200))] if m is not None]
    t486 = [m for c in busy486
            for m in [c.ms(c.first_response(183), c.first_response(486))] if m is not None]
    sdp183 = sum(1 for c in busy if (r := c.first_response(183)) is not None and r.has_sdp)
    within = sum(1 for v in t183 if v <= TARGET_183_MS)
    invites = [c.first_sent("INVITE") for c in calls.values()]
    inv_times = [m.t for m in invites if m is not None]
    spread_ms = (max(inv_times) - min(inv_times)) * 1000 if inv_times else float("nan")

    exp_answered = min(args.lines, args.calls)
    # First come, first served? Positions (by INVITE send time) of the answered calls.
    order = sorted((c for c in calls.values() if c.first_sent("INVITE") is not None),
                   key=lambda c: c.msgs[0].t)
    answered_ids = {c.call_id for c in answered}
    positions = [i + 1 for i, c in enumerate(order) if c.call_id in answered_ids]
    fifo = sum(1 for p in positions if p <= exp_answered)
    exp_busy = args.calls - exp_answered
    leaked = in_use_late.get("api")
    pass_counts = (len(answered) == exp_answered and len(busy) == exp_busy and not others
                   and missing == 0)
    pass_183 = len(t183) == len(busy) and within == len(t183)
    pass_leak = in_use.get("api") == 0 and in_use.get("cli") == 0
    date = dt.date.today().isoformat()

    print()
    print(f"## P2 burst, {date} ({machine})")
    print(f"{args.calls} INVITEs to {NUMBER} sent within {spread_ms:.1f} ms (SIPp -r {args.rate:g}"
          f" -l {args.calls} -m {args.calls}), pool {args.lines} lines; answered calls held 2.5 s;"
          f" refused callers alternately hang up after 1.5 s (CANCEL) or wait for 486.")
    print()
    print(table(["measure", "value", "target", "result"], [
        ["INVITEs sent", str(len(calls)), str(args.calls),
         "PASS" if missing == 0 else "FAIL"],
        ["answered (200 OK)", str(len(answered)), str(exp_answered),
         "PASS" if len(answered) == exp_answered else "FAIL"],
        ["busy (183 then rejected)", f"{len(busy)} ({len(busy486)} waited for 486, "
         f"{len(cancelled)} cancelled -> 487)", str(exp_busy),
         "PASS" if len(busy) == exp_busy else "FAIL"],
        ["other outcome", str(len(others)), "0", "PASS" if not others else "FAIL"],
        ["INVITE -> 183 median / p95 / max", f"{fmt_ms(median(t183))} / "
         f"{fmt_ms(percentile(t183, 95))} / {fmt_ms(max(t183) if t183 else float('nan'))} ms",
         f"each <= {TARGET_183_MS:g} ms", "PASS" if pass_183 else "FAIL"],
        ["183 within 500 ms", f"{within} of {len(busy)}", f"{len(busy)} of {len(busy)}",
         "PASS" if pass_183 else "FAIL"],
        ["lines in use 1.5 s after the last call (leaked)",
         f"{in_use.get('api')} (API) / {in_use.get('cli')} (CLI)", "0",
         "PASS" if pass_leak else f"FAIL ({leaked} still in use 5 s later)"],
    ]))
    print()
    print(table(["also seen", "value"], [
        ["peak lines in use during the burst (/api/pool every 50 ms)", str(watcher.peak)],
        ["INVITE -> 200 (answered) median / p95 / max",
         f"{fmt_ms(median(t200))} / {fmt_ms(percentile(t200, 95))} / "
         f"{fmt_ms(max(t200) if t200 else float('nan'))} ms"],
        ["183 -> 486 (whole busy message) median / max",
         f"{fmt_ms(median(t486) / 1000)} / {fmt_ms(max(t486) / 1000 if t486 else float('nan'))} s"],
        ["183 responses carrying SDP (early media)", f"{sdp183} of {len(busy)}"],
        ["refused calls that got more than one 183",
         str(sum(1 for c in busy if c.responses().count(183) > 1))],
        [f"answered calls among the first {exp_answered} INVITEs sent",
         f"{fifo} of {len(answered)} (positions {', '.join(map(str, positions))})"],
        ["app log: lines granted / refused", f"{granted} / {refused}"],
        ["call records written (outcome: count)",
         ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items(), key=str)) or "none"],
        ["app log: warning/error lines", str(warn_log)],
        ["SIPp exit code", str(run.returncode)],
    ]))
    for kind, c in others[:10]:
        print(f"  {c.call_id}: {kind}")

    if not pass_counts:
        failures.append(f"outcomes: {len(answered)} answered (want {exp_answered}), {len(busy)} "
                        f"busy (want {exp_busy}), {len(others)} other, {missing} missing")
    if not pass_183:
        failures.append(f"{len(t183) - within} refused calls got 183 later than "
                        f"{TARGET_183_MS:g} ms")
    if not pass_leak:
        failures.append(f"lines leaked: {in_use} after {args.settle:g} s, {in_use_late} later")
    if watcher.peak > args.lines:
        failures.append(f"pool use peaked at {watcher.peak} > {args.lines} lines")
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
