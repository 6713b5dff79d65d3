"""Free loopback ports for programs a test or a benchmark starts beside the hotline.

One process may ask for many ports in a row (a stack's SIP, ARI, AMI and HTTP ports; a
cluster's node ports). The kernel may hand the same free port to two binds in a row (CI once
gave one stack equal ARI and AMI ports), so every port handed out here is remembered and never
handed out again by this process, whichever helper handed it.

``free_port`` is one port of a kind (TCP or UDP); ``port_block`` is a base port p with p + each
offset free (the cluster derives its nodes' ports from one port by fixed steps); ``bindable``
says whether a port can be bound now. A port is free only "now": another program may take it
before the caller binds it; the callers retry or fail with the port named.

Several processes hand ports at once (the suite's four pytest workers, the benchmarks and
`callcenter run`s they start), each with its own record: CI once saw one worker's stack given
the HTTP port another worker had just given its Kannel. So every port handed out is also
leased machine-wide: a file named after the port in ``HOTLINE_PORT_LEASES`` (the test command
sets one per suite run; else a folder of this user's in the temporary directory) naming the
process; a port leased to a live process is never handed to another, a dead one's lease is
taken over.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from collections.abc import Container, Iterable
from pathlib import Path

LOOPBACK = "127.0.0.1"
TOP = 65000  # ports of a block stay below this (the last ones are the kernel's to give)

_HANDED: set[int] = set()  # every port handed out by this process, TCP and UDP alike


def _lease_dir() -> Path:
    return Path(os.environ.get("HOTLINE_PORT_LEASES")
                or Path(tempfile.gettempdir()) / f"hotline1022-ports-{os.getuid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _lease(wanted: Iterable[int]) -> bool:
    """Lease every port of ``wanted`` to this process machine-wide, or none of them (False:
    one is leased to another live process, or already handed out by this one)."""
    wanted = list(wanted)
    if any(p in _HANDED for p in wanted):
        return False
    folder = _lease_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    me = os.getpid()
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for p in wanted:
            try:
                holder = int((folder / str(p)).read_text() or 0)
            except (OSError, ValueError):
                continue  # no lease (or a torn one): free
            if holder != me and _alive(holder):
                return False
        for p in wanted:
            (folder / str(p)).write_text(str(me))
    _HANDED.update(wanted)
    return True


def lease_ports(wanted: Iterable[int]) -> bool:
    """Hand out ``wanted`` (all or none), found free by the caller's own means (a range of
    its own), if no other live process holds one and this one has handed none before."""
    return _lease(wanted)


def _kernel_pick(kind: int, host: str) -> int:
    """A port the kernel finds free for ``kind`` on ``host`` now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bindable(port: int, kind: int = socket.SOCK_STREAM, host: str = LOOPBACK) -> bool:
    """Whether ``port`` can be bound for ``kind`` on ``host`` now (plain bind, no
    SO_REUSEADDR: a port still in TIME_WAIT counts as taken)."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM, *, avoid: Container[int] = (),
              host: str = LOOPBACK) -> int:
    """A free port on ``host`` (TCP by default, ``socket.SOCK_DGRAM`` for UDP), never one
    handed out before by this process, never one in ``avoid`` (e.g. an RTP range)."""
    while True:
        port = _kernel_pick(kind, host)
        if port not in avoid and _lease([port]):
            return port


def port_block(kind: int, offsets: Iterable[int], tcp_offsets: Iterable[int] = (), *,
               avoid: Container[int] = (), host: str = LOOPBACK, tries: int = 200) -> int:
    """A port p (the kernel's pick for ``kind``) such that p + each of ``offsets`` is free for
    ``kind`` and p + each of ``tcp_offsets`` free for TCP too, all below 65000, none in
    ``avoid``, none handed out before by this process nor leased to another live one; p and
    those ports are then handed out. Raises RuntimeError after ``tries`` picks."""
    offsets, tcp_offsets = tuple(offsets), tuple(tcp_offsets)
    for _ in range(tries):
        p = _kernel_pick(kind, host)
        if p in _HANDED:
            continue
        wanted = [(p + o, kind) for o in offsets] + [(p + o, socket.SOCK_STREAM)
                                                      for o in tcp_offsets]
        if all(q < TOP and q not in avoid and q not in _HANDED and bindable(q, k, host)
               for q, k in wanted) and _lease([p, *(q for q, _ in wanted)]):
            return p
    raise RuntimeError(f"no free block of ports (offsets {offsets}, TCP {tcp_offsets}) "
                       f"on {host} after {tries} tries")
