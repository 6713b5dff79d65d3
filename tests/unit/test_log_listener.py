"""The app's log thread (cli._PollingListener): lines queued by the event loop are written
every LOG_DRAIN_S, and a failing sleep never ends the thread (every later line would be lost)."""

from __future__ import annotations

import io
import logging
import queue
import threading
import time

import pytest

from callcenter import cli


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("callcenter.test", logging.INFO, __file__, 1, text, None, None)


def _listener(records: queue.SimpleQueue[logging.LogRecord]) -> tuple[
        cli._PollingListener, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return cli._PollingListener(records, handler), out


def test_given_lines_queued_when_the_thread_polls_then_each_written_once_in_order() -> None:
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener, out = _listener(records)
    listener.start()
    for i in range(3):
        records.put(_record(f"line {i}"))
    listener.stop()  # drains what is queued
    assert out.getvalue().splitlines() == ["line 0", "line 1", "line 2"]


def test_given_sleep_fails_when_waiting_for_lines_then_the_thread_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    failures = []

    real_sleep = time.sleep

    def broken_sleep(seconds: float) -> None:
        if threading.current_thread() is not listener._thread:  # other threads sleep on
            real_sleep(seconds)
            return
        failures.append(seconds)
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(cli.time, "sleep", broken_sleep)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener, out = _listener(records)
    listener.start()
    deadline = time.monotonic() + 5
    while not failures and time.monotonic() < deadline:  # the thread found the queue empty
        real_sleep(0.001)
    assert failures == [cli.LOG_DRAIN_S]
    records.put(_record("first"))
    records.put(_record("second"))
    listener.stop()
    assert out.getvalue().splitlines() == ["first", "second"]
