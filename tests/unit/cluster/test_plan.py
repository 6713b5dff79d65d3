"""The cluster's node configs derived from the hotline's (cluster/plan.py): pure, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cluster.plan import MAX_NODES, plan_nodes
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
        assert trunk["edge"] == {"host": "127.0.0.1", "port": 5060}
        ports += [svc["ari_port"], svc["ami_port"], svc["http_port"], trunk["port"],
                  p.config["sip_tls"]["port"]]
        ranges.append(range(trunk["rtp_start"], trunk["rtp_end"] + 1))
        data = dict(p.config)
        _include_ivr_files(data, str(CONFIG))  # the node file sits beside the shipped one
        config = parse_config(data, str(CONFIG))
        assert config.service.node == p.name
    assert 5060 not in ports  # the edge's
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
