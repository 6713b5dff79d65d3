"""A production edge machine: the config's ``edge`` section (validated, errors naming the key),
the EdgeSettings and nodes it gives, and `callcenter edge render` into a folder (Kamailio's
check replaced here; tests/adapters/test_edge_render.py runs the real one)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import main
from callcenter.cluster import production
from callcenter.cluster.edge import EdgeError, EdgeNode
from callcenter.cluster.production import edge_gid, production_edge, render_checked
from callcenter.config.base import ConfigError
from callcenter.config.model import EdgeConfig, EdgeNodeConfig
from callcenter.config.parse import parse_config
from callcenter.pbx.render import password_digest
from tests.unit.test_render_operators import PW101, PW201, config_data

EDGE = {"host": "203.0.113.10", "port": 5060, "carrier_networks": ["198.51.100.0/28"],
        "ping_interval_s": 2,
        "nodes": [{"name": "node1", "host": "10.0.0.11"},
                  {"name": "node2", "host": "10.0.0.12", "port": 5070}]}


def with_edge(section: Any, **trunk: Any) -> dict[str, Any]:
    data = config_data(**trunk)
    data["edge"] = section
    return data


def test_given_an_edge_section_when_parsed_then_every_value_is_kept() -> None:
    config = parse_config(with_edge(EDGE), "hotline.yaml")
    assert config.edge == EdgeConfig(
        host="203.0.113.10", port=5060, carrier_networks=("198.51.100.0/28",),
        nodes=(EdgeNodeConfig("node1", "10.0.0.11", 5060),
               EdgeNodeConfig("node2", "10.0.0.12", 5070)),
        ping_interval_s=2)
    assert parse_config(config_data(), "hotline.yaml").edge is None


def test_given_no_host_then_the_edge_listens_on_trunk_edge() -> None:
    edge = {k: v for k, v in EDGE.items() if k not in ("host", "port", "ping_interval_s")}
    config = parse_config(with_edge(edge, edge={"host": "203.0.113.20", "port": 5062}),
                          "hotline.yaml")
    assert config.edge is not None
    assert (config.edge.host, config.edge.port, config.edge.ping_interval_s) == (
        "203.0.113.20", 5062, 1)


def _edit(**changes: Any) -> dict[str, Any]:
    edge = {**EDGE, **changes}
    return {k: v for k, v in edge.items() if v is not None}


@pytest.mark.parametrize("edge,key", [
    ("yes", "edge"),
    (_edit(nodse=[]), "edge.nodse"),
    (_edit(host=None), "edge.host"),  # and no trunk.edge to take it from
    (_edit(host="edge.example"), "edge.host"),
    (_edit(host="2001:db8::1"), "edge.host"),
    (_edit(port=70000), "edge.port"),
    (_edit(ping_interval_s=0), "edge.ping_interval_s"),
    (_edit(carrier_networks=None), "edge.carrier_networks"),
    (_edit(carrier_networks=[]), "edge.carrier_networks"),
    (_edit(carrier_networks=["10.0.0.1/8"]), "edge.carrier_networks[0]"),
    (_edit(carrier_networks=["10.0.0.0/8", "0.0.0.0/0"]), "edge.carrier_networks[1]"),
    (_edit(nodes=None), "edge.nodes"),
    (_edit(nodes=[]), "edge.nodes"),
    (_edit(nodes=[{"host": "10.0.0.11"}]), "edge.nodes[0].name"),
    (_edit(nodes=[{"name": "node 1", "host": "10.0.0.11"}]), "edge.nodes[0].name"),
    (_edit(nodes=[{"name": "node1"}]), "edge.nodes[0].host"),
    (_edit(nodes=[{"name": "node1", "host": "node1.example"}]), "edge.nodes[0].host"),
    (_edit(nodes=[{"name": "node1", "host": "10.0.0.11", "port": 0}]), "edge.nodes[0].port"),
    (_edit(nodes=[{"name": "node1", "host": "10.0.0.11", "weight": 1}]),
     "edge.nodes[0].weight"),
    (_edit(nodes=[{"name": "node1", "host": "10.0.0.11"},
                  {"name": "node1", "host": "10.0.0.12"}]), "edge.nodes[1].name"),
    (_edit(nodes=[{"name": "node1", "host": "10.0.0.11"},
                  {"name": "node2", "host": "10.0.0.11", "port": 5060}]), "edge.nodes[1].port"),
    (_edit(nodes=[{"name": "node1", "host": "203.0.113.10"}]), "edge.nodes[0].host"),
])
def test_given_a_bad_edge_section_then_the_error_names_its_key(edge: Any, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(with_edge(edge), "hotline.yaml")
    assert [err.key for err in e.value.errors] == [key]
    assert e.value.errors[0].source == "hotline.yaml"


def test_given_the_section_then_settings_take_it_and_guard_and_operators_from_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    monkeypatch.setenv("HOTLINE_OP_201", PW201)
    data = with_edge(EDGE, trusted_networks=["10.0.0.0/24"])  # a node's: the edges
    data["sip_guard"] = {"max_failures": 3, "window_s": 30, "ban_s": 900,
                         "never_refuse": ["192.0.2.0/24"],
                         "flood": {"requests": 50, "unit_s": 3, "remove_latency_s": 6}}
    settings, nodes = production_edge(parse_config(data, "hotline.yaml"))
    assert (settings.listen_host, settings.listen_port) == ("203.0.113.10", 5060)
    # The carrier's networks are the edge section's, not the trunk's (the nodes trust the edges).
    assert settings.carrier_networks == ("198.51.100.0/28",)
    assert settings.ping_interval_s == 2
    assert (settings.guard.max_failures, settings.guard.window_s, settings.guard.ban_s) == (
        3, 30, 900)
    assert settings.never_refuse == ("192.0.2.0/24",)
    assert (settings.pike.requests, settings.pike.unit_s, settings.pike.remove_latency_s) == (
        50, 3, 6)
    # 102's password file does not exist: left out, as on a node.
    assert settings.operators == (("101", password_digest("101", PW101)),
                                  ("201", password_digest("201", PW201)))
    assert nodes == [EdgeNode("node1", "10.0.0.11", 5060), EdgeNode("node2", "10.0.0.12", 5070)]


def test_given_no_section_then_production_edge_refuses() -> None:
    with pytest.raises(production.NoEdgeSection):
        production_edge(parse_config(config_data(), "hotline.yaml"))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Kamailio's check replaced: records each config checked, refuses when told to."""
    seen: list[str] = []

    def check(cfg: Path) -> None:
        text = cfg.read_text()
        seen.append(text)
        if "refuse-me" in text + (cfg.parent / "dispatcher.list").read_text():
            raise EdgeError("kamailio refused the new config:\nERROR: parse error, line 1")

    monkeypatch.setattr(production, "check_config", check)
    return seen


def _settings(monkeypatch: pytest.MonkeyPatch, edge: Any = EDGE) -> Any:
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    return production_edge(parse_config(with_edge(edge), "hotline.yaml"))


def test_given_a_config_when_rendered_then_files_checked_first_private_and_digests_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]) -> None:
    settings, nodes = _settings(monkeypatch)
    folder = tmp_path / "edge"
    assert render_checked(settings, nodes, folder) == ["dispatcher.list", "kamailio.cfg"]
    cfg = (folder / "kamailio.cfg").read_text()
    # What was checked is what was installed, with the installed folder's paths.
    assert len(checks) == 1 and checks[0] != cfg
    assert f'"{folder}/dispatcher.list"' in cfg and f"unix:{folder}/kamailio_ctl" in cfg
    assert "listen=udp:203.0.113.10:5060" in cfg
    assert (folder / "dispatcher.list").read_text().splitlines()[1:] == [
        "1 sip:10.0.0.11:5060 0 0 name=node1", "1 sip:10.0.0.12:5070 0 0 name=node2"]
    assert sorted(p.name for p in folder.iterdir()) == ["dispatcher.list", "kamailio.cfg"]
    for name in ("dispatcher.list", "kamailio.cfg"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o640, name
        assert PW101 not in (folder / name).read_text()
    assert f'$sht(operators=>101) = "{password_digest("101", PW101)}";' in cfg
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    # Again with the same config: nothing changes.
    assert render_checked(settings, nodes, folder) == []


def test_given_a_group_then_folder_sticky_and_files_readable_by_that_group_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another group needs root")
    settings, nodes = _settings(monkeypatch)
    folder = tmp_path / "edge"
    render_checked(settings, nodes, folder, gid=4242)
    st = folder.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 4242, 0o1770)
    for name in ("dispatcher.list", "kamailio.cfg"):
        st = (folder / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 4242, 0o640)


def test_given_a_refused_config_then_the_old_files_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]) -> None:
    settings, nodes = _settings(monkeypatch)
    folder = tmp_path / "edge"
    render_checked(settings, nodes, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    broken = [EdgeNode("refuse-me", "10.0.0.13", 5060)]
    with pytest.raises(EdgeError, match="refused"):
        render_checked(settings, broken, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no staging left


def _cli_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_given_the_command_then_it_renders_into_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path / "state"))
    config = _cli_config(tmp_path, with_edge(EDGE))
    out = tmp_path / "out"
    assert main(["--config", str(config), "edge", "render", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"rendered {out}" in said and "2 node(s), 1 operator(s)" in said
    gid = edge_gid() if edge_gid() is not None else os.getgid()
    assert (out / "kamailio.cfg").stat().st_gid == gid
    assert main(["--config", str(config), "edge", "render", "--out", str(out)]) == 0
    assert "nothing changed" in capsys.readouterr().out


def test_given_no_edge_section_then_the_command_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _cli_config(tmp_path, config_data())
    out = tmp_path / "out"
    assert main(["--config", str(config), "edge", "render", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "has no edge: section" in err and "carrier_networks" in err
    assert not out.exists()


def test_given_a_refused_config_then_the_command_fails_naming_the_folder_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _cli_config(tmp_path, with_edge(EDGE))
    out = tmp_path / "out"
    assert main(["--config", str(config), "edge", "render", "--out", str(out)]) == 0
    before = (out / "dispatcher.list").read_text()
    bad = _edit(nodes=[{"name": "refuse-me", "host": "10.0.0.13"}])
    _cli_config(tmp_path, with_edge(bad))
    assert main(["--config", str(config), "edge", "render", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "kamailio refused" in err and f"the files in {out} were left as they were" in err
    assert (out / "dispatcher.list").read_text() == before


def test_given_no_out_then_the_folder_is_the_environments_or_root_or_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.config.settings import Settings

    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("HOTLINE_EDGE_DIR", raising=False)
    settings = Settings.from_env()
    assert production.default_edge_dir(settings) == (
        production.EDGE_DIR if os.geteuid() == 0 else tmp_path / "state" / "edge")
    monkeypatch.setenv("HOTLINE_EDGE_DIR", str(tmp_path / "e"))
    assert production.default_edge_dir(settings) == tmp_path / "e"
