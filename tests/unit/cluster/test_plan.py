"""The cluster's node configs derived from the hotline's (cluster/plan.py): pure, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cluster.plan import (
    MAX_NODES,
    PlannedPort,
    plan_nodes,
    planned_ports,
    port_clashes,
)
from callcenter.config.file import _include_ivr_files
from callcenter.config.parse import parse_config

CONFIG = Path(__file__).resolve().parents[3] / "config" / "hotline.yaml"


def shipped() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG.read_text()))


@pytest.mark.parametrize("count", [1, 2, 3, MAX_NODES])
def test_given_shipped_config_when_planned_then_each_node_is_apart_and_valid(count: int) -> None:
    plans = plan_nodes(shipped(), count, "127.0.0.1", 5060)
    assert [p.name for p in plans] == [f"node{i}" for i in range(1, count + 1)]
    ports: list[int] = []
    ranges: list[range] = []
    for p in plans:
        svc, trunk = p.config["service"], p.config["trunk"]
        assert svc["node"] == p.name and svc["stasis_app"] == f"hotline-{p.name}"
        assert trunk["port"] == p.sip_port and trunk["trusted_networks"] == ["127.0.0.1/32"]
        # Operators register at the edge, TLS ones too (its TLS port, 5061).
        assert trunk["edge"] == {"host": "127.0.0.1", "port": 5060, "tls": True}
        ports += [svc["ari_port"], svc["ami_port"], svc["http_port"], trunk["port"],
                  p.config["sip_tls"]["port"]]
        ranges.append(range(trunk["rtp_start"], trunk["rtp_end"] + 1))
        data = dict(p.config)
        _include_ivr_files(data, str(CONFIG))  # the node file sits beside the shipped one
        config = parse_config(data, str(CONFIG))
        assert config.service.node == p.name
    assert 5060 not in ports and 5061 not in ports  # the edge's (UDP, TLS)
    assert len(ports) == len(set(ports)), sorted(ports)
    rtp = [port for r in ranges for port in r]
    assert len(rtp) == len(set(rtp))  # disjoint
    assert min(rtp) >= shipped()["trunk"]["rtp_start"] and max(rtp) <= shipped()["trunk"]["rtp_end"]
    assert not set(rtp) & set(ports)


def test_given_base_untouched_when_planned_then_its_data_is_not_changed() -> None:
    base = shipped()
    before = yaml.safe_dump(base)
    plan_nodes(base, 3)
    assert yaml.safe_dump(base) == before


@pytest.mark.parametrize("count", [0, MAX_NODES + 1])
def test_given_node_count_out_of_range_then_refused(count: int) -> None:
    with pytest.raises(ValueError, match="nodes"):
        plan_nodes(shipped(), count)


def test_given_rtp_range_too_small_for_nodes_then_refused() -> None:
    base = shipped()
    base["trunk"]["rtp_start"], base["trunk"]["rtp_end"] = 20000, 20150
    with pytest.raises(ValueError, match="too small"):
        plan_nodes(base, 2)


def test_given_shipped_config_when_planned_then_every_port_is_its_own() -> None:
    plans = plan_nodes(shipped(), MAX_NODES, "127.0.0.1", 5060)
    ports = planned_ports(plans, "127.0.0.1", 5060)
    assert port_clashes(ports) == []
    # The edge (SIP, SIP TLS), then per node SIP, TLS, ARI, AMI and one console per app.
    apps = int(shipped()["service"].get("app_instances", 1))
    assert len(ports) == 2 + MAX_NODES * (4 + apps)
    assert ports[:2] == [PlannedPort("edge", "SIP", "127.0.0.1", 5060, "udp"),
                         PlannedPort("edge", "SIP TLS", "127.0.0.1", 5061, "tcp")]
    node2 = [p for p in ports if p.node == "node2"]
    assert ("SIP", 5080, "udp") in [(p.what, p.port, p.transport) for p in node2]


def test_given_ari_port_ten_below_console_when_planned_then_the_clash_names_both() -> None:
    base = shipped()
    base["service"].update(ari_port=8100, http_port=8110, app_instances=1)
    clashes = port_clashes(planned_ports(plan_nodes(base, 2), "127.0.0.1", 5060))
    assert clashes == ["node1 console (tcp 127.0.0.1:8110) and node2 ARI (tcp 127.0.0.1:8110) "
                       "would share port 8110"]


def test_given_two_apps_per_node_when_consoles_meet_the_next_nodes_then_clash() -> None:
    base = shipped()
    base["service"].update(http_port=8022, app_instances=12)  # 8022..8033 meets 8032
    clashes = port_clashes(planned_ports(plan_nodes(base, 2), "127.0.0.1", 5060))
    assert any("node1 console (app 11)" in c and "node2 console (app 1)" in c
               for c in clashes), clashes


def test_given_same_port_on_other_transport_or_address_then_no_clash() -> None:
    udp = PlannedPort("node1", "SIP", "127.0.0.1", 5070, "udp")
    assert port_clashes([udp, PlannedPort("x", "ARI", "127.0.0.1", 5070, "tcp")]) == []
    assert port_clashes([udp, PlannedPort("x", "SIP", "127.0.0.2", 5070, "udp")]) == []
    assert port_clashes([udp, PlannedPort("x", "SIP", "0.0.0.0", 5070, "udp")]) != []
