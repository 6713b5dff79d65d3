"""Children that never outlive their run (real processes): the death signal, the watcher for
children that change user, the run record that finds and stops what a killed run left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from callcenter.ops.processes import (
    AlreadyRunning,
    ProcessMark,
    RunAs,
    RunRecord,
    start_time,
    stop_child_group,
    stop_process,
)
from callcenter.pbx.process import PbxStartError
from callcenter.runtime.runner import check_free, reachable

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if start_time(pid) is None:
            return True
        time.sleep(0.05)
    return False


def _parent(*, guard: bool, user: bool = False) -> tuple[subprocess.Popen[str], int]:
    """A parent process that spawns `sleep` (as nobody when ``user``) and waits; its child's pid."""
    code = textwrap.dedent(f"""
        import sys, time
        from callcenter.ops.processes import RunAs, spawn
        extra = RunAs("nobody", 65534, 65534).popen() if {user!r} else {{}}
        argv = ["sleep", "300"]
        if {guard!r}:  # changes its user itself, like Asterisk's -U: the death signal is lost
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        child = spawn("sleeper", argv, guard={guard!r}, start_new_session=True, **extra)
        print(child.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


@pytest.mark.parametrize("guard,user", [(False, False), (False, True), (True, False)])
def test_given_spawned_child_when_parent_killed_then_child_ends(
        tmp_path: Path, guard: bool, user: bool) -> None:
    if (guard or user) and os.geteuid() != 0:
        pytest.skip("switching users needs root")
    parent, child = _parent(guard=guard, user=user)
    assert start_time(child) is not None
    parent.kill()  # SIGKILL: no clean-up code of the parent runs
    parent.wait(5)
    assert _gone(child), f"child {child} outlived its parent (guard={guard}, user={user})"


def test_given_mark_when_pid_reused_by_another_process_then_not_alive() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    mark = ProcessMark.of("sleeper", proc.pid)
    assert mark is not None and mark.alive()
    other_start = ProcessMark("sleeper", proc.pid, mark.start + 1)  # same pid, another start
    assert not other_start.alive()
    assert stop_process(mark, timeout=5)
    proc.wait(5)
    assert not mark.alive() and not stop_process(mark)


def test_given_record_of_killed_run_when_claimed_then_leftovers_stopped_and_named(
        tmp_path: Path) -> None:
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    earlier = RunRecord(tmp_path, "main")
    earlier.add("asterisk", leftover.pid)
    earlier.add("run", 999999)  # the earlier run's own pid: gone (not alive) -> not in the way
    told: list[ProcessMark] = []

    RunRecord(tmp_path, "main").claim(told.append)

    assert [m.name for m in told] == ["asterisk"] and told[0].pid == leftover.pid
    leftover.wait(5)
    assert [m.name for m in RunRecord(tmp_path, "main").read()] == ["run"]
    assert RunRecord(tmp_path, "main").read()[0].pid == os.getpid()


def test_given_live_run_of_same_instance_when_claimed_then_refused(tmp_path: Path) -> None:
    first = RunRecord(tmp_path, "main")
    first.claim(lambda m: None)
    with pytest.raises(AlreadyRunning, match=f"already running \\(pid {os.getpid()}\\)"):
        RunRecord(tmp_path, "main").claim(lambda m: None)  # the lock is held: refused at once
    RunRecord(tmp_path, "other").claim(lambda m: None)  # another instance is fine
    first.clear()
    RunRecord(tmp_path, "main").claim(lambda m: None)  # released: the next run goes ahead


def test_given_port_in_time_wait_when_checked_then_free_but_listener_refused() -> None:
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end of the connection is in TIME_WAIT
    client.close()
    with pytest.raises(PbxStartError, match=f"ARI port 127.0.0.1:{port} is already in use"):
        check_free("127.0.0.1", port, socket.SOCK_STREAM, "ARI")
    server.close()
    check_free("127.0.0.1", port, socket.SOCK_STREAM, "ARI")  # TIME_WAIT only: free


def test_given_closed_parent_folder_then_not_reachable_by_another_user(tmp_path: Path) -> None:
    nobody = RunAs("nobody", 65534, 65534)
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (inner / "f").write_text("x")
    for p in (tmp_path, *tmp_path.parents):
        p.chmod(p.stat().st_mode | 0o001)
    (tmp_path / "a").chmod(0o700)
    assert not reachable(nobody, inner / "f")
    (tmp_path / "a").chmod(0o711)
    inner.chmod(0o755)
    (inner / "f").chmod(0o644)
    assert reachable(nobody, inner / "f")
    assert not reachable(nobody, inner, write=True)


def test_given_guard_when_parent_stops_child_itself_then_guard_exits_quietly(
        tmp_path: Path) -> None:
    from callcenter.ops.processes import release_guard, spawn

    child = spawn("sleeper", ["sleep", "300"], guard=True, start_new_session=True)
    guard = child._hotline_guard  # type: ignore[attr-defined]
    child.send_signal(signal.SIGTERM)
    child.wait(5)
    release_guard(child)
    assert guard.returncode == 0


def test_given_test_leaving_a_child_when_session_ends_then_session_fails_and_child_stopped(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole suite's end-of-session check (tests/conftest.py), on a session of its own."""
    from callcenter.ops.processes import SPAWN_LOG_ENV

    monkeypatch.delenv(SPAWN_LOG_ENV, raising=False)  # the inner session keeps its own log
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_leak=textwrap.dedent("""
        from pathlib import Path
        from callcenter.ops.processes import spawn

        def test_leaves_a_sleeper():
            child = spawn("redis-server", ["sleep", "300"])
            Path("child.pid").write_text(str(child.pid))
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*processes started by the tests still ran at the end of the "
                                 "session (stopped now): redis-server (pid *)*"])
    pid = int((pytester.path / "child.pid").read_text())
    assert _gone(pid), "the leftover was not stopped"


def test_given_a_child_ignoring_sigterm_when_stopped_then_sigkill_ends_its_whole_group() -> None:
    """Asterisk and Kamailio stop this way: the polite step first, the next one only when the
    child is still there; its children (the group) go with it."""
    script = ("import signal, subprocess, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "child = subprocess.Popen(['sleep', '60'])\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    started = time.monotonic()
    stop_child_group(proc, ((signal.SIGTERM, 0.5), (signal.SIGKILL, 5.0)))
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 30.0  # did not wait for the 60 s sleep
    assert _gone(grandchild)


def test_given_a_child_that_exits_when_asked_then_no_signal_is_sent() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    stop_child_group(proc, ((None, 5.0), (signal.SIGKILL, 5.0)))
    assert proc.returncode == 0
