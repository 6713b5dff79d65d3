"""Find or provision the Asterisk the hotline runs on.

Policy (ARCHITECTURE.md): an ``asterisk`` on PATH of version >= 20 is used as it is; otherwise a
Debian unstable rootfs with Debian's ``asterisk`` package is built once with debootstrap into a
cache folder outside the clone, and Asterisk runs in it with chroot.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_MAJOR = 20
ROOTFS_PACKAGES = ("asterisk",)
READY_MARKER = ".hotline1022-ready"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ProvisionError(RuntimeError):
    """The PBX could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class AsteriskInstall:
    """Where Asterisk lives: on the host (root=None) or inside a chroot rootfs."""

    binary: str  # path as seen by Asterisk itself (inside the rootfs when chrooted)
    root: Path | None
    version: str

    def host_path(self, pbx_path: str) -> Path:
        """Translate a path as Asterisk sees it into the host's path."""
        if self.root is None:
            return Path(pbx_path)
        return self.root / pbx_path.lstrip("/")

    def command(self, *args: str) -> list[str]:
        """The argv that runs the Asterisk binary with args, chrooted when needed."""
        if self.root is None:
            return [self.binary, *args]
        return ["chroot", str(self.root), self.binary, *args]

    def asterisk_user(self) -> tuple[int, int] | None:
        """The asterisk user's ids (from the rootfs's own /etc/passwd when chrooted), if any."""
        passwd = self.host_path("/etc/passwd")
        for line in passwd.read_text().splitlines():
            parts = line.split(":")
            if parts[0] == "asterisk":
                return int(parts[2]), int(parts[3])
        return None

    @property
    def uid_gid(self) -> tuple[int, int]:
        """Who owns the instance's files: the asterisk user, else whoever runs us."""
        return self.asterisk_user() or (os.getuid(), os.getgid())


def cache_dir() -> Path:
    """The cache folder outside the clone: HOTLINE_CACHE, else /var/cache/hotline1022 for root
    (the unprivileged app must reach the rootfs's PBX instance: root's home is 0700), else
    ~/.cache/hotline1022."""
    if os.environ.get("HOTLINE_CACHE"):
        return Path(os.environ["HOTLINE_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/hotline1022")
    return Path.home() / ".cache" / "hotline1022"


def _version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Asterisk\s+(\d+)\.(\d+)\S*", out)
    if not m or int(m.group(1)) < MIN_MAJOR:
        return None
    return m.group(0)


def find_host_asterisk() -> AsteriskInstall | None:
    """An Asterisk >= 20 on PATH, if any."""
    path = shutil.which("asterisk")
    if not path:
        return None
    version = _version_of([path])
    return AsteriskInstall(binary=path, root=None, version=version) if version else None


def packaged_version(root: Path, package: str = "asterisk") -> str | None:
    """``Asterisk X.Y.Z…`` from the rootfs's dpkg database (no chroot: any user can read it),
    or None when the package is not installed there or older than MIN_MAJOR."""
    try:
        stanzas = (root / "var/lib/dpkg/status").read_text(errors="replace").split("\n\n")
    except OSError:
        return None
    for stanza in stanzas:
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            version = fields.get("Version", "").split(":", 1)[-1]  # without the epoch
            m = re.match(r"(\d+)\.", version)
            if m and int(m.group(1)) >= MIN_MAJOR:
                return f"Asterisk {version}"
    return None


def default_rootfs() -> Path:
    """Where the rootfs is: HOTLINE_ROOTFS, else the cache's rootfs/."""
    return Path(os.environ.get("HOTLINE_ROOTFS") or cache_dir() / "rootfs")


def _ready(root: Path) -> bool:
    marker = root / READY_MARKER
    try:
        return marker.exists() and marker.read_text().split() == list(ROOTFS_PACKAGES)
    except PermissionError:
        return False


def installed_asterisk(root: Path | None = None) -> AsteriskInstall | None:
    """The Asterisk already provisioned here, found without building or chrooting anything:
    for whoever only needs its paths (the app, the recordings purge). None if there is none.

    The app must not be the one that judges a rootfs broken: a rootfs whose Asterisk "does
    not run" from the app's point of view (a loaded machine, the clock-step test's
    libfaketime preloaded into the chroot) was rebuilt by it, under the running Asterisks.
    """
    host = find_host_asterisk()
    if host:
        return host
    root = root or default_rootfs()
    version = packaged_version(root) if _ready(root) else None
    return AsteriskInstall(binary="/usr/sbin/asterisk", root=root, version=version) \
        if version else None


def rootfs_install(root: Path) -> AsteriskInstall | None:
    """The Asterisk inside an already built rootfs, if it is complete.

    Root runs it once to be sure it starts; another user (the unprivileged app, which only
    needs the instance's paths) cannot chroot and reads the version from dpkg's database.
    """
    if not _ready(root):
        return None  # missing, half-built, or built for another package list: rebuild
    if os.geteuid() == 0:
        version = _version_of(["chroot", str(root), "/usr/sbin/asterisk"])
    else:
        version = packaged_version(root)
    if not version:
        return None
    return AsteriskInstall(binary="/usr/sbin/asterisk", root=root, version=version)


def build_rootfs(root: Path, mirror: str | None = None) -> None:
    """Build the Debian unstable rootfs with Asterisk (about a minute); atomic via a temp dir."""
    if not shutil.which("debootstrap"):
        raise ProvisionError(
            "Asterisk is not on PATH and debootstrap is missing: run `make deps` "
            "(apt-get install debootstrap) or install asterisk >= 20."
        )
    if os.geteuid() != 0:
        raise ProvisionError("building the Asterisk rootfs needs root (debootstrap, chroot)")
    mirror = mirror or os.environ.get("HOTLINE_DEBIAN_MIRROR", DEFAULT_MIRROR)
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log.info("building Asterisk rootfs in %s from %s (once; about a minute)", root, mirror)
    started = time.monotonic()
    cmd = [
        "debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
        "sid", str(tmp), mirror,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise ProvisionError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
    # The mirror serves a frozen unstable: apt inside the rootfs must not reject old Release files.
    apt_conf = tmp / "etc/apt/apt.conf.d/99hotline-frozen-mirror"
    apt_conf.write_text('Acquire::Check-Valid-Until "false";\n')
    marker = tmp / READY_MARKER
    marker.write_text(f"{' '.join(ROOTFS_PACKAGES)}\n")
    # The unprivileged app reads the marker (rootfs_install) and the rootfs's files: under
    # `callcenter run`'s umask 027 the marker was root's alone, and on a fresh machine the app
    # then found "no ready rootfs" right after the run had built it and started its Asterisk.
    os.chmod(marker, 0o644)
    os.chmod(tmp, 0o755)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("Asterisk rootfs ready in %.0f s", time.monotonic() - started)


def ensure_asterisk(root: Path | None = None) -> AsteriskInstall:
    """A usable Asterisk; builds the rootfs once if PATH has none (locked against races)."""
    host = find_host_asterisk()
    if host:
        return host
    root = root or default_rootfs()
    found = rootfs_install(root)
    if found:
        return found
    if os.geteuid() != 0:
        raise ProvisionError(
            f"no Asterisk >= {MIN_MAJOR} on PATH and no ready rootfs at {root}: build it as "
            f"root first (`callcenter pbx render`, or `make run`), or install asterisk")
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / (root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel test session waits for the same build
        found = rootfs_install(root)
        if found:
            return found
        build_rootfs(root)
    found = rootfs_install(root)
    if not found:
        raise ProvisionError(f"rootfs {root} was built but its Asterisk does not run")
    return found
