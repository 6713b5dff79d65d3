"""`callcenter cluster run` checks every planned port before it starts anything
(cluster/runner.py check_ports): a port in use, or two parts planned on one port, stops it with
the node, the part and the port named."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from callcenter.cluster.plan import NodePlan, PlannedPort, plan_nodes, planned_ports
from callcenter.cluster.runner import check_ports
from callcenter.pbx.process import PbxStartError
from callcenter.runtime.ports import bindable, free_port


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port something listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def base(**service: Any) -> dict[str, Any]:
    ports = {"ari_port": free_port(), "ami_port": free_port(), "http_port": free_port()}
    return {"service": {**ports, **service},
            "trunk": {"rtp_start": 31000, "rtp_end": 31999}}


def planned_free(port: PlannedPort) -> bool:
    kind = socket.SOCK_DGRAM if port.transport == "udp" else socket.SOCK_STREAM
    return bindable(port.port, kind, port.host)


def one_node(data: dict[str, Any], busy: int | None = None) -> tuple[list[NodePlan], int]:
    """One node's plan on an edge port whose derived ports (edge + 1, + 10, + 11) are all free
    but ``busy``: another process on the machine may hold one of them (CI, once)."""
    for _ in range(100):
        edge = free_port(socket.SOCK_DGRAM)
        plans = plan_nodes(data, 1, "127.0.0.1", edge)
        if all(p.port == busy or planned_free(p) for p in planned_ports(plans, "127.0.0.1", edge)):
            return plans, edge
    raise RuntimeError("no edge port with its derived ports free")


def test_given_free_ports_then_check_passes() -> None:
    plans, edge = one_node(base())
    check_ports(plans, "127.0.0.1", edge)


def test_given_a_port_in_use_when_checked_then_it_names_node_part_and_port(
        listener: int) -> None:
    plans, edge = one_node(base(ari_port=listener), busy=listener)
    with pytest.raises(PbxStartError) as e:
        check_ports(plans, "127.0.0.1", edge)
    assert f"node1 ARI port 127.0.0.1:{listener} is already in use" in str(e.value)


def test_given_planned_clash_when_checked_then_refused_before_any_bind() -> None:
    edge = free_port(socket.SOCK_DGRAM)
    http = free_port()
    plans = plan_nodes(base(ari_port=http - 10, http_port=http), 2, "127.0.0.1", edge)
    with pytest.raises(PbxStartError) as e:
        check_ports(plans, "127.0.0.1", edge)
    assert "node1 console" in str(e.value) and "node2 ARI" in str(e.value)
    assert f"would share port {http}" in str(e.value)
