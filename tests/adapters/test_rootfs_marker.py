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


def _fake_rootfs(root: Path, status: str) -> None:
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status)
    (root / install.READY_MARKER).write_text(" ".join(install.ROOTFS_PACKAGES) + "\n")


ASTERISK_22 = ("Package: asterisk\nStatus: install ok installed\n"
               "Version: 1:22.10.1+dfsg+~cs6.17.60671434-1\n")


def test_given_ready_rootfs_when_its_asterisk_does_not_answer_then_dpkg_version_and_no_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A -V run that fails (load, a preload the chroot cannot see) must not make the caller
    # rebuild, i.e. remove, a rootfs that Asterisks may be running from.
    _fake_rootfs(tmp_path, ASTERISK_22)
    monkeypatch.setattr(install, "_version_of", lambda argv: None)
    found = install.rootfs_install(tmp_path)
    assert found is not None and found.version == "Asterisk 22.10.1+dfsg+~cs6.17.60671434-1"
    assert found.root == tmp_path


def test_given_rootfs_without_asterisk_installed_then_not_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_rootfs(tmp_path, "Package: asterisk\nStatus: deinstall ok config-files\n"
                           "Version: 1:22.10.1-1\n")
    monkeypatch.setattr(install, "_version_of", lambda argv: "Asterisk 22.10.1")
    assert install.rootfs_install(tmp_path) is None
