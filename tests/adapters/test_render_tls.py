"""The SIP TLS certificate and key on disk: made once by the run command and reused, checked
as a pair, copied into the PBX instance for Asterisk only (real openssl, real files)."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml

from callcenter.cluster.edge import edge_tls_for
from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.secrets import load_secrets
from callcenter.pbx.install import AsteriskInstall
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.render import TLS_CERT_FILE, TLS_KEY_FILE, render
from callcenter.pbx.tls import ensure_self_signed, self_signed_paths, sha256_fingerprint

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **sip_tls: str) -> Path:
    """The example config (with its IVR files), in ``tmp_path``, with this ``sip_tls``."""
    shutil.copytree(ROOT / "config", tmp_path, dirs_exist_ok=True)
    path = tmp_path / "hotline.yaml"
    data = yaml.safe_load(path.read_text())
    if sip_tls:
        data["sip_tls"] = sip_tls
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _render(tmp_path: Path, config_path: Path) -> PbxLayout:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/passwd").write_text(f"asterisk:x:{os.getuid()}:{os.getgid()}::/:/bin/false\n")
    install = AsteriskInstall(binary="/usr/sbin/asterisk", root=rootfs, version="Asterisk 22")
    layout = PbxLayout.for_instance(install, "unit", tmp_path / "state")
    render(load_config(config_path), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts", state_dir=tmp_path / "state")
    return layout


def _pair(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_given_no_certificate_configured_when_the_run_command_starts_twice_then_one_self_signed_pair_is_made_logged_and_reused(  # noqa: E501
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(_config(tmp_path))
    state = tmp_path / "state"
    with caplog.at_level(logging.INFO, logger="callcenter.pbx.tls"):
        first = ensure_self_signed(config, state)
        second = ensure_self_signed(config, state)
    assert first == second  # reused: operators' pinned fingerprints stay valid
    cert, key = self_signed_paths(state)
    assert key.stat().st_mode & 0o077 == 0 and cert.parent.stat().st_mode & 0o077 == 0
    made = [r.getMessage() for r in caplog.records if "self-signed" in r.getMessage()]
    assert len(made) == 1 and first.fingerprint in made[0]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert len(bytes.fromhex(first.fingerprint.replace(":", ""))) == 32 and der


def test_given_self_signed_pair_when_rendered_then_asterisk_gets_a_copy_nobody_else_can_read(
        tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    pair = ensure_self_signed(load_config(config_path), tmp_path / "state")
    layout = _render(tmp_path, config_path)
    etc = layout.host("etc")
    assert (etc / TLS_CERT_FILE).read_text() == pair.cert_pem
    assert (etc / TLS_KEY_FILE).read_text() == pair.key_pem
    for name in (TLS_CERT_FILE, TLS_KEY_FILE):
        assert (etc / name).stat().st_mode & 0o777 == 0o640  # Asterisk's group, no others
    pjsip = (etc / "pjsip.conf").read_text()
    assert "[transport-tls]" in pjsip and "bind = 127.0.0.1:5061" in pjsip


def test_given_configured_pair_when_rendered_then_it_is_used_instead_of_a_self_signed_one(
        tmp_path: Path) -> None:
    cert, _ = _pair(tmp_path / "tls", "hotline")
    config_path = _config(tmp_path, cert="tls/hotline.crt", key="tls/hotline.key")
    assert ensure_self_signed(load_config(config_path), tmp_path / "state").fingerprint == (
        sha256_fingerprint(cert.read_text()))
    assert not self_signed_paths(tmp_path / "state")[0].exists()
    layout = _render(tmp_path, config_path)
    assert (layout.host("etc") / TLS_CERT_FILE).read_text() == cert.read_text()


def test_given_sip_tls_key_of_another_certificate_when_rendered_then_error_names_sip_tls_key(
        tmp_path: Path) -> None:
    _pair(tmp_path / "tls", "hotline")
    _pair(tmp_path / "tls", "other")
    config_path = _config(tmp_path, cert="tls/hotline.crt", key="tls/other.key")
    with pytest.raises(ConfigError) as e:
        _render(tmp_path, config_path)
    assert e.value.key == "sip_tls.key" and e.value.source == str(config_path)


def test_given_sip_tls_cert_file_missing_when_rendered_then_error_names_sip_tls_cert(
        tmp_path: Path) -> None:
    _pair(tmp_path / "tls", "hotline")
    (tmp_path / "tls/hotline.crt").unlink()
    config_path = _config(tmp_path, cert="tls/hotline.crt", key="tls/hotline.key")
    with pytest.raises(ConfigError) as e:
        _render(tmp_path, config_path)
    assert e.value.key == "sip_tls.cert" and "hotline.crt" in str(e.value)


def test_given_tls_turned_off_when_rendered_again_then_no_private_key_is_left_in_the_instance(
        tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    ensure_self_signed(load_config(config_path), tmp_path / "state")
    layout = _render(tmp_path, config_path)
    shutil.rmtree(tmp_path / "state" / "sip-tls")
    _render(tmp_path, config_path)
    assert not (layout.host("etc") / TLS_KEY_FILE).exists()
    assert "transport-tls" not in (layout.host("etc") / "pjsip.conf").read_text()


def test_given_no_certificate_configured_when_the_edge_takes_its_tls_then_a_self_signed_pair_is_made_in_its_folder_and_reused(  # noqa: E501
        tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    folder = tmp_path / "edge"
    first = edge_tls_for(config, folder, 5071)
    assert (first.port, (first.cert, first.key)) == (5071, self_signed_paths(folder))
    made = first.cert.read_text()
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(first.cert)],
                         check=True, capture_output=True, text=True).stdout
    assert "hotline1022-edge" in out
    assert edge_tls_for(config, folder, 5071) == first and first.cert.read_text() == made


def test_given_configured_pair_when_the_edge_takes_its_tls_then_it_is_that_pair(
        tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "tls", "hotline")
    config = load_config(_config(tmp_path, cert="tls/hotline.crt", key="tls/hotline.key"))
    tls = edge_tls_for(config, tmp_path / "edge", 5071)
    assert (tls.cert.resolve(), tls.key.resolve()) == (cert.resolve(), key.resolve())
    assert not self_signed_paths(tmp_path / "edge")[0].exists()
