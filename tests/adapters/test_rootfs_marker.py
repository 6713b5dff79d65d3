"""The Asterisk rootfs built by `callcenter run` (umask 027) must be usable by the unprivileged
app: on a fresh machine the app found "no ready rootfs" right after the run had built it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from callcenter.pbx import install
from callcenter.pbx.install import READY_MARKER, build_rootfs, installed_asterisk
from tests.support.rootfs import ready_rootfs


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


def test_given_ready_rootfs_when_app_looks_for_asterisk_then_found_from_dpkg_never_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app only needs the rootfs's paths: it neither chroots into it (as root, under the
    clock-step test's libfaketime, a failed `-V` made it rebuild the rootfs under the running
    Asterisks) nor builds one."""
    ran: list[list[str]] = []

    def no_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setattr(install.shutil, "which", lambda name: None)  # no host Asterisk
    monkeypatch.setattr(install.subprocess, "run", no_run)
    root = ready_rootfs(tmp_path / "rootfs")
    found = installed_asterisk(root)
    assert found is not None and ran == []
    assert (found.root, found.binary) == (root, "/usr/sbin/asterisk")
    assert found.version == "Asterisk 22.10.1+dfsg+~cs6.17.60671434-1"
    monkeypatch.setenv("HOTLINE_ROOTFS", str(root))
    assert installed_asterisk() == found


@pytest.mark.parametrize("spoil", ["no marker", "other packages", "no dpkg record", "too old"])
def test_given_rootfs_not_ready_when_app_looks_for_asterisk_then_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoil: str) -> None:
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    root = ready_rootfs(tmp_path / "rootfs", version="1:18.9-1" if spoil == "too old"
                        else "1:22.10.1-1")
    if spoil == "no marker":
        (root / READY_MARKER).unlink()
    elif spoil == "other packages":
        (root / READY_MARKER).write_text("asterisk kamailio\n")
    elif spoil == "no dpkg record":
        (root / "var/lib/dpkg/status").unlink()
    assert installed_asterisk(root) is None
