"""`callcenter edge render|reload` against Debian's real Kamailio: the rendered production
config passes `kamailio -c`; one Kamailio refuses leaves the old files; Kamailio runs as its
own user in the folder as the unit runs it (its control socket there, root's files read-only
to it), and `edge reload` makes it re-read its nodes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import main
from callcenter.cluster import edge as edge_module
from callcenter.cluster.edge import ctl_socket, kamailio_binary, parse_dispatcher_list
from callcenter.cluster.production import edge_gid
from tests.e2e.stack import free_port, wait_until
from tests.unit.test_render_operators import PW101, config_data


@pytest.fixture(autouse=True)
def _kamailio() -> None:
    try:
        kamailio_binary()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture
def folder() -> Iterator[Path]:
    """Outside pytest's 0700 tmp tree: the kamailio user must reach it, as /var/lib's."""
    base = Path(tempfile.mkdtemp(prefix="hotline-edge-test-"))
    os.chmod(base, 0o755)
    try:
        yield base / "edge"
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def write_config(path: Path, port: int, nodes: list[dict[str, Any]]) -> Path:
    data = config_data()
    data["edge"] = {"host": "127.0.0.1", "port": port, "carrier_networks": ["127.0.0.1/32"],
                    "nodes": nodes}
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def render(config: Path, folder: Path, command: str = "render") -> int:
    return main(["--config", str(config), "edge", command, "--out", str(folder)])


def test_given_the_edge_section_then_kamailio_accepts_it_and_a_refused_one_keeps_the_old(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    config = write_config(tmp_path / "hotline.yaml", 5060,
                          [{"name": "node1", "host": "10.0.0.11"}])
    assert render(config, folder) == 0, capsys.readouterr().err
    assert "(checked by kamailio -c)" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"kamailio.cfg", "dispatcher.list"}
    if edge_gid() is not None:  # root, with Debian's kamailio account
        st = (folder / "kamailio.cfg").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, edge_gid(), 0o640)
    # A Kamailio without its modules (the package half installed) refuses the new config.
    write_config(config, 5060, [{"name": "node2", "host": "10.0.0.12"}])
    monkeypatch.setattr(edge_module, "module_dir", lambda: "/nonexistent/kamailio/modules")
    assert render(config, folder) == 1
    err = capsys.readouterr().err
    assert "kamailio refused the new config" in err and "left as they were" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE


@pytest.mark.skipif(not _mdwe_supported(), reason="the kernel has no PR_SET_MDWE (< 6.3)")
def test_given_memory_deny_write_execute_then_kamailio_loads_every_module(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MemoryDenyWriteExecute=yes in the edge's unit: the kernel's W^X switch (kept across
    exec) on `kamailio -c`, which loads every module the config names."""
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    config = write_config(tmp_path / "hotline.yaml", 5060,
                          [{"name": "node1", "host": "10.0.0.11"}])
    assert render(config, folder) == 0
    script = textwrap.dedent(f"""
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0
        os.execv(sys.argv[1], sys.argv[1:])
    """)
    probe = [sys.executable, "-c", script, sys.executable, "-c",
             "import mmap\ntry:\n mmap.mmap(-1, 4096, prot=7)\nexcept PermissionError:\n"
             " print('refused')"]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "refused"
    proc = subprocess.run([sys.executable, "-c", script, kamailio_binary(), "-c", "-f",
                           str(folder / "kamailio.cfg")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def dispatcher_uris(folder: Path) -> dict[str, str]:
    out = subprocess.run(["kamcmd", "-s", f"unix:{ctl_socket(folder)}", "dispatcher.list"],
                         capture_output=True, text=True, timeout=5)
    return parse_dispatcher_list(out.stdout) if out.returncode == 0 else {}


@pytest.mark.skipif(os.geteuid() != 0 or edge_gid() is None,
                    reason="runs Kamailio as the kamailio user: needs root and the account")
def test_given_the_edge_running_as_kamailio_when_nodes_change_then_reload_applies_them(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOTLINE_OP_101", PW101)
    port = free_port(socket.SOCK_DGRAM)
    config = write_config(tmp_path / "hotline.yaml", port,
                          [{"name": "node1", "host": "127.0.0.1", "port": port + 1}])
    assert render(config, folder) == 0
    # As the unit runs it: User=kamailio, in the foreground, its folder as working directory.
    log = open(tmp_path / "kamailio.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([kamailio_binary(), "-f", str(folder / "kamailio.cfg"), "-DD",
                             "-E", "-w", str(folder)], user="kamailio", group="kamailio",
                            extra_groups=[], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    log.close()
    try:
        first = f"sip:127.0.0.1:{port + 1}"
        assert wait_until(lambda: set(dispatcher_uris(folder)) == {first}, 10, 0.2), \
            (tmp_path / "kamailio.log").read_text()[-2000:]
        # It cannot change its own config (root's, in a sticky folder).
        probe = subprocess.run(["rm", "-f", str(folder / "kamailio.cfg")], user="kamailio",
                               capture_output=True)
        assert probe.returncode != 0 and (folder / "kamailio.cfg").exists()
        write_config(config, port, [{"name": "node1", "host": "127.0.0.1", "port": port + 1},
                                    {"name": "node2", "host": "127.0.0.1", "port": port + 2}])
        capsys.readouterr()
        assert render(config, folder, "reload") == 0, capsys.readouterr().err
        said = capsys.readouterr().out
        assert "re-read dispatcher.list" in said and "kamailio.cfg changed" not in said
        assert set(dispatcher_uris(folder)) == {first, f"sip:127.0.0.1:{port + 2}"}
        # An operator's new password changes kamailio.cfg: applied at the next restart.
        monkeypatch.setenv("HOTLINE_OP_101", PW101 + "-new")
        assert render(config, folder, "reload") == 0
        assert "kamailio.cfg changed" in capsys.readouterr().out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
