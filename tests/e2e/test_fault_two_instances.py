"""Fault: two app processes serve one PBX and one Redis at once, and one of them dies (issue
15, item 6).

Asterisk gives a Stasis application to one websocket only (a second connection replaces the
first: that is the active/standby pair of tests/e2e/test_queue.py). Two *active* instances
therefore run under two applications, ``hotline-test-1`` and ``-2`` (``service.app_instances:
2``); the dialplan sends each call to one at random and on to the other when the first is not
connected. Here: a burst spreads over both and never takes more lines than the pool has; one
instance is killed with calls up: the survivor moves them into its application and adopts
them (state, lines from Redis), they go on, new calls are answered, every call has exactly one
record.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from callcenter.ops.processes import spawn
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.scenarios import caller_rtp, nothing_left_after, records_of, running
from tests.e2e.stack import ROOT, RTP_RESERVED, Stack, free_port, readiness_summary, wait_until

LINES = 10
APPS = ("hotline-test-1", "hotline-test-2")


@pytest.fixture(scope="module")
def duo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own with two app instances: the stack's app is slot 1."""
    stack = Stack(tmp_path_factory.mktemp("two-instances"))
    stack.config_data["service"]["app_instances"] = 2
    stack.set_lines(LINES)
    with running(stack):
        yield stack


nothing_left = nothing_left_after("duo")


class Second:
    """The second app process (slot 2): its own config file only to give it a free HTTP port
    (slot 2 listens on service.http_port + 1)."""

    def __init__(self, stack: Stack) -> None:
        port = free_port()
        while port - 1 in RTP_RESERVED:
            port = free_port()
        data = json.loads(json.dumps(stack.config_data))
        data["service"]["http_port"] = port - 1
        self.config = stack.workdir / "hotline-slot2.yaml"
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        self.http_port = port
        self.log = stack.workdir / "app-slot2.log"
        self.stack = stack
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = spawn("app", [sys.executable, "-m", "callcenter", "app"],
                              env={**self.stack.env(), "HOTLINE_CONFIG": str(self.config),
                                   "HOTLINE_APP_SLOT": "2"},
                              stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        up = wait_until(lambda: readiness_summary(self.http_port).get("ari_connected"), 30)
        assert up, self.log.read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)


@pytest.fixture
def second(duo: Stack) -> Iterator[Second]:
    s = Second(duo)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def in_app(stack: Stack, app: str) -> list[str]:
    """The channels in one Stasis application now."""
    return list(stack.ari(f"/applications/{app}").get("channel_ids", []))


def arrived(text: str) -> int:
    return text.count(" arrived dialled=1022 ")


def test_given_two_active_instances_when_burst_of_20_on_10_lines_then_both_serve_10_answered(
        duo: Stack, second: Second) -> None:
    assert {a["name"] for a in duo.ari("/applications")} >= set(APPS)
    first_log = len(duo.app_log.read_text(errors="replace"))
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, duo.pool_in_use())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    group = duo.phone("1022", count=20, hold=15, caller="0919400100")
    try:
        assert wait_until(lambda: len(group.of("answered")) >= LINES, 20)
        # the refused ones hear the busy message (~9 s), the answered ones hang up at 15 s
        assert wait_until(lambda: len(group.of("disconnected")) >= 20, 30)
    finally:
        results = group.finish(40)
        stop.set()
        watcher.join(5)
    codes = sorted(r["final_code"] for r in results)
    assert codes == [200] * LINES + [486] * LINES, codes
    assert peak <= LINES, peak
    assert peak == LINES  # the watcher saw the pool full
    one = arrived(duo.app_log.read_text(errors="replace")[first_log:])
    two = arrived(second.log.read_text(errors="replace"))
    assert one + two == 20 and one > 0 and two > 0, (one, two)  # spread over both
    assert wait_until(lambda: len([r for r in duo.records(60)
                                   if r["caller"].startswith("09194001")]) == 20, 10)


def test_given_instance_killed_with_calls_up_when_survivor_takes_over_then_calls_go_on(
        duo: Stack, second: Second) -> None:
    phones: list[PhoneGroup] = []
    try:
        # Calls until each instance serves at least one (the dialplan picks at random).
        for i in range(10):
            phone = duo.phone("1022", hold=90, caller=f"09194002{i:02d}")
            phones.append(phone)
            assert phone.wait_for("answered", 1, 20), duo.app_log_tail()
            if in_app(duo, APPS[0]) and in_app(duo, APPS[1]):
                break
        mine, theirs = in_app(duo, APPS[0]), in_app(duo, APPS[1])
        assert mine and theirs, (mine, theirs)
        assert duo.pool_in_use() == len(phones)
        second.stop(signal.SIGKILL)
        killed = time.monotonic()
        # Within the peers' liveness window (5 s + 2 s grace) and a heartbeat, its calls move
        # to us (one hearing the greeting when that ends: up to ~9 s more) and are adopted.
        text = lambda: duo.app_log.read_text(errors="replace")  # noqa: E731
        moved = wait_until(lambda: set(theirs) <= set(in_app(duo, APPS[0]))
                           and all(f"call={c} adopted in phase" in text() for c in theirs),
                           25, 0.2)
        assert moved, duo.app_log_tail()
        assert time.monotonic() - killed < 22
        assert duo.logged("stopped serving its calls: taking over", 200), duo.app_log_tail()
        assert text().count("stopped serving its calls: taking over") == 1  # moved once each
        for phone in phones:
            assert phone.of("disconnected") == [], "a call was dropped"
            before = caller_rtp(phone)
            assert wait_until(lambda p=phone, b=before: caller_rtp(p) > b + 25, 5)  # audio
        assert duo.pool_in_use() == len(phones)  # adopted lines: none lost, none twice
        # New calls: the dead instance's application is not connected, the dialplan goes on
        # to the survivor every time.
        late = duo.phone("1022", count=3, hold=2, caller="0919400300")
        assert len(late.wait_for("answered", 3, 20)) == 3
        late.finish()
    finally:
        for phone in phones:
            phone.finish()
    assert wait_until(lambda: duo.pool_in_use() == 0, 5)
    callers = [f"09194002{i:02d}" for i in range(len(phones))]
    rows = records_of(duo, callers)
    assert rows and sorted(r["caller"] for r in rows) == callers, rows  # one each
    assert {r["outcome"] for r in rows} == {"answered"}, rows


def test_given_instance_stopped_cleanly_with_calls_up_then_peer_continues_them_one_record(
        duo: Stack, second: Second) -> None:
    """SIGTERM (an upgrade, `systemctl restart` of one slot): the stopping instance leaves its
    calls to the live peer instead of ending them; they are not greeted again, and each has
    one record, written by the instance that served its end."""
    phones: list[PhoneGroup] = []
    try:
        for i in range(10):
            phone = duo.phone("1022", hold=90, caller=f"09194004{i:02d}")
            phones.append(phone)
            assert phone.wait_for("answered", 1, 20), duo.app_log_tail()
            if in_app(duo, APPS[1]):
                break
        theirs = in_app(duo, APPS[1])
        assert theirs
        second.stop(signal.SIGTERM)
        assert "call(s) left to the other app instance(s) hotline-test-1" in (
            second.log.read_text(errors="replace"))
        text = lambda: duo.app_log.read_text(errors="replace")  # noqa: E731
        adopted = wait_until(lambda: all(f"call={c} adopted in phase" in text()
                                         for c in theirs), 25, 0.2)
        assert adopted, duo.app_log_tail()
        for phone in phones:
            assert phone.of("disconnected") == [], "a call was dropped"
        assert duo.pool_in_use() == len(phones)
    finally:
        for phone in phones:
            phone.finish()
    assert wait_until(lambda: duo.pool_in_use() == 0, 5)
    callers = [f"09194004{i:02d}" for i in range(len(phones))]
    rows = records_of(duo, callers)
    assert rows and sorted(r["caller"] for r in rows) == callers, rows  # one each
    assert {r["outcome"] for r in rows} == {"answered"}, rows
