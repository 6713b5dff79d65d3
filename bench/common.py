"""Shared machinery for the benchmarks: bring the whole hotline up and down, drive SIPp, and read
per-call timings out of SIPp's message trace.

Everything stays on loopback: the hotline listens on 127.0.0.1 on free ports, SIPp binds
127.0.0.1 for SIP and media and sends only there.

`Hotline` runs the product exactly as an operator does (`callcenter run` in the foreground,
SIGINT to stop) with a temporary config and state folder. It always cleans up: on any exit path
it sends SIGINT, waits, escalates, and finally removes any process left that names this run's
own (unique) state folder or PBX instance.

`run_sipp` runs one SIPp scenario in the foreground with `-trace_msg` (`start_sipp`, the same in
the background); `parse_calls` turns that trace into one `SippCall` per Call-ID, with the time of
every message sent and received at microsecond resolution, so any per-call interval (INVITE ->
200, INVITE -> 183) can be computed.

The hotline may carry IVR menus (`Hotline(ivr=...)`); `Hotline.cli`, `.post`, `.ari` and
`.ari_events_url` reach its CLI, HTTP API (with an admin's token, made at start) and ARI
(credentials from its state folder);
`cpu_seconds` and `machine_cpu` read /proc for CPU use.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import functools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from callcenter.runtime.ports import free_port, lease_ports

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "bench" / "scenarios"
LOOPBACK = "127.0.0.1"
TENANT = "dongnai"
PLAIN_NUMBER = "19001022"


# ---- small helpers ------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_udp_range(size: int, start: int = 32000, stop: int = 60000) -> tuple[int, int]:
    """An even-aligned block of `size` UDP ports on loopback none of which is bound now nor
    leased to another live process (two benchmarks at once, as the suite's two end-to-end
    workers run them, found the same block: callcenter.runtime.ports)."""
    for base in range(start, stop - size, size):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        if lease_ports(range(base, base + size)):
            return base, base + size - 1
    raise RuntimeError(f"no free block of {size} UDP ports on loopback")


def free_even_udp_pair() -> int:
    """A UDP port p (even) such that p and p+1 .. p+3 are free: SIPp's media ports."""
    base, _ = free_udp_range(4, start=40000)
    return base


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): the value at least p% of samples do not exceed."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))  # ceil(p*n/100) - 1
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_ms(v: float) -> str:
    return "-" if v != v else f"{v:.2f}"  # NaN -> "-"


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A GitHub-flavoured Markdown table (also readable as plain text)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def stop_on_signals() -> None:
    """SIGTERM/SIGHUP end the benchmark like Ctrl-C does, so the hotline is still stopped."""
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def machine_summary() -> str:
    cpu = "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs ({cpu}); load average at start "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


# ---- processes ----------------------------------------------------------------------------
def _pids_whose_cmdline_contains(needle: str) -> list[int]:
    """Processes whose argv contains `needle` (a path unique to this run): ours to clean up."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def _terminate(pids: list[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace
        while alive and time.monotonic() < end:
            alive = [p for p in alive if Path(f"/proc/{p}").exists()
                     and "Z" not in _proc_state(p)]
            time.sleep(0.1)
        pids = alive
        if not pids:
            return


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process, all its threads (from /proc/PID/stat); None if gone."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot (from /proc/stat)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    total = sum(vals[:8])  # guest time is already counted in user
    return float(total - idle), float(total)


# ---- the hotline under test ---------------------------------------------------------------
# ---- in-process profiles (answer_profile, queue_profile): calls one at a time ----------------
class FakeAri(Protocol):
    """What the measuring loop needs of a stand-in Asterisk (answer_profile.FakeAsterisk)."""

    requests: list[tuple[str, str]]  # (method, uri) of every REST request, in order
    answered: dict[str, Callable[[], Any]]  # call id -> called (its thread) on its request


class Switch(Protocol):
    on: bool  # the per-step probes count only while on (answer_profile.Steps)


def told_when_requested(fake: FakeAri, call_id: str) -> asyncio.Future[None]:
    """A future of this loop set when the fake Asterisk receives the request it watches for
    this call (the answer; queue_profile: the operator leg's originate)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fake.answered[call_id] = functools.partial(loop.call_soon_threadsafe, done.set_result, None)
    return done


async def commandstats(r: Any) -> dict[str, int]:
    """Calls per command, and Redis's own time per command as "<command> µs" (``r``: a
    redis.asyncio client)."""
    info = await r.info("commandstats")
    out = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}
    out.update({k.removeprefix("cmdstat_") + " µs": int(v["usec"]) for k, v in info.items()})
    return out


def request_shape(uri: str) -> str:
    """An ARI request's path with its ids as placeholders (``channels/{id}/play/{playback}``)."""
    parts = uri.split("/")
    if parts[0] == "channels" and len(parts) > 1:
        parts[1] = "{id}"
        if len(parts) > 3 and parts[2] == "play":
            parts[3] = "{playback}"
    if parts[0] == "applications" and len(parts) > 2:
        parts[1] = "{app}"
    return "/".join(parts)


@dataclass
class Measured:
    """What the measured calls (not the warm-up ones) asked of Redis and of Asterisk."""

    redis_cmds: dict[str, int]  # per command, and "<command> µs"
    ari: collections.Counter[str]  # "<method> <request_shape>"


async def measure_calls(fake: FakeAri, stats: Any, steps: Switch, *, calls: int, warmup: int,
                        first_id: str, call: Callable[[str, bool], Awaitable[None]]
                        ) -> Measured:
    """``warmup`` calls, then ``calls`` measured ones, one at a time: ``call(call_id,
    measured)`` places one and returns once it is over. Redis's commandstats (``stats``: a
    client of the same Redis) and the fake's requests are counted from the first measured
    call on, the probes switched on there."""
    before_cmds: dict[str, int] = {}
    before_ari = 0
    prefix, start = first_id.rsplit(".", 1)
    for i in range(warmup + calls):
        if i == warmup:
            await asyncio.sleep(0.05)
            before_cmds = await commandstats(stats)
            before_ari = len(fake.requests)
            steps.on = True
        await call(f"{prefix}.{int(start) + i}", i >= warmup)
    steps.on = False
    await asyncio.sleep(0.05)
    after_cmds = await commandstats(stats)
    cmds = {k: v - before_cmds.get(k, 0) for k, v in after_cmds.items()
            if v - before_cmds.get(k, 0) > 0}
    ari = collections.Counter(f"{m} {request_shape(u)}" for m, u in fake.requests[before_ari:])
    return Measured(cmds, ari)


def bench_config(*, sip_port: int, ari_port: int, ami_port: int, http_port: int,
                 rtp: tuple[int, int], lines: int, ivr: dict[str, Any] | None = None,
                 tenant_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One tenant (dongnai: 1022, 02511022), one whole-day shift with `lines` lines.

    `ivr` is the tenant's menu tree (the `ivr:` schema of callcenter/ivr/config.py);
    `tenant_extra` adds or replaces other keys of the tenant (prompts, fields ...)."""
    tenant: dict[str, Any] = {
        "id": TENANT, "name": "Đồng Nai", "timezone": "Asia/Ho_Chi_Minh",
        "numbers": ["1022", "02511022"],
        "shifts": [{"name": "allday", "start": "00:00", "end": "00:00", "lines": lines}],
    }
    if ivr is not None:
        tenant["ivr"] = ivr
    tenant.update(tenant_extra or {})
    return {
        "service": {"ari_port": ari_port, "ami_port": ami_port, "http_port": http_port,
                    "stasis_app": "hotline-bench", "node": "benchpbx"},
        "trunk": {"port": sip_port, "trusted_networks": ["127.0.0.1/32"],
                  "media_address": LOOPBACK, "rtp_start": rtp[0], "rtp_end": rtp[1]},
        # `callcenter run` listens for operators over TLS too: not on the shared default 5061.
        "sip_tls": {"port": free_port()},
        "tenants": [tenant],
    }


class Hotline:
    """`callcenter run` in a temporary state folder with a benchmark config.

    Use as a context manager; stopping (SIGINT, as Ctrl-C would) always happens."""

    def __init__(self, lines: int, *, plain_number: str | None = None, keep: bool = False,
                 log_level: str = "INFO", ivr: dict[str, Any] | None = None,
                 tenant_extra: dict[str, Any] | None = None, rtp_ports: int = 1000):
        self.lines = lines
        self.plain_number = plain_number
        self.keep = keep
        self.log_level = log_level
        self.ivr = ivr
        self.tenant_extra = tenant_extra
        self.workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
        # `callcenter run` as root hands the app to its unprivileged user, which must walk
        # down to the state folder inside (search only: nobody else can list it).
        self.workdir.chmod(0o701)
        self.state = self.workdir / "state"
        self.config_path = self.workdir / "hotline.yaml"
        self.app_log = self.workdir / "callcenter-run.log"
        self.instance = f"bench-{os.getpid()}"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port()
        self.ari_port = free_port()
        self.ami_port = free_port()
        # Kannel (SMS) on ports of its own: its defaults (13100-13103) are one machine's, and two
        # hotlines at once (a benchmark beside the test suite) would refuse each other's.
        self.kannel_env = {f"HOTLINE_KANNEL_{name}_PORT": str(free_port())
                           for name in ("ADMIN", "SMSBOX", "SENDSMS", "FAKE_SMSC")}
        # Asterisk takes an even RTP port and the odd one above it (RTCP) per call.
        self.rtp = free_udp_range(rtp_ports + rtp_ports % 2, start=32000)
        while self.rtp[0] <= self.sip_port <= self.rtp[1]:  # the config refuses SIP in there
            self.sip_port = free_port(socket.SOCK_DGRAM)
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""  # an admin's bearer token for the control routes (start() makes it)
        self.exit_code: int | None = None
        self.failed = False

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state / 'hotline.db'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "HOTLINE_SOUNDS")}
        env.update({
            "HOTLINE_CONFIG": str(self.config_path),
            "HOTLINE_STATE": str(self.state),
            "HOTLINE_INSTANCE": self.instance,
            "HOTLINE_LOG_LEVEL": self.log_level,
            "DATABASE_URL": self.database_url,
        })
        for name, port in self.kannel_env.items():
            env.setdefault(name, port)
        if self.plain_number:
            env["HOTLINE_BENCH_PLAIN_NUMBER"] = self.plain_number
        return env

    def start(self, timeout: float = 120.0) -> None:
        self.state.mkdir(parents=True)
        cfg = bench_config(sip_port=self.sip_port, ari_port=self.ari_port,
                           ami_port=self.ami_port, http_port=self.http_port, rtp=self.rtp,
                           lines=self.lines, ivr=self.ivr, tenant_extra=self.tenant_extra)
        self.config_path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        out = open(self.app_log, "ab")  # noqa: SIM115
        exe = ROOT / ".venv" / "bin" / "callcenter"
        argv = [str(exe), "run"] if exe.exists() else [sys.executable, "-m", "callcenter", "run"]
        log(f"starting `callcenter run` (instance {self.instance}, SIP 127.0.0.1:{self.sip_port},"
            f" HTTP {self.http_port}, lines {self.lines}); log {self.app_log}")
        t0 = time.monotonic()
        # Own session: a Ctrl-C at the benchmark's terminal reaches us, and we stop it in order.
        self.proc = subprocess.Popen(argv, env=self.env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`callcenter run` exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if self.health().get("ari_connected"):
                log(f"hotline ready in {time.monotonic() - t0:.1f} s")
                # The control routes (/api/pool, /api/ivr, /api/loop-lag) need an admin's
                # token; made now that the app has migrated its database and holds it open.
                from callcenter.store.users import control_token
                self.token = control_token(self.database_url, TENANT)
                return
            time.sleep(0.2)
        raise RuntimeError(f"hotline not healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 45.0) -> None:
        """SIGINT (as Ctrl-C), wait for the orderly stop; escalate; sweep what is left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.exit_code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"`callcenter run` still running {timeout:.0f} s after SIGINT: SIGTERM")
                self.failed = True
                self.proc.terminate()
                try:
                    self.exit_code = self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.exit_code = self.proc.wait(5)
        elif self.proc is not None:
            self.exit_code = self.proc.returncode
        if self.proc is not None:
            log(f"`callcenter run` stopped (exit code {self.exit_code})")
        # Anything still naming our unique state folder (private redis-server) or PBX instance
        # (Asterisk under chroot) was started by this run and must not outlive it.
        leftovers = (_pids_whose_cmdline_contains(str(self.state))
                     + _pids_whose_cmdline_contains(f"/srv/hotline/{self.instance}/"))
        if leftovers:
            self.failed = True
            log(f"processes left after stop, terminating: {sorted(set(leftovers))}")
            _terminate(sorted(set(leftovers)))
        self._save_pbx_logs()
        self._remove_instance()
        if self.exit_code not in (0, None):
            self.failed = True
            log(f"`callcenter run` exit code {self.exit_code}")

    def _instance_host_dir(self) -> Path | None:
        try:
            from callcenter.pbx.install import ensure_asterisk
            from callcenter.pbx.layout import PbxLayout
            return PbxLayout.for_instance(ensure_asterisk(), self.instance, self.state).host()
        except Exception:  # noqa: BLE001 - best effort: only used for log copies and removal
            return None

    def _save_pbx_logs(self) -> None:
        d = self._instance_host_dir()
        if d is None:
            return
        for name in ("messages.log", "console.log"):
            src = d / "log" / name
            if src.exists():
                shutil.copyfile(src, self.workdir / f"asterisk-{name}")

    def _remove_instance(self) -> None:
        d = self._instance_host_dir()
        if d is not None and d.name == self.instance and d.exists():
            shutil.rmtree(d, ignore_errors=True)

    def cleanup(self, keep: bool | None = None) -> None:
        if keep if keep is not None else self.keep:
            log(f"kept {self.workdir} (app log, Asterisk logs, SIPp traces)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Hotline:
        try:
            self.start()
        except BaseException:
            self.stop()
            self.cleanup(keep=True)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()

    # -- observation ----------------------------------------------------------------------
    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.app_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _get(self, path: str) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}",
                                     headers=self._auth())
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read())
            except ValueError:
                return e.code, {}
        except (OSError, ValueError):
            return 0, {}

    def health(self) -> dict[str, Any]:
        """/readyz's details (loopback sees them) in the keys the benchmarks read:
        ari_connected, calls, journal_pending, config_error; {} when the app does not answer."""
        checks = (self._get("/readyz")[1] or {}).get("checks") or {}
        if not checks:
            return {}
        return {"ari_connected": bool(checks["ari"]["ok"]), "calls": checks["ari"].get("calls"),
                "journal_pending": checks["journal"].get("pending"),
                "config_error": checks["config"]["error"]}

    def pool_api(self) -> list[dict[str, Any]]:
        return list(self._get("/api/pool")[1] or [])

    def pool_cli(self) -> list[dict[str, Any]]:
        """`callcenter pool --json` with this run's environment (reads Redis directly)."""
        exe = ROOT / ".venv" / "bin" / "callcenter"
        argv = [str(exe), "pool", "--json"] if exe.exists() else \
            [sys.executable, "-m", "callcenter", "pool", "--json"]
        env = self.env()
        env["REDIS_URL"] = f"unix://{self.state / 'redis.sock'}"
        out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"callcenter pool failed: {out.stderr.strip()}")
        return list(json.loads(out.stdout))

    def records(self, last: int = 1000) -> list[dict[str, Any]]:
        """`callcenter calls --last N --json`: the call records the service wrote."""
        exe = ROOT / ".venv" / "bin" / "callcenter"
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "callcenter"]
        out = subprocess.run([*argv, "calls", "--last", str(last), "--json"], env=self.env(),
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"callcenter calls failed: {out.stderr.strip()}")
        return list(json.loads(out.stdout))

    def in_use(self) -> dict[str, int | None]:
        """Lines in use for the tenant, seen by the app's API and by the CLI."""
        api = next((r for r in self.pool_api() if r.get("tenant") == TENANT), {})
        try:
            cli = next((r for r in self.pool_cli() if r.get("tenant") == TENANT), {})
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            log(f"pool via CLI failed: {e}")
            cli = {}
        return {"api": api.get("in_use"), "cli": cli.get("in_use"),
                "calls": self.health().get("calls")}

    def count_log(self, pattern: str) -> int:
        rx = re.compile(pattern)
        try:
            return sum(1 for ln in self.app_log.read_text(errors="replace").splitlines()
                       if rx.search(ln))
        except OSError:
            return 0

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`callcenter ARGS` with this run's environment (config, state, database, Redis)."""
        exe = ROOT / ".venv" / "bin" / "callcenter"
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "callcenter"]
        return subprocess.run([*argv, *args], env=self.env(), cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)

    def post(self, path: str) -> tuple[int, Any]:
        """POST (empty body) to the service's HTTP API; (status, JSON) or (0, {})."""
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}", data=b"",
                                     method="POST", headers=self._auth())
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, {}
        except (OSError, ValueError):
            return 0, {}

    def stasis_app(self) -> str:
        """The Stasis application the service runs as (its config's ``service.stasis_app``)."""
        cfg = yaml.safe_load(self.config_path.read_text())
        return str((cfg.get("service") or {}).get("stasis_app") or "hotline")

    def ari_credentials(self) -> tuple[str, str]:
        """(user, password) of this run's ARI (generated into its state folder at start)."""
        from callcenter.config.secrets import load_secrets
        s = load_secrets(self.state)
        return s.ari_user, s.ari_password

    def ari(self, path: str, method: str = "GET", timeout: float = 5) -> Any:
        """One ARI REST request over HTTP, e.g. ari("/channels"); JSON or None."""
        user, password = self.ari_credentials()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.ari_port}/ari{path}",
                                     method=method, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def ari_events_url(self, app: str, subscribe_all: bool = True) -> str:
        """The ARI websocket URL for another application (an observer beside the service)."""
        user, password = self.ari_credentials()
        query = urllib.parse.urlencode({"app": app, "subscribeAll": str(subscribe_all).lower(),
                                        "api_key": f"{user}:{password}"})
        return f"ws://{LOOPBACK}:{self.ari_port}/ari/events?{query}"

    def _run_marks(self) -> list[Any]:
        """What this run recorded as started (HOTLINE_CACHE/run/<instance>.json)."""
        from callcenter.ops.processes import RunRecord
        from callcenter.pbx.install import cache_dir
        return list(RunRecord(cache_dir() / "run", self.instance).read())

    def run_record(self) -> dict[str, int]:
        """name -> pid of every process this run recorded as started: "run", "app" ("app-2"
        ... for more app slots), "asterisk", "redis-server", Kannel's boxes; {} before the run
        has written it."""
        return {m.name: m.pid for m in self._run_marks()}

    def app_pids(self) -> list[int]:
        """The pids of this run's app processes (`callcenter app`, slot 1 first), alive now.

        `callcenter run` (self.proc) only starts and watches the parts: the app is its child,
        under the service account when the run is root's, so it is found by the pid the run
        recorded, not by its name or user."""
        marks = [m for m in self._run_marks()
                 if (m.name == "app" or m.name.startswith("app-")) and m.alive()]
        return [m.pid for m in sorted(marks, key=lambda m: (len(m.name), m.name))]

    def asterisk_pid(self) -> int | None:
        """The pid of this run's Asterisk (its argv names the run's PBX instance)."""
        for pid in _pids_whose_cmdline_contains(f"/srv/hotline/{self.instance}/"):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"asterisk") and b"-f" in argv:
                return pid
        return None

    def redis_pid(self) -> int | None:
        """The pid of this run's private redis-server, if it started one."""
        for pid in _pids_whose_cmdline_contains(str(self.state)):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("redis"):
                    return pid
            except OSError:
                continue
        return None


# ---- SIPp ---------------------------------------------------------------------------------
@dataclass
class SippRun:
    returncode: int
    elapsed: float
    trace: Path
    screen: Path
    stat_csv: Path | None
    errors: Path


def run_sipp(scenario: str, hotline: Hotline, number: str, *, calls: int, rate: float,
             limit: int, tag: str, rate_period_ms: int = 1000, timeout_s: int = 120,
             extra: list[str] | None = None) -> SippRun:
    """Run one SIPp scenario against the hotline's trunk; traces land in its work folder.

    UDP with one socket, SIP and media bound to 127.0.0.1, message trace on (timestamps to the
    microsecond), no stdin, global timeout so a stuck call cannot hang the benchmark."""
    return start_sipp(scenario, hotline, number, calls=calls, rate=rate, limit=limit, tag=tag,
                      rate_period_ms=rate_period_ms, timeout_s=timeout_s, extra=extra).wait()


@dataclass
class SippProcess:
    """A SIPp run in the background (see start_sipp); `wait()` gives its SippRun."""

    proc: subprocess.Popen[bytes]
    out: Path
    media_port: int
    timeout_s: int
    started: float

    def wait(self, timeout: float | None = None) -> SippRun:
        """Wait for SIPp to end (its own -timeout plus 30 s at most); kill it if it does not."""
        try:
            rc = self.proc.wait(self.timeout_s + 30 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        except BaseException:
            self.kill()
            raise
        o = self.out
        return SippRun(rc, time.monotonic() - self.started, o / "messages.log", o / "screen.log",
                       o / "stat.csv", o / "errors.log")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def start_sipp(scenario: str | Path, hotline: Hotline, number: str, *, calls: int, rate: float,
               limit: int, tag: str, rate_period_ms: int = 1000, timeout_s: int = 120,
               extra: list[str] | None = None, trace_msg: bool = True,
               media_port: int | None = None) -> SippProcess:
    """Start one SIPp scenario (a name in bench/scenarios or a path) in the background.

    Same settings as run_sipp. SIPp binds its media port (-mp) and the port 2 above it; give
    each of several SIPp runs started together its own (free_udp_range(4 * runs)), as a port
    found free is only taken once SIPp is up."""
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester; `make deps`)")
    out = hotline.workdir / f"sipp-{tag}"
    out.mkdir(exist_ok=True)
    if media_port is None:
        media_port = free_even_udp_pair()
    argv = [
        "sipp", f"{LOOPBACK}:{hotline.sip_port}",
        "-sf", str(SCENARIOS / scenario), "-s", number,
        "-i", LOOPBACK, "-p", str(free_port(socket.SOCK_DGRAM)),
        "-mi", LOOPBACK, "-mp", str(media_port),
        "-t", "u1", "-r", str(rate), "-rp", f"{rate_period_ms}ms", "-l", str(limit),
        "-m", str(calls), "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
        *(["-trace_msg", "-message_file", str(out / "messages.log")] if trace_msg else []),
        "-trace_err", "-error_file", str(out / "errors.log"),
        "-trace_screen", "-screen_file", str(out / "screen.log"),
        "-trace_stat", "-stf", str(out / "stat.csv"), "-fd", "1",
        "-cid_str", f"{tag}-%u-%p@%s",
        *(extra or []),
    ]
    with open(out / "stdout.log", "wb") as so:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so,
                                stderr=subprocess.STDOUT, cwd=out)
    return SippProcess(proc, out, media_port, timeout_s, time.monotonic())


@dataclass(frozen=True)
class SipMsg:
    """One traced SIP message: local time (epoch seconds, microsecond resolution), direction."""

    t: float
    direction: str  # "sent" | "recv"
    first_line: str
    cseq_method: str
    lines: tuple[str, ...]

    @property
    def code(self) -> int | None:
        if self.first_line.startswith("SIP/2.0 "):
            return int(self.first_line.split()[1])
        return None

    def header(self, name: str) -> str | None:
        low = name.lower() + ":"
        for ln in self.lines[1:]:
            if ln.lower().startswith(low):
                return ln.split(":", 1)[1].strip()
        return None

    @property
    def has_sdp(self) -> bool:
        return (self.header("Content-Type") or "").startswith("application/sdp")


@dataclass
class SippCall:
    """One call as SIPp saw it: every message in the order SIPp traced it."""

    call_id: str
    msgs: list[SipMsg] = field(default_factory=list)

    @property
    def dialled(self) -> str:
        inv = self.first_sent("INVITE")
        if inv is None:
            return ""
        uri = inv.first_line.split()[1]
        return uri.split(":", 1)[1].split("@", 1)[0]

    def first_sent(self, method: str) -> SipMsg | None:
        return next((m for m in self.msgs if m.direction == "sent"
                     and m.first_line.startswith(method + " ")), None)

    def first_response(self, code: int, method: str = "INVITE") -> SipMsg | None:
        return next((m for m in self.msgs if m.direction == "recv" and m.code == code
                     and m.cseq_method == method), None)

    def responses(self, method: str = "INVITE") -> list[int]:
        return [m.code for m in self.msgs
                if m.direction == "recv" and m.code is not None and m.cseq_method == method]

    def final_code(self, method: str = "INVITE") -> int | None:
        finals = [c for c in self.responses(method) if c >= 200]
        return finals[0] if finals else None

    @staticmethod
    def ms(start: SipMsg | None, end: SipMsg | None) -> float | None:
        if start is None or end is None:
            return None
        return (end.t - start.t) * 1000.0


_HEADER = re.compile(
    r"^-{20,} (\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}\.\d+)(?:\s+(\d+\.\d+))?\s*$")


def _blocks(path: Path) -> Iterator[tuple[float, str, list[str]]]:
    """(time, header line after the separator, message lines) for each traced message."""
    with open(path, errors="replace") as f:
        stamp: float | None = None
        kind = ""
        body: list[str] = []
        for raw in f:
            line = raw.rstrip("\r\n")
            m = _HEADER.match(line)
            if m:
                if stamp is not None:
                    yield stamp, kind, body
                if m.group(3):
                    stamp = float(m.group(3))
                else:
                    stamp = dt.datetime.strptime(f"{m.group(1)} {m.group(2)}",
                                                 "%Y-%m-%d %H:%M:%S.%f").timestamp()
                kind, body = "", []
                continue
            if stamp is None:
                continue
            if not kind and ("message sent" in line or "message received" in line):
                kind = "sent" if "message sent" in line else "recv"
                continue
            body.append(line)
        if stamp is not None:
            yield stamp, kind, body


def parse_calls(trace: Path) -> dict[str, SippCall]:
    """Every call in a SIPp `-trace_msg` file, keyed by Call-ID, messages in file order."""
    calls: dict[str, SippCall] = {}
    if not trace.exists():
        return calls  # SIPp did not start (its stdout.log says why)
    for stamp, kind, body in _blocks(trace):
        lines = tuple(ln.strip() for ln in body if ln.strip())
        if not lines or kind not in ("sent", "recv"):
            continue
        call_id = cseq_method = ""
        for ln in lines[1:]:
            low = ln.lower()
            if low.startswith("call-id:") or low.startswith("i:"):
                call_id = ln.split(":", 1)[1].strip()
            elif low.startswith("cseq:"):
                parts = ln.split(":", 1)[1].split()
                cseq_method = parts[1] if len(parts) > 1 else ""
        if not call_id:
            continue
        c = calls.setdefault(call_id, SippCall(call_id))
        c.msgs.append(SipMsg(stamp, kind, lines[0], cseq_method, lines))
    return calls


def sipp_summary(run: SippRun) -> str:
    """The last statistics screen's counters (for logs when something is off)."""
    try:
        text = run.screen.read_text(errors="replace")
    except OSError:
        return ""
    keep = [ln for ln in text.splitlines()
            if re.search(r"(Successful call|Failed call|Total Call created|Retransmissions|"
                         r"Unexpected|Timeout|Dead call)", ln)]
    return "\n".join(keep[-12:])


def leftover_processes() -> dict[str, list[str]]:
    """What `pgrep -a asterisk`, `pgrep -a sipp`, `pgrep -af "callcenter run"` show now."""
    out: dict[str, list[str]] = {}
    for name, argv in (("asterisk", ["pgrep", "-a", "asterisk"]),
                       ("sipp", ["pgrep", "-a", "sipp"]),
                       ("callcenter run", ["pgrep", "-af", "callcenter run"])):
        r = subprocess.run(argv, capture_output=True, text=True)
        out[name] = [ln for ln in r.stdout.splitlines() if ln.strip()]
    return out


def ours_left(hotline: Hotline) -> list[str]:
    """Processes of this run still alive (should be none after stop)."""
    lines = []
    for key in (str(hotline.workdir), f"/srv/hotline/{hotline.instance}/"):
        for pid in _pids_whose_cmdline_contains(key):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            lines.append(f"{pid} {argv.strip()}")
    return lines


def finish(hotline: Hotline, failures: list[str], keep: bool) -> int:
    """Common end of a benchmark: clean-stop checks, cleanup, the RESULT line, exit code."""
    if hotline.failed:
        failures.append("the hotline did not stop cleanly on SIGINT")
    left = ours_left(hotline)
    if left:
        failures.append(f"processes left behind: {left}")
    hotline.cleanup(keep=keep or bool(failures))
    foreign = {k: v for k, v in leftover_processes().items() if v}
    if foreign:
        print(f"(other processes on this machine, not ours: {foreign})")
    print()
    if failures:
        print("RESULT: FAIL — " + "; ".join(failures))
        return 1
    print("RESULT: PASS")
    return 0


def postgres_database(admin_url: str, tag: str) -> tuple[str, Callable[[], None]]:
    """A fresh database ``hotline_bench_<tag>_<hex>`` on the server of ``admin_url``: its URL
    and how to drop it (WITH (FORCE): a benchmark's pools may still hold connections)."""
    import secrets

    import sqlalchemy as sa

    from callcenter.store.urls import normalise_url

    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    name = f"hotline_bench_{tag}_{secrets.token_hex(4)}"
    with admin.connect() as conn:  # the name is ours (letters, digits, _): safe to quote
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop
