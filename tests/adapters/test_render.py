"""Rendering Asterisk's configuration: loopback by default, private credentials, trunk rules."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import pytest

from callcenter.config.file import load_config
from callcenter.config.secrets import load_secrets
from callcenter.pbx.install import AsteriskInstall
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.render import render

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
    assert "endpoint_identifier_order = header,username,ip" in pjsip
    assert "match = 127.0.0.0/8" in pjsip
    ext = files["extensions.conf"]
    assert "exten => 1022,1,Stasis(hotline)" in ext
    assert "exten => 02511022,1,Stasis(hotline)" in ext
    # With the app down, the dialplan alone tells the caller the service is unavailable.
    assert 'GotoIf($["${STASISSTATUS}" = "FAILED"]?hotline-unavailable,dongnai,1)' in ext
    assert "bench-plain" not in ext.split("[bench-plain]")[0]  # no bench number by default


def test_given_prompts_when_rendered_then_8khz_mono_wav_per_tenant(tmp_path: Path) -> None:
    layout, _ = _rendered(tmp_path)
    for prompt in ("greeting", "all_busy", "unavailable", "callback_offer", "callback_confirm"):
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


def _install(tmp_path: Path, uid: int, gid: int) -> AsteriskInstall:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/passwd").write_text(f"asterisk:x:{uid}:{gid}::/:/bin/false\n")
    return AsteriskInstall(binary="/usr/sbin/asterisk", root=rootfs, version="Asterisk 22")


def test_given_renders_at_once_on_one_instance_then_each_completes_and_prompts_stay(
        tmp_path: Path) -> None:
    """The SIP guard, a config reload and an admin's edit can render at the same moment: two
    renders at once lost a prompt's .new.wav (FileNotFoundError); one at a time now."""
    import threading

    layout = PbxLayout.for_instance(_install(tmp_path, os.getuid(), os.getgid()), "unit",
                                    tmp_path / "state")
    secrets = load_secrets(tmp_path / "state")
    config = load_config(ROOT / "config/hotline.yaml")
    render(config, layout, secrets, prompt_cache=tmp_path / "prompts")  # cache filled once
    errors: list[BaseException] = []

    def renders() -> None:
        try:
            for _ in range(8):
                render(config, layout, secrets, prompt_cache=tmp_path / "prompts")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=renders) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert layout.host("sounds/dongnai/greeting.wav").exists()
    assert not list(layout.host("sounds").rglob("*.new.wav"))


def test_given_refused_sources_when_written_then_only_their_file_changes(
        tmp_path: Path) -> None:
    from callcenter.pbx.render import REFUSED_FILE, write_refused_sources

    layout = PbxLayout.for_instance(_install(tmp_path, os.getuid(), os.getgid()), "unit",
                                    tmp_path / "state")
    render(load_config(ROOT / "config/hotline.yaml"), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts")
    others = {p: p.stat().st_mtime_ns for p in layout.host().rglob("*")
              if p.is_file() and p.name not in (REFUSED_FILE, ".render.lock")}

    assert write_refused_sources(layout, ("127.0.0.7",)) is True
    assert "deny = 127.0.0.7" in (layout.host("etc") / REFUSED_FILE).read_text()
    assert write_refused_sources(layout, ("127.0.0.7",)) is False  # unchanged: no reload
    assert {p: p.stat().st_mtime_ns for p in others} == others
    # A config render leaves the guard's file alone (banned_sources=None), a start clears it.
    render(load_config(ROOT / "config/hotline.yaml"), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts", banned_sources=None)
    assert "deny = 127.0.0.7" in (layout.host("etc") / REFUSED_FILE).read_text()
    render(load_config(ROOT / "config/hotline.yaml"), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts")
    assert "deny" not in (layout.host("etc") / REFUSED_FILE).read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership can only be given by root")
def test_given_unprivileged_app_when_rendered_as_root_then_each_party_gets_only_its_rights(
        tmp_path: Path) -> None:
    import stat

    from callcenter.ops.processes import RunAs

    ast_uid, ast_gid = 4241, 4242  # the rootfs's asterisk user
    app = RunAs("nobody", 65534, 65534)
    layout = PbxLayout.for_instance(_install(tmp_path, ast_uid, ast_gid), "unit",
                                    tmp_path / "state")
    render(load_config(ROOT / "config/hotline.yaml"), layout, load_secrets(tmp_path / "state"),
           prompt_cache=tmp_path / "prompts", app_account=app)

    def owner(p: Path) -> tuple[int, int, int]:
        st = p.lstat()
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    # What the app rewrites while it runs: its own, readable by Asterisk's group, nobody else.
    assert owner(layout.host("etc")) == (app.uid, ast_gid, 0o2750)
    assert owner(layout.host("etc/pjsip.conf")) == (app.uid, ast_gid, 0o640)
    assert owner(layout.host("sounds/dongnai")) == (app.uid, ast_gid, 0o2750)
    assert owner(layout.host("sounds/dongnai/greeting.wav")) == (app.uid, ast_gid, 0o640)
    # Asterisk's working folders; recordings shared with the app's group only.
    assert owner(layout.host("log"))[:2] == (ast_uid, ast_gid)
    assert owner(layout.host())[:2] == (ast_uid, app.gid) and owner(layout.host())[2] == 0o750
    assert owner(layout.recordings()) == (ast_uid, app.gid, 0o2770)


def test_given_installed_secrets_file_0640_when_loaded_then_group_keeps_reading_it(
        tmp_path: Path) -> None:
    """The installer's /etc/hotline1022/secrets.env is 0640 root:hotline1022: a root-run
    render must not make it 0600 (the app could no longer read it); other users' bits go."""
    path = tmp_path / "secrets.env"
    load_secrets(tmp_path, path)
    path.chmod(0o640)
    load_secrets(tmp_path, path)
    assert path.stat().st_mode & 0o777 == 0o640
    path.chmod(0o664)
    load_secrets(tmp_path, path)
    assert path.stat().st_mode & 0o777 == 0o640


def _ami_account(manager_conf: str) -> dict[str, set[str]]:
    """The AMI account's read/write classes as rendered."""
    rights = {}
    for line in manager_conf.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key in ("read", "write"):
            rights[key] = {c.strip() for c in value.split(",")}
    return rights


def test_given_default_config_when_rendered_then_ami_account_cannot_originate_or_run_commands(
        tmp_path: Path) -> None:
    _, files = _rendered(tmp_path)
    rights = _ami_account(files["manager.conf"])
    # What the app reads and sends (phones/ami.py), and the P5 bench's tap (agent) — no more.
    assert rights == {"read": {"system", "call", "security", "agent"}, "write": {"system"}}


def test_given_pbx_secret_with_semicolon_when_rendered_then_it_is_escaped_not_a_comment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_AMI_PASSWORD", "s3cret;write = command")
    monkeypatch.setenv("HOTLINE_ARI_PASSWORD", "ari;pass")
    _, files = _rendered(tmp_path)
    assert "secret = s3cret\\;write = command\n" in files["manager.conf"]
    assert "password = ari\\;pass\n" in files["ari.conf"]
    assert _ami_account(files["manager.conf"])["write"] == {"system"}


@pytest.mark.parametrize(("key", "value"), [
    ("HOTLINE_AMI_PASSWORD", "x\nwrite = system,command,originate"),
    ("HOTLINE_ARI_PASSWORD", "x\r\n[admin]"),
    ("HOTLINE_AMI_USER", "hotline]\nwrite = command\n[x"),
    ("HOTLINE_ARI_USER", "user:with-colon"),
    ("HOTLINE_AMI_PASSWORD", " padded "),
])
def test_given_pbx_secret_that_would_inject_config_lines_when_loaded_then_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    from callcenter.config.base import ConfigError

    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_secrets(tmp_path)
    assert err.value.key == key and err.value.source == "environment"
    assert value not in str(err.value)  # the secret itself is never printed


def test_given_newline_in_a_config_value_when_escaped_then_refused() -> None:
    from callcenter.pbx.render import conf_escape

    assert conf_escape("a;b") == "a\\;b"
    with pytest.raises(ValueError):
        conf_escape("a\n[admin]")


def test_given_files_with_secrets_when_written_then_private_before_the_first_byte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """secrets.env, manager.conf, ari.conf, pjsip.conf: each is a fresh 0600 file when its
    bytes go in (then renamed over the old one), never written first and chmod-ed after."""
    modes: list[int] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", fdopen)
    old = os.umask(0)  # nothing left to the umask
    try:
        layout, files = _rendered(tmp_path)
    finally:
        os.umask(old)
    assert len(modes) == len([n for n in files if n.endswith(".conf")]) + 1  # + secrets.env
    assert set(modes) == {0o600}
    for name in ("manager.conf", "ari.conf", "pjsip.conf"):
        assert (layout.host("etc") / name).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "state/secrets.env").stat().st_mode & 0o777 == 0o600


def test_given_default_config_when_rendered_then_messages_log_leaves_out_notices_with_numbers(
        tmp_path: Path) -> None:
    _, files = _rendered(tmp_path)
    channels = {line.split("=>")[0].strip(): line.split("=>")[1].strip()
                for line in files["logger.conf"].splitlines()
                if "=>" in line and not line.startswith(";")}
    # NOTICE names the From user of every refused INVITE; verbose every dialplan step.
    assert channels == {"messages.log": "warning,error"}
