"""The systemd units of deploy/systemd: systemd itself (`systemd-analyze verify`, Debian's
systemd) accepts every one, and the app's sandbox is what issue 13 asks for."""

from __future__ import annotations

import configparser
import ctypes
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callcenter.ops.install import UNIT_PREFIX, UNIT_SUFFIXES, Installer
from callcenter.ops.package_data import deploy_dir

UNITS = deploy_dir() / "systemd"
OURS = ("hotline1022.target", "hotline1022-asterisk.service", "hotline1022-app.service",
        "hotline1022-bearerbox.service", "hotline1022-smsbox.service")
EDGE = "hotline1022-edge.service"  # an edge machine's only unit: not in the node's target


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_given_deploy_systemd_then_every_unit_of_the_brief_is_there():
    names = {p.name for p in UNITS.iterdir() if p.suffix in UNIT_SUFFIXES}
    assert {*OURS, EDGE} <= names


def test_given_every_unit_rendered_for_this_venv_then_systemd_analyze_verify_is_silent(
        tmp_path):
    # The units name /opt/hotline1022/bin/callcenter; verify demands that ExecStart binaries
    # exist, so they are rendered with this venv as the prefix, as the installer does.
    prefix = Path(sys.prefix)
    assert (prefix / "bin" / "callcenter").exists(), "the venv's callcenter script"
    files = []
    for source in sorted(UNITS.iterdir()):
        if source.suffix in UNIT_SUFFIXES:
            text = source.read_text().replace(UNIT_PREFIX + "/", f"{prefix}/")
            (tmp_path / source.name).write_text(text)
            files.append(str(tmp_path / source.name))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *files],
                          capture_output=True, text=True, cwd=tmp_path)
    # verify exits 0 on some problems ("Unknown key", "Failed to parse"): any line is one.
    assert proc.returncode == 0 and proc.stderr.strip() == "" and proc.stdout.strip() == "", \
        proc.stdout + proc.stderr


def test_given_a_bad_key_then_verify_does_report_it(tmp_path):
    """The check above would see a mistake: systemd-analyze prints it."""
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nProtectSystem=strictly\nNoSuchKey=1\n")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)],
                          capture_output=True, text=True)
    assert "strictly" in proc.stderr and "NoSuchKey" in proc.stderr


def test_given_the_app_unit_then_it_is_unprivileged_notify_and_sandboxed():
    service = unit("hotline1022-app.service")["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["User"] == "hotline1022" and one["Group"] == "hotline1022"
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "30"
    assert one["ExecStart"] == f"{UNIT_PREFIX}/bin/callcenter app"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes",
                       "CapabilityBoundingSet": "",
                       "UMask": "0027", "MemoryDenyWriteExecute": "yes",
                       "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}.items():
        assert one.get(key) == value, key
    assert "@system-service" in service["SystemCallFilter"]
    # Writable: its state, and the config folder for the console's shift edits (sticky).
    assert service["ReadWritePaths"] == ["/var/lib/hotline1022",
                                       "/var/lib/hotline1022-pbx/rootfs/srv/hotline",
                                       "/etc/hotline1022"]
    assert set(service["EnvironmentFile"]) == {"/etc/hotline1022/hotline.env",
                                               "/etc/hotline1022/operators.env"}
    after = unit("hotline1022-app.service")["Unit"]["After"][0].split()
    assert {"hotline1022-asterisk.service", "redis-server.service"} <= set(after)


def test_given_the_other_units_then_none_serves_as_root_and_asterisk_keeps_only_chroot_caps():
    asterisk = {k: v[-1] for k, v in unit("hotline1022-asterisk.service")["Service"].items()}
    assert "User" not in asterisk  # root, to chroot; Asterisk drops to its user itself
    caps = set(asterisk["CapabilityBoundingSet"].split())
    assert {"CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID"} <= caps
    assert not caps & {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_NET_RAW"}
    assert asterisk["ProtectSystem"] == "strict" and asterisk["NoNewPrivileges"] == "yes"
    assert asterisk["ExecStartPre"] == f"+{UNIT_PREFIX}/bin/callcenter pbx render"
    assert asterisk["ExecStart"] == f"{UNIT_PREFIX}/bin/callcenter pbx run"
    for name in ("hotline1022-bearerbox.service", "hotline1022-smsbox.service"):
        service = {k: v[-1] for k, v in unit(name)["Service"].items()}
        assert service["User"] == "kannel" and service["CapabilityBoundingSet"] == ""
        assert service["LoadCredential"] == "kannel.conf:/etc/hotline1022/kannel.conf"
    smsbox = unit("hotline1022-smsbox.service")["Unit"]
    assert "hotline1022-bearerbox.service" in smsbox["Requires"][0].split()
    target = configparser.ConfigParser(strict=False)
    target.read(UNITS / "hotline1022.target")
    assert set(target["Install"]["Also"].split()) == set(OURS) - {"hotline1022.target"}


def test_given_the_edge_unit_then_kamailio_runs_as_its_user_rendered_first_outside_the_target():
    edge = unit(EDGE)
    service = edge["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["User"] == "kamailio" and one["Group"] == "kamailio"
    folder = "/var/lib/hotline1022-edge"
    # Rendered as root ("+") before every start; a refused render ("-") keeps the last good
    # files, which Kamailio then starts with.
    assert one["ExecStartPre"] == f"-+{UNIT_PREFIX}/bin/callcenter edge render --out {folder}"
    assert one["ExecStart"] == (f"/usr/sbin/kamailio -f {folder}/kamailio.cfg -DD -E "
                                f"-w {folder}")
    assert one["ExecReload"] == f"+{UNIT_PREFIX}/bin/callcenter edge reload --out {folder}"
    assert one["Restart"] == "on-failure" and one["Type"] == "simple"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes",
                       "CapabilityBoundingSet": "", "UMask": "0027",
                       "MemoryDenyWriteExecute": "yes"}.items():
        assert one.get(key) == value, key
    assert service["ReadWritePaths"] == [folder]
    assert "~@privileged" in service["SystemCallFilter"]
    assert set(service["EnvironmentFile"]) == {"/etc/hotline1022/hotline.env",
                                               "/etc/hotline1022/operators.env"}
    # An edge machine runs the edge alone: the node's target neither starts nor stops it.
    assert "PartOf" not in edge["Unit"]
    assert "kamailio.service" in edge["Unit"]["Conflicts"][0].split()
    assert edge["Install"]["WantedBy"] == ["multi-user.target"]
    target = configparser.ConfigParser(strict=False)
    target.read(UNITS / "hotline1022.target")
    assert EDGE not in target["Install"]["Also"].split()


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1  # linux/prctl.h (Linux >= 6.3)


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE


@pytest.mark.skipif(not _mdwe_supported(), reason="the kernel has no PR_SET_MDWE (< 6.3)")
def test_given_memory_deny_write_execute_then_the_apps_native_parts_still_run(tmp_path):
    """MemoryDenyWriteExecute=yes in the app's unit: the kernel's own W^X switch (what
    systemd >= 257 uses for it) on a process that loads the app and its native extensions,
    serves HTTP, and runs the prompt tools."""
    script = textwrap.dedent(f"""
        import ctypes, mmap, subprocess, asyncio
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0
        try:
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            raise SystemExit("W+X memory was allowed: the check checks nothing")
        except PermissionError:
            pass
        import callcenter.app, hiredis, argon2, psycopg, sqlalchemy, aiohttp
        from aiohttp import web
        reader = hiredis.Reader(); reader.feed(b"*1\\r\\n:5\\r\\n"); assert reader.gets() == [5]
        argon2.PasswordHasher().hash("x")
        with sqlalchemy.create_engine("sqlite://").connect() as c:
            assert c.exec_driver_sql("select 1").scalar() == 1
        async def serve():
            app = web.Application()
            app.router.add_get("/", lambda r: web.Response(text="ok"))
            runner = web.AppRunner(app); await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
            port = site._server.sockets[0].getsockname()[1]
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{{port}}/") as r:
                    assert await r.text() == "ok"
            await runner.cleanup()
        asyncio.run(serve())
        wav = {str(tmp_path)!r} + "/a.wav"
        subprocess.run(["espeak-ng", "-v", "vi", "-w", wav, "xin chào"], check=True)
        subprocess.run(["sox", wav, "-r", "8000", wav + ".8k.wav"], check=True)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_given_the_installer_then_units_point_at_the_prefix(tmp_path):
    """--prefix replaces /opt/hotline1022 in every Exec line (and nothing else)."""
    installer = Installer(root=tmp_path, prefix=Path("/srv/venv"))
    installer._units()
    app = (tmp_path / "etc/systemd/system/hotline1022-app.service").read_text()
    assert "ExecStart=/srv/venv/bin/callcenter app" in app
    assert UNIT_PREFIX + "/" not in app
    assert "ReadWritePaths=/var/lib/hotline1022" in app
