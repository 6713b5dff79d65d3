"""P11 — the cluster (issue 19 point 7): calls admitted through Kamailio with 1, 2 and 3 nodes,
INVITE -> 200 through the edge versus straight to a node, and what losing a node's Asterisk
or Redis's primary costs.

The product as an operator runs it: `callcenter cluster run --nodes N --port EDGE` in the
foreground (Kamailio in front of N Asterisk nodes, one app each), with a temporary config
(tenant dongnai, one whole-day shift with ``--lines`` lines: nothing is refused for lack of
lines) and state folder, its Redis a private Sentinel set (primary, replica, three sentinels:
callcenter/runtime/sentinel.py) shared by every run of the benchmark. For each N in turn:

1. Calls admitted per second: SIPp at increasing rates through the edge, short calls (INVITE,
   200, ACK, ~200 ms, BYE, bench/scenarios/answer_latency.xml), ``--step-seconds`` per rate.
   A rate is *held* when at least 99 % of the calls placed were answered 200 within 1 s; the
   highest held rate is reported with the INVITE -> 200 median and p95 at that rate. The
   steps stop after the first rate not held. Lines in use must be back to 0 after each step.
2. In the run with one node: INVITE -> 200 through the edge versus straight to that node's
   trunk, two SIPp runs side by side at a modest rate (the same machine noise hits both).
3. In the run with two nodes: SIGKILL of node2's Asterisk with calls held on both nodes and a
   stream of short calls through the edge: seconds until the edge's dispatcher marks node2
   inactive, until node2's lines are released in the shared pool, until it is back in the
   edge's set (the cluster run's supervisor restarts it); calls of the stream that failed.
   Then SIGKILL of Redis's primary with a stream of calls through the edge: seconds until the
   sentinels promote the replica, until every node's /readyz reports Redis answering again,
   and until the first call placed after that is answered; calls that failed; lines in use 0
   once the calls are over (none counted twice).

Prints one Markdown table per part and the machine (cores, load average before and after);
`RESULT: PASS` (exit 0) when every step ran, no line was left in use, the node was out and its
lines free within 10 s and the apps back on Redis within 10 s, and nothing was left running.
``--quick`` shortens every part (a smoke run of a few minutes). Two cores cannot show the
throughput of several nodes scaling: see docs/performance.md (P11).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (  # noqa: E402
    LOOPBACK,
    ROOT,
    TENANT,
    _pids_whose_cmdline_contains,
    _terminate,
    bench_config,
    fmt_ms,
    free_udp_range,
    log,
    machine_cpu,
    median,
    parse_calls,
    percentile,
    start_sipp,
    stop_on_signals,
    table,
)

from callcenter.cluster.status import node_status  # noqa: E402
from callcenter.lines.redis import lines_key  # noqa: E402
from callcenter.pbx.install import cache_dir  # noqa: E402
from callcenter.runtime.ports import bindable  # noqa: E402
from callcenter.runtime.sentinel import SentinelSet  # noqa: E402
from callcenter.tools.softphone import PhoneGroup  # noqa: E402

APP_NUMBER = "1022"
ANSWER_WITHIN_MS = 1000.0
HELD_SHARE = 0.99
NODE_STEP = 10  # callcenter/cluster/plan.py: node i's SIP on edge + 10 i, TLS one above
MAX_FAILOVER_S = 10.0


# ---- ports ------------------------------------------------------------------------------------
def free_base(offsets: list[int], rng: random.Random, lo: int = 20000, hi: int = 30000) -> int:
    """A port p such that p + each offset is free for TCP and UDP on loopback now (the plan
    derives every node's ports from the edge's and the config's by fixed steps)."""
    for _ in range(500):
        base = rng.randrange(lo, hi - max(offsets))
        if all(bindable(base + o, k, LOOPBACK) for o in offsets
               for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            return base
    raise RuntimeError(f"no free ports for offsets {offsets} in {lo}..{hi}")


@dataclass
class SipTarget:
    """What start_sipp needs of a target: where to send, where to keep the traces."""

    workdir: Path
    sip_port: int


# ---- the cluster under test ------------------------------------------------------------------
class ClusterRun:
    """`callcenter cluster run --nodes N` in a temporary folder; stopped however it ends."""

    def __init__(self, nodes: int, parent: Path, redis_set: SentinelSet, lines: int,
                 log_level: str, rng: random.Random):
        self.nodes = nodes
        self.dir = parent / f"nodes{nodes}"
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o701)  # the app's account walks down to its node config and state
        self.state = self.dir / "state"
        self.config_path = self.dir / "hotline.yaml"
        self.log_path = self.dir / "cluster-run.log"
        self.instance = f"benchcl{os.getpid()}n{nodes}"
        self.redis_set = redis_set
        self.lines = lines
        self.log_level = log_level
        offsets = [0] + [NODE_STEP * i + d for i in range(1, nodes + 1) for d in (0, 1)]
        self.edge_port = free_base(offsets, rng)
        spread = [NODE_STEP * i for i in range(nodes)]
        self.http_port = free_base(spread, rng)
        self.ari_port = free_base(spread, rng)
        self.ami_port = free_base(spread, rng)
        self.rtp = free_udp_range(400 * nodes, start=32000)
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed = False

    @property
    def edge(self) -> SipTarget:
        return SipTarget(self.dir, self.edge_port)

    def node_sip(self, i: int) -> SipTarget:
        return SipTarget(self.dir, self.edge_port + NODE_STEP * i)

    def node_http(self, i: int) -> int:
        return self.http_port + NODE_STEP * (i - 1)

    def node_instances(self) -> list[str]:
        return [f"{self.instance}-node{i}" for i in range(1, self.nodes + 1)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "HOTLINE_SOUNDS", "REDIS_SENTINELS",
                            "REDIS_SENTINEL_MASTER")}
        primary = self.redis_set.master()
        if primary is None:
            raise RuntimeError("the sentinels do not agree on a primary")
        env.update({"HOTLINE_CONFIG": str(self.config_path), "HOTLINE_STATE": str(self.state),
                    "HOTLINE_INSTANCE": self.instance, "HOTLINE_LOG_LEVEL": self.log_level,
                    # The run checks this answers (no private Redis then); the apps follow
                    # the sentinels, which win over it.
                    "REDIS_URL": f"redis://{primary[0]}:{primary[1]}/0",
                    **self.redis_set.env})
        return env

    def start(self, timeout: float = 240.0) -> None:
        self.state.mkdir()
        cfg = bench_config(sip_port=self.edge_port + NODE_STEP, ari_port=self.ari_port,
                           ami_port=self.ami_port, http_port=self.http_port, rtp=self.rtp,
                           lines=self.lines)
        self.config_path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        exe = ROOT / ".venv" / "bin" / "callcenter"
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "callcenter"]
        argv += ["cluster", "run", "--nodes", str(self.nodes), "--port", str(self.edge_port)]
        log(f"starting `callcenter cluster run --nodes {self.nodes}` (edge 127.0.0.1:"
            f"{self.edge_port}, lines {self.lines}); log {self.log_path}")
        t0 = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env(), cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`callcenter cluster run` exited with "
                                   f"{self.proc.returncode}:\n{self.log_tail()}")
            states = self.node_states()
            if (len(states) == self.nodes and all(s["edge"] == "up" for s in states)
                    and all(self.ready(i).get("ari") for i in range(1, self.nodes + 1))):
                log(f"cluster of {self.nodes} ready in {time.monotonic() - t0:.1f} s")
                return
            time.sleep(0.5)
        raise RuntimeError(f"cluster not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 90.0) -> None:
        """SIGINT (Ctrl-C) to the run, which stops the edge, the nodes and their apps in order;
        escalate; then whatever still names this run's folder or PBX instances is ours."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"cluster run still running {timeout:.0f} s after SIGINT: SIGTERM")
                self.failed = True
                self.proc.terminate()
                try:
                    code = self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    code = self.proc.wait(5)
            log(f"`callcenter cluster run --nodes {self.nodes}` stopped (exit code {code})")
            if code != 0:
                self.failed = True
        left = self.leftovers()
        if left:
            self.failed = True
            log(f"processes left after stop, terminating: {left}")
            _terminate(left)
        self._remove_instances()

    def leftovers(self) -> list[int]:
        pids = set(_pids_whose_cmdline_contains(str(self.dir)))
        for inst in self.node_instances():
            pids |= set(_pids_whose_cmdline_contains(f"/srv/hotline/{inst}/"))
        return sorted(pids)

    def _remove_instances(self) -> None:
        try:
            from callcenter.pbx.install import ensure_asterisk
            from callcenter.pbx.layout import PbxLayout
            install = ensure_asterisk()
        except Exception:  # noqa: BLE001 - best effort: only the PBX folders' removal
            return
        for inst in self.node_instances():
            d = PbxLayout.for_instance(install, inst, self.state).host()
            if d.name == inst and d.exists():
                shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> ClusterRun:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation ------------------------------------------------------------------------
    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def node_states(self) -> list[dict[str, Any]]:
        """`callcenter cluster status --json`'s nodes (the edge's view included)."""
        try:
            state = json.loads((self.state / "cluster" / "cluster.json").read_text())
        except (OSError, ValueError):
            return []
        return list(node_status(state, cache_dir() / "run")["nodes"])

    def edge_view(self) -> dict[str, str]:
        return {n["name"]: n["edge"] for n in self.node_states()}

    def asterisk_pid(self, i: int) -> int | None:
        for n in self.node_states():
            if n["name"] == f"node{i}":
                pid = n["asterisk_pid"]
                return int(pid) if pid is not None else None
        return None

    def ready(self, i: int) -> dict[str, bool]:
        """Node i's /readyz: {"ari": ok, "redis": ok} ({} when it does not answer)."""
        url = f"http://{LOOPBACK}:{self.node_http(i)}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read())
            except ValueError:
                return {}
        except (OSError, ValueError):
            return {}
        checks = body.get("checks") or {}
        return {k: bool((checks.get(k) or {}).get("ok")) for k in ("ari", "redis")}

    def lines_by_node(self) -> dict[str, int] | None:
        """Lines held in the shared pool now, by the node that took them (None: no answer)."""
        primary = self.redis_set.master()
        if primary is None:
            return None
        try:
            with redis.Redis(primary[0], primary[1], socket_timeout=1,
                             socket_connect_timeout=1) as r:
                held = r.hgetall(lines_key(TENANT))
        except (redis.RedisError, OSError):
            return None
        out: dict[str, int] = {}
        for raw in held.values():
            try:
                node = str(json.loads(raw).get("n"))
            except ValueError:
                node = "?"
            out[node] = out.get(node, 0) + 1
        return out

    def wait_lines_free(self, timeout: float = 15.0) -> int | None:
        """Wait until no line is held; the count left (0, or what is still held)."""
        end = time.monotonic() + timeout
        held: int | None = None
        while time.monotonic() < end:
            by_node = self.lines_by_node()
            held = None if by_node is None else sum(by_node.values())
            if held == 0:
                return 0
            time.sleep(0.25)
        return held


# ---- SIPp streams -----------------------------------------------------------------------------
@dataclass
class Stream:
    """The outcome of one SIPp run of short calls."""

    placed: int
    answered_ms: list[float] = field(default_factory=list)  # INVITE -> 200 of answered calls
    failed: int = 0
    invite_200: list[tuple[float, float]] = field(default_factory=list)  # (INVITE t, 200 t)
    failed_at: list[float] = field(default_factory=list)  # INVITE time of failed calls
    # (INVITE time, what went wrong) of each failed call: its INVITE's final response, or its
    # BYE's when the call was answered (a call up on a node that died ends with a BYE unanswered)
    failures: list[tuple[float, str]] = field(default_factory=list)
    busy: float = float("nan")  # machine CPU busy share during the run

    @property
    def within(self) -> int:
        return sum(1 for ms in self.answered_ms if ms <= ANSWER_WITHIN_MS)

    @property
    def share(self) -> float:
        return self.within / self.placed if self.placed else 0.0


def short_calls(target: SipTarget, *, rate: float, calls: int, tag: str, limit: int,
                warmup: int = 0, media_port: int | None = None) -> Any:
    """Start SIPp placing ``calls`` short calls to 1022 at ``rate``/s (in the background);
    SIPp runs started together need their own ``media_port`` (see start_sipp)."""
    inf = target.workdir / f"numbers-{tag}.csv"
    inf.write_text("SEQUENTIAL\n" + f"{APP_NUMBER};\n" * (calls + warmup))
    return start_sipp("answer_latency.xml", target, APP_NUMBER,  # type: ignore[arg-type]
                      calls=calls + warmup, rate=rate, limit=limit, tag=tag,
                      timeout_s=int((calls + warmup) / rate) + 60, extra=["-inf", str(inf)],
                      media_port=media_port)


def failure_of(call: Any) -> str:
    """What ended a failed call: "INVITE 408", "INVITE none", "BYE 408", "BYE none"."""
    code = call.final_code()
    if code != 200:
        return f"INVITE {code or 'none'}"
    return f"BYE {call.final_code('BYE') or 'none'}"


def read_stream(run: Any, placed: int, warmup: int = 0) -> Stream:
    """Per-call INVITE -> 200 from SIPp's trace; calls never traced count as failed."""
    calls = sorted(parse_calls(run.trace).values(), key=lambda c: c.msgs[0].t)[warmup:]
    out = Stream(placed=placed)
    for c in calls:
        inv, ok = c.first_sent("INVITE"), c.first_response(200)
        ms = c.ms(inv, ok)
        if ms is None or c.final_code() != 200 or inv is None or ok is None:
            out.failed += 1
            if inv is not None:
                out.failed_at.append(inv.t)
                out.failures.append((inv.t, failure_of(c)))
            continue
        out.answered_ms.append(ms)
        out.invite_200.append((inv.t, ok.t))
    out.failed += max(0, placed - len(calls))
    return out


# ---- the parts --------------------------------------------------------------------------------
@dataclass
class Step:
    rate: float
    stream: Stream
    lines_left: int | None


def rate_steps(cluster: ClusterRun, rates: list[float], seconds: float,
               limit: int) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        calls = max(1, int(rate * seconds))
        busy0, total0 = machine_cpu()
        sipp = short_calls(cluster.edge, rate=rate, calls=calls,
                           tag=f"n{cluster.nodes}-r{rate:g}", limit=limit)
        run = sipp.wait()
        busy1, total1 = machine_cpu()
        stream = read_stream(run, calls)
        stream.busy = (busy1 - busy0) / max(1.0, total1 - total0)
        left = cluster.wait_lines_free()
        steps.append(Step(rate, stream, left))
        log(f"{cluster.nodes} node(s), {rate:g} calls/s: {stream.within}/{calls} answered "
            f"within 1 s ({100 * stream.share:.1f} %), median "
            f"{fmt_ms(median(stream.answered_ms))} ms, p95 "
            f"{fmt_ms(percentile(stream.answered_ms, 95))} ms, CPU busy "
            f"{100 * stream.busy:.0f} %, lines left {left}")
        if stream.share < HELD_SHARE:
            break
        time.sleep(1.0)
    return steps


def edge_vs_direct(cluster: ClusterRun, calls: int, rate: float,
                   warmup: int) -> tuple[Stream, Stream]:
    """Short calls through the edge and straight to node1's trunk, side by side."""
    log(f"edge vs direct: {calls} (+{warmup}) calls each at {rate:g}/s, side by side")
    media, _ = free_udp_range(8, start=40000)  # SIPp binds its media port and the one 2 above
    via = short_calls(cluster.edge, rate=rate, calls=calls, tag="via-edge", limit=20,
                      warmup=warmup, media_port=media)
    direct = short_calls(cluster.node_sip(1), rate=rate, calls=calls, tag="direct", limit=20,
                         warmup=warmup, media_port=media + 4)
    try:
        a, b = via.wait(), direct.wait()
    finally:  # interrupted: neither outlives us
        via.kill()
        direct.kill()
    cluster.wait_lines_free()
    return read_stream(a, calls, warmup), read_stream(b, calls, warmup)


def first_answer_after(stream: Stream, t: float) -> float | None:
    """The time the first call whose INVITE left after ``t`` was answered (epoch)."""
    after = [ok for inv, ok in stream.invite_200 if inv >= t]
    return min(after) if after else None


def last_failed(stream: Stream, t: float) -> float | None:
    """Seconds from ``t`` to the INVITE of the last failed call placed after ``t - 2``."""
    late = [f for f in stream.failed_at if f >= t - 2]
    return max(late) - t if late else None


def failure_list(stream: Stream | None, t_kill: float | None) -> str:
    """The failed calls of a failover's stream, e.g. "-0.12 BYE none; +0.40 INVITE 408"."""
    if stream is None or t_kill is None or not stream.failures:
        return "none"
    return "; ".join(f"{t - t_kill:+.2f} {what}" for t, what in sorted(stream.failures))


def node_failover(cluster: ClusterRun, stream_s: float, limit: int) -> dict[str, Any]:
    """SIGKILL node2's Asterisk with calls held on both nodes and short calls flowing."""
    out: dict[str, Any] = {}
    held = PhoneGroup(f"{LOOPBACK}:{cluster.edge_port}", APP_NUMBER, 4, hold=stream_s + 30,
                      caller="0919700100")
    sipp = None
    try:
        if len(held.wait_for("answered", 4, 30)) < 4:
            raise RuntimeError(f"held calls not answered: {held.events[-5:]}")
        end = time.monotonic() + 10
        by_node = cluster.lines_by_node() or {}
        while by_node.get("node2", 0) == 0 and time.monotonic() < end:
            time.sleep(0.2)
            by_node = cluster.lines_by_node() or {}
        out["held"] = dict(by_node)
        calls = int(5 * stream_s)
        sipp = short_calls(cluster.edge, rate=5, calls=calls, tag="node-failover", limit=limit)
        time.sleep(2.0)
        pid = cluster.asterisk_pid(2)
        if pid is None:
            raise RuntimeError("node2's Asterisk pid not found")
        os.kill(pid, signal.SIGKILL)
        t_kill, m_kill = time.time(), time.monotonic()
        log(f"node2's Asterisk (pid {pid}) killed")
        # Seconds after the kill: the edge marks node2 inactive ("out") and active again
        # ("back"); the run's supervisor has started a new Asterisk ("restarted"); node2's app
        # is on ARI again ("app_back"); node2's lines are gone from the pool ("freed").
        t: dict[str, float | None] = dict.fromkeys(
            ("out", "back", "restarted", "app_back", "freed"))
        end = m_kill + 40
        while time.monotonic() < end:
            now = time.monotonic() - m_kill
            node2 = next((n for n in cluster.node_states() if n["name"] == "node2"), {})
            view = node2.get("edge")
            if t["out"] is None and view not in (None, "up", "unknown"):
                t["out"] = now
            if t["out"] is not None and t["back"] is None and view == "up":
                t["back"] = now
            if t["restarted"] is None and node2.get("asterisk_pid") not in (None, pid):
                t["restarted"] = now
            if (t["restarted"] is not None and t["app_back"] is None
                    and cluster.ready(2).get("ari")):
                t["app_back"] = now
            if t["freed"] is None and (cluster.lines_by_node() or {"node2": 1}).get(
                    "node2", 0) == 0:
                t["freed"] = now
            if (now > 10 and None not in (t["restarted"], t["app_back"], t["freed"])
                    and (t["out"] is None or t["back"] is not None)):
                break
            time.sleep(0.05)
        out.update({f"{k}_s": v for k, v in t.items()})
        run = sipp.wait()
        sipp = None
        stream = read_stream(run, calls)
        first = first_answer_after(stream, t_kill)
        out["stream"] = stream
        out["first_after_s"] = None if first is None else first - t_kill
        out["failed_after_kill"] = sum(1 for t in stream.failed_at if t >= t_kill - 2)
        out["last_failed_s"] = last_failed(stream, t_kill)
        out["t_kill"] = t_kill
        out["slow_after_kill"] = sum(1 for inv, ok in stream.invite_200
                                     if inv >= t_kill - 2 and ok - inv > ANSWER_WITHIN_MS / 1000)
    finally:
        if sipp is not None:
            sipp.kill()
        held.finish(30)
    out["lines_left"] = cluster.wait_lines_free()
    # Back for what follows: every node up at the edge and its app on ARI again.
    end = time.monotonic() + 60
    while time.monotonic() < end and not (
            set(cluster.edge_view().values()) == {"up"}
            and all(cluster.ready(i).get("ari") for i in range(1, cluster.nodes + 1))):
        time.sleep(0.5)
    return out


def redis_failover(cluster: ClusterRun, stream_s: float, limit: int) -> dict[str, Any]:
    """SIGKILL Redis's primary with short calls flowing through the edge."""
    out: dict[str, Any] = {}
    calls = int(5 * stream_s)
    sipp = short_calls(cluster.edge, rate=5, calls=calls, tag="redis-failover", limit=limit)
    try:
        time.sleep(2.0)
        old = cluster.redis_set.kill_primary()
        t_kill, m_kill = time.time(), time.monotonic()
        promoted: dict[str, float] = {}

        def wait_promoted() -> None:
            try:
                cluster.redis_set.wait_failover(old, 60.0)
                promoted["s"] = time.monotonic() - m_kill
            except Exception as e:  # noqa: BLE001 - reported as not promoted
                log(f"no failover: {e}")

        watcher = threading.Thread(target=wait_promoted, daemon=True)
        watcher.start()
        apps_s = None
        seen_down = False
        end = m_kill + 60
        while time.monotonic() < end and apps_s is None:
            ok = [cluster.ready(i).get("redis") for i in range(1, cluster.nodes + 1)]
            seen_down = seen_down or not all(ok)
            if "s" in promoted and all(ok):
                apps_s = time.monotonic() - m_kill
            time.sleep(0.05)
        watcher.join(60)
        out.update(promoted_s=promoted.get("s"), apps_s=apps_s, seen_down=seen_down)
        run = sipp.wait()
        sipp = None
        stream = read_stream(run, calls)
        out["stream"] = stream
        first = None if apps_s is None else first_answer_after(stream, t_kill + apps_s)
        out["first_after_s"] = None if first is None else first - t_kill
        out["failed_after_kill"] = sum(1 for t in stream.failed_at if t >= t_kill - 2)
        out["last_failed_s"] = last_failed(stream, t_kill)
    finally:
        if sipp is not None:
            sipp.kill()
    out["lines_left"] = cluster.wait_lines_free()
    return out


# ---- report -----------------------------------------------------------------------------------
def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def held_rate(steps: list[Step]) -> Step | None:
    held = [s for s in steps if s.stream.share >= HELD_SHARE]
    return held[-1] if held else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: few, short steps and streams")
    ap.add_argument("--nodes", default="1,2,3", help="node counts in turn (default 1,2,3)")
    ap.add_argument("--rates", default=None,
                    help="calls/s steps (default 10,20,30,40,50,60,80,100; quick 10,20,40)")
    ap.add_argument("--step-seconds", type=float, default=None,
                    help="seconds of calls per rate (default 15; quick 4)")
    ap.add_argument("--compare-calls", type=int, default=None,
                    help="calls per path, edge vs direct (default 300; quick 40)")
    ap.add_argument("--lines", type=int, default=400, help="pool lines (none may be refused)")
    ap.add_argument("--concurrency", type=int, default=300, help="SIPp -l (calls at once)")
    ap.add_argument("--no-failover", action="store_true", help="skip the failover part")
    ap.add_argument("--seed", type=int, default=1022)
    ap.add_argument("--log-level", default="INFO", help="HOTLINE_LOG_LEVEL of the apps")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, traces)")
    args = ap.parse_args(argv)
    rates = [float(r) for r in (args.rates or ("10,20,40" if args.quick else
                                                "10,20,30,40,50,60,80,100")).split(",")]
    seconds = args.step_seconds or (4.0 if args.quick else 15.0)
    compare = args.compare_calls or (40 if args.quick else 300)
    stream_s = 12.0 if args.quick else 25.0
    counts = [int(n) for n in args.nodes.split(",")]
    failover_in = 2 if 2 in counts else max(counts)

    stop_on_signals()
    # Ctrl-C raises KeyboardInterrupt even when started where SIGINT was ignored (a shell's
    # background job): whatever happens, the clusters and the Redis set are stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    cpu = "?"
    for ln in Path("/proc/cpuinfo").read_text().splitlines():
        if ln.startswith("model name"):
            cpu = ln.split(":", 1)[1].strip()
            break
    load_before = load()
    log(f"P11 cluster — {os.cpu_count()} CPUs ({cpu}); load average {load_before}")
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-cluster-"))
    workdir.chmod(0o701)
    failures: list[str] = []
    results: dict[int, list[Step]] = {}
    comparison: tuple[Stream, Stream] | None = None
    node_fo: dict[str, Any] | None = None
    redis_fo: dict[str, Any] | None = None
    runs: list[ClusterRun] = []
    redis_set = SentinelSet(workdir / "redis")
    try:
        redis_set.start()
        for n in counts:
            cluster = ClusterRun(n, workdir, redis_set, args.lines, args.log_level, rng)
            runs.append(cluster)
            with cluster:
                results[n] = rate_steps(cluster, rates, seconds, args.concurrency)
                if n == 1:
                    comparison = edge_vs_direct(cluster, compare, 5.0, 10)
                if n == failover_in and n >= 2 and not args.no_failover:
                    node_fo = node_failover(cluster, stream_s, args.concurrency)
                    redis_fo = redis_failover(cluster, stream_s, args.concurrency)
            if cluster.failed:
                failures.append(f"the {n}-node cluster did not stop cleanly")
    except KeyboardInterrupt:
        failures.append("interrupted")
        log("interrupted: stopping what was started")
    except Exception as e:  # noqa: BLE001 - reported, then everything is stopped
        failures.append(f"error: {e!r}"[:500])
        log(f"error: {e!r}")
    finally:
        for cluster in runs:
            if cluster.proc is not None and cluster.proc.poll() is None or cluster.leftovers():
                cluster.stop()
        redis_set.stop()
    load_after = load()
    took = time.monotonic() - started

    print()
    print(f"## P11 cluster, {time.strftime('%Y-%m-%d')} — {os.cpu_count()} CPUs ({cpu}); load "
          f"average before {load_before}, after {load_after}; {took / 60:.1f} min")
    print(f"Short calls to 1022 through Kamailio (INVITE, 200, ACK, ~200 ms, BYE), {seconds:g} s "
          f"per rate; a rate is held when >= {100 * HELD_SHARE:g} % of the calls placed were "
          f"answered within {ANSWER_WITHIN_MS:g} ms. Pool {args.lines} lines.")
    print()
    rows = []
    for n, steps in results.items():
        best = held_rate(steps)
        last = steps[-1] if steps else None
        rows.append([n, f"{best.rate:g}" if best else "none",
                     fmt_ms(median(best.stream.answered_ms)) if best else "-",
                     fmt_ms(percentile(best.stream.answered_ms, 95)) if best else "-",
                     f"{100 * best.stream.busy:.0f} %" if best else "-",
                     f"{last.rate:g}: {100 * last.stream.share:.1f} %" if last else "-",
                     " ".join(f"{s.rate:g}:{100 * s.stream.share:.0f}%" for s in steps)])
        if not steps:
            failures.append(f"{n} node(s): no step ran")
        for s in steps:
            if s.lines_left != 0:
                failures.append(f"{n} node(s), {s.rate:g}/s: {s.lines_left} lines left in use")
    print(table(["nodes", "calls/s held", "median ms", "p95 ms", "CPU busy",
                 "last rate tried: answered <= 1 s", "steps"], rows))
    if comparison is not None:
        via, direct = comparison
        print()
        print("INVITE -> 200, 1 node, through the edge vs straight to the node's trunk (side by "
              "side, 5 calls/s each):")
        rows = [[name, len(s.answered_ms), s.failed, fmt_ms(median(s.answered_ms)),
                 fmt_ms(percentile(s.answered_ms, 95)), fmt_ms(percentile(s.answered_ms, 99))]
                for name, s in (("through Kamailio", via), ("straight to node1", direct))]
        rows.append(["difference (edge - direct)", "", "",
                     f"{median(via.answered_ms) - median(direct.answered_ms):+.2f}",
                     f"{percentile(via.answered_ms, 95) - percentile(direct.answered_ms, 95):+.2f}",
                     ""])
        print(table(["path", "answered", "failed", "median ms", "p95 ms", "p99 ms"], rows))
        if via.failed or direct.failed:
            failures.append(f"edge vs direct: {via.failed} + {direct.failed} calls failed")
    if node_fo is not None or redis_fo is not None:
        print()
        print(f"failover, {failover_in} nodes (seconds after the SIGKILL; a stream of 5 short "
              f"calls/s through the edge meanwhile):")
        rows = []
        if node_fo is not None:
            st = node_fo.get("stream")
            rows += [
                ["node2's Asterisk killed: node2's lines released in the pool (held before: "
                 f"{node_fo.get('held')})", secs(node_fo.get("freed_s"))],
                ["  edge's dispatcher marks node2 inactive / active again",
                 f"{secs(node_fo.get('out_s'))} / {secs(node_fo.get('back_s'))}"
                 + ("" if node_fo.get("out_s") is not None else
                    " (not seen: restarted before the probes gave up)")],
                ["  a new Asterisk started by the run's supervisor",
                 secs(node_fo.get("restarted_s"))],
                ["  node2's app on ARI again", secs(node_fo.get("app_back_s"))],
                ["  first call placed after the kill answered", secs(node_fo.get("first_after_s"))],
                ["  stream calls failed / answered > 1 s from 2 s before the kill",
                 f"{node_fo.get('failed_after_kill')} / {node_fo.get('slow_after_kill')} of "
                 f"{st.placed if st else '?'}"],
                ["  last failed call placed (INVITE sent)", secs(node_fo.get("last_failed_s"))],
                ["  failed calls: placed (s after the kill), what failed",
                 failure_list(st, node_fo.get("t_kill"))],
                ["  lines in use after", str(node_fo.get("lines_left"))],
            ]
            last = node_fo.get("last_failed_s")
            if last is not None and last > MAX_FAILOVER_S:
                failures.append(f"calls through the edge still failing {last:.1f} s after "
                                f"node2's Asterisk was killed")
            if node_fo.get("freed_s") is None or node_fo["freed_s"] > MAX_FAILOVER_S:
                failures.append(f"node2's lines not released within {MAX_FAILOVER_S:g} s")
            if node_fo.get("lines_left") != 0:
                failures.append(f"lines left after the node failover: {node_fo.get('lines_left')}")
        if redis_fo is not None:
            st = redis_fo.get("stream")
            rows += [
                ["Redis primary killed: sentinels promote the replica",
                 secs(redis_fo.get("promoted_s"))],
                ["  every node's /readyz: Redis answers again" +
                 ("" if redis_fo.get("seen_down") else " (never seen failing)"),
                 secs(redis_fo.get("apps_s"))],
                ["  first call placed after that answered", secs(redis_fo.get("first_after_s"))],
                ["  stream calls failed from 2 s before the kill",
                 f"{redis_fo.get('failed_after_kill')} of {st.placed if st else '?'}"],
                ["  last failed call placed (INVITE sent)", secs(redis_fo.get("last_failed_s"))],
                ["  lines in use after (none counted twice)", str(redis_fo.get("lines_left"))],
            ]
            if redis_fo.get("apps_s") is None or redis_fo["apps_s"] > MAX_FAILOVER_S:
                failures.append(f"apps not back on Redis within {MAX_FAILOVER_S:g} s")
            if redis_fo.get("lines_left") != 0:
                failures.append(f"lines left after the Redis failover: "
                                f"{redis_fo.get('lines_left')}")
        print(table(["event", "value"], rows))
    left = [pid for c in runs for pid in c.leftovers()]
    left += [p.pid for p in redis_set.procs.values() if p.poll() is None]
    if left:
        failures.append(f"processes left behind: {left}")
    if args.keep or failures:
        log(f"kept {workdir} (cluster logs, SIPp traces)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    if failures:
        print("RESULT: FAIL — " + "; ".join(failures))
        return 1
    print("RESULT: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
