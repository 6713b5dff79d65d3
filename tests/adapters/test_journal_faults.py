"""Issue 15, fault 3: the call-record journal cannot be written (disk full, read-only).

The faults are real: the journal's folder is a tiny tmpfs mounted for the test, filled to the
last byte (ENOSPC) or remounted read-only (EROFS). The database is a real SQLite file; "down"
is its folder missing (the store never creates folders), "back" is the migration creating it.
Without the right to mount (not root, no CAP_SYS_ADMIN, a container forbidding it) the tests
skip and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcenter.calls import CallState
from callcenter.console.health import check_journal
from callcenter.console.metrics import MetricsSample, render_metrics
from callcenter.store.journal import RecordJournal
from callcenter.store.migrate import upgrade_head
from callcenter.store.recorder import SUMMARY_EVERY_S, RecordWriter, record_of
from callcenter.store.records import CallRecordStore
from tests.adapters.conftest import T0

RECORDER = "callcenter.store.recorder"


@dataclass
class SmallDisk:
    """A tmpfs of a few pages holding the journal's folder; fill, free, remount."""

    mount: Path

    @property
    def filler(self) -> Path:
        return self.mount / "filler"

    def fill(self) -> None:
        """Write until the filesystem says ENOSPC: no byte is left for the journal."""
        with self.filler.open("ab", buffering=0) as f:  # unbuffered: close flushes nothing
            try:
                while True:
                    f.write(b"\0" * 512)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        # The folder's own entries are in memory; prove a journal-sized write fails now.
        probe = self.mount / "probe"
        with pytest.raises(OSError) as caught:
            probe.write_bytes(b"x" * 600)
        probe.unlink(missing_ok=True)
        assert caught.value.errno == errno.ENOSPC

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.mount)], check=True,
                       capture_output=True, timeout=10)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs",
                               str(mount)], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("no mount command: a real full/read-only disk cannot be made here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): "
                    f"{done.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True,
                       timeout=10)


@dataclass
class Db:
    """A real SQLite database that can be down (folder missing) and come back (migrated)."""

    url: str
    store: CallRecordStore

    def back(self) -> None:
        upgrade_head(self.url)

    def ids(self) -> set[str]:
        probe = CallRecordStore(self.url)
        try:
            return {r.id for r in probe.last(100_000)}
        finally:
            probe.close()


@pytest.fixture
def db_down(tmp_path: Path) -> Iterator[Db]:
    url = f"sqlite:///{tmp_path / 'db-folder' / 'hotline.db'}"
    store = CallRecordStore(url)
    yield Db(url, store)
    store.close()


@pytest.fixture
def db_up(tmp_path: Path) -> Iterator[Db]:
    url = f"sqlite:///{tmp_path / 'db-up' / 'hotline.db'}"
    upgrade_head(url)
    store = CallRecordStore(url)
    yield Db(url, store)
    store.close()


def call(n: int) -> CallState:
    """A finished call (id pbx1:1762130000.n)."""
    return CallState(call_id=f"1762130000.{n}", node="pbx1", dialled="1022",
                     caller=f"09{n:08d}", linkedid=f"1762130000.{n}", arrived_at=T0,
                     tenant_id="dongnai", shift="day", limit=15, outcome="answered",
                     answered_at=T0 + dt.timedelta(seconds=1),
                     ended_at=T0 + dt.timedelta(seconds=60))


def rid(n: int) -> str:
    return f"pbx1:1762130000.{n}"


def journal_files(journal: RecordJournal) -> list[str]:
    return sorted(p.name for p in journal.directory.iterdir() if p.is_file())


FAULTS: dict[str, Callable[[SmallDisk], None]] = {
    "disk-full": SmallDisk.fill,
    "read-only": lambda d: d.read_only(True),
}
ERRNO = {"disk-full": "No space left on device", "read-only": "Read-only file system"}


def journal_error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == RECORDER and r.levelno >= logging.ERROR]


# ---- the journal fails, the database answers: straight to the database -----------------------
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_given_journal_disk_full_or_read_only_when_call_ends_then_record_in_database(
        fault: str, small_disk: SmallDisk, db_up: Db, caplog: pytest.LogCaptureFixture) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    counted: list[str] = []
    writer = RecordWriter(journal, db_up.store, on_record=lambda r: counted.append(r.id))
    FAULTS[fault](small_disk)
    with caplog.at_level(logging.DEBUG, logger=RECORDER):
        await writer.write(call(1))  # returns: the call's task is not broken by the fault
    assert db_up.ids() == {rid(1)}
    assert journal_files(journal) == []  # no half-written or temp file left
    status = writer.status()
    assert (status.held, status.not_journalled, status.dropped) == (0, 1, 0)
    assert status.journal_error is not None and ERRNO[fault] in status.journal_error
    assert counted == [rid(1)]  # the call still counts in /metrics' outcomes
    [line] = journal_error_lines(caplog)
    assert "unwritable" in line and ERRNO[fault] in line and "0900000001" not in caplog.text
    # Readiness says so although nothing is held: records are not protected by the journal.
    check = await check_journal(journal, writer=status)
    assert not check.ok and not check.critical and "journal unwritable" in (check.error or "")
    # The disk is fixed: the next call goes through the journal again and readiness clears.
    if fault == "disk-full":
        small_disk.free()
    else:
        small_disk.read_only(False)
    await writer.write(call(2))
    assert writer.status().journal_error is None
    assert await writer.flush_once() == 0
    assert db_up.ids() == {rid(1), rid(2)}
    assert (await check_journal(journal, writer=writer.status())).ok


# ---- the journal and the database fail: held in memory until either comes back ---------------
async def test_given_journal_full_and_database_down_when_database_back_then_held_record_lands(
        small_disk: SmallDisk, db_down: Db, caplog: pytest.LogCaptureFixture) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_down.store)
    small_disk.fill()
    with caplog.at_level(logging.WARNING, logger=RECORDER):
        await writer.write(call(1))
        await writer.write(call(2))
    assert [r.id for r in writer.held()] == [rid(1), rid(2)]
    # Two ERROR lines for two records: the journal's failure, then "held in memory" once.
    lines = journal_error_lines(caplog)
    assert len(lines) == 2 and "held in memory only" in lines[1], lines
    assert await writer.flush_once() == 2  # a retry while both are down: still held
    # What /readyz and /metrics show meanwhile.
    status = writer.status()
    check = await check_journal(journal, writer=status)
    assert not check.ok and not check.critical
    assert check.figures["held_in_memory"] == 2 and "held in memory" in (check.error or "")
    text = render_metrics(sample(status.held, status.not_journalled, status.dropped))
    assert "hotline_call_records_held 2.0" in text
    assert "hotline_journal_write_failures_total 2.0" in text

    db_down.back()  # the database returns, the disk is still full
    with caplog.at_level(logging.WARNING, logger=RECORDER):
        assert await writer.flush_once() == 0
    assert "held in memory all written" in caplog.text
    assert db_down.ids() == {rid(1), rid(2)} and writer.held() == []
    assert journal_files(journal) == []
    assert (await check_journal(journal, writer=writer.status())).figures["held_in_memory"] == 0


async def test_given_journal_full_and_database_down_when_disk_freed_then_journalled_then_lands(
        small_disk: SmallDisk, db_down: Db) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_down.store)
    small_disk.fill()
    await writer.write(call(1))
    assert [r.id for r in writer.held()] == [rid(1)]
    small_disk.free()  # room on the disk again; the database is still down
    assert await writer.flush_once() == 1  # now pending in the journal, not in memory
    assert writer.held() == [] and [r.id for r in journal.pending()] == [rid(1)]
    status = writer.status()
    assert status.journal_error is None and status.held == 0
    assert (await check_journal(journal, writer=status)).ok  # one record waiting: normal
    db_down.back()
    assert await writer.flush_once() == 0
    assert db_down.ids() == {rid(1)} and journal_files(journal) == []


async def test_given_journal_read_only_and_database_down_when_loop_runs_then_lands_once_db_back(
        small_disk: SmallDisk, db_down: Db) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_down.store)
    task = asyncio.create_task(writer.run(), name="record-writer-under-test")
    try:
        small_disk.read_only(True)
        await writer.write(call(1))
        await asyncio.sleep(0.8)  # the loop has retried at least once, in vain
        assert [r.id for r in writer.held()] == [rid(1)]
        await asyncio.to_thread(db_down.back)
        async with asyncio.timeout(10):  # back-off starts at 0.5 s and doubles
            while writer.held():
                await asyncio.sleep(0.05)
        assert db_down.ids() == {rid(1)}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        small_disk.read_only(False)


# ---- never silent, never a flood -----------------------------------------------------------------
async def test_given_journal_full_when_many_calls_end_then_one_error_line_then_a_summary_per_minute(
        small_disk: SmallDisk, db_up: Db, caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_up.store, clock=lambda: now[0])
    small_disk.fill()
    with caplog.at_level(logging.INFO, logger=RECORDER):
        for n in range(40):
            await writer.write(call(n))
        await writer.flush_once()
        assert len(journal_error_lines(caplog)) == 1  # the first failure only
        now[0] += SUMMARY_EVERY_S
        await writer.write(call(40))
        await writer.flush_once()
    lines = journal_error_lines(caplog)
    assert len(lines) == 2 and "still unwritable" in lines[1], lines
    assert "41 record(s) not journalled in the last minute" in lines[1], lines[1]
    assert len(db_up.ids()) == 41 and writer.status().not_journalled == 41


async def test_given_journal_and_database_down_when_memory_full_then_each_drop_logged_and_counted(
        small_disk: SmallDisk, db_down: Db, caplog: pytest.LogCaptureFixture) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_down.store, held_limit=3)
    small_disk.fill()
    with caplog.at_level(logging.ERROR, logger=RECORDER):
        for n in range(1, 6):
            await writer.write(call(n))
    assert [r.id for r in writer.held()] == [rid(1), rid(2), rid(3)]  # the oldest kept
    dropped = [line for line in journal_error_lines(caplog) if "dropped" in line]
    assert len(dropped) == 2 and rid(4) in dropped[0] and rid(5) in dropped[1]
    assert writer.status().dropped == 2
    text = render_metrics(sample(3, 5, 2))
    assert "hotline_call_records_dropped_total 2.0" in text


async def test_given_records_held_at_shutdown_when_closed_then_last_try_and_each_left_logged_by_id(
        small_disk: SmallDisk, db_down: Db, caplog: pytest.LogCaptureFixture) -> None:
    journal = RecordJournal(small_disk.mount / "journal")
    writer = RecordWriter(journal, db_down.store)
    small_disk.fill()
    for n in (1, 2):
        await writer.write(call(n))
    with caplog.at_level(logging.ERROR, logger=RECORDER):
        await writer.close()
    lost = [line for line in journal_error_lines(caplog) if "lost at shutdown" in line]
    assert len(lost) == 2 and rid(1) in lost[0] and rid(2) in lost[1]
    # The same with the database back just before the stop: the last try lands them.
    writer2 = RecordWriter(journal, db_down.store)
    await writer2.write(call(3))
    db_down.back()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger=RECORDER):
        await writer2.close()
    assert db_down.ids() == {rid(3)} and "lost at shutdown" not in caplog.text


# ---- the app's wiring ----------------------------------------------------------------------------
def sample(held: int, not_journalled: int, dropped: int) -> MetricsSample:
    return MetricsSample(tenants=("dongnai",), live=(), outcomes=(), redis_up=True,
                         ari_connected=True, ami_connected=True, loop_lag_p99_ms=0,
                         loop_lag_max_ms=0, call_sessions=0, journal_pending=0,
                         records_not_journalled=not_journalled, records_held=held,
                         records_dropped=dropped)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_given_small_disk_fault_when_journal_appends_then_the_kernel_refuses_it(
        fault: str, small_disk: SmallDisk) -> None:
    """The fault is real, not a mock: the journal's own append fails with the kernel's errno."""
    journal = RecordJournal(small_disk.mount / "journal")
    FAULTS[fault](small_disk)
    with pytest.raises(OSError) as caught:
        journal.append(record_of(call(99)))
    assert caught.value.errno == (errno.ENOSPC if fault == "disk-full" else errno.EROFS)
    if fault == "read-only":
        small_disk.read_only(False)
