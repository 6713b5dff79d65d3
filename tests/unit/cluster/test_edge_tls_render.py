"""The edge's TLS listener as rendered (no Kamailio started): off unless set; when set, a
``tls:`` listen on its own port, the pair copied beside the config (never world-readable),
phones reached back down their own connection, TLS-only operators refused over UDP."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.cluster.edge import (
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    EdgeNode,
    EdgeSettings,
    EdgeTls,
    render_edge,
    render_edge_texts,
)

NODES = [EdgeNode("node1", "127.0.0.1", 5070)]


def tls_settings(tmp_path: Path, **kw: object) -> EdgeSettings:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n")
    return EdgeSettings(listen_port=5060, tls=EdgeTls(5061, cert, key),
                        operators=(("101", "a" * 32), ("102", "b" * 32)), **kw)  # type: ignore[arg-type]


def route(cfg: str, name: str) -> str:
    start = cfg.index(f"route[{name}] {{")
    return cfg[start:cfg.index("\n}\n", start)]


def test_given_no_tls_settings_when_rendered_then_udp_only(tmp_path: Path) -> None:
    cfg = render_edge_texts(EdgeSettings(), NODES, tmp_path)["kamailio.cfg"]
    assert "listen=tls:" not in cfg and "tls.so" not in cfg and "enable_tls" not in cfg
    assert "listen=udp:127.0.0.1:5060" in cfg


def test_given_tls_settings_when_rendered_then_tls_listener_with_the_pair(
        tmp_path: Path) -> None:
    cfg = render_edge_texts(tls_settings(tmp_path), NODES, tmp_path / "edge")["kamailio.cfg"]
    assert "enable_tls=yes" in cfg and "listen=tls:127.0.0.1:5061" in cfg
    assert "listen=udp:127.0.0.1:5060" in cfg  # UDP stays (the carrier, the nodes)
    # tls.so before any other module.
    assert cfg.index('loadmodule "tls.so"') < cfg.index('loadmodule "kex.so"')
    assert f'modparam("tls", "certificate", "/proc/self/cwd/{TLS_CERT_FILE}")' in cfg
    assert f'modparam("tls", "private_key", "/proc/self/cwd/{TLS_KEY_FILE}")' in cfg
    assert 'modparam("tls", "tls_method", "TLSv1.2+")' in cfg
    # A registered phone's connection outlives its registration.
    assert "tcp_connection_lifetime=3605" in cfg and 'max_expires", 3600)' in cfg


def test_given_tls_when_rendered_then_phones_reached_down_their_own_connection(
        tmp_path: Path) -> None:
    cfg = render_edge_texts(tls_settings(tmp_path), NODES, tmp_path / "edge")["kamailio.cfg"]
    registrar = route(cfg, "REGISTRAR")
    assert registrar.index("fix_nated_register()") < registrar.index('save("location")')
    assert 'modparam("registrar", "received_avp", "$avp(RECEIVED)")' in cfg
    assert 'modparam("nathelper", "received_avp", "$avp(RECEIVED)")' in cfg
    assert "set_forward_no_connect();" in route(cfg, "RELAY")
    assert "handle_ruri_alias();" in route(cfg, "WITHINDLG")
    assert 't_on_reply("FROM_PHONE");' in route(cfg, "TO_OPERATOR")
    assert "set_contact_alias();" in cfg[cfg.index("onreply_route[FROM_PHONE]"):]


def test_given_tls_only_operator_when_rendered_then_refused_over_anything_else(
        tmp_path: Path) -> None:
    settings = tls_settings(tmp_path, tls_only=("102", "bad;x"))
    cfg = render_edge_texts(settings, NODES, tmp_path / "edge")["kamailio.cfg"]
    assert "$sht(tls_only=>102) = 1;" in cfg and "bad;x" not in cfg
    registrar = route(cfg, "REGISTRAR")
    check = registrar.index('$sht(tls_only=>$tU) != $null && $proto != "tls"')
    assert check < registrar.index("pv_auth_check(")  # before any password is looked at


def test_given_tls_pair_when_written_then_copied_beside_the_config_not_world_readable(
        tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    render_edge(settings, NODES, tmp_path / "edge")
    assert settings.tls is not None
    for name, source in ((TLS_CERT_FILE, settings.tls.cert), (TLS_KEY_FILE, settings.tls.key)):
        copy = tmp_path / "edge" / name
        assert copy.read_text() == source.read_text()
        assert copy.stat().st_mode & 0o007 == 0


def test_given_tls_port_equal_to_udp_port_then_refused(tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    assert settings.tls is not None
    bad = EdgeSettings(listen_port=5061, tls=settings.tls)
    with pytest.raises(ValueError, match="TLS port"):
        render_edge_texts(bad, NODES, tmp_path)
