"""Whole-suite checks: no process a test started (asterisk, redis-server, Kannel's boxes, an
app, a watcher) may outlive the test session; the session fails naming each one left."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from callcenter.ops.processes import SPAWN_LOG_ENV, spawned_alive, stop_process
from tests.support import template_db

pytest_plugins = ["pytester"]  # tests/adapters/test_processes.py checks this file's own check

# Tests check behaviour, not timings: on 2 cores shared by three pytest processes and an
# Asterisk, a property example took 420 ms against hypothesis's 200 ms deadline (a flake).
settings.register_profile("hotline", deadline=None)
settings.load_profile("hotline")

# An empty database migrated to head is a copy of one the real migrations made in this process
# (tests/support/template_db.py): minutes of the suite. Tests of the migrations themselves are
# marked real_migrations and take every migration each time; HOTLINE_TEST_REAL_MIGRATIONS=1
# turns the copies off for a whole run.
if not os.environ.get("HOTLINE_TEST_REAL_MIGRATIONS"):
    template_db.install()


@pytest.fixture(autouse=True)
def _migrations_from_template(request: pytest.FixtureRequest) -> Iterator[None]:
    real = request.node.get_closest_marker("real_migrations") is not None
    template_db.TEMPLATES.enabled = not real
    try:
        yield
    finally:
        template_db.TEMPLATES.enabled = True


def pytest_configure(config: pytest.Config) -> None:
    # One log per top-level pytest run, inherited by its xdist workers and by every process
    # the tests start (an app started by a test logs the children it starts in turn).
    if SPAWN_LOG_ENV not in os.environ and not hasattr(config, "workerinput"):
        fd, path = tempfile.mkstemp(prefix="hotline-spawned-", suffix=".log")
        os.close(fd)
        os.environ[SPAWN_LOG_ENV] = path
        config.stash[_OWN_LOG] = Path(path)


_OWN_LOG = pytest.StashKey[Path]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    log = session.config.stash.get(_OWN_LOG, None)
    if log is None:  # an xdist worker, or a log set from outside: its owner checks
        return
    left = spawned_alive(log)
    for mark in left:
        stop_process(mark, timeout=5)  # leave the machine clean for what runs next
    log.unlink(missing_ok=True)
    if left:
        names = ", ".join(f"{m.name} (pid {m.pid})" for m in left)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"error: processes started by the tests still ran at the end "
                                f"of the session (stopped now): {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
