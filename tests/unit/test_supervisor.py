"""`callcenter run`'s supervisor (runtime/runner.py): a part that dies on its own is started
again, with an ERROR line; one that keeps dying stops the run. Fake parts; the real ones are
killed in tests/e2e/test_run_command.py."""

from __future__ import annotations

import logging
import signal

import pytest

from callcenter.runtime.runner import APP_RESTARTS, AppCrashLoop, StopRequest, Supervisor


class FakePart:
    def __init__(self, name: str) -> None:
        self.name = name
        self.code: int | None = None
        self.starts = 0

    def exited(self) -> int | None:
        return self.code

    def restart(self) -> None:
        self.starts += 1
        self.code = None


def test_given_asterisk_killed_when_checked_then_restarted_alone_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    app, pbx = FakePart("app"), FakePart("Asterisk")
    sup = Supervisor([app, pbx])
    sup.check_once()
    assert (app.starts, pbx.starts) == (0, 0)
    pbx.code = -9
    with caplog.at_level(logging.ERROR, "callcenter.run"):
        sup.check_once()
    assert (app.starts, pbx.starts) == (0, 1)
    assert "Asterisk exited with -9; starting it again" in caplog.text


def test_given_part_dying_again_and_again_when_checked_then_run_stops() -> None:
    pbx = FakePart("Asterisk")
    sup = Supervisor([pbx])
    for _ in range(APP_RESTARTS):
        pbx.code = 1
        sup.check_once()
    assert pbx.starts == APP_RESTARTS
    pbx.code = 1
    with pytest.raises(AppCrashLoop, match="Asterisk exited 6 times"):
        sup.check_once()


def test_given_objects_piling_up_when_memory_report_then_type_and_line_named(
        caplog: pytest.LogCaptureFixture) -> None:
    """SIGUSR2's report (an operator's tool for a rising RSS): the type that grew, and with
    tracemalloc on, the line that allocated it."""
    import tracemalloc

    from callcenter.runtime.runner import MemoryReport

    class Leaky:
        pass

    kept: list[Leaky] = []
    report = MemoryReport()
    tracemalloc.start(1)
    try:
        with caplog.at_level(logging.WARNING, "callcenter.run"):
            report.log()
            kept.extend(Leaky() for _ in range(5000))
            caplog.clear()
            report.log()
    finally:
        tracemalloc.stop()
    text = caplog.text
    assert "Leaky +5000" in text and "test_supervisor.py" in text


def test_given_sigterm_whose_raise_python_swallowed_when_supervisor_polls_then_run_stops() -> None:
    # A SIGTERM landing in a callback Python runs for itself (logging's at-fork lock release
    # while a child is spawned) is printed as "Exception ignored" and lost; the request stays.
    stop = StopRequest()
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        stop.handle(signal.SIGTERM, None)  # the raise, as if swallowed by its caller
    sup = Supervisor([FakePart("app")], poll_s=0.01, stop=stop)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sup.watch()  # would poll forever without the remembered request


def test_given_no_signal_when_checked_then_nothing_raised() -> None:
    stop = StopRequest()
    stop.check()
    assert stop.signal_name is None


def test_given_sqlite_pages_cached_when_memory_report_then_c_heap_and_sqlite_figures_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """Below Python's objects: glibc's heap and SQLite's page caches (a rising RSS with flat
    objects was traced to those)."""
    import sqlite3

    from callcenter.runtime.runner import MemoryReport, sqlite_memory

    before = sqlite_memory()
    assert before is not None
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x BLOB)")
    db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 100,)] * 20000)
    after = sqlite_memory()
    assert after is not None and after[0] - before[0] > 1 << 20  # ~2 MiB of pages
    with caplog.at_level(logging.WARNING, "callcenter.run"):
        MemoryReport().log()
    db.close()
    assert "C heap (glibc mallinfo2): arenas" in caplog.text
    assert "memory: SQLite" in caplog.text and "MiB in use" in caplog.text


def test_given_node_part_renamed_when_it_dies_then_restarted_and_counted_under_node_name(
        caplog: pytest.LogCaptureFixture) -> None:
    from callcenter.runtime.runner import renamed

    app = FakePart("app")
    sup = Supervisor([renamed("node2 app", app), FakePart("node1 app")])
    app.code = 1
    with caplog.at_level(logging.ERROR, "callcenter.run"):
        sup.check_once()
    assert app.starts == 1 and "node2 app exited with 1" in caplog.text
    assert [len(sup.restarts[n]) for n in ("node2 app", "node1 app")] == [1, 0]


def test_given_process_part_then_exit_code_read_from_its_current_process() -> None:
    import subprocess
    import sys

    from callcenter.runtime.runner import SupervisedPart, exit_code

    class Proc:
        proc: subprocess.Popen[bytes] | None = None

    held = Proc()
    part = SupervisedPart("x", lambda: exit_code(held.proc), lambda: None)
    assert part.exited() is None  # never started
    held.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    held.proc.wait()
    assert part.exited() == 3
