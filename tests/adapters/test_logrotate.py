"""deploy/logrotate/hotline1022 checked by Debian's logrotate, with its paths moved into a
temporary folder: the syntax (-d) and one real forced rotation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from callcenter.ops.package_data import deploy_dir

ROOTFS = "/var/lib/hotline1022-pbx/rootfs"


@pytest.fixture
def moved(tmp_path: Path) -> tuple[Path, Path]:
    """The file with the rootfs moved under tmp_path, and the instance's log folder."""
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate; make deps)")
    text = (deploy_dir() / "logrotate" / "hotline1022").read_text()
    assert ROOTFS in text
    conf = tmp_path / "hotline1022"
    conf.write_text(text.replace(ROOTFS, str(tmp_path / "rootfs")))
    conf.chmod(0o644)  # logrotate refuses group/world-writable files
    logs = tmp_path / "rootfs" / "srv" / "hotline" / "main" / "log"
    logs.mkdir(parents=True)
    return conf, logs


def _logrotate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["logrotate", *args], capture_output=True, text=True, timeout=60)


def test_given_shipped_file_when_logrotate_debug_then_no_error_and_asterisk_logs_considered(
        moved: tuple[Path, Path], tmp_path: Path) -> None:
    conf, logs = moved
    (logs / "messages.log").write_text("[Nov 28 10:00:00] NOTICE[1] x: hello\n")
    proc = _logrotate("-d", "-s", str(tmp_path / "status"), str(conf))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "error" not in out.lower(), out
    assert f"considering log {logs}/messages.log" in out


def test_given_asterisk_log_when_forced_rotation_then_renamed_and_postrotate_tolerates_no_pbx(
        moved: tuple[Path, Path], tmp_path: Path) -> None:
    conf, logs = moved
    (logs / "messages.log").write_text("line\n")
    proc = _logrotate("-f", "-s", str(tmp_path / "status"), str(conf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (logs / "messages.log.1").read_text() == "line\n"
    assert not (logs / "messages.log").exists()  # nocreate: Asterisk reopens it itself


def test_given_shipped_file_then_kannel_left_to_debians_own_logrotate_file() -> None:
    text = (deploy_dir() / "logrotate" / "hotline1022").read_text()
    entries = [line for line in text.splitlines() if line.rstrip().endswith("{")]
    assert not any("/var/log/kannel" in e for e in entries)  # duplicate entry = error
