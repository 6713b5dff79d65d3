"""The edge's SIP guard as rendered (no Kamailio started): wrong passwords per source and the
flood limit come from the hotline config's ``sip_guard``, the same settings as a single node's
guard; the carrier, the nodes and ``never_refuse`` are never refused, only the carrier and the
nodes are spared the flood limit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from callcenter.cluster.edge import (
    AuthGuard,
    EdgeNode,
    EdgeSettings,
    Pike,
    edge_settings_for,
    render_edge_texts,
)
from callcenter.config.parse import parse_config
from tests.unit.test_render_operators import config_data

NODES = [EdgeNode("node1", "127.0.0.1", 5070), EdgeNode("node2", "127.0.0.9", 5080)]


def route(cfg: str, name: str) -> str:
    """The body of ``route[name]``."""
    start = cfg.index(f"route[{name}] {{")
    return cfg[start:cfg.index("\n}\n", start)]


def subnets(body: str) -> list[str]:
    return re.findall(r'is_in_subnet\("\$si", "([^"]+)"\)', body)


def test_given_guard_settings_when_rendered_then_tables_threshold_and_log_use_them(
        tmp_path: Path) -> None:
    settings = EdgeSettings(guard=AuthGuard(max_failures=7, window_s=90, ban_s=1800))
    cfg = render_edge_texts(settings, NODES, tmp_path)["kamailio.cfg"]
    assert 'modparam("htable", "htable", "authfail=>size=10;autoexpire=90;initval=0;")' in cfg
    assert 'modparam("htable", "htable", "refused=>size=10;autoexpire=1800;")' in cfg
    # Nonces bound to the address they were sent to: a counted failure proves a round trip.
    assert 'modparam("auth", "auth_checks_register", 8)' in cfg
    failed = route(cfg, "AUTH_FAILED")
    assert "$shtinc(authfail=>$si)" in failed
    assert "if ($var(failures) >= 7) {" in failed
    assert "refused for 1800 s: $var(failures) wrong passwords within 90 s" in failed
    # Only a wrong answer (-2) is counted, only for an operator that exists under its own name.
    registrar = route(cfg, "REGISTRAR")
    assert "if ($rc == -2) {\n\t\t\troute(AUTH_FAILED);" in registrar
    assert registrar.index("$sht(operators=>$tU) == $null") < registrar.index("pv_auth_check")
    assert "$sht(operators=>$tU) == $null || $au != $tU" in failed


def test_given_refused_source_when_request_arrives_then_403_unless_never_refused(
        tmp_path: Path) -> None:
    cfg = render_edge_texts(EdgeSettings(), NODES, tmp_path)["kamailio.cfg"]
    main = cfg[cfg.index("request_route {"):cfg.index("event_route[htable:mod-init]")]
    check = main[main.index("$sht(refused=>$si) != $null"):]
    assert check.index("route(NEVER_REFUSE)") < check.index('sl_send_reply("403"')
    # After the flood limit, before anything else is routed.
    assert main.index("pike_check_req()") < main.index("$sht(refused=>$si)") \
        < main.index("route(REGISTRAR)")


def test_given_never_refuse_networks_when_rendered_then_spared_bans_but_not_the_flood_limit(
        tmp_path: Path) -> None:
    settings = EdgeSettings(carrier_networks=("10.1.2.0/24",),
                            never_refuse=("203.0.113.0/24", "2001:db8:5::/48"))
    cfg = render_edge_texts(settings, NODES, tmp_path)["kamailio.cfg"]
    assert sorted(subnets(route(cfg, "NEVER_REFUSE"))) == sorted(
        ["10.1.2.0/24", "127.0.0.1/32", "127.0.0.9/32", "203.0.113.0/24", "2001:db8:5::/48"])
    assert sorted(subnets(route(cfg, "TRUSTED"))) == ["10.1.2.0/24", "127.0.0.1/32",
                                                      "127.0.0.9/32"]


def test_given_pike_settings_when_rendered_then_modparams_use_them(tmp_path: Path) -> None:
    settings = EdgeSettings(pike=Pike(unit_s=5, requests=80, remove_latency_s=60))
    cfg = render_edge_texts(settings, NODES, tmp_path)["kamailio.cfg"]
    assert 'modparam("pike", "sampling_time_unit", 5)' in cfg
    assert 'modparam("pike", "reqs_density_per_unit", 80)' in cfg
    assert 'modparam("pike", "remove_latency", 60)' in cfg


def test_given_hotline_config_when_edge_settings_then_the_sip_guard_section_is_used() -> None:
    data: dict[str, Any] = config_data(trusted_networks=["198.51.100.0/24"])
    data["sip_guard"] = {"max_failures": 4, "window_s": 30, "ban_s": 900,
                         "never_refuse": ["203.0.113.0/24"],
                         "flood": {"requests": 60, "unit_s": 3, "remove_latency_s": 10}}
    config = parse_config(data, "hotline.yaml")
    settings = edge_settings_for(config, data, "127.0.0.1", 5060, (("101", "0" * 32),))
    assert settings.guard == AuthGuard(4, 30, 900)
    assert settings.never_refuse == ("203.0.113.0/24",)
    assert settings.pike == Pike(unit_s=3, requests=60, remove_latency_s=10)
    assert settings.carrier_networks == ("198.51.100.0/24",)
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 5060)
    assert settings.operators == (("101", "0" * 32),)


def test_given_no_sip_guard_section_when_edge_settings_then_todays_defaults() -> None:
    data = config_data()
    settings = edge_settings_for(parse_config(data, "hotline.yaml"), data, "127.0.0.1", 5060)
    assert settings.guard == AuthGuard(5, 60, 600)
    assert settings.pike == Pike(unit_s=2, requests=30, remove_latency_s=4)
    assert settings.never_refuse == ()
    assert settings.carrier_networks == ("127.0.0.1/32",)


@pytest.mark.parametrize("guard", [(0, 60, 600), (5, 0, 600), (5, 60, 0)])
def test_given_guard_below_one_then_refused(guard: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        AuthGuard(*guard)
