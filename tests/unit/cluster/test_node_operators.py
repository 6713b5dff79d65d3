"""A node behind the edge (``trunk.edge``): its operators' PJSIP contact is the edge, not a
registration; the config key is validated like the others; the edge gets the same digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.cluster.edge import EdgeNode, EdgeSettings, render_edge_texts
from callcenter.config.base import ConfigError
from callcenter.config.model import SipEdge
from callcenter.config.parse import parse_config
from callcenter.pbx.render import password_digest
from tests.unit.test_render_operators import (
    PW101,
    PW201,
    config_data,
    load,
    section,
    texts,
)

PASSWORDS = {"101": PW101, "201": PW201}


def test_given_edge_when_parsed_then_trunk_edge_set() -> None:
    config = parse_config(config_data(edge={"host": "127.0.0.1", "port": 5060}), "hotline.yaml")
    assert config.trunk.edge == SipEdge("127.0.0.1", 5060)
    assert parse_config(config_data(), "hotline.yaml").trunk.edge is None


@pytest.mark.parametrize("edge,key", [
    ({"port": 5060}, "trunk.edge.host"),
    ({"host": "edge.example"}, "trunk.edge.host"),
    ({"host": "127.0.0.1", "port": 0}, "trunk.edge.port"),
    ({"host": "127.0.0.1", "prot": 5060}, "trunk.edge.prot"),
])
def test_given_bad_edge_then_error_names_key(edge: Any, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(config_data(edge=edge), "hotline.yaml")
    assert e.value.errors[0].key == key


def test_given_edge_when_rendered_then_operator_reached_at_edge_not_registered(
        tmp_path: Path) -> None:
    config = load(tmp_path, config_data(edge={"host": "127.0.0.1", "port": 5060}))
    pjsip = texts(tmp_path, config, PASSWORDS)["pjsip.conf"]
    aor = section(pjsip, "101", "aor")
    assert aor["contact"] == ["sip:101@127.0.0.1:5060"]
    assert "max_contacts" not in aor and aor["qualify_frequency"] == ["15"]
    alone = texts(tmp_path, load(tmp_path, config_data()), PASSWORDS)["pjsip.conf"]
    assert section(alone, "101", "aor")["max_contacts"] == ["1"]


def test_given_operators_when_edge_rendered_then_same_digest_as_the_nodes(tmp_path: Path) -> None:
    settings = EdgeSettings(operators=(("101", password_digest("101", PW101)),))
    cfg = render_edge_texts(settings, [EdgeNode("node1", "127.0.0.1", 5070)], tmp_path)
    text = cfg["kamailio.cfg"]
    assert f'$sht(operators=>101) = "{password_digest("101", PW101)}";' in text
    assert PW101 not in text
    assert 'pv_auth_check("hotline1022", "$sht(operators=>$tU)", "1", "1")' in text


def test_given_edge_when_app_not_connected_then_503_at_once_so_the_edge_tries_the_next_node(
        tmp_path: Path) -> None:
    config = load(tmp_path, config_data(edge={"host": "127.0.0.1", "port": 5060}))
    ext = texts(tmp_path, config, PASSWORDS)["extensions.conf"]
    unavailable = ext.split("[hotline-unavailable]")[1].split("\n[")[0]
    lines = [line for line in unavailable.splitlines() if line.startswith(("exten", " same"))]
    assert lines and all(line.endswith(",1,Hangup(34)") for line in lines), lines  # 503
    alone = texts(tmp_path, load(tmp_path, config_data()), PASSWORDS)["extensions.conf"]
    single = alone.split("[hotline-unavailable]")[1].split("\n[")[0]
    assert "Playback(" in single and "Progress()" in single  # one node: the caller is told


def tls_texts(tmp_path: Path, edge: dict[str, Any]) -> str:
    from callcenter.pbx.render import render_texts
    from tests.unit.test_render_operators import SECRETS, layout

    data = config_data(edge=edge)
    data["tenants"][0]["operators_require_tls"] = True
    config = load(tmp_path, data)
    return render_texts(config, layout(tmp_path), SECRETS, passwords=PASSWORDS,
                        tls=True)["pjsip.conf"]


def test_given_edge_with_tls_when_parsed_then_flag_set_and_checked() -> None:
    config = parse_config(config_data(edge={"host": "127.0.0.1", "port": 5060, "tls": True}),
                          "hotline.yaml")
    assert config.trunk.edge == SipEdge("127.0.0.1", 5060, tls=True)
    with pytest.raises(ConfigError) as e:
        parse_config(config_data(edge={"host": "127.0.0.1", "tls": "yes"}), "hotline.yaml")
    assert e.value.errors[0].key == "trunk.edge.tls"


def test_given_edge_with_tls_when_operator_must_use_tls_then_reached_through_the_edge_with_srtp(
        tmp_path: Path) -> None:
    pjsip = tls_texts(tmp_path, {"host": "127.0.0.1", "port": 5060, "tls": True})
    endpoint = section(pjsip, "101", "endpoint")
    assert endpoint["transport"] == ["transport-udp"]  # to the edge, which speaks TLS to it
    assert endpoint["media_encryption"] == ["sdes"]
    assert endpoint["media_encryption_optimistic"] == ["no"]
    aor = section(pjsip, "101", "aor")
    assert aor["contact"] == ["sip:101@127.0.0.1:5060"] and "max_contacts" not in aor


def test_given_edge_without_tls_when_operator_must_use_tls_then_it_registers_at_the_node(
        tmp_path: Path) -> None:
    pjsip = tls_texts(tmp_path, {"host": "127.0.0.1", "port": 5060})
    assert section(pjsip, "101", "endpoint")["transport"] == ["transport-tls"]
    aor = section(pjsip, "101", "aor")
    assert aor["max_contacts"] == ["1"] and "contact" not in aor
