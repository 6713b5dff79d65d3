"""P3 — how many calls can sit in the IVR at once on this machine (Asterisk and app together).

One `callcenter run` with menus made to keep callers in them: a long menu prompt, 5 s of silence,
the invalid-input prompt and the menu again, 10 times, then a second menu just like it (each
menu's fallback is the other), so every caller keeps hearing prompts and never leaves the menus.
SIPp callers (bench/scenarios/ivr_sit.xml) INVITE, get 200 OK, ACK, echo the hotline's RTP back
(-rtp_echo, so Asterisk hears them), stay, BYE.

Steps (default 50 / 100 / 200 / 500 calls at once): each step adds callers at `--rate` per
second with its own SIPp runs (one per 100 callers: each run has one RTP echo socket), waits
until the pool shows them all in use, then holds a plateau: the app's event-loop lag is reset
(POST /api/loop-lag) and read after `--plateau` seconds; CPU of Asterisk, the app, Redis and
SIPp comes from /proc/PID/stat deltas over the plateau, the time the app's loop thread and
Asterisk's threads waited for a CPU from /proc/PID/task/TID/schedstat; RTP is counted on the
callers' side (SIPp's echo counter, read from screen dumps asked for with SIGUSR2) and sampled
on some calls through ARI (GET /channels/ID/rtp_statistics: packets Asterisk sent to the caller
and packets it got back from the caller's echo); UDP datagrams dropped by the kernel at the
callers' and Asterisk's RTP sockets come from /proc/net/udp. Every step's callers stay until
the last step has been measured (SIPp -d is set so), then all hang up; afterwards no pool
line, app call or Asterisk channel may be left. `--profile` adds a py-spy record of the app
per plateau.

Target: 500 calls answered with the app's loop lag p99 < 20 ms. Exit status 0 only when every
step's calls were all answered, the lag target holds at every step up to 500 calls, and nothing
leaked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    TENANT,
    Hotline,
    SippProcess,
    SippRun,
    cpu_seconds,
    finish,
    free_udp_range,
    log,
    machine_cpu,
    machine_summary,
    parse_calls,
    start_sipp,
    stop_on_signals,
    table,
)

NUMBER = "1022"
CALLER_PREFIX = "0949"  # From: user of bench/scenarios/ivr_sit.xml is 0949<call number>
TARGET_CALLS = 500
TARGET_LAG_P99_MS = 20.0

_MENU = ("Tổng đài 1022 tỉnh Đồng Nai xin kính chào quý khách. "
         "Để nghe giải đáp về y tế, xin bấm phím 1. Về an sinh xã hội, bấm phím 2. "
         "Về giao thông vận tải, bấm phím 3. Về thủ tục hành chính, bấm phím 4. "
         "Để báo tình huống khẩn cấp, bấm phím 5. Để gặp tổng đài viên, bấm phím 9.")
TREE: dict[str, Any] = {
    "root": "main",
    "timeout": 5,
    "retries": 10,
    "inter_digit": 2,
    "nodes": {
        "main": {"type": "menu", "prompt": _MENU, "options": {"9": "operator"},
                 "fallback": "main2"},
        "main2": {"type": "menu", "prompt": "Xin quý khách vui lòng chọn. " + _MENU,
                  "options": {"9": "operator"}, "fallback": "main"},
        "operator": {"type": "operator",
                     "prompt": "Xin quý khách vui lòng giữ máy, tổng đài viên sẽ trả lời ngay."},
    },
}


# ---- measuring ------------------------------------------------------------------------------
def hotline_pids(hotline: Hotline) -> list[int]:
    """Every process of this hotline (Redis, Kannel, Asterisk ...: their argv name its state
    folder or PBX instance)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(hotline.state).encode() in argv or f"/srv/hotline/{hotline.instance}/".encode() \
                in argv:
            found.append(int(entry.name))
    return found


def fd_count(pid: int | None) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd")) if pid else None
    except OSError:
        return None


def fd_limit(pid: int | None) -> str:
    """The soft 'Max open files' limit of a process."""
    try:
        for ln in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if ln.startswith("Max open files"):
                return ln.split()[3]
    except (OSError, IndexError):
        pass
    return "?"


def rss_mib(pid: int | None) -> float | None:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def udp_drops(ports: range) -> int:
    """Datagrams the kernel dropped (receive buffer full) at the UDP sockets bound to
    127.0.0.1 on these ports, since each socket was opened."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return 0
    total = 0
    for ln in lines:
        cols = ln.split()
        if len(cols) > 12 and cols[1].startswith("0100007F:") \
                and int(cols[1].split(":")[1], 16) in ports:
            total += int(cols[-1])
    return total


def run_delay_s(pid: int | None, tid: int | None = None) -> float | None:
    """Seconds the thread (or, without tid, every thread of the process) spent runnable but
    waiting for a CPU (the scheduler's run_delay, /proc/.../schedstat)."""
    if pid is None:
        return None
    tids = [tid] if tid is not None else [int(t) for t in os.listdir(f"/proc/{pid}/task")
                                          if t.isdigit()]
    total = 0
    for t in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def all_cpu() -> dict[int, tuple[str, float]]:
    """(name, CPU seconds) of every process on the machine."""
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            v = cpu_seconds(int(entry.name))
            if v is not None:
                try:
                    name = (entry / "comm").read_text().strip()
                except OSError:
                    continue
                out[int(entry.name)] = (name, v)
    return out


def busiest_others(a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]],
                   ours: set[int], wall: float, top: int = 3) -> str:
    """The processes not ours that used the most CPU between two all_cpu() snapshots (those
    that ended in between are not seen: 'rest of the machine' in the table counts them)."""
    use: dict[str, float] = {}
    for pid, (name, v) in b.items():
        if pid in ours:
            continue
        d = (v - (a[pid][1] if pid in a else 0.0)) / wall * 100  # new ones: all their CPU
        if d >= 1:
            use[f"{name} ({pid})"] = d
    busiest = sorted(use.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.0f} %" for k, v in busiest) or "none"


@dataclass
class CpuMark:
    t: float
    procs: dict[str, float | None]
    machine: tuple[float, float]


def cpu_mark(pids: dict[str, list[int]]) -> CpuMark:
    procs: dict[str, float | None] = {}
    for role, plist in pids.items():
        vals = [v for v in (cpu_seconds(p) for p in plist) if v is not None]
        procs[role] = sum(vals) if vals else None
    return CpuMark(time.monotonic(), procs, machine_cpu())


def cpu_use(a: CpuMark, b: CpuMark) -> dict[str, float | None]:
    """Percent of one core per role over the interval; 'machine' is percent of all cores."""
    wall = b.t - a.t
    out: dict[str, float | None] = {}
    for role, v in b.procs.items():
        u = a.procs.get(role)
        out[role] = None if v is None or u is None or wall <= 0 else (v - u) / wall * 100
    busy = b.machine[0] - a.machine[0]
    total = b.machine[1] - a.machine[1]
    out["machine"] = busy / total * 100 if total > 0 else None
    return out


def our_channels(hotline: Hotline) -> list[str]:
    try:
        chans = hotline.ari("/channels", timeout=10) or []
    except OSError:
        return []
    return [c["id"] for c in chans
            if c.get("caller", {}).get("number", "").startswith(CALLER_PREFIX)]


def rtp_counts(hotline: Hotline, ids: list[str]) -> dict[str, tuple[int, int, float]]:
    """Per channel: packets Asterisk sent to the caller, packets it received from the caller,
    and when they were read (time.monotonic())."""
    out: dict[str, tuple[int, int, float]] = {}
    for cid in ids:
        try:
            st = hotline.ari(f"/channels/{cid}/rtp_statistics", timeout=5) or {}
        except OSError:
            continue
        if "txcount" in st:
            out[cid] = (int(st["txcount"]), int(st["rxcount"]), time.monotonic())
    return out


class Profiler:
    """py-spy record of the app's event-loop thread over a plateau, summarised after.

    py-spy samples 100 times a second and keeps a sample only when the thread is not idle, so
    samples / (100 x seconds) is the share of time the loop thread was busy."""

    RATE = 100

    def __init__(self, pid: int, seconds: float, out: Path):
        self.out = out
        self.seconds = int(seconds)
        exe = ROOT / ".venv" / "bin" / "py-spy"
        self.proc: subprocess.Popen[bytes] | None = None
        if exe.exists():
            self.proc = subprocess.Popen(
                [str(exe), "record", "--pid", str(pid), "--duration", str(self.seconds),
                 "--rate", str(self.RATE), "--format", "raw", "--output", str(out),
                 "--nonblocking"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def summary(self, top: int = 10) -> list[str]:
        if self.proc is None:
            return ["py-spy not found in .venv/bin"]
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if not self.out.exists():
            return ["py-spy wrote nothing"]
        leaf: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for ln in self.out.read_text(errors="replace").splitlines():
            stack, _, n = ln.rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            if not any("(callcenter/cli.py" in f for f in frames):
                continue  # another thread (to_thread workers, log writer ...)
            count = int(n)
            total += count
            leaf[_short(frames[-1])] += count
            for f in {_short(f) for f in frames}:
                inclusive[f] += count
        if not total:
            return ["no samples of the loop thread"]
        possible = self.RATE * self.seconds
        lines = [f"event-loop thread busy in {total} of {possible} samples "
                 f"(~{total / possible * 100:.0f} % of the time); self time, share of busy:"]
        lines += [f"  {c / total * 100:5.1f} %  {k}" for k, c in leaf.most_common(top)]
        lines.append("inclusive, callcenter / aiohttp / redis / json functions:")
        wanted = [(k, c) for k, c in inclusive.most_common()
                  if any(m in k for m in ("callcenter/", "aiohttp/", "redis/", "json/"))
                  and not any(m in k for m in ("callcenter/cli.py", "callcenter/runtime/runner.py",
                                                "callcenter/app.py"))]
        lines += [f"  {c / total * 100:5.1f} %  {k}" for k, c in wanted[:top]]
        return lines


def _short(frame: str) -> str:
    m = re.match(r"(.*?) \((.*?)(?::(\d+))?\)$", frame.strip())
    if not m:
        return frame
    name, path = m.group(1), m.group(2)
    for cut in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if cut in path:
            path = path.split(cut, 1)[1]
    return f"{name} ({path})"


# ---- steps ----------------------------------------------------------------------------------
@dataclass
class Step:
    target: int  # calls at once in this step
    added: int  # callers this step's SIPp run places
    sipps: list[SippProcess] = field(default_factory=list)  # this step's SIPp runs
    runs: list[SippRun] = field(default_factory=list)
    reached_after: float | None = None  # seconds from the step's start until all were in
    in_use_start: int | None = None
    in_use_end: int | None = None
    channels_end: int | None = None
    plateau_s: float = 0.0
    lag: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float | None] = field(default_factory=dict)
    rtp_tx_pps: float | None = None
    rtp_rx_pps: float | None = None
    rtp_sampled: int = 0
    drops_callers: int | None = None  # datagrams dropped at the callers' RTP sockets (plateau)
    drops_asterisk: int | None = None  # ... at Asterisk's RTP sockets (plateau)
    wait_app: float | None = None  # ms per s the app's loop thread waited for a CPU
    wait_asterisk: float | None = None  # ms per s, summed over Asterisk's threads
    echo_pps: float | None = None  # RTP packets per second per call the callers received
    echo_marks: tuple[float, float] = (0.0, 0.0)  # when SIPp was asked for screen dumps
    fds: dict[str, int | None] = field(default_factory=dict)
    rss: dict[str, float | None] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    others: str = ""  # the busiest processes on the machine that are not part of the test
    answered: int | None = None  # 200 OK to INVITE counted in this step's SIPp trace
    finals: Counter[int | None] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def pool_in_use(hotline: Hotline) -> int | None:
    row = next((r for r in hotline.pool_api() if r.get("tenant") == TENANT), {})
    v = row.get("in_use")
    return v if isinstance(v, int) else None


def wait_for_calls(hotline: Hotline, target: int, step: Step, timeout: float) -> None:
    """Until the pool shows `target` lines in use (all callers answered and in the menus)."""
    t0 = time.monotonic()
    last = -1
    while time.monotonic() - t0 < timeout:
        n = pool_in_use(hotline)
        if n is not None and n >= target:
            step.reached_after = time.monotonic() - t0
            return
        ended = [sp for sp in step.sipps if sp.proc.poll() is not None]
        if ended:
            step.notes.append(f"SIPp ended early (exit {ended[0].proc.returncode})")
            return
        if n != last:
            last = n if n is not None else -1
        time.sleep(0.25)
    step.notes.append(f"only {last} of {target} calls in after {timeout:.0f} s")


def measure_plateau(hotline: Hotline, step: Step, seconds: float, pids: dict[str, list[int]],
                    sipps: list[SippProcess], sample: int, rng: random.Random,
                    profile: bool) -> None:
    step.in_use_start = pool_in_use(hotline)
    app_pid = pids["app"][0] if pids.get("app") else None
    chans = our_channels(hotline)
    ids = rng.sample(chans, min(sample, len(chans)))
    rtp0 = rtp_counts(hotline, ids)
    profiler = None
    if profile and app_pid:
        profiler = Profiler(app_pid, seconds - 1,
                            hotline.workdir / f"py-spy-{step.target}.txt")
    step.echo_marks = (ask_for_dumps(sipps), 0.0)
    caller_ports = [range(sp.media_port, sp.media_port + 4) for sp in sipps]
    ast_ports = range(hotline.rtp[0], hotline.rtp[1] + 1)
    ast_pid = pids["asterisk"][0] if pids.get("asterisk") else None
    drops0 = (sum(udp_drops(r) for r in caller_ports), udp_drops(ast_ports))
    wait0 = (run_delay_s(app_pid, app_pid), run_delay_s(ast_pid))
    hotline.post("/api/loop-lag")  # reset: the plateau's own samples only
    everyone0 = all_cpu()
    a = cpu_mark(pids)
    time.sleep(seconds)
    b = cpu_mark(pids)
    everyone1 = all_cpu()
    ours = {p for plist in pids.values() for p in plist} | set(hotline_pids(hotline)) | set(
        hotline.run_record().values()) | ({profiler.proc.pid} if profiler and profiler.proc
                                          else set())
    step.others = busiest_others(everyone0, everyone1, ours, b.t - a.t)
    wait1 = (run_delay_s(app_pid, app_pid), run_delay_s(ast_pid))
    drops1 = (sum(udp_drops(r) for r in caller_ports), udp_drops(ast_ports))
    step.drops_callers = drops1[0] - drops0[0]
    step.drops_asterisk = drops1[1] - drops0[1]
    wall = b.t - a.t
    if wait0[0] is not None and wait1[0] is not None:
        step.wait_app = (wait1[0] - wait0[0]) / wall * 1000
    if wait0[1] is not None and wait1[1] is not None:
        step.wait_asterisk = (wait1[1] - wait0[1]) / wall * 1000
    step.echo_marks = (step.echo_marks[0], ask_for_dumps(sipps))
    _status, step.lag = hotline._get("/api/loop-lag")
    step.plateau_s = b.t - a.t
    step.cpu = cpu_use(a, b)
    rtp1 = rtp_counts(hotline, ids)
    common = [c for c in rtp0 if c in rtp1]
    if common:
        step.rtp_sampled = len(common)
        step.rtp_tx_pps = sum((rtp1[c][0] - rtp0[c][0]) / (rtp1[c][2] - rtp0[c][2])
                              for c in common) / len(common)
        step.rtp_rx_pps = sum((rtp1[c][1] - rtp0[c][1]) / (rtp1[c][2] - rtp0[c][2])
                              for c in common) / len(common)
    step.in_use_end = pool_in_use(hotline)
    step.channels_end = len(our_channels(hotline))
    step.fds = {role: fd_count(plist[0] if plist else None) for role, plist in pids.items()
                if role in ("asterisk", "app")}
    step.rss = {role: rss_mib(plist[0] if plist else None) for role, plist in pids.items()
                if role in ("asterisk", "app")}
    if profiler is not None:
        step.profile = profiler.summary()


def echo_dumps(sp: SippProcess) -> list[tuple[int, float]]:
    """(packets echoed so far, SIPp's clock) of every live screen dump in a run's screen file."""
    try:
        text = (sp.out / "screen.log").read_text(errors="replace")
    except OSError:
        return []
    out = []
    for block in text.split("Scenario Screen")[1:]:
        count = re.search(r"(\d+) Total echo RTP pckts 1st stream", block)
        clock = re.search(r"Current Time\s+\|[^|\n]*?(\d{9,}\.\d+)", block)
        if count and clock:
            out.append((int(count.group(1)), float(clock.group(1))))
    return out


def ask_for_dumps(sipps: list[SippProcess]) -> float:
    """SIGUSR2 to every live SIPp run: it appends its current screens (with the RTP echo
    counter and its clock) to its screen file at its next turn. Returns when we asked."""
    asked = time.time()
    for sp in sipps:
        if sp.proc.poll() is None:
            os.kill(sp.proc.pid, signal.SIGUSR2)
    return asked


def echo_rate(sipps: list[SippProcess], start: float, end: float) -> float | None:
    """Packets per second the callers' echoes received between two ask_for_dumps() times,
    all SIPp runs together (from the first dump each run wrote after each time)."""
    total = 0.0
    for sp in sipps:
        dumps = echo_dumps(sp)
        a = next((d for d in dumps if d[1] >= start), None)
        b = next((d for d in dumps if d[1] >= end), None)
        if a is None or b is None or b[1] <= a[1]:
            return None
        total += (b[0] - a[0]) / (b[1] - a[1])
    return total


def leftovers(hotline: Hotline) -> dict[str, int | None]:
    use = hotline.in_use()
    try:
        channels: int | None = len(hotline.ari("/channels", timeout=10) or [])
    except OSError:
        channels = None
    return {"api": use.get("api"), "cli": use.get("cli"), "calls": use.get("calls"),
            "channels": channels}


def ulaw_copies(hotline: Hotline) -> int:
    """Experiment: a mu-law copy (<hash>.ulaw) beside every prompt WAV of this run's PBX
    instance. Asterisk then plays the copy to a PCMU caller without transcoding each frame."""
    from callcenter.pbx.install import ensure_asterisk
    from callcenter.pbx.layout import PbxLayout
    sounds = PbxLayout.for_instance(ensure_asterisk(), hotline.instance, hotline.state).host(
        "sounds")
    made = 0
    for wav in sounds.rglob("*.wav"):
        target = wav.with_suffix(".ulaw")
        if not target.exists():
            subprocess.run(["sox", str(wav), "-t", "ul", "-r", "8000", "-c", "1", str(target)],
                           check=True, capture_output=True)
            shutil.chown(target, *_owner(wav))
            made += 1
    return made


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def renice(pid: int | None, value: int) -> int:
    """Set the nice value of every thread of a process (threads made later inherit it from the
    thread that makes them). Returns how many threads were changed."""
    if pid is None:
        return 0
    done = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(t), value)
            done += 1
        except (OSError, ValueError):
            continue
    return done


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="50,100,200,500",
                    help="calls at once at each step, comma-separated, increasing")
    ap.add_argument("--rate", type=float, default=20.0, help="new calls per second in a ramp")
    ap.add_argument("--plateau", type=float, default=20.0, help="seconds measured per step")
    ap.add_argument("--lines", type=int, default=0,
                    help="pool lines (default: the largest step + 10%%, at least 500)")
    ap.add_argument("--per-sipp", type=int, default=100,
                    help="callers per SIPp run (each run has one RTP echo socket and thread)")
    ap.add_argument("--rtp-sample", type=int, default=20,
                    help="calls whose RTP counters are read at each step")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy record of the app during every plateau (summary printed)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the last hang-up before counting leftovers")
    ap.add_argument("--nice-app", type=int, default=None,
                    help="experiment: run the app's threads at this nice value (e.g. -10)")
    ap.add_argument("--nice-asterisk", type=int, default=None,
                    help="experiment: run Asterisk's threads at this nice value (e.g. 5)")
    ap.add_argument("--ulaw", action="store_true",
                    help="experiment: mu-law copies of the prompts, so Asterisk does not "
                         "transcode them for PCMU callers")
    ap.add_argument("--seed", type=int, default=1022)
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the service")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)
    targets = [int(x) for x in args.steps.split(",") if x.strip()]
    if not targets or targets != sorted(set(targets)) or targets[0] <= 0:
        ap.error("--steps must be increasing positive numbers")
    lines = args.lines or max(500, int(targets[-1] * 1.1))
    if lines < targets[-1]:
        ap.error("--lines must be at least the largest step")

    stop_on_signals()
    machine = machine_summary()
    log(f"P3 calls sitting in the IVR — {machine}")
    rng = random.Random(args.seed)
    # Each call holds an RTP port and its RTCP port; leave room for slow releases.
    hotline = Hotline(lines, keep=args.keep, log_level=args.log_level, ivr=TREE,
                      rtp_ports=max(1000, targets[-1] * 2 + 400))
    failures: list[str] = []
    steps: list[Step] = []
    ok = False
    try:
        with hotline:
            t_built = time.monotonic()
            built = hotline.cli("prompts", "build", timeout=600)
            if built.returncode != 0:
                raise RuntimeError(f"prompts build failed: {built.stdout}{built.stderr}")
            if args.ulaw:
                log(f"experiment: {ulaw_copies(hotline)} mu-law copies of the prompts")
            log(f"prompts built in {time.monotonic() - t_built:.1f} s; RTP ports "
                f"{hotline.rtp[0]}-{hotline.rtp[1]}, pool {lines} lines")
            pids: dict[str, list[int]] = {
                "asterisk": [p for p in [hotline.asterisk_pid()] if p],
                # The app proper: `callcenter run` (hotline.proc) only supervises it.
                "app": hotline.app_pids(),
                "redis": [p for p in [hotline.redis_pid()] if p],
                "sipp": [],
            }
            log(f"pids: app {pids['app'] or 'not found in the run record'}, Asterisk "
                f"{pids['asterisk']}, Redis {pids['redis']}")
            limits = {role: fd_limit(plist[0]) for role, plist in pids.items()
                      if plist and role in ("asterisk", "app")}
            for role, value in (("app", args.nice_app), ("asterisk", args.nice_asterisk)):
                if value is not None and pids[role]:
                    n_threads = renice(pids[role][0], value)
                    log(f"experiment: {role} ({n_threads} threads) at nice {value}")
            # Every step's callers stay until the last plateau has been read: plan when.
            settle_budget, overhead = 10.0, 4.0
            prev = 0
            plan = 0.0
            for n in targets:
                plan += (n - prev) / args.rate + settle_budget + args.plateau + overhead
                prev = n
            t_end = time.monotonic() + plan + 5.0
            prev = 0
            for i, n in enumerate(targets):
                step = Step(target=n, added=n - prev)
                steps.append(step)
                hold_s = t_end - time.monotonic()
                ramp = step.added / args.rate
                # One SIPp run per `--per-sipp` callers: each has its own RTP echo socket and
                # thread (one echo for 300 callers overflowed its socket buffer).
                chunks = -(-step.added // args.per_sipp)
                log(f"step {i + 1}: {prev} -> {n} calls (+{step.added} at {args.rate:g}/s, "
                    f"{chunks} SIPp runs); they hang up in {hold_s:.0f} s")
                ports, _ = free_udp_range(4 * chunks, start=40000)
                for k in range(chunks):
                    count = step.added // chunks + (1 if k < step.added % chunks else 0)
                    sp = start_sipp(
                        "ivr_sit.xml", hotline, NUMBER, calls=count, rate=args.rate / chunks,
                        limit=count, tag=f"p3-{n}-{k + 1}", timeout_s=int(hold_s + ramp + 90),
                        extra=["-d", str(int(hold_s * 1000)), "-rtp_echo"],
                        media_port=ports + 4 * k)
                    step.sipps.append(sp)
                    pids["sipp"].append(sp.proc.pid)
                wait_for_calls(hotline, n, step, timeout=ramp + 45)
                ask_for_dumps(step.sipps)  # a SIPp run's first screen dump is slow
                if step.reached_after is not None:
                    log(f"  {n} calls in the menus after {step.reached_after:.1f} s")
                left_before_hangup = t_end - time.monotonic() - 2
                plateau = min(args.plateau, left_before_hangup)
                if plateau < args.plateau:
                    step.notes.append(f"plateau cut to {plateau:.0f} s (callers about to leave)")
                if plateau >= 3:
                    measure_plateau(hotline, step, plateau, pids,
                                    [sp for s in steps for sp in s.sipps],
                                    args.rtp_sample, rng, args.profile)
                    log(f"  lag {step.lag}; CPU asterisk {pct(step.cpu.get('asterisk'))} %, "
                        f"app {pct(step.cpu.get('app'))} %, machine "
                        f"{pct(step.cpu.get('machine'))} %; in use {step.in_use_end}")
                else:
                    step.notes.append("no time left to measure")
                prev = n
            log("all steps measured; waiting for the callers to hang up")
            for step in steps:
                step.runs = [sp.wait() for sp in step.sipps]
            time.sleep(args.settle)
            left = leftovers(hotline)
            if any(left.get(k) for k in ("api", "cli", "calls", "channels")):
                time.sleep(5)  # tell a slow release apart from a leak
                left_late = leftovers(hotline)
            else:
                left_late = left
            warn_log = hotline.count_log(r" (WARNING|ERROR|CRITICAL) ")
        ok = True
    finally:
        for step in steps:
            for sp in step.sipps:
                sp.kill()
        if not ok:
            hotline.cleanup(keep=True)

    for i, step in enumerate(steps):
        live = [sp for s in steps[:i + 1] for sp in s.sipps]
        rate = echo_rate(live, *step.echo_marks) if step.echo_marks[1] else None
        step.echo_pps = None if rate is None else rate / step.target
        if step.runs:
            for run in step.runs:
                step.finals.update(c.final_code() for c in parse_calls(run.trace).values())
            step.answered = step.finals.get(200, 0)
    ast_warn: Counter[str] = Counter()
    msgs = hotline.workdir / "asterisk-messages.log"
    if msgs.exists():
        for ln in msgs.read_text(errors="replace").splitlines():
            m = re.search(r"(WARNING|ERROR)\[\d+\](?:\[[^\]]*\])? (\S+):", ln)
            if m:
                ast_warn[f"{m.group(1)} {m.group(2)}"] += 1
    date = dt.date.today().isoformat()

    print()
    print(f"## P3 calls sitting in the IVR, {date} ({machine})")
    print(f"Steps {' / '.join(map(str, targets))} calls at once, added at {args.rate:g} calls/s, "
          f"{args.plateau:g} s measured per step; menus: long prompt, 5 s silence, invalid "
          f"prompt + menu again (10 times, then the twin menu); callers echo the RTP back; "
          f"pool {lines} lines; Asterisk, app, Redis and SIPp on the same machine."
          + "".join(f" Experiment: {role} at nice {v}." for role, v in
                    (("app", args.nice_app), ("Asterisk", args.nice_asterisk)) if v is not None)
          + (" Experiment: mu-law copies of the prompts." if args.ulaw else ""))
    print()
    rows = []
    cum_answered = 0
    for s in steps:
        cum_answered += s.answered or 0
        lag_ok = bool(s.lag) and float(s.lag.get("p99_ms", 1e9)) < TARGET_LAG_P99_MS
        all_in = s.in_use_end == s.target and (s.answered is None or s.answered == s.added)
        rows.append([
            str(s.target),
            f"{cum_answered} ({s.answered}/{s.added} new)",
            f"{s.in_use_end}" + ("" if s.channels_end is None else f" / {s.channels_end}"),
            f"{s.lag.get('p50_ms', '-')} / {s.lag.get('p99_ms', '-')} / "
            f"{s.lag.get('max_ms', '-')} ({s.lag.get('samples', 0)})",
            pct(s.cpu.get("asterisk")), pct(s.cpu.get("app")), pct(s.cpu.get("redis")),
            pct(s.cpu.get("sipp")), pct(s.cpu.get("machine")),
            "-" if s.rtp_tx_pps is None else
            f"{s.rtp_tx_pps:.1f} / {s.rtp_rx_pps:.1f} ({s.rtp_sampled})",
            "PASS" if lag_ok and all_in else "FAIL",
        ])
    print(table(["calls", "answered 200 OK", "in use / channels at end",
                 "loop lag p50 / p99 / max ms (samples)", "Asterisk CPU %", "app CPU %",
                 "Redis CPU %", "SIPp CPU %", "machine busy % (/proc/stat)",
                 "RTP pkt/s per call to caller / back (calls)", "step"], rows))
    print("CPU % is of one core (the machine has "
          f"{os.cpu_count()}); 'machine busy' is of all cores. "
          f"Target: {TARGET_CALLS} calls with loop lag p99 < {TARGET_LAG_P99_MS:g} ms.")
    print()
    print(table(["also seen", "value"], [
        *[[f"step {s.target}: all in the menus after", "-" if s.reached_after is None
           else f"{s.reached_after:.1f} s"] for s in steps],
        *[[f"step {s.target}: final INVITE responses (code: calls)",
           ", ".join(f"{k}: {v}" for k, v in sorted(s.finals.items(), key=str)) or "-"]
          for s in steps],
        *[[f"step {s.target}: open files Asterisk / app; RSS MiB Asterisk / app",
           f"{s.fds.get('asterisk')} / {s.fds.get('app')}; "
           f"{pct(s.rss.get('asterisk'))} / {pct(s.rss.get('app'))}"] for s in steps],
        ["RTP packets per second per call received (and echoed) by the callers, "
         "SIPp's count", ", ".join(f"{s.target}: " + ("-" if s.echo_pps is None
                                                     else f"{s.echo_pps:.1f}")
                                   for s in steps)],
        *[[f"step {s.target}: UDP datagrams dropped in the plateau at the callers' / "
            "Asterisk's RTP sockets", f"{s.drops_callers} / {s.drops_asterisk}"]
          for s in steps],
        *[[f"step {s.target}: busiest processes not part of the test", s.others]
          for s in steps],
        *[[f"step {s.target}: waiting for a CPU, app loop thread / all Asterisk threads",
           ("-" if s.wait_app is None else f"{s.wait_app:.0f} ms/s") + " / "
           + ("-" if s.wait_asterisk is None else f"{s.wait_asterisk:.0f} ms/s")]
          for s in steps],
        ["open files limit Asterisk / app",
         f"{limits.get('asterisk', '?')} / {limits.get('app', '?')}"],
        ["RTP ports given to Asterisk (each call takes 2)",
         f"{hotline.rtp[1] - hotline.rtp[0] + 1} ({hotline.rtp[0]}-{hotline.rtp[1]})"],
        ["left after hang-up: pool API / CLI, app calls, ARI channels",
         f"{left.get('api')} / {left.get('cli')}, {left.get('calls')}, {left.get('channels')}"
         + ("" if left_late == left else f"; 5 s later {left_late}")],
        ["app log: warning/error lines", str(warn_log)],
        ["Asterisk log: warnings/errors by source",
         ", ".join(f"{k}: {v}" for k, v in ast_warn.most_common(6)) or "none"],
    ]))
    for s in steps:
        for note in s.notes:
            print(f"  step {s.target}: {note}")
    for s in steps:
        if s.profile:
            print()
            print(f"py-spy, step {s.target}:")
            print("\n".join(s.profile))

    for s in steps:
        if s.answered is not None and s.answered != s.added:
            failures.append(f"step {s.target}: {s.added - s.answered} of {s.added} new calls "
                            f"not answered ({dict(s.finals)})")
        if s.in_use_end != s.target:
            failures.append(f"step {s.target}: {s.in_use_end} calls in use at the end of the "
                            f"plateau, not {s.target}")
        if s.target <= TARGET_CALLS and not (
                s.lag and float(s.lag.get("p99_ms", 1e9)) < TARGET_LAG_P99_MS):
            failures.append(f"step {s.target}: loop lag p99 {s.lag.get('p99_ms')} ms >= "
                            f"{TARGET_LAG_P99_MS:g} ms")
    if max(targets) < TARGET_CALLS:
        failures.append(f"largest step {max(targets)} < target {TARGET_CALLS} calls")
    if any(left_late.get(k) for k in ("api", "cli", "calls", "channels")):
        failures.append(f"calls leaked after hang-up: {left_late}")
    return finish(hotline, failures, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
