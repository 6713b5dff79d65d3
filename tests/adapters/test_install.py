"""`callcenter install --root DIR`: users, /etc/hotline1022, /var/lib/hotline1022, Kannel's
config and the units laid out in a root of our own; a second run changes nothing."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.ops.install import Installer, InstallError, read_env_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the installer sets owners: root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A system root with the host's users (kannel from Debian's package) but no hotline1022."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            lines = Path("/etc", name).read_text().splitlines()
            kept = [line for line in lines if not line.startswith("hotline1022:")]
            (etc / name).write_text("\n".join(kept) + "\n")
    return tmp_path


def ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2]), int(parts[3])
    raise AssertionError(f"no user {name} in {root}/etc/passwd")


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def install(root: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["install", "--root", str(root), "--prefix", "/opt/hotline1022"]) == 0
    return capsys.readouterr().out.splitlines()


def test_given_an_empty_root_when_installed_twice_then_laid_out_once_and_nothing_changes(
        root, capsys):
    first = install(root, capsys)
    uid, gid = ids(root, "hotline1022")
    assert uid != 0
    etc, state = root / "etc/hotline1022", root / "var/lib/hotline1022"
    assert owner_mode(etc) == (0, gid, 0o1770)  # the app saves console edits; sticky
    assert owner_mode(etc / "secrets.env") == (0, gid, 0o640)
    assert owner_mode(etc / "operators.env") == (0, gid, 0o640)
    assert owner_mode(etc / "hotline.yaml") == (uid, gid, 0o640)
    assert owner_mode(state) == (uid, gid, 0o750)
    for sub in ("journal", "ticket-files", "cache"):
        assert owner_mode(state / sub) == (uid, gid, 0o750)
    assert owner_mode(state / "sms-secrets.env") == (uid, gid, 0o600)
    assert owner_mode(etc / "kannel.conf") == (0, 0, 0o600)
    k_uid, _ = ids(root, "kannel")
    assert owner_mode(root / "var/lib/hotline1022-kannel/spool")[0] == k_uid
    secrets = read_env_file(etc / "secrets.env")
    assert secrets["HOTLINE_ARI_USER"] == "hotline-ari"
    assert len(secrets["HOTLINE_ARI_PASSWORD"]) >= 24
    env = read_env_file(etc / "hotline.env")
    assert env["HOTLINE_CONFIG"] == "/etc/hotline1022/hotline.yaml"
    assert env["HOTLINE_STATE"] == "/var/lib/hotline1022"
    assert env["HOTLINE_SECRETS"] == "/etc/hotline1022/secrets.env"
    assert "HOTLINE_OP_101" in (etc / "operators.env").read_text()  # named by the example
    units = root / "etc/systemd/system"
    for name in ("hotline1022.target", "hotline1022-app.service",
                 "hotline1022-asterisk.service", "hotline1022-bearerbox.service",
                 "hotline1022-smsbox.service", "hotline1022-edge.service"):
        assert owner_mode(units / name) == (0, 0, 0o644), name
    # Installed everywhere, enabled on an edge machine only (docs/scale-out.md, Production).
    assert "ExecStartPre=-+/opt/hotline1022/bin/callcenter edge render" in (
        units / "hotline1022-edge.service").read_text()
    assert owner_mode(root / "etc/logrotate.d/hotline1022") == (0, 0, 0o644)
    kannel = (etc / "kannel.conf").read_text()
    sms = read_env_file(state / "sms-secrets.env")
    assert f'password = "{sms["HOTLINE_KANNEL_PASSWORD"]}"' in kannel  # the app's own creds
    assert 'log-file = "/var/log/kannel/hotline1022-bearerbox.log"' in kannel
    assert 'store-location = "/var/lib/hotline1022-kannel/spool"' in kannel
    # Citizens' SMS (survey answers) go to the app's port from hotline.yaml, with the MO key.
    assert (f'get-url = "http://127.0.0.1:8022/sms/mo?k={sms["HOTLINE_SMS_MO_KEY"]}'
            '&id=%I&from=%p&to=%P&text=%a"') in kannel
    assert any(line.startswith("created  user hotline1022") for line in first)
    assert "systemctl daemon-reload && systemctl enable --now hotline1022.target" in \
        "\n".join(first)

    before = {p: (p.read_bytes() if p.is_file() else b"", owner_mode(p))
              for p in root.rglob("*") if not p.is_symlink()}
    second = install(root, capsys)
    after = {p: (p.read_bytes() if p.is_file() else b"", owner_mode(p))
             for p in root.rglob("*") if not p.is_symlink()}
    assert after == before
    actions = {line.split()[0] for line in second if line.startswith(("kept", "created",
                                                                      "updated", "fixed"))}
    assert actions == {"kept"}
    assert "nothing changed: the installation is complete" in second


def test_given_an_existing_config_and_secrets_then_they_are_kept_and_modes_repaired(
        root, capsys):
    install(root, capsys)
    etc = root / "etc/hotline1022"
    (etc / "hotline.yaml").write_text("# the province's own config\n")
    (etc / "hotline.env").write_text("HOTLINE_STATE=/var/lib/hotline1022\nHOTLINE_SMS=0\n")
    (etc / "secrets.env").write_text("HOTLINE_ARI_USER=ari\nHOTLINE_ARI_PASSWORD=kept-1\n")
    os.chmod(etc / "secrets.env", 0o644)  # an admin's slip: readable by every user
    os.chmod(etc / "hotline.yaml", 0o600)
    out = "\n".join(install(root, capsys))
    assert (etc / "hotline.yaml").read_text() == "# the province's own config\n"
    assert owner_mode(etc / "hotline.yaml")[2] == 0o600  # the admin's own file: untouched
    values = read_env_file(etc / "secrets.env")
    assert values["HOTLINE_ARI_USER"] == "ari" and values["HOTLINE_ARI_PASSWORD"] == "kept-1"
    assert values["HOTLINE_AMI_USER"] == "hotline-ami" and values["HOTLINE_AMI_PASSWORD"]
    assert owner_mode(etc / "secrets.env")[2] == 0o640
    assert f"updated  {etc / 'secrets.env'} (added HOTLINE_AMI_USER, HOTLINE_AMI_PASSWORD)" in out
    assert "skipped" in out and "HOTLINE_SMS=0" in out  # no Kannel wanted: not rendered


def test_given_a_real_smsc_then_its_block_is_written_into_kannel_conf(root, capsys):
    install(root, capsys)
    etc = root / "etc/hotline1022"
    (etc / "smsc.conf").write_text('group = smsc\nsmsc = smpp\nhost = "10.0.0.9"\n')
    env = (etc / "hotline.env").read_text().replace(
        "HOTLINE_KANNEL_SMSC=fake", "HOTLINE_KANNEL_SMSC=/etc/hotline1022/smsc.conf")
    (etc / "hotline.env").write_text(env)
    out = "\n".join(install(root, capsys))
    kannel = (etc / "kannel.conf").read_text()
    assert "smsc = smpp" in kannel and 'host = "10.0.0.9"' in kannel
    assert "include" not in kannel  # kannel cannot enter /etc/hotline1022 to read it
    assert "smsc = fake" not in kannel
    assert f"updated  {etc / 'kannel.conf'}" in out


def test_given_a_missing_smsc_file_then_the_error_names_it(root, capsys):
    install(root, capsys)
    env = root / "etc/hotline1022/hotline.env"
    env.write_text(env.read_text().replace("HOTLINE_KANNEL_SMSC=fake",
                                           "HOTLINE_KANNEL_SMSC=/etc/hotline1022/nope.conf"))
    assert main(["install", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "nope.conf" in err and "group = smsc" in err


def test_given_a_root_without_a_user_database_then_the_error_says_what_is_needed(tmp_path):
    with pytest.raises(InstallError, match="etc/passwd and .*etc/group are needed"):
        Installer(root=tmp_path).run()


def test_given_no_kannel_user_then_kannel_is_skipped_with_a_warning(root):
    for name in ("passwd", "shadow"):
        path = root / "etc" / name
        if path.exists():
            path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                                    if not line.startswith("kannel:")))
    report = Installer(root=root).run()
    assert any(line.startswith("warning  no kannel user") for line in report.lines)
    assert not (root / "etc/hotline1022/kannel.conf").exists()


def test_given_the_example_config_then_the_installed_copy_is_valid(root):
    """What the installer lays down passes the app's own config check."""
    from callcenter.config.file import load_config

    Installer(root=root).run()
    config = load_config(root / "etc/hotline1022/hotline.yaml")
    assert config.tenants
    shutil.rmtree(root / "etc/hotline1022")  # a fresh install lays it down again
    Installer(root=root).run()
    assert (root / "etc/hotline1022/ivr-dongnai.yaml").exists()
