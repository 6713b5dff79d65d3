"""sd_notify without a dependency: real AF_UNIX datagram sockets stand in for systemd's."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from callcenter.ops.systemd import (
    SYSTEMD,
    Notifier,
    notify,
    socket_address,
    systemd_ctx,
    systemd_ready,
    watchdog_interval,
)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a path, as systemd's $NOTIFY_SOCKET is."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def messages(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket now (never blocks the event loop)."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(5)


def test_given_a_path_socket_when_notify_then_one_datagram_with_the_lines(listener):
    sock, path = listener
    assert notify("READY=1", "STATUS=hi", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=hi"


def test_given_an_abstract_socket_when_notify_then_it_is_reached_through_at():
    name = f"hotline-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_given_no_notify_socket_then_nothing_is_sent_and_nothing_fails():
    assert notify("READY=1", env={}) is False
    assert Notifier.from_env({}) is None
    assert Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert socket_address("@x") == "\0x" and socket_address("/run/x") == "/run/x"


def test_given_a_socket_nobody_listens_on_then_send_returns_false_without_raising(tmp_path):
    assert Notifier(str(tmp_path / "gone")).send("READY=1") is False


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_given_watchdog_variables_then_the_ping_interval_is_half_of_watchdog_usec(env, expected):
    assert watchdog_interval(env) == expected


async def test_given_systemd_when_the_app_starts_then_ready_only_after_ari_connects_and_watchdog(
        listener, monkeypatch):
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    # A ping every 100 ms; the socket's queue holds 10 datagrams (net.unix.max_dgram_qlen),
    # drained between the steps.
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    app = web.Application()
    app.cleanup_ctx.append(systemd_ctx)
    runner = web.AppRunner(app)
    await runner.setup()  # runs systemd_ctx up to its yield
    connected = asyncio.Event()
    try:
        await systemd_ready(app, connected)  # returns at once: a task waits for ARI
        await asyncio.sleep(0.3)
        before = messages(sock)
        assert "READY=1" not in "\n".join(before)
        assert before.count("WATCHDOG=1") >= 2
        assert any(m.startswith("STATUS=ARI not connected") for m in before)
        connected.set()
        await asyncio.sleep(0.2)
        after = messages(sock)
        ready = [m for m in after if m.startswith("READY=1")]
        assert ready == ["READY=1\nSTATUS=ARI connected: answering calls"]
        connected.clear()  # Asterisk restarts: the status says so, the watchdog goes on
        lost: list[str] = []
        for _ in range(6):
            await asyncio.sleep(0.25)
            lost += messages(sock)
        assert any(m.startswith("STATUS=ARI not connected") for m in lost)
        assert "WATCHDOG=1" in lost
        names = {t.get_name() for t in app[SYSTEMD].tasks}
        assert names == {"systemd-watchdog", "systemd-ready"}
    finally:
        await runner.cleanup()
    tasks = app[SYSTEMD].tasks
    assert all(t.done() for t in tasks)  # owned and stopped: nothing left behind
    end = messages(sock)
    assert any(m.startswith("STOPPING=1") for m in end)
    await asyncio.sleep(0.2)
    assert messages(sock) == []  # no ping after the stop


async def test_given_no_systemd_then_the_context_and_ready_do_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    app = web.Application()
    app.cleanup_ctx.append(systemd_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    await systemd_ready(app, asyncio.Event())
    assert app[SYSTEMD].notifier is None and app[SYSTEMD].tasks == []
    await runner.cleanup()


async def test_given_an_app_without_the_context_then_ready_is_a_no_op():
    await systemd_ready(web.Application(), asyncio.Event())
