"""Child processes that never outlive the run that started them, and a record of them per instance.

Three layers, because no single one covers every way a run can end:

* ``spawn`` starts a child with ``PR_SET_PDEATHSIG`` (SIGTERM when its parent dies, even by
  SIGKILL). Linux clears that setting when a process changes its credentials, which Asterisk
  does itself (``-U asterisk``): such children get a ``guard`` instead, a small watcher process
  in its own session that stops the child when the pipe from its parent closes.
* ``RunRecord`` writes every child's pid and start time (from /proc, so a reused pid is never
  mistaken for ours) into ``STATE/run/<instance>.json``; the next run of the same instance stops
  whatever an earlier run left (both layers above killed too, e.g. ``kill -9`` of the process
  group with the watcher in it).
* ``HOTLINE_SPAWN_LOG`` (tests): every spawned child is appended to that file, so the test
  session can fail when one is still alive at its end.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from callcenter.ops.files import write_atomic

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SPAWN_LOG_ENV = "HOTLINE_SPAWN_LOG"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has ended; only its exit status is left to collect
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcessMark:
    """One process as started: name, pid and start time (a reused pid has another start)."""

    name: str
    pid: int
    start: int

    @classmethod
    def of(cls, name: str, pid: int) -> ProcessMark | None:
        """The mark of a running process, or None when it is already gone."""
        start = start_time(pid)
        return None if start is None else cls(name, pid, start)

    def alive(self) -> bool:
        """True while this very process (not a later one with the same pid) runs."""
        return start_time(self.pid) == self.start


def stop_process(mark: ProcessMark, timeout: float = 10.0) -> bool:
    """SIGTERM (to its process group when it leads one), then SIGKILL; True if it was alive."""
    if not mark.alive():
        return False
    group = _leads_group(mark.pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(mark.pid, sig)
            else:
                os.kill(mark.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not mark.alive():
                return True
            time.sleep(0.05)
    return True


def stop_child_group(proc: subprocess.Popen[bytes],
                     steps: Sequence[tuple[int | None, float]]) -> None:
    """Stop a child that leads its process group: each step sends its signal to the group
    (None: none, only wait, e.g. after asking the program itself to stop) and waits that long
    for the child to exit; the next step only when it has not."""
    for sig, wait in steps:
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For the child before exec: SIGTERM when the parent thread ends (kill -9 included)."""
    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl (any reaper)
            os._exit(1)
    return arm


def spawn(name: str, argv: Sequence[str], *, guard: bool = False,
          **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child that ends with us: PDEATHSIG, plus a watcher process when ``guard``.

    The death signal is tied to the thread that forks, so it is set only from the main thread
    (a pool thread ending would take the child with it); ``guard`` covers children that change
    their credentials (which clears the death signal) or are started from another thread.
    """
    if threading.current_thread() is threading.main_thread():
        popen.setdefault("preexec_fn", _die_with_parent(os.getpid()))
    proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **popen)
    if guard:
        proc._hotline_guard = _start_guard(proc.pid)  # type: ignore[attr-defined]
    _log_spawn(name, proc.pid)
    return proc


def release_guard(proc: subprocess.Popen[bytes]) -> None:
    """After the child was stopped on purpose: let its watcher go (closes the pipe)."""
    guard: subprocess.Popen[bytes] | None = getattr(proc, "_hotline_guard", None)
    if guard is None:
        return
    if guard.stdin is not None:
        with contextlib.suppress(OSError):
            guard.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        guard.wait(15)


def _start_guard(pid: int) -> subprocess.Popen[bytes] | None:
    mark = ProcessMark.of("child", pid)
    if mark is None:
        return None
    guard = subprocess.Popen(
        [sys.executable, "-m", "callcenter.ops.guard", str(mark.pid), str(mark.start)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        start_new_session=True,  # outlives a kill of our whole process group
    )
    _log_spawn("guard", guard.pid)
    return guard


def _log_spawn(name: str, pid: int) -> None:
    path = os.environ.get(SPAWN_LOG_ENV)
    mark = ProcessMark.of(name, pid)
    if not path or mark is None:
        return
    with open(path, "a") as f:  # O_APPEND: lines from several processes do not mix
        f.write(f"{mark.pid} {mark.start} {name}\n")


def spawned_alive(path: Path) -> list[ProcessMark]:
    """The processes a spawn log names that still run (tests' end-of-session check)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    marks = []
    for line in lines:
        pid, start, name = line.split(" ", 2)
        mark = ProcessMark(name, int(pid), int(start))
        if mark.alive():
            marks.append(mark)
    return marks


class RunRecord:
    """``FOLDER/<instance>.json``: the run's own pid and its children's, with start times.

    The folder must be root's when the run is (``HOTLINE_CACHE/run``), never the state folder
    the app's account owns: root stops the processes it names. ``claim`` also holds an
    exclusive lock on ``<instance>.lock`` for the whole run, so two runs started at once
    cannot both pass; a killed run's lock goes with it.
    """

    def __init__(self, folder: Path, instance: str):
        self.path = folder / f"{instance}.json"
        self._lock: int | None = None

    def read(self) -> list[ProcessMark]:
        """The marks written by the last run (empty when none or unreadable)."""
        try:
            data = json.loads(self.path.read_text())
            return [ProcessMark(**m) for m in data["processes"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _write(self, marks: list[ProcessMark]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"processes": [asdict(m) for m in marks]}), 0o600)

    def add(self, name: str, pid: int) -> None:
        """Record a started process (a process already gone is not written)."""
        mark = ProcessMark.of(name, pid)
        if mark is not None:
            self._write([m for m in self.read() if m.name != name] + [mark])

    def remove(self, name: str) -> None:
        """Forget a process stopped on purpose."""
        self._write([m for m in self.read() if m.name != name])

    def clear(self) -> None:
        """The run ended cleanly: forget it and let the next run in."""
        self.path.unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def claim(self, on_leftover: Callable[[ProcessMark], None]) -> None:
        """Start a run: refuse while another run of this instance lives, stop what a dead one
        left behind (``on_leftover`` is told first), then record ourselves."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            other = next((m.pid for m in self.read() if m.name == "run" and m.alive()), None)
            raise AlreadyRunning(
                f"this hotline instance is already running (pid {other or '?'}); stop it "
                f"first (Ctrl-C in its terminal{f', or kill {other}' if other else ''})"
            ) from None
        self._lock = lock
        for mark in self.read():
            if mark.name != "run" and mark.alive():
                on_leftover(mark)
                stop_process(mark)
        self._write([])
        self.add("run", os.getpid())


class AlreadyRunning(RuntimeError):
    """Another run of the same instance is alive."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account a root run hands a child to."""

    name: str
    uid: int
    gid: int

    def popen(self) -> dict[str, Any]:
        """Popen arguments that start the child as this account (only root can switch)."""
        if os.geteuid() != 0 or self.uid == 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path, *, recursive: bool = False) -> None:
        """Give ``path`` (and, if asked, everything under it) to this account (root only)."""
        if os.geteuid() != 0:
            return
        os.chown(path, self.uid, self.gid, follow_symlinks=False)
        if recursive and path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in (*dirs, *files):
                    os.chown(os.path.join(root, name), self.uid, self.gid,
                             follow_symlinks=False)
