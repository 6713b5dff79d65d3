"""The rendered edge config against Debian's real Kamailio: `kamailio -c` parses it and loads
its modules (dispatcher, pike, ipops ...); a started edge answers on its control socket and
reports unreachable nodes as down."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callcenter.cluster.edge import EdgeNode, EdgeSettings, Kamailio, kamailio_binary
from tests.e2e.stack import free_port, wait_until


@pytest.fixture(autouse=True)
def _kamailio() -> None:
    try:
        kamailio_binary()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("count", [1, 3])
def test_given_rendered_edge_when_kamailio_checks_it_then_accepted(tmp_path: Path,
                                                                   count: int) -> None:
    nodes = [EdgeNode(f"node{i}", "127.0.0.1", 5060 + 10 * i) for i in range(1, count + 1)]
    Kamailio(tmp_path, EdgeSettings(), nodes).check()


def test_given_nodes_not_listening_when_edge_runs_then_it_sees_them_down(tmp_path: Path) -> None:
    nodes = [EdgeNode("node1", "127.0.0.1", free_port(socket.SOCK_DGRAM))]
    edge = Kamailio(tmp_path, EdgeSettings(listen_port=free_port(socket.SOCK_DGRAM)), nodes)
    edge.start()
    try:
        assert wait_until(lambda: edge.node_states() == {"node1": "down"}, 5, 0.2), edge.log_tail()
    finally:
        edge.stop()
    assert edge.exited() is not None
