"""A stand-in for a built Asterisk rootfs, as far as finding it goes: the ready marker and
dpkg's record of the asterisk package (no binary: nothing here runs it)."""

from __future__ import annotations

from pathlib import Path

from callcenter.pbx.install import READY_MARKER, ROOTFS_PACKAGES

VERSION = "1:22.10.1+dfsg+~cs6.17.60671434-1"


def ready_rootfs(root: Path, version: str = VERSION) -> Path:
    """`root` made to look like a rootfs `build_rootfs` finished."""
    (root / "var/lib/dpkg").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: libc6\nStatus: install ok installed\nVersion: 2.41-6\n\n"
        f"Package: asterisk\nStatus: install ok installed\nVersion: {version}\n")
    (root / READY_MARKER).write_text(f"{' '.join(ROOTFS_PACKAGES)}\n")
    return root
