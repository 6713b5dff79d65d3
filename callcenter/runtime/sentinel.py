"""A private Redis Sentinel set on loopback: one primary, one replica, three sentinels.

What ``make cluster`` and the adapter tests run so that the apps follow a real failover
(docs/sentinel.md). Every part is a child process of ours, stopped by its pid::

    with SentinelSet(folder) as redis_set:          # or .start() / .stop()
        redis_set.sentinels                          # [("127.0.0.1", 26379), ...]
        redis_set.master_name                        # "hotline"
        redis_set.kill_primary()                     # SIGKILL; returns the address killed
        redis_set.wait_failover(old)                 # the replica's address once promoted

Sentinel needs TCP addresses (it hands them to clients), so the parts listen on 127.0.0.1
ports: given, or free ones picked at start. Nothing is kept on disk but each part's config
(the sentinels rewrite theirs) and log under ``folder``. ``redis-sentinel`` (Debian's
package) is used when installed, else ``redis-server --sentinel`` (the same binary).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import redis

from callcenter.ops.processes import RunAs, spawn
from callcenter.runtime.ports import free_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PART_START_S = 10.0  # how long a data node or a sentinel may take to answer once started
_T = TypeVar("_T")
Address = tuple[str, int]


class SentinelSetError(RuntimeError):
    """A part of the set did not start, or the sentinels did not agree in time."""


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` TCP ports free on ``host`` now, all different (callcenter.runtime.ports)."""
    return [free_port(host=host) for _ in range(count)]


class SentinelSet:
    """One primary, one replica and three sentinels watching them, all ours (by pid)."""

    def __init__(self, folder: Path, ports: tuple[int, int, int, int, int] | None = None, *,
                 master_name: str = "hotline", host: str = HOST,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000,
                 password: str | None = None, run_as: RunAs | None = None):
        """``ports``: primary, replica, sentinel 1-3 (None: free ones at start).
        ``down_after_ms``: how long the primary may not answer before a sentinel counts it
        down (the larger part of a failover's time); ``password``: requirepass/masterauth of
        the data nodes (sentinels themselves are open, on loopback); ``run_as``: the account a
        root run starts the parts as (it owns their folders)."""
        self.folder = Path(folder)
        self.ports = ports
        self.master_name = master_name
        self.host = host
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.run_as = run_as
        self.procs: dict[int, subprocess.Popen[bytes]] = {}  # port -> process
        self.data_ports: list[int] = []
        self.sentinel_ports: list[int] = []

    # -- what clients need -------------------------------------------------------------
    @property
    def sentinels(self) -> list[Address]:
        """The sentinels' addresses (REDIS_SENTINELS)."""
        return [(self.host, p) for p in self.sentinel_ports]

    @property
    def env(self) -> dict[str, str]:
        """The app's settings for this set (REDIS_SENTINELS, REDIS_SENTINEL_MASTER, ...)."""
        env = {"REDIS_SENTINELS": ",".join(f"{h}:{p}" for h, p in self.sentinels),
               "REDIS_SENTINEL_MASTER": self.master_name}
        if self.password:
            env["REDIS_PASSWORD"] = self.password
        return env

    def master(self) -> Address | None:
        """The primary's address as the sentinels agree on it now (None: they do not agree,
        or none answers)."""
        addrs = self._each_sentinel(lambda s: s.sentinel_get_master_addr_by_name(
            self.master_name))
        if addrs is None or not all(addrs):
            return None
        seen = {(a[0].decode() if isinstance(a[0], bytes) else str(a[0]), int(a[1]))
                for a in addrs}
        return seen.pop() if len(seen) == 1 else None

    @property
    def primary_pid(self) -> int | None:
        """The pid of the process serving as primary now (None while there is none)."""
        addr = self.master()
        proc = self.procs.get(addr[1]) if addr else None
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def pids(self) -> dict[str, int]:
        """Every running part by name (``redis-<port>``, ``sentinel-<port>``)."""
        return {self._name(port): p.pid for port, p in self.procs.items() if p.poll() is None}

    # -- life ----------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> None:
        """Start the five parts; return once every sentinel sees the primary, its replica
        and the two other sentinels."""
        binary = shutil.which("redis-server")
        if not binary:
            raise SentinelSetError("redis-server is not installed (run `make deps`)")
        ports = list(self.ports) if self.ports else free_ports(5, self.host)
        self.data_ports, self.sentinel_ports = ports[:2], ports[2:]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._give(self.folder)
        try:
            primary, replica = self.data_ports
            self._start_data(binary, primary, None)
            self._start_data(binary, replica, primary)
            for port in self.sentinel_ports:
                self._start_sentinel(binary, port, primary)
            self._wait_agreed((self.host, primary), timeout, replicas=1)
        except BaseException:
            self.stop()
            raise
        log.info("Redis Sentinel set: primary %s:%d, replica %s:%d, sentinels %s (master %r)",
                 self.host, primary, self.host, replica,
                 ", ".join(str(p) for p in self.sentinel_ports), self.master_name)

    def stop(self) -> None:
        """Stop every part we started (SIGTERM, SIGKILL after 5 s), by pid."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> SentinelSet:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- failover ------------------------------------------------------------------------
    def kill_primary(self) -> Address:
        """SIGKILL the process serving as primary now; its address."""
        addr = self.master()
        if addr is None or addr[1] not in self.procs:
            raise SentinelSetError(f"no agreed primary of ours to kill (sentinels say {addr})")
        proc = self.procs[addr[1]]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        log.warning("Redis primary %s:%d (pid %d) killed", addr[0], addr[1], proc.pid)
        return addr

    def wait_failover(self, old: Address, timeout: float = 30.0) -> Address:
        """Wait until every sentinel names a primary other than ``old``; that address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            addr = self.master()
            if addr is not None and addr != old and self._role(addr[1]) == "master":
                return addr
            time.sleep(0.05)
        raise SentinelSetError(f"no failover from {old} within {timeout:.0f} s")

    def revive(self, addr: Address, timeout: float = 30.0) -> None:
        """Start the data node at ``addr`` again (after kill_primary) as a replica of the new
        primary (so it never serves stale writes); return once every sentinel lists it as a
        healthy replica, i.e. once it can be promoted in turn. Sentinels learn of replicas from
        the primary's INFO, every 10 s: a primary lost before that has no replica to promote."""
        binary = shutil.which("redis-server") or "redis-server"
        now = self.master()
        if now is None:
            raise SentinelSetError("no agreed primary to follow")
        self._start_data(binary, addr[1], now[1])

        def promotable() -> bool:
            if self._role(addr[1]) != "slave":
                return False
            seen = self._each_sentinel(lambda s: s.sentinel_slaves(self.master_name))
            return seen is not None and all(
                any(int(r["port"]) == addr[1] and not r["is_sdown"]
                    and r.get("role-reported") == "slave"
                    and r.get("master-link-status") == "ok" for r in replicas)
                for replicas in seen)

        self._wait(promotable, timeout, f"{addr} known as a healthy replica by every sentinel",
                   addr[1])

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start the part on ``port`` again after it died (a supervisor's restart). A data
        node comes back as a replica of the primary the sentinels name (after their failover,
        when it was the primary), so it never serves stale writes; a sentinel restarts from
        the file it rewrote itself (the epochs and the primary it knew)."""
        if port in self.sentinel_ports:
            binary = shutil.which("redis-server") or "redis-server"
            self._launch(port, self._sentinel_argv(binary, self.folder / f"sentinel-{port}"))
            return
        old = (self.host, port)
        if self.master() == old:
            self.wait_failover(old, timeout)
        self.revive(old, timeout)

    def _pings(self, port: int) -> bool:
        try:
            with redis.Redis(self.host, port, socket_timeout=1, socket_connect_timeout=1) as s:
                return bool(s.ping())
        except (redis.RedisError, OSError):
            return False

    # -- parts ---------------------------------------------------------------------------
    def _name(self, port: int) -> str:
        return f"sentinel-{port}" if port in self.sentinel_ports else f"redis-{port}"


    def _role(self, port: int) -> str | None:
        try:
            with redis.Redis(self.host, port, socket_timeout=1, socket_connect_timeout=1,
                             password=self.password) as r:
                return str(r.info("replication")["role"])
        except (redis.RedisError, OSError):
            return None

    def _each_sentinel(self, ask: Callable[[Any], _T]) -> list[_T] | None:
        """Each sentinel's answer to ``ask`` (given its client, a redis.Redis); None as soon as
        one does not answer."""
        answers: list[_T] = []
        for port in self.sentinel_ports:
            try:
                with redis.Redis(self.host, port, socket_timeout=1,
                                 socket_connect_timeout=1) as s:
                    answers.append(ask(s))
            except (redis.RedisError, OSError):
                return None
        return answers

    def _place(self, port: int) -> Path:
        """The folder of the part on ``port`` (``redis-<port>``, ``sentinel-<port>``), made."""
        place = self.folder / self._name(port)
        place.mkdir(parents=True, exist_ok=True)
        self._give(place)
        return place

    def _launch(self, port: int, argv: list[str]) -> None:
        """Start the part on ``port`` and wait until it answers: a data node its role, a
        sentinel a ping (failing early if it exits)."""
        self._spawn(port, argv)
        if port in self.sentinel_ports:
            self._wait(lambda: self._pings(port), PART_START_S, f"sentinel on {port}", port)
        else:
            self._wait(lambda: self._role(port) is not None, PART_START_S,
                       f"redis-server on {port}", port)

    @staticmethod
    def _sentinel_argv(binary: str, place: Path) -> list[str]:
        """A sentinel on its own file (redis-sentinel, else redis-server --sentinel)."""
        own = shutil.which("redis-sentinel")
        conf = place / "sentinel.conf"
        return [own, str(conf)] if own else [binary, str(conf), "--sentinel"]

    def _start_data(self, binary: str, port: int, primary: int | None) -> None:
        place = self._place(port)
        argv = [binary, "--port", str(port), "--bind", self.host, "--save", "",
                "--appendonly", "no", "--dir", str(place),
                "--logfile", str(place / "redis.log"), "--loglevel", "notice",
                # A fresh replica copies the primary over the socket at once (no RDB file).
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if primary is not None:
            argv += ["--replicaof", self.host, str(primary)]
        self._launch(port, argv)

    def _start_sentinel(self, binary: str, port: int, primary: int) -> None:
        place = self._place(port)
        conf = place / "sentinel.conf"  # Sentinel rewrites its own file (state, epochs)
        name = self.master_name
        lines = [f"port {port}", f"bind {self.host}", "daemonize no", f"dir {place}",
                 f"logfile {place / 'sentinel.log'}",
                 f"sentinel monitor {name} {self.host} {primary} 2",  # quorum: 2 of 3
                 f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                 f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {name} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {name} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        self._give(conf)
        self._launch(port, self._sentinel_argv(binary, place))

    def _give(self, path: Path) -> None:
        if self.run_as is not None:
            self.run_as.chown(path)

    def _spawn(self, port: int, argv: list[str]) -> None:
        proc = spawn(self._name(port), argv, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, start_new_session=True,
                     **(self.run_as.popen() if self.run_as else {}))
        self.procs[port] = proc

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str,
              port: int | None = None) -> None:
        """Poll ``ready`` until true; fail early when the part on ``port`` has exited."""
        deadline = time.monotonic() + timeout
        proc = self.procs.get(port) if port is not None else None
        while time.monotonic() < deadline:
            if ready():
                return
            if proc is not None and proc.poll() is not None:
                raise SentinelSetError(f"{what} exited with {proc.returncode} (its log is "
                                       f"under {self.folder})")
            time.sleep(0.05)
        raise SentinelSetError(f"{what} did not answer within {timeout:.0f} s")

    def _wait_agreed(self, primary: Address, timeout: float, replicas: int) -> None:
        """Every sentinel names ``primary``, knows ``replicas`` replica(s) and the others."""
        def agreed() -> bool:
            states = self._each_sentinel(lambda s: s.sentinel_master(self.master_name))
            return states is not None and all(
                (str(state["ip"]), int(state["port"])) == primary
                and int(state["num-slaves"]) >= replicas
                and int(state["num-other-sentinels"]) >= len(self.sentinel_ports) - 1
                for state in states)

        self._wait(agreed, timeout, f"the sentinels' agreement on {primary} with {replicas} "
                   f"replica(s) (logs under {self.folder})")
