"""`callcenter run`: bring up the whole hotline in the foreground and stop it all on Ctrl-C.

Order up: config, Redis, database (alembic upgrade head), Kannel (SMS), Asterisk (provisioned
if needed), app. Order down: app (records flushed, SMS dispatcher drained), Kannel, Asterisk,
private Redis.

Started as root, the run does as root only what needs it (building the rootfs, rendering the
PBX's files with their ownership, starting Asterisk in its chroot, which drops to the asterisk
user itself) and hands everything that serves or stores to the unprivileged service account
(``hotline1022``, created if missing): the app with its web server, the private Redis, Kannel.
Files it writes are not readable by other users (umask 027).

Every child is recorded with its start time in ``HOTLINE_CACHE/run/<instance>.json`` (root's
folder, not the app's); a run that finds processes an earlier, killed run left there stops
them first. Children die with the run even when it is killed with SIGKILL (see
`callcenter.ops.processes`). The app, Asterisk and a private Redis are restarted when one
dies on its own (``Supervisor``; under systemd, its units' ``Restart=`` do the same).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from callcenter.app import build_app, serve
from callcenter.config.file import load_config
from callcenter.config.secrets import load_secrets
from callcenter.config.settings import Settings
from callcenter.ops.accounts import ensure_service_account
from callcenter.ops.processes import RunAs, RunRecord, release_guard, spawn
from callcenter.pbx.install import cache_dir, ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.process import AsteriskProcess, PbxStartError
from callcenter.pbx.render import render
from callcenter.pbx.tls import ensure_self_signed
from callcenter.redis_clients import RedisTarget
from callcenter.redis_clients import answers as target_answers
from callcenter.runtime.memory import malloc_figures, sqlite_memory
from callcenter.runtime.redis_server import PrivateRedis, RedisUnavailable, answers
from callcenter.sms.credentials import load_kannel_secrets
from callcenter.sms.kannel import KannelGateway, start_for_run
from callcenter.sms.service import app_mo_url
from callcenter.store.urls import shown_url

log = logging.getLogger("callcenter.run")

APP_RESTARTS = 5  # within APP_RESTART_WINDOW_S; then the run stops (a crash loop helps nobody)
APP_RESTART_WINDOW_S = 60.0


async def run_app_until_signal(settings: Settings, redis_url: str) -> None:
    """Serve the app until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    loop.add_signal_handler(signal.SIGUSR2, MemoryReport().log)
    app = build_app(settings, redis_url)
    await serve(app, stop)


class MemoryReport:
    """SIGUSR2: what grew in the app's memory since the last report (for a service whose RSS
    keeps rising): live objects by type, and, when started with PYTHONTRACEMALLOC=1 (e.g. 5),
    the source lines that allocated most since then."""

    def __init__(self, top: int = 15):
        self.top = top
        self.counts: collections.Counter[str] = collections.Counter()
        self.snapshot: tracemalloc.Snapshot | None = None

    def log(self) -> None:
        heap = malloc_figures()
        if heap is not None:
            log.warning("memory: C heap (glibc mallinfo2): %s",
                        ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in heap.items()))
        sqlite = sqlite_memory()
        if sqlite is not None:
            log.warning("memory: SQLite %.1f MiB in use (page caches of every connection; "
                        "peak %.1f MiB)", sqlite[0] / 2**20, sqlite[1] / 2**20)
        gc.collect()
        counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        grown = (counts - self.counts).most_common(self.top)
        log.warning("memory: %d objects tracked by gc; grown since the last report: %s",
                    sum(counts.values()), ", ".join(f"{n} +{c}" for n, c in grown) or "none")
        self.counts = counts
        if not tracemalloc.is_tracing():
            log.warning("memory: no allocation sites (start the app with PYTHONTRACEMALLOC=5)")
            return
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        if self.snapshot is not None:
            for stat in snapshot.compare_to(self.snapshot, "lineno")[:self.top]:
                log.warning("memory: %s", stat)
        self.snapshot = snapshot


def dump_tasks() -> None:
    """SIGUSR1: log where every task of the app is waiting (for a stuck service)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=6)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
        log.warning("task %s: %s", task.get_name(), where or "(not started)")


class StopRequest:
    """SIGINT/SIGTERM during ``callcenter run``: raised at once as KeyboardInterrupt where the
    main thread is, and remembered for ``check``. Python swallows an exception raised in a
    callback it runs for itself ("Exception ignored in"): seen, a SIGTERM landing in logging's
    at-fork lock release while Kannel's boxes were spawned, and the run went on starting
    everything. So each start step and each supervisor poll checks again."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def handle(self, signum: int, frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        raise KeyboardInterrupt(self.signal_name)

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for (even one whose raise was lost)."""
        if self.signal_name is not None:
            raise KeyboardInterrupt(self.signal_name)


def check_free(bind: str, port: int, kind: int, what: str) -> None:
    """Refuse to start over a leftover process: it would answer in our place.

    TCP binds with SO_REUSEADDR, as the servers themselves do: connections of a just-stopped
    run in TIME_WAIT do not hold the port (Ctrl-C and start again at once), a listener does.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError as e:
            raise PbxStartError(
                f"{what} port {bind}:{port} is already in use ({e.strerror}); is another "
                f"hotline or Asterisk running? (ss -lntup | grep {port})") from None


def reachable(account: RunAs, path: Path, *, write: bool = False) -> bool:
    """Whether ``account`` can reach ``path`` (search on every parent; read, or write)."""
    def allows(p: Path, bit_user: int, bit_group: int, bit_other: int) -> bool:
        st = p.stat()
        if st.st_uid == account.uid:
            return bool(st.st_mode & bit_user)
        if st.st_gid == account.gid:
            return bool(st.st_mode & bit_group)
        return bool(st.st_mode & bit_other)

    path = path.resolve()
    for parent in reversed(path.parents):
        if not allows(parent, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    if write:
        return allows(path, stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH)
    return allows(path, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def hand_over(settings: Settings, account: RunAs) -> None:
    """Give the state folder (not a host PBX instance in it) and the prompt cache to the
    app's account, and check it can reach what it needs; the message says what to change."""
    state = settings.state_dir
    os.chmod(state, 0o750)
    account.chown(state)
    for entry in state.iterdir():
        if not entry.name.startswith("pbx-"):  # Asterisk's own, when it runs on the host
            account.chown(entry, recursive=True)
    # The cache is root's (the rootfs is in it) but the app walks through it to its PBX
    # instance: search only for others (a HOTLINE_CACHE made with mktemp is 0700).
    root_cache = cache_dir()
    if root_cache.is_dir() and not root_cache.stat().st_mode & stat.S_IXOTH:
        os.chmod(root_cache, stat.S_IMODE(root_cache.stat().st_mode) | stat.S_IXOTH)
    cache = settings.prompt_cache
    cache.mkdir(parents=True, exist_ok=True)
    account.chown(cache, recursive=True)
    for what, path, write in (("the config file", settings.config_path, False),
                              ("the state folder", state, True),
                              ("the prompt cache", cache, True),
                              ("the hotline's code", Path(__file__).parents[1], False),
                              ("the Python interpreter", Path(sys.executable), False)):
        if not reachable(account, path, write=write):
            raise PermissionError(
                f"the app's user {account.name} cannot {'write' if write else 'read'} {what} "
                f"{path} ({path.resolve()}): a folder on the way is closed to other users. "
                + ("Make the venv with a Python every user can run (make venv PY=/usr/bin/"
                   "python3)" if what.endswith("interpreter") else
                   "Open it for search (chmod o+x on the folder), or set HOTLINE_STATE / "
                   "HOTLINE_CONFIG to a place it can reach"))


class AppProcess:
    """The app (`callcenter app`) as a supervised part: unprivileged when we are root,
    restarted when it dies on its own, stopped with SIGTERM (its records are flushed) before
    the PBX."""

    def __init__(self, settings: Settings, redis_url: str, account: RunAs | None,
                 record: RunRecord, slot: int = 1):
        self.settings = settings
        self.redis_url = redis_url
        self.account = account
        self.record = record
        self.slot = slot  # which of service.app_instances (HOTLINE_APP_SLOT)
        self.name = "app" if slot == 1 else f"app-{slot}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The child's settings: exactly the ones this run resolved."""
        s = self.settings
        env = dict(os.environ)
        env.update({
            "HOTLINE_CONFIG": str(s.config_path.resolve()), "HOTLINE_STATE": str(s.state_dir),
            "DATABASE_URL": s.database_url, "REDIS_URL": self.redis_url,
            "HOTLINE_INSTANCE": s.instance, "HOTLINE_SECRETS": str(s.secrets_file),
            "HOTLINE_PROMPT_CACHE": str(s.prompt_cache), "HOTLINE_CACHE": str(cache_dir()),
            "HOTLINE_SOUNDS": str(s.sounds_override), "HOTLINE_USER": s.service_user,
            "HOTLINE_LOG_LEVEL": s.log_level,  # `callcenter --debug run` reaches the app too
            "HOTLINE_APP_SLOT": str(self.slot),
        })
        if s.redis_sentinels and s.redis_sentinel_master:  # these win over REDIS_URL
            env["REDIS_SENTINELS"] = ",".join(f"{h}:{p}" for h, p in s.redis_sentinels)
            env["REDIS_SENTINEL_MASTER"] = s.redis_sentinel_master
        return env

    def start(self) -> None:
        """Start the app; its own log lines go to our stderr."""
        self.proc = spawn(
            self.name, [sys.executable, "-m", "callcenter", "app"], env=self.env(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only: we stop the parts in order
            **(self.account.popen() if self.account else {}))
        self.record.add(self.name, self.proc.pid)
        log.info("%s started (pid %d%s)", self.name, self.proc.pid,
                 f", user {self.account.name}" if self.account else "")

    def exited(self) -> int | None:
        """The exit code once the app has ended; None while it runs."""
        return self.proc.poll() if self.proc is not None else None

    def restart(self) -> None:
        time.sleep(1.0)  # a crash at start must not spin
        self.start()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait for its records to be flushed, SIGKILL as a last resort."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("app did not stop within %.0f s; killing it", timeout)
            self.proc.kill()
            self.proc.wait(5)
        self.record.remove(self.name)
        log.info("%s stopped", self.name)


class AppCrashLoop(RuntimeError):
    """A part kept dying right after its start (the app, Asterisk, Redis)."""


class Part(Protocol):
    name: str

    def exited(self) -> int | None: ...

    def restart(self) -> None: ...


@dataclass
class SupervisedPart:
    """A part as the supervisor sees it: its name (restarts are counted by name), its exit
    code once it died on its own (None while it runs), and how it is started again. The
    processes that are not parts themselves (Asterisk, Redis; the cluster's Kamailio, nodes'
    parts, PostgreSQL, the Sentinel set) are watched through one of these."""

    name: str
    exited: Callable[[], int | None]
    restart: Callable[[], None]


def exit_code(proc: subprocess.Popen[bytes] | None) -> int | None:
    """A started process's exit code, None while it runs (or was never started)."""
    return proc.poll() if proc is not None else None


def renamed(name: str, part: Part) -> SupervisedPart:
    """The same part under another name (a cluster node's: "node1 app", "node1 Asterisk")."""
    return SupervisedPart(name, part.exited, part.restart)


def pbx_part(pbx: AsteriskProcess, record: RunRecord) -> SupervisedPart:
    """Asterisk as a supervised part: restarted (same rendered config) when it dies."""

    def restart() -> None:
        if pbx.proc is not None:
            release_guard(pbx.proc)  # its watcher has nothing left to stop
        pbx.start()
        if pbx.proc is not None:
            record.add("asterisk", pbx.proc.pid)
        log.warning("Asterisk started again (pid %d): the app reconnects and reconciles",
                    pbx.proc.pid if pbx.proc else -1)

    return SupervisedPart("Asterisk", lambda: exit_code(pbx.proc), restart)


def redis_part(redis: PrivateRedis, record: RunRecord) -> SupervisedPart:
    """Our private Redis as a supervised part (it keeps nothing on disk: the app rebuilds the
    live state from its own view and Asterisk when it answers again)."""

    def restart() -> None:
        redis.start()
        if redis.proc is not None:
            record.add("redis-server", redis.proc.pid)

    return SupervisedPart("Redis", lambda: exit_code(redis.proc), restart)


class Supervisor:
    """Until a signal interrupts us: restart each part that exits on its own; a part that
    dies ``APP_RESTARTS`` times within ``APP_RESTART_WINDOW_S`` stops the run (a crash loop
    helps nobody). Every restart is logged at ERROR with the exit code."""

    def __init__(self, parts: Sequence[Part], poll_s: float = 0.5,
                 stop: StopRequest | None = None):
        self.parts = list(parts)
        self.poll_s = poll_s
        self.stop = stop or StopRequest()
        self.restarts: dict[str, list[float]] = {p.name: [] for p in self.parts}

    def check_once(self) -> None:
        for part in self.parts:
            code = part.exited()
            if code is None:
                continue
            now = time.monotonic()
            recent = [t for t in self.restarts[part.name] if now - t < APP_RESTART_WINDOW_S]
            if len(recent) >= APP_RESTARTS:
                raise AppCrashLoop(f"{part.name} exited {len(recent) + 1} times within "
                                   f"{APP_RESTART_WINDOW_S:.0f} s (last exit {code}); stopping "
                                   f"the hotline: see its lines above")
            self.restarts[part.name] = [*recent, now]
            log.error("%s exited with %s; starting it again", part.name, code)
            part.restart()

    def watch(self) -> None:
        while True:
            self.stop.check()
            self.check_once()
            time.sleep(self.poll_s)


def run_all(settings: Settings) -> None:
    """Provision and start every part, serve, then stop them in reverse order.

    SIGINT and SIGTERM at any moment (even during the first rootfs build) stop what was
    started; during the teardown itself they are ignored so it always completes.
    """
    config = load_config(settings.config_path)  # refuse to start on a broken config
    os.umask(0o027)  # recordings, database, logs: not for other local users
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    account = ensure_service_account(settings.service_user) if os.geteuid() == 0 else None
    record = RunRecord(cache_dir() / "run", settings.instance)  # root's, not the app's
    record.claim(lambda m: log.warning(
        "stopping %s (pid %d) left running by an earlier run of instance %s",
        m.name, m.pid, settings.instance))
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    private_redis: PrivateRedis | None = None
    pbx: AsteriskProcess | None = None
    kannel: KannelGateway | None = None
    apps: list[AppProcess] = []
    try:
        secrets = load_secrets(settings.state_dir, settings.secrets_file)
        # Before hand_over: the self-signed pair goes to the app's account with the state.
        tls = ensure_self_signed(config, settings.state_dir)
        kannel_secrets = load_kannel_secrets(settings.state_dir)
        if account is not None:
            hand_over(settings, account)
        target = RedisTarget.of(settings)
        if target.uses_sentinel:  # a cluster's Redis: never a private stand-in for it
            if not target_answers(target, timeout=2.0):
                raise RedisUnavailable(f"Redis through {target} does not answer (start the "
                                       "sentinels and their primary, or unset REDIS_SENTINELS)")
            redis_url = settings.redis_url or ""
            log.info("Redis: %s", target)
        elif settings.redis_url and answers(settings.redis_url):
            redis_url = settings.redis_url
        else:
            if settings.redis_url:
                log.warning("REDIS_URL does not answer; starting a private redis-server")
            private_redis = PrivateRedis(settings.private_redis_socket, account)
            private_redis.start()
            if private_redis.proc is not None:
                record.add("redis-server", private_redis.proc.pid)
            redis_url = private_redis.url
        stop.check()
        log.info("database: %s (alembic upgrade head on start)",
                 shown_url(settings.database_url))
        # SMS: our own Kannel unless off or external; not installed -> texts wait in the outbox.
        # Citizens' SMS (the survey's answers) go to the app's /sms/mo with the MO key.
        mo = app_mo_url(config.service.http_bind, config.service.http_port,
                        kannel_secrets.mo_key, https=config.console.tls)
        kannel = start_for_run(settings.sms, kannel_secrets, settings.state_dir, account,
                               mo_url=mo)
        if kannel is not None:
            for name, proc in kannel.procs.items():
                record.add(name, proc.pid)
        stop.check()
        install = ensure_asterisk()
        log.info("PBX: %s (%s)", install.version,
                 f"chroot {install.root}" if install.root else "host")
        layout = PbxLayout.for_instance(install, settings.instance, settings.state_dir)
        render(config, layout, secrets, prompt_cache=settings.prompt_cache,
               sounds_override=settings.sounds_override,
               bench_plain_number=settings.bench_plain_number, app_account=account,
               state_dir=settings.state_dir)
        stop.check()
        svc, trunk = config.service, config.trunk
        check_free(svc.ari_bind, svc.ari_port, socket.SOCK_STREAM, "ARI")
        check_free(trunk.bind, trunk.port, socket.SOCK_DGRAM, "SIP")
        check_free(trunk.bind, config.sip_tls.port, socket.SOCK_STREAM, "SIP TLS")
        pbx = AsteriskProcess(layout, f"http://{svc.ari_bind}:{svc.ari_port}",
                              secrets.ari_user, secrets.ari_password)
        pbx.start()
        if pbx.proc is not None:
            record.add("asterisk", pbx.proc.pid)
        log.info("SIP trunk listening on %s:%d (udp)", trunk.bind, trunk.port)
        log.info("SIP TLS for operators on %s:%d (certificate SHA-256 %s)", trunk.bind,
                 config.sip_tls.port, tls.fingerprint)
        # One app process per Stasis application (service.app_instances), slot 1 first.
        apps = [AppProcess(settings, redis_url, account, record, slot)
                for slot in range(1, svc.app_instances + 1)]
        for app in apps:
            stop.check()
            app.start()
        parts: list[Part] = [*apps, pbx_part(pbx, record)]
        if private_redis is not None and private_redis.proc is not None:
            parts.append(redis_part(private_redis, record))
        Supervisor(parts, stop=stop).watch()
    except KeyboardInterrupt as e:
        log.info("interrupted (%s)", e or "SIGINT")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("stopping")
        stopped = True
        for part in (*apps, kannel, pbx, private_redis):  # each on its own: one failing
            if part is None:                           # must not leave the others running
                continue
            try:
                part.stop()
            except Exception as e:
                stopped = False
                log.error("stopping %s failed: %r", type(part).__name__, e)
        if stopped:
            record.clear()  # else the next run finds and stops what is left
        log.info("stopped")

