"""Rendering Asterisk's configuration: loopback by default, private credentials, trunk rules."""

from __future__ import annotations

import os
import wave
from pathlib import Path

from callcenter.config_file import load_config
from callcenter.pbx.install import AsteriskInstall
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.render import render
from callcenter.secrets import load_secrets

ROOT = Path(__file__).resolve().parents[2]


def _rendered(tmp_path: Path) -> tuple[PbxLayout, dict[str, str]]:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/passwd").write_text(f"asterisk:x:{os.getuid()}:{os.getgid()}::/:/bin/false\n")
    install = AsteriskInstall(binary="/usr/sbin/asterisk", root=rootfs, version="Asterisk 22")
    layout = PbxLayout.for_instance(install, "unit", tmp_path / "state")
    secrets = load_secrets(tmp_path / "state")
    render(load_config(ROOT / "config/hotline.yaml"), layout, secrets,
           prompt_cache=tmp_path / "prompts")
    files = {p.name: p.read_text() for p in layout.host("etc").iterdir()}
    return layout, files


def test_given_default_config_when_rendered_then_everything_listens_on_loopback(
        tmp_path: Path) -> None:
    _, files = _rendered(tmp_path)
    assert "bindaddr = 127.0.0.1" in files["http.conf"]
    assert "bindaddr = 127.0.0.1" in files["manager.conf"]
    assert "bind = 127.0.0.1:5060" in files["pjsip.conf"]
    assert "media_address = 127.0.0.1" in files["pjsip.conf"]
    assert "bind_rtp_to_media_address = yes" in files["pjsip.conf"]
    assert "permit = 127.0.0.1/255.255.255.255" in files["manager.conf"]
    assert "autoload = no" in files["modules.conf"]
    assert "chan_iax2" not in files["modules.conf"]


def test_given_first_run_when_rendered_then_credentials_generated_private_and_unique(
        tmp_path: Path) -> None:
    layout, files = _rendered(tmp_path)
    secrets_file = tmp_path / "state/secrets.env"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    assert len(values["HOTLINE_ARI_PASSWORD"]) >= 24
    assert values["HOTLINE_ARI_PASSWORD"] != values["HOTLINE_AMI_PASSWORD"]
    assert f"password = {values['HOTLINE_ARI_PASSWORD']}" in files["ari.conf"]
    assert f"secret = {values['HOTLINE_AMI_PASSWORD']}" in files["manager.conf"]
    for name in ("ari.conf", "manager.conf"):
        assert (layout.host("etc") / name).stat().st_mode & 0o007 == 0  # not world-readable
    # A second run keeps the same credentials (the PBX and the app must agree).
    assert load_secrets(tmp_path / "state").ari_password == values["HOTLINE_ARI_PASSWORD"]


def test_given_env_credentials_when_loaded_then_env_wins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOTLINE_ARI_PASSWORD", "from-env-secret-123")
    assert load_secrets(tmp_path).ari_password == "from-env-secret-123"


def test_given_tenants_when_rendered_then_trunk_matches_networks_and_numbers_reach_stasis(
        tmp_path: Path) -> None:
    _, files = _rendered(tmp_path)
    pjsip = files["pjsip.conf"]
    assert "endpoint_identifier_order = username,ip" in pjsip
    assert "match = 127.0.0.0/8" in pjsip
    ext = files["extensions.conf"]
    assert "exten => 1022,1,Stasis(hotline)" in ext
    assert "exten => 02511022,1,Stasis(hotline)" in ext
    # With the app down, the dialplan alone tells the caller the service is unavailable.
    assert 'GotoIf($["${STASISSTATUS}" = "FAILED"]?hotline-unavailable,dongnai,1)' in ext
    assert "bench-plain" not in ext.split("[bench-plain]")[0]  # no bench number by default


def test_given_prompts_when_rendered_then_8khz_mono_wav_per_tenant(tmp_path: Path) -> None:
    layout, _ = _rendered(tmp_path)
    for prompt in ("greeting", "all_busy", "unavailable"):
        with wave.open(str(layout.host("sounds") / "dongnai" / f"{prompt}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() > 8000  # over a second of speech
    assert (layout.host("moh") / "hotline-hold.wav").exists()


def test_given_recorded_prompt_when_rendered_then_it_overrides_speech(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/passwd").write_text(f"asterisk:x:{os.getuid()}:{os.getgid()}::/:/bin/false\n")
    install = AsteriskInstall(binary="/usr/sbin/asterisk", root=rootfs, version="Asterisk 22")
    layout = PbxLayout.for_instance(install, "unit", tmp_path / "state")
    recorded = tmp_path / "sounds/dongnai"
    recorded.mkdir(parents=True)
    with wave.open(str(recorded / "greeting.wav"), "wb") as w:  # 0.5 s of 16 kHz silence
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    render(load_config(ROOT / "config/hotline.yaml"), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts", sounds_override=tmp_path / "sounds")
    with wave.open(str(layout.host("sounds/dongnai/greeting.wav"))) as w:
        assert w.getframerate() == 8000 and w.getnframes() == 4000
