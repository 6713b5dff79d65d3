"""Two hotline nodes behind a Kamailio edge for the end-to-end tests (issue 19): each node a
whole hotline of its own (tests/e2e/stack.py: Asterisk, one app instance with its own
``service.node`` and Stasis application) sharing the first node's Redis and database, operator
101 registering at the edge."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.cluster.edge import (
    EdgeNode,
    EdgeSettings,
    Kamailio,
    edge_tls_for,
    kamailio_binary,
    module_dir,
)
from callcenter.config.file import load_config
from callcenter.lines.redis import lines_key
from callcenter.ops.processes import release_guard
from callcenter.pbx.render import password_digest
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.scenarios import assert_nothing_left
from tests.e2e.stack import Stack, free_port, wait_until

LINES = 10
OPERATOR_PW = "cluster-op-101-secret"


@dataclass
class Cluster:
    nodes: list[Stack]
    edge: Kamailio

    def phone(self, count: int, hold: float, caller: str) -> PhoneGroup:
        """Calls to 1022 through the edge (the carrier's only entry)."""
        return PhoneGroup(f"127.0.0.1:{self.edge.settings.listen_port}", "1022", count, hold,
                          caller)

    def in_use(self) -> int:
        """Lines held in the shared pool now."""
        return self.nodes[0].pool_in_use()

    def nothing_left(self) -> None:
        for node in self.nodes:
            assert_nothing_left(node)

    def line_nodes(self) -> list[str]:
        """The node holding each of the test tenant's lines now (the shared pool), sorted."""
        client = redis.Redis.from_url(self.nodes[0].redis.url)
        try:
            return sorted(json.loads(v)["n"] for v in client.hvals(lines_key("dongnai")))
        finally:
            client.close()

    @staticmethod
    def bring_back(node: Stack) -> None:
        """A node whose Asterisk and/or app a test killed: Asterisk first, then its app."""
        if node.pbx is not None and node.pbx.proc is not None:
            release_guard(node.pbx.proc)  # the dead one's watcher has nothing left to stop
            if node.pbx.proc.poll() is not None:
                node.pbx.start()
        if node.app is None or node.app.poll() is not None:
            node.start_app()


@contextmanager
def running_cluster(base: Path, configure: Callable[[Stack], None] | None = None,
                    tls: bool = False) -> Iterator[Cluster]:
    """Both nodes, then the edge once it sees both up; all stopped however the block ends.
    ``configure``: called with each node before it starts, to change its ``config_data`` (it
    writes the file itself). ``tls``: the edge also listens for operators over TLS (a
    self-signed pair made as `callcenter cluster run` makes it; its port
    ``edge.settings.tls.port``) and operator 101 must use TLS (``operators_require_tls``):
    it is let in only over TLS at the edge, and the nodes reach it through the edge with
    SRTP (``trunk.edge.tls``)."""
    try:
        kamailio_binary()
    except RuntimeError as e:
        pytest.skip(str(e))
    if tls and not (Path(module_dir()) / "tls.so").exists():
        pytest.skip("Kamailio's tls.so is missing (Debian's kamailio-tls-modules: `make deps`)")
    edge_port = free_port(socket.SOCK_DGRAM)
    nodes = [Stack(base / f"node{i}", operators={"101": OPERATOR_PW}, tls=tls) for i in (1, 2)]
    # One Redis and one database for both: the second node's Redis is the first's socket,
    # not a process of its own (stopping it stops nothing).
    nodes[1].redis = PrivateRedis(nodes[0].redis.socket_path)
    nodes[1].database_url = nodes[0].database_url
    for i, node in enumerate(nodes, 1):
        node.config_data["service"]["node"] = f"node{i}"
        node.config_data["service"]["stasis_app"] = f"hotline-node{i}"
        # Operators register at the edge; each node reaches them through it.
        node.config_data["trunk"]["edge"] = {"host": "127.0.0.1", "port": edge_port, "tls": tls}
        if tls:
            node.config_data["tenants"][0]["operators_require_tls"] = True
        node.config_data["tenants"][0]["queue"] = {"wrap_up_s": 0}
        node.set_lines(LINES)
        if configure is not None:
            configure(node)
    operators = (("101", password_digest("101", OPERATOR_PW)),)
    edge_tls = None
    if tls:
        config = load_config(nodes[0].config_path)
        edge_tls = edge_tls_for(config, base / "edge-state", free_port())
    edge = Kamailio(base / "edge", EdgeSettings(listen_port=edge_port, operators=operators,
                                                tls=edge_tls,
                                                tls_only=("101",) if tls else ()),
                    [EdgeNode(f"node{i}", "127.0.0.1", n.sip_port)
                     for i, n in enumerate(nodes, 1)])
    started: list[Stack] = []
    try:
        for node in nodes:
            node.start()
            started.append(node)
        edge.start()
        up = wait_until(lambda: set(edge.node_states().values()) == {"up"}, 10, 0.2)
        assert up, (edge.node_states(), edge.log_tail())
        yield Cluster(nodes, edge)
    finally:
        edge.stop()
        for node in reversed(started):  # the first node's Redis last
            node.stop()


def node_of(record: dict[str, Any]) -> str:
    """The node that handled a call: its record's id is ``<node>:<uniqueid>``."""
    return str(record["id"]).split(":", 1)[0]
