"""The Asterisk rootfs built by `callcenter run` (umask 027) must be usable by the unprivileged
app: on a fresh machine the app found "no ready rootfs" right after the run had built it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from callcenter.pbx import install
from callcenter.pbx.install import READY_MARKER, build_rootfs


def _fake_debootstrap(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    target = Path(cmd[-2])
    (target / "etc/apt/apt.conf.d").mkdir(parents=True)
    return subprocess.CompletedProcess(cmd, 0, "", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="build_rootfs refuses to run without root")
def test_given_run_umask_027_when_rootfs_built_then_marker_and_root_readable_by_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/sbin/" + name)
    monkeypatch.setattr(install.subprocess, "run", _fake_debootstrap)
    old = os.umask(0o027)
    try:
        build_rootfs(tmp_path / "rootfs", mirror="http://mirror.invalid/debian")
    finally:
        os.umask(old)
    marker = tmp_path / "rootfs" / READY_MARKER
    assert stat.S_IMODE(marker.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "rootfs").stat().st_mode) == 0o755
    assert marker.read_text().split() == list(install.ROOTFS_PACKAGES)
