"""Free loopback ports for tests and benchmarks (callcenter.runtime.ports): never the same port
twice in one process, even when the kernel picks it twice in a row (CI once gave one stack equal
ARI and AMI ports), nor one leased to another live process (CI once gave one worker's stack the
port another worker's Kannel had); blocks of ports at fixed offsets for the cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.runtime import ports


@pytest.fixture(autouse=True)
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with nothing handed out and leases of its own (and leaves the process's
    record as it was)."""
    monkeypatch.setenv("HOTLINE_PORT_LEASES", str(tmp_path / "leases"))
    saved = set(ports._HANDED)
    ports._HANDED.clear()
    yield
    ports._HANDED.clear()
    ports._HANDED.update(saved)


def kernel_picks(monkeypatch: pytest.MonkeyPatch, *picks: int) -> list[tuple[int, str]]:
    """The kernel's picks, in this order; returns the (kind, host) of every pick asked for."""
    asked: list[tuple[int, str]] = []
    it = iter(picks)

    def pick(kind: int, host: str) -> int:
        asked.append((kind, host))
        return next(it)

    monkeypatch.setattr(ports, "_kernel_pick", pick)
    return asked


def unbound(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_given_kernel_picks_a_port_twice_when_asked_twice_then_never_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p, q = 40001, 40002
    kernel_picks(monkeypatch, p, p, p, q)
    assert ports.free_port() == p
    assert ports.free_port(socket.SOCK_DGRAM) == q  # one record for TCP and UDP alike


def test_given_avoided_range_when_kernel_picks_inside_then_another_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = kernel_picks(monkeypatch, 31500, 36001)
    assert ports.free_port(socket.SOCK_DGRAM, avoid=range(30000, 36000)) == 36001
    assert asked == [(socket.SOCK_DGRAM, "127.0.0.1")] * 2


def test_given_real_kernel_when_asked_then_the_port_binds_for_its_kind() -> None:
    udp = ports.free_port(socket.SOCK_DGRAM)
    tcp = ports.free_port()
    assert udp != tcp
    assert ports.bindable(udp, socket.SOCK_DGRAM) and ports.bindable(tcp)


def test_given_listener_when_checked_then_not_bindable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not ports.bindable(int(s.getsockname()[1]))


def test_given_block_when_asked_then_every_offset_free_and_never_handed_again() -> None:
    p = ports.port_block(socket.SOCK_DGRAM, (0, 10, 11), tcp_offsets=(1,))
    assert all(ports.bindable(p + o, socket.SOCK_DGRAM) for o in (0, 10, 11))
    assert ports.bindable(p + 1)
    assert {p, p + 1, p + 10, p + 11} <= ports._HANDED
    q = ports.port_block(socket.SOCK_STREAM, (0, 10))
    assert not {q, q + 10} & {p, p + 1, p + 10, p + 11}


def test_given_an_offset_taken_when_block_asked_then_next_pick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = int(busy.getsockname()[1])
        good = unbound(socket.SOCK_STREAM)
        kernel_picks(monkeypatch, taken - 10, good, good)
        if not ports.bindable(good + 10):
            pytest.skip("the port 10 above a free one is in use on this machine")
        assert ports.port_block(socket.SOCK_STREAM, (0, 10)) == good
        # The same pick again: handed out already, so the block helper gives up after tries.
        with pytest.raises(RuntimeError, match="no free block"):
            ports.port_block(socket.SOCK_STREAM, (0, 10), tries=1)


def test_given_block_reaching_the_top_when_asked_then_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_picks(monkeypatch, 64995)
    with pytest.raises(RuntimeError):
        ports.port_block(socket.SOCK_STREAM, (0, 10), tries=1)


def _other_process_leasing(port: int) -> subprocess.Popen[str]:
    """Another process (as another pytest worker) that leased ``port`` and lives on."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom callcenter.runtime import ports\n"
         f"print(ports.lease_ports([{port}]), flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "True"
    return child


def test_given_port_leased_by_another_live_process_when_kernel_picks_it_then_another_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p, q = 40011, 40012
    child = _other_process_leasing(p)
    try:
        kernel_picks(monkeypatch, p, q)
        assert ports.free_port() == q
        assert not ports.lease_ports([p])
    finally:
        child.communicate("")
    # Its process gone, the lease is taken over.
    assert ports.lease_ports([p])
    assert not ports.lease_ports([p])  # and now it is ours: not handed twice


def test_given_block_with_a_port_leased_elsewhere_when_asked_then_next_pick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Four ports in a row free now (the kernel's own picks may repeat: CI-8 skipped on that).
    free = [p for p in range(40100, 41000, 4) if all(ports.bindable(p + i) for i in range(4))]
    if not free:
        pytest.skip("no four ports in a row free in 40100-41000 on this machine")
    first, second = free[0], free[0] + 2
    child = _other_process_leasing(first + 1)
    try:
        kernel_picks(monkeypatch, first, second)
        assert ports.port_block(socket.SOCK_STREAM, (0, 1)) == second
    finally:
        child.communicate("")
    assert first not in ports._HANDED  # the refused block leased nothing
