"""Free loopback ports for programs a test or a benchmark starts beside the hotline.

One process may ask for many ports in a row (a stack's SIP, ARI, AMI and HTTP ports; a
cluster's node ports). The kernel may hand the same free port to two binds in a row (CI once
gave one stack equal ARI and AMI ports), so every port handed out here is remembered and never
handed out again by this process, whichever helper handed it.

``free_port`` is one port of a kind (TCP or UDP); ``port_block`` is a base port p with p + each
offset free (the cluster derives its nodes' ports from one port by fixed steps); ``bindable``
says whether a port can be bound now. A port is free only "now": another program may take it
before the caller binds it; the callers retry or fail with the port named.
"""

from __future__ import annotations

import socket
from collections.abc import Container, Iterable

LOOPBACK = "127.0.0.1"
TOP = 65000  # ports of a block stay below this (the last ones are the kernel's to give)

_HANDED: set[int] = set()  # every port handed out by this process, TCP and UDP alike


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
        if port not in avoid and port not in _HANDED:
            _HANDED.add(port)
            return port


def port_block(kind: int, offsets: Iterable[int], tcp_offsets: Iterable[int] = (), *,
               avoid: Container[int] = (), host: str = LOOPBACK, tries: int = 200) -> int:
    """A port p (the kernel's pick for ``kind``) such that p + each of ``offsets`` is free for
    ``kind`` and p + each of ``tcp_offsets`` free for TCP too, all below 65000, none in
    ``avoid`` and none handed out before by this process; p and those ports are then handed
    out. Raises RuntimeError after ``tries`` picks."""
    offsets, tcp_offsets = tuple(offsets), tuple(tcp_offsets)
    for _ in range(tries):
        p = _kernel_pick(kind, host)
        if p in _HANDED:
            continue
        wanted = [(p + o, kind) for o in offsets] + [(p + o, socket.SOCK_STREAM)
                                                      for o in tcp_offsets]
        if all(q < TOP and q not in avoid and q not in _HANDED and bindable(q, k, host)
               for q, k in wanted):
            _HANDED.update([p, *(q for q, _ in wanted)])
            return p
    raise RuntimeError(f"no free block of ports (offsets {offsets}, TCP {tcp_offsets}) "
                       f"on {host} after {tries} tries")
