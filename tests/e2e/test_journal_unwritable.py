"""Issue 15, fault 3 end to end: the running hotline's call-record journal is on a full disk.

The journal folder of a stack of this module's own is a tiny tmpfs (mounted before the app
starts), filled to the last byte; the database is a PostgreSQL database the test can cut off
(``allow_connections false``), as in test_database_outage. Real calls through Asterisk; what
is checked is what an operator sees: the record in the database, ``/metrics`` and ``/readyz``.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.store.urls import normalise_url
from tests.e2e.scenarios import assert_nothing_left, running
from tests.e2e.stack import Stack, wait_until

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class World:
    """The stack, its journal's tmpfs and its PostgreSQL database."""

    def __init__(self, stack: Stack, journal: Path, admin: sa.Engine, name: str):
        self.stack, self.journal, self.admin, self.name = stack, journal, admin, name

    def fill_disk(self) -> None:
        with (self.journal / ".filler").open("ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 512)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e

    def free_disk(self) -> None:
        (self.journal / ".filler").unlink(missing_ok=True)

    def database(self, up: bool) -> None:
        with self.admin.connect() as c:
            c.execute(sa.text(f'alter database "{self.name}" allow_connections {str(up).lower()}'))
            if not up:
                c.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity "
                                  "where datname = :n"), {"n": self.name})

    def rows(self, caller: str) -> int:
        engine = sa.create_engine(self.admin.url.set(database=self.name))
        try:
            with engine.connect() as c:
                return int(c.execute(sa.text("select count(*) from call_records "
                                             "where caller = :c"), {"c": caller}).scalar_one())
        finally:
            engine.dispose()

    def metric(self, name: str) -> float | None:
        url = f"http://127.0.0.1:{self.stack.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
        return float(m[1]) if m else None

    def readyz(self) -> tuple[int, dict[str, object]]:
        import json
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.stack.http_port}/readyz",
                                        timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def call(self, caller: str) -> None:
        phone = self.stack.phone("1022", caller=caller, hold=1)
        (result,) = phone.finish()
        assert result["final_code"] == 200 and result["answered"], result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    try:
        admin = sa.create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:  # noqa: BLE001 - any failure means: no PostgreSQL here
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {e}")
    stack = Stack(Path(tmp_path_factory.mktemp("journal-full")))
    journal = stack.state / "journal"
    journal.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0755", "tmpfs",
                              str(journal)], capture_output=True, text=True, timeout=10)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    name = f"hotline_journal_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'create database "{name}"'))
        stack.database_url = str(normalise_url(ADMIN_URL).set(database=name)
                                 .render_as_string(hide_password=False))
        with running(stack):
            yield World(stack, journal, admin, name)
    finally:
        subprocess.run(["umount", "-l", str(journal)], capture_output=True, timeout=10)
        with admin.connect() as c:
            c.execute(sa.text(f'alter database "{name}" allow_connections true'))
            c.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity "
                              "where datname = :n"), {"n": name})
            c.execute(sa.text(f'drop database if exists "{name}"'))
        admin.dispose()


@pytest.fixture(autouse=True)
def nothing_left(world: World) -> Iterator[None]:
    """After each test: no channel, no bridge, no line held (scenarios.assert_nothing_left)."""
    yield
    assert_nothing_left(world.stack)


def journal_check(world: World) -> dict[str, object]:
    status, body = world.readyz()
    assert status == 200 and body["status"] == "ready", (status, body)  # calls still served
    checks = body["checks"]
    assert isinstance(checks, dict)
    journal = checks["journal"]
    assert isinstance(journal, dict)
    return journal


def test_given_journal_disk_full_when_call_ends_then_record_in_database_metric_and_readyz_say_so(
        world: World) -> None:
    world.fill_disk()
    try:
        world.call("0988000301")
        assert wait_until(lambda: world.rows("0988000301") == 1, 10), \
            world.stack.app_log_tail()
        assert world.metric("hotline_journal_write_failures_total") == 1
        assert world.metric("hotline_call_records_held") == 0
        journal = journal_check(world)
        assert journal["ok"] is False and "unwritable" in str(journal["error"])
        assert "No space left on device" in str(journal["error"])
        log = world.stack.app_log_tail(300)
        assert "call record journal" in log and "unwritable" in log
        assert "0988000301" not in log  # the caller's number stays out of the log
    finally:
        world.free_disk()


def test_given_journal_full_and_database_down_when_call_ends_then_held_then_lands_when_db_back(
        world: World) -> None:
    world.fill_disk()
    try:
        world.database(up=False)
        world.call("0988000302")
        assert wait_until(lambda: world.metric("hotline_call_records_held") == 1, 10), \
            world.stack.app_log_tail()
        journal = journal_check(world)
        assert journal["ok"] is False and journal["held_in_memory"] == 1
        assert "held in memory" in str(journal["error"])
        world.database(up=True)
        # The writer's loop retries with back-off (0.5 s doubling, at most 30 s).
        assert wait_until(lambda: world.metric("hotline_call_records_held") == 0, 45), \
            world.stack.app_log_tail()
        assert world.rows("0988000302") == 1
    finally:
        world.database(up=True)
        world.free_disk()
    # Room on the disk again: the next call goes through the journal, readiness clears.
    world.call("0988000303")
    assert wait_until(lambda: world.rows("0988000303") == 1, 10)
    assert wait_until(lambda: journal_check(world)["ok"] is True, 5)
    assert world.metric("hotline_journal_write_failures_total") == 2
