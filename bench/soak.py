"""P9 — soak: a steady stream of calls for a long time; nothing may fail, leak or go missing.

One `callcenter run` (tenant dongnai: the shipped menus of config/ivr-dongnai.yaml with the
health FAQ imported, prompts built ahead; the four SIPp operator phones of bench/queue_ring.py,
registered and logged in, each answering a call after 100 ms and hanging up after 300-700 ms).
SIPp (bench/scenarios/soak.xml) places calls to 1022 at a steady `--rate` for the whole run,
every call of bounded length, so the number in progress stays steady:

* IVR/FAQ calls (3 in 5): press 1 (health FAQ), 1 (its first answer), listen, hang up: ~9 s;
* queue calls (2 in 5): press 9 (the operator node), wait for an operator; the operator
  answers and hangs up, the hotline sends BYE (or the caller gives up after 12 s);
* busy calls: the pool has fewer lines than the calls the stream offers, so whichever call
  finds it full gets 183 with the busy message as early media; the refused caller hangs up
  after 1.5 s (CANCEL) or waits for the hotline's 486, alternately.

Samples every second: open file descriptors (/proc/PID/fd) and RSS (VmRSS) of the app process
and of Asterisk (pids from the run record, HOTLINE_CACHE/run/<instance>.json), and lines in
use. Compared: medians over a window (up to 60 s, at most half the warm-up) ending at the end
of the warm-up and one ending at the end of the stream, both while calls are in progress at
the same rate (Asterisk's fds follow the calls in progress: two RTP sockets a call).

Targets: SIPp's failed calls 0 (and no call in the trace with another outcome), a call record
for every call placed (rows in the run's database whose caller is one of ours), 0 lines in use
after the last call ended plus a grace, fd and RSS growth of app and Asterisk under 5 % from
the end of the warm-up to the end. The growth target is enforced only when the measured
stretch (end of warm-up to end) is at least 120 s: a 45 s run (CI's short mode) reports the
growth but does not judge it, and so does any run whose warm-up is under 60 s (by default
runs under 5 minutes): Asterisk's RSS climbs for its first 40-60 s of calls (a 3-minute run,
warm-up 36 s, measured +15 % there). Exit status 0 only when every judged target is met.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sqlite3
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    TENANT,
    Hotline,
    SippCall,
    SippProcess,
    finish,
    log,
    machine_summary,
    parse_calls,
    sipp_summary,
    start_sipp,
    stop_on_signals,
    table,
)
from ivr_dtmf import dtmf_pcap, prepare_ivr  # noqa: E402
from queue_ring import (  # noqa: E402
    OPERATORS,
    operators_ready,
    start_operators,
    tenant_extra,
    write_scenarios,
)

NUMBER = "1022"
CALLER_PREFIX = "0959"  # From user of bench/scenarios/soak.xml: 0959<kind><call number>
KINDS = {"0": "ivr", "1": "queue"}
QUEUE_EVERY = (1, 3)  # call i is a queue call when i % 5 is one of these: 2 in 5
GROWTH_TARGET_PCT = 5.0
MIN_GROWTH_WINDOW_S = 120.0  # shorter runs report fd/RSS growth without judging it
MIN_JUDGED_WARMUP_S = 60.0  # Asterisk's RSS climbs for its first ~40-60 s of calls
SAMPLE_EVERY_S = 1.0
WINDOW_S = 60.0  # at most; and at most half the warm-up (the first calls are ramping up)
MEAN_ANSWERED_S = 7.0  # about: IVR calls ~9 s, queue calls ~6 s from the INVITE


# ---- the processes we watch -----------------------------------------------------------------
def watched_pids(hotline: Hotline) -> dict[str, int | None]:
    rec = hotline.run_record()
    return {"app": rec.get("app"), "asterisk": rec.get("asterisk") or hotline.asterisk_pid()}


def fd_count(pid: int | None) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd")) if pid else None
    except OSError:
        return None


def rss_kib(pid: int | None) -> int | None:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Sample:
    t: float  # seconds since the stream started
    pids: dict[str, int | None]
    fds: dict[str, int | None]
    rss: dict[str, int | None]  # KiB
    in_use: int | None


class Sampler:
    """Every SAMPLE_EVERY_S: fds and RSS of app and Asterisk, lines in use (/api/pool)."""

    def __init__(self, hotline: Hotline, t0: float):
        self.hotline = hotline
        self.t0 = t0
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = watched_pids(self.hotline)
            row = next((r for r in self.hotline.pool_api() if r.get("tenant") == TENANT), {})
            in_use = row.get("in_use")
            self.samples.append(Sample(
                time.monotonic() - self.t0, pids,
                {k: fd_count(p) for k, p in pids.items()},
                {k: rss_kib(p) for k, p in pids.items()},
                in_use if isinstance(in_use, int) else None))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def window(self, end: float, length: float) -> list[Sample]:
        return [s for s in self.samples if end - length <= s.t <= end]

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "app_pid", "app_fds", "app_rss_kib", "asterisk_pid",
                        "asterisk_fds", "asterisk_rss_kib", "lines_in_use"])
            for s in self.samples:
                w.writerow([f"{s.t:.1f}", s.pids.get("app"), s.fds.get("app"), s.rss.get("app"),
                            s.pids.get("asterisk"), s.fds.get("asterisk"),
                            s.rss.get("asterisk"), s.in_use])


def med(samples: list[Sample], what: str, who: str) -> float | None:
    vals = [v for s in samples if (v := getattr(s, what).get(who)) is not None]
    return statistics.median(vals) if vals else None


def growth(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else (b - a) / a * 100


def slope_per_min(samples: list[Sample], what: str, who: str, start: float) -> float | None:
    """Least-squares slope (units per minute) of a series from `start` on."""
    pts = [(s.t, float(v)) for s in samples
           if s.t >= start and (v := getattr(s, what).get(who)) is not None]
    if len(pts) < 3:
        return None
    mx = sum(t for t, _ in pts) / len(pts)
    my = sum(v for _, v in pts) / len(pts)
    den = sum((t - mx) ** 2 for t, _ in pts)
    return None if den == 0 else sum((t - mx) * (v - my) for t, v in pts) / den * 60


# ---- SIPp: the stream, its counters, the outcome of each call --------------------------------
def write_stream(path: Path, calls: int) -> None:
    """The injection file: number; kind (0 IVR, 1 queue); refused caller waits (1) or not."""
    lines = [f"{NUMBER};{1 if i % 5 in QUEUE_EVERY else 0};{(i // 5) % 2};\n"
             for i in range(calls)]
    path.write_text("SEQUENTIAL\n" + "".join(lines))


def write_presses(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    dtmf_pcap(folder / "ivr1.pcap", "1", seq=1050, timestamp=16000)
    dtmf_pcap(folder / "ivr2.pcap", "1", seq=1100, timestamp=32000)
    dtmf_pcap(folder / "queue1.pcap", "9", seq=1050, timestamp=16000)


def sipp_counters(stat_csv: Path) -> dict[str, int]:
    """The cumulative counters of SIPp's last statistics line (-trace_stat)."""
    try:
        rows = [r for r in csv.reader(stat_csv.read_text(errors="replace").splitlines(),
                                      delimiter=";") if r]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    out = {}
    for k, v in zip(rows[0], rows[-1], strict=False):
        if k.endswith("(C)") or k == "TotalCallCreated":
            try:
                out[k.replace("(C)", "")] = int(v)
            except ValueError:
                continue
    return out


def kind_of(c: SippCall) -> str:
    inv = c.first_sent("INVITE")
    frm = inv.header("From") if inv else ""
    user = (frm or "").split("sip:", 1)[-1].split("@", 1)[0]
    return KINDS.get(user[len(CALLER_PREFIX):len(CALLER_PREFIX) + 1], "?")


def classify(c: SippCall) -> str:
    """ivr | queue-operator | queue-gave-up | busy-486 | busy-cancelled | other: why."""
    codes = c.responses()
    finals = [x for x in codes if x >= 200]
    got183 = 183 in codes
    if finals[:1] == [200] and not got183:
        kind = kind_of(c)
        hotline_bye = any(m.direction == "recv" and m.first_line.startswith("BYE ")
                          for m in c.msgs)
        our_bye_ok = 200 in c.responses("BYE")
        if kind == "ivr" and our_bye_ok and not hotline_bye:
            return "ivr"
        if kind == "queue" and hotline_bye:
            return "queue-operator"
        if kind == "queue" and our_bye_ok:
            return "queue-gave-up"
        return f"other: {kind} answered, hotline BYE {hotline_bye}, ours {c.responses('BYE')}"
    if got183 and finals[:1] == [486]:
        return "busy-486"
    if got183 and finals[:1] == [487] and c.first_sent("CANCEL") is not None:
        return "busy-cancelled"
    return f"other: INVITE responses {codes}"


def our_records(hotline: Hotline) -> tuple[int, Counter[str], int]:
    """Call records of our callers in the run's SQLite database: rows, outcomes, callers."""
    db = hotline.state / "hotline.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT caller, outcome FROM call_records WHERE caller LIKE ?",
                           (f"{CALLER_PREFIX}%",)).fetchall()
    finally:
        con.close()
    return len(rows), Counter(o for _c, o in rows), len({c for c, _o in rows})


# ---- the run ----------------------------------------------------------------------------------
@dataclass
class Figures:
    """What the table shows, gathered while the hotline runs."""

    warm: list[Sample] = field(default_factory=list)
    end: list[Sample] = field(default_factory=list)
    idle: Sample | None = None
    left: dict[str, Any] = field(default_factory=dict)
    channels: int | None = None
    records: int = 0
    record_callers: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    warn_log: int = 0
    restarts: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="fd/RSS growth is judged only when the warm-up is >= "
               f"{MIN_JUDGED_WARMUP_S:g} s and the stretch after it >= {MIN_GROWTH_WINDOW_S:g} s"
               " (by default: runs of 5 minutes or more); shorter runs (e.g. CI's --seconds 45)"
               " report it without judging it: too short to tell a leak from warming up.")
    ap.add_argument("--rate", type=float, default=5.0, help="calls placed per second")
    ap.add_argument("--minutes", type=float, default=30.0, help="how long calls are placed")
    ap.add_argument("--seconds", type=float, default=None,
                    help="how long calls are placed, in seconds (short runs; wins over --minutes)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the first sample (default: 20 %% of the run, at most "
                         "60 s)")
    ap.add_argument("--lines", type=int, default=None,
                    help=f"pool lines (default: rate x {MEAN_ANSWERED_S * 0.8:g} s, fewer than "
                         "the calls offered, so some callers find the pool full)")
    ap.add_argument("--grace", type=float, default=5.0,
                    help="seconds after the last call ended before reading lines in use")
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)

    duration = args.seconds if args.seconds is not None else args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, 0.2 * duration)
    lines = args.lines or max(2, round(args.rate * MEAN_ANSWERED_S * 0.8))
    calls = max(1, round(args.rate * duration))
    window = min(WINDOW_S, warmup / 2, duration - warmup)
    judged = duration - warmup >= MIN_GROWTH_WINDOW_S and warmup >= MIN_JUDGED_WARMUP_S
    if duration <= warmup:
        ap.error(f"the run ({duration:g} s) must be longer than the warm-up ({warmup:g} s)")

    stop_on_signals()
    machine = machine_summary()
    log(f"P9 soak — {machine}")
    passwords = {ext: os.urandom(8).hex() for ext in OPERATORS}
    for ext, pw in passwords.items():
        os.environ[f"HOTLINE_OP_{ext}"] = pw
    tree = yaml.safe_load((ROOT / "config" / "ivr-dongnai.yaml").read_text())
    hotline = Hotline(lines, keep=args.keep, log_level=args.log_level, ivr=tree,
                      tenant_extra=tenant_extra(passwords))
    failures: list[str] = []
    fig = Figures()
    phones: dict[str, SippProcess] = {}
    stream: SippProcess | None = None
    sampler: Sampler | None = None
    ok = False
    try:
        with hotline:
            prepare_ivr(hotline)
            scen = write_scenarios(hotline.workdir / "scenarios")
            phones = start_operators(hotline, passwords, scen)
            operators_ready(hotline)
            log(f"operators {', '.join(OPERATORS)} registered, logged in and reachable")
            write_presses(hotline.workdir / "sipp-soak" / "pcap")
            inf = hotline.workdir / "soak.csv"
            write_stream(inf, calls)
            pids0 = watched_pids(hotline)
            log(f"stream: {calls} calls to {NUMBER} at {args.rate:g}/s for {duration:g} s, pool "
                f"{lines} lines; warm-up {warmup:g} s; app pid {pids0['app']}, Asterisk pid "
                f"{pids0['asterisk']}")
            t0 = time.monotonic()
            stream = start_sipp("soak.xml", hotline, NUMBER, calls=calls, rate=args.rate,
                                limit=max(50, int(args.rate * 40)), tag="soak",
                                timeout_s=int(duration + 120), extra=["-inf", str(inf)])
            with Sampler(hotline, t0) as sampler:
                next_note = 60.0
                while time.monotonic() - t0 < duration:
                    if stream.proc.poll() is not None:
                        failures.append(f"SIPp ended early (exit {stream.proc.returncode})")
                        break
                    el = time.monotonic() - t0
                    if el >= next_note:
                        s = sampler.samples[-1] if sampler.samples else None
                        if s is not None:
                            log(f"  {el:.0f} s: lines in use {s.in_use}; fds app "
                                f"{s.fds.get('app')} Asterisk {s.fds.get('asterisk')}; RSS "
                                f"MiB app {(s.rss.get('app') or 0) / 1024:.1f} Asterisk "
                                f"{(s.rss.get('asterisk') or 0) / 1024:.1f}")
                        next_note += 60.0
                    time.sleep(0.5)
                # the stream's last samples first, then wait for the last calls to end
                time.sleep(0.1)
                fig.warm = sampler.window(warmup, window)
                fig.end = sampler.window(duration, window)
                log("all calls placed; waiting for the last ones to end")
                run = stream.wait()
            log(f"SIPp finished after {run.elapsed:.1f} s with exit code {run.returncode}")
            if run.returncode != 0:
                log(sipp_summary(run))
            time.sleep(args.grace)
            fig.left = hotline.in_use()
            try:
                fig.channels = len(hotline.ari("/channels") or [])
            except OSError as e:
                log(f"ARI /channels failed: {e}")
            pids = watched_pids(hotline)
            fig.idle = Sample(time.monotonic() - t0, pids,
                              {k: fd_count(p) for k, p in pids.items()},
                              {k: rss_kib(p) for k, p in pids.items()}, fig.left.get("api"))
            for who in ("app", "asterisk"):
                seen = {s.pids.get(who) for s in sampler.samples} | {pids0[who], pids[who]}
                if len(seen) > 1:
                    fig.restarts.append(f"{who} pid changed: {sorted(map(str, seen))}")
            for p in phones.values():
                p.kill()
            # The records of calls that just ended may still be on their way to the database.
            end = time.monotonic() + 20
            while True:
                try:
                    fig.records, fig.outcomes, fig.record_callers = our_records(hotline)
                except sqlite3.Error as e:
                    log(f"reading call records failed: {e}")
                if fig.records >= calls or time.monotonic() > end:
                    break
                time.sleep(1)
            fig.warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
            sampler.write_csv(hotline.workdir / "soak-samples.csv")
        ok = True
    finally:
        for p in phones.values():
            p.kill()
        if stream is not None:
            stream.kill()
        if not ok:
            hotline.cleanup(keep=True)

    counters = sipp_counters(run.stat_csv) if run.stat_csv else {}
    sipp_calls = parse_calls(run.trace)
    by_kind: Counter[str] = Counter()
    others: list[tuple[str, str]] = []
    for c in sipp_calls.values():
        k = classify(c)
        by_kind["other" if k.startswith("other") else k] += 1
        if k.startswith("other"):
            others.append((c.call_id, k))
    placed = len(sipp_calls)
    answered = by_kind["ivr"] + by_kind["queue-operator"] + by_kind["queue-gave-up"]
    busy = by_kind["busy-486"] + by_kind["busy-cancelled"]
    failed = counters.get("FailedCall")
    fail_detail = {k: v for k, v in counters.items() if k.startswith("Failed") and v}
    missing = placed - fig.records
    left_api, left_cli = fig.left.get("api"), fig.left.get("cli")

    pass_failed = failed == 0 and by_kind["other"] == 0 and placed == calls
    pass_records = missing == 0 and fig.record_callers == fig.records
    pass_lines = left_api == 0 and left_cli == 0 and fig.left.get("calls") == 0 \
        and fig.channels == 0
    grow_rows = []
    grow_fail = []
    for who, label in (("app", "app"), ("asterisk", "Asterisk")):
        for what, unit, conv in (("fds", "fds", 1.0), ("rss", "RSS MiB", 1024.0)):
            a, b = med(fig.warm, what, who), med(fig.end, what, who)
            g = growth(a, b)
            slope = slope_per_min(sampler.samples if sampler else [], what, who, warmup)
            good = g is not None and g < GROWTH_TARGET_PCT
            verdict = ("PASS" if good else "FAIL") if judged else \
                ("(not judged: " + ("under" if good else "over") + " 5 % in a short run)")
            if judged and not good:
                grow_fail.append(f"{label} {unit} {'?' if g is None else f'{g:+.1f}'} %")
            fa = "-" if a is None else f"{a / conv:.1f}" if conv != 1 else f"{a:.0f}"
            fb = "-" if b is None else f"{b / conv:.1f}" if conv != 1 else f"{b:.0f}"
            fs = "-" if slope is None else f"{slope / conv:+.2f}/min"
            grow_rows.append([f"{label} {unit}: end of warm-up -> end (median of "
                              f"{len(fig.warm)} / {len(fig.end)} samples)",
                              f"{fa} -> {fb} ({'-' if g is None else f'{g:+.1f}'} %; trend {fs})",
                              f"< {GROWTH_TARGET_PCT:g} %", verdict])
    date = dt.date.today().isoformat()
    first = sampler.samples[0] if sampler and sampler.samples else None
    in_use_warm = [s.in_use for s in fig.warm if s.in_use is not None]
    in_use_end = [s.in_use for s in fig.end if s.in_use is not None]

    print()
    print(f"## P9 soak, {date} ({machine})")
    print(f"{calls} calls to {NUMBER} at {args.rate:g}/s for {duration:g} s (SIPp -inf, "
          f"bench/scenarios/soak.xml): 3 in 5 IVR/FAQ (1, 1, listen ~4 s), 2 in 5 queue (9, "
          f"operator answers, talks 0.3-0.7 s, hangs up); pool {lines} lines, so callers who "
          f"find it full get the busy message (183) and hang up or wait for 486; "
          f"{len(OPERATORS)} SIPp operators; warm-up {warmup:g} s; samples every "
          f"{SAMPLE_EVERY_S:g} s, medians over {window:g} s.")
    print()
    print(table(["measure", "value", "target", "result"], [
        ["calls placed (SIPp: INVITEs in the trace / TotalCallCreated)",
         f"{placed} / {counters.get('TotalCallCreated')}", str(calls),
         "PASS" if placed == calls else "FAIL"],
        ["answered: IVR/FAQ / queue, operator took it / queue, caller gave up",
         f"{answered}: {by_kind['ivr']} / {by_kind['queue-operator']} / "
         f"{by_kind['queue-gave-up']}", "-", "-"],
        ["busy (183, then 486 / caller cancelled -> 487)",
         f"{busy}: {by_kind['busy-486']} / {by_kind['busy-cancelled']}", "-", "-"],
        ["failed (SIPp FailedCall; other outcome in the trace)",
         f"{failed}; {by_kind['other']}" + (f" ({fail_detail})" if fail_detail else ""),
         "0", "PASS" if pass_failed else "FAIL"],
        ["call records written / calls placed (missing)",
         f"{fig.records} / {placed} ({missing})", "0 missing",
         "PASS" if pass_records else "FAIL"],
        [f"lines in use {args.grace:g} s after the last call (API / CLI); app calls; "
         "ARI channels", f"{left_api} / {left_cli}; {fig.left.get('calls')}; {fig.channels}",
         "0", "PASS" if pass_lines else "FAIL"],
        *grow_rows,
    ]))
    print()
    print(table(["also seen", "value"], [
        ["call records by outcome", ", ".join(f"{k}: {v}" for k, v in
                                              sorted(fig.outcomes.items())) or "none"],
        ["SIPp counters (cumulative)", ", ".join(f"{k} {v}" for k, v in counters.items()
                                                 if v and not k.startswith("Failed")) or "-"],
        ["lines in use, median over the warm-up / end window",
         f"{statistics.median(in_use_warm) if in_use_warm else '-'} / "
         f"{statistics.median(in_use_end) if in_use_end else '-'} (pool {lines})"],
        *[[f"{when}: fds app / Asterisk; RSS MiB app / Asterisk",
           "-" if s is None else
           f"{s.fds.get('app')} / {s.fds.get('asterisk')}; "
           f"{(s.rss.get('app') or 0) / 1024:.1f} / {(s.rss.get('asterisk') or 0) / 1024:.1f}"]
          for when, s in (("no call yet (first sample)", first), (
              f"{args.grace:g} s after the last call", fig.idle))],
        ["process restarts during the run", "; ".join(fig.restarts) or "none"],
        ["app log: warning/error lines", str(fig.warn_log)],
        ["SIPp exit code", str(run.returncode)],
        ["samples (CSV in the work folder with --keep)",
         str(len(sampler.samples) if sampler else 0)],
    ]))
    for cid, why in others[:10]:
        print(f"  {cid}: {why}")

    if not pass_failed:
        failures.append(f"failed calls: SIPp {failed} {fail_detail}, {by_kind['other']} other "
                        f"outcomes, {placed} of {calls} placed")
    if not pass_records:
        failures.append(f"call records: {fig.records} for {placed} calls placed ({missing} "
                        f"missing; {fig.record_callers} distinct callers)")
    if not pass_lines:
        failures.append(f"left after the last call: {fig.left}, channels {fig.channels}")
    if grow_fail:
        failures.append("growth over 5 % after the warm-up: " + ", ".join(grow_fail))
    if fig.restarts:
        failures.append("; ".join(fig.restarts))
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
