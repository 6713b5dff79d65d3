"""Where one PBX instance keeps its rendered config, sounds, spool and logs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callcenter.ops.processes import RunAs
from callcenter.pbx.install import AsteriskInstall

SUBDIRS = ("etc", "lib", "spool", "run", "log", "cache", "sounds", "moh", "recordings")
# What the app (maybe unprivileged) rewrites while it runs: config on reload, prompts on change.
APP_WRITES = ("etc", "sounds", "moh")


def _host_module_dir() -> str:
    conf = Path("/etc/asterisk/asterisk.conf")
    if conf.exists():
        for line in conf.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=>")
            if key.strip() == "astmoddir" and value.strip():
                return value.strip()
    for candidate in ("/usr/lib/x86_64-linux-gnu/asterisk/modules", "/usr/lib/asterisk/modules"):
        if Path(candidate).is_dir():
            return candidate
    return "/usr/lib/asterisk/modules"


@dataclass(frozen=True)
class PbxLayout:
    """One instance's folders, both as the host sees them and as Asterisk (maybe chrooted) does."""

    install: AsteriskInstall
    base: str  # instance folder as Asterisk sees it

    @classmethod
    def for_instance(cls, install: AsteriskInstall, name: str, state_dir: Path) -> PbxLayout:
        """Chrooted: /srv/hotline/NAME inside the rootfs; on the host: STATE_DIR/pbx-NAME."""
        if install.root is None:
            return cls(install, str((state_dir / f"pbx-{name}").resolve()))
        return cls(install, f"/srv/hotline/{name}")

    def pbx(self, sub: str) -> str:
        """A path under the instance as Asterisk sees it."""
        return f"{self.base}/{sub}"

    def host(self, sub: str = "") -> Path:
        """The same path on the host."""
        p = self.install.host_path(self.base)
        return p / sub if sub else p

    def recordings(self) -> Path:
        """Where call recordings are written (host path); call records name files in it."""
        return self.host("spool") / "recording"

    @property
    def conf_file(self) -> str:
        return self.pbx("etc/asterisk.conf")

    def paths(self) -> dict[str, str]:
        """Template variables for asterisk.conf and friends."""
        modules = (
            "/usr/lib/x86_64-linux-gnu/asterisk/modules"
            if self.install.root is not None
            else _host_module_dir()
        )
        d = {sub: self.pbx(sub) for sub in SUBDIRS}
        d["modules"] = modules
        d["data"] = "/usr/share/asterisk"
        return d

    def create(self) -> None:
        """Make the folders (call `set_ownership` once everything is written into them)."""
        for sub in SUBDIRS:
            self.host(sub).mkdir(parents=True, exist_ok=True)
        # Bridge recordings (ARI) go to <astspooldir>/recording, which Asterisk does not create.
        self.recordings().mkdir(parents=True, exist_ok=True)
        if self.install.root is not None and os.geteuid() == 0:
            # Asterisk must resolve the machine's own name locally, not via DNS: with the
            # rootfs's empty hosts file, calls stalled ~5 s in bursts (ARCHITECTURE.md).
            shutil.copyfile("/etc/hosts", self.install.host_path("/etc/hosts"))
            # The unprivileged app walks down to its instance: /srv/hotline must be traversable.
            os.chmod(self.host().parent, 0o755)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One render at a time per instance, across processes (the app's reload, the SIP
        guard, an admin's edit, a test's re-render): two at once lost prompt files."""
        lock = self.host("etc") / ".render.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
        except PermissionError:  # made by another account: a read-only lock works as well
            fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def set_ownership(self, app: RunAs | None) -> None:
        """Who may do what in the instance (root only; otherwise nothing changes).

        Asterisk owns its working folders. The app's account owns what it rewrites while it
        runs (etc, sounds, moh: setgid folders of Asterisk's group, so Asterisk reads what the
        app writes there later, 0640). Recordings are Asterisk's, in a setgid folder of the
        app's group (0770: the app reads and deletes them under retention), reachable by no
        other local user. ``app`` None: root runs the app (tests).
        """
        if os.geteuid() != 0:
            return
        ast_uid, ast_gid = self.install.uid_gid
        app_uid, app_gid = (app.uid, app.gid) if app else (0, 0)
        base = self.host()
        os.lchown(base, ast_uid, app_gid)
        os.chmod(base, 0o750)
        for sub in SUBDIRS:
            path = self.host(sub)
            if sub in APP_WRITES:
                _own_tree(path, app_uid, ast_gid, dir_mode=0o2750, file_mode=0o640)
            elif sub == "spool":
                _own_tree(path, ast_uid, ast_gid)
                os.lchown(path, ast_uid, app_gid)
                os.chmod(path, 0o750)
                _own_tree(self.recordings(), ast_uid, app_gid, dir_mode=0o2770,
                          file_mode=0o640)
            else:
                _own_tree(path, ast_uid, ast_gid)

    def remove(self) -> None:
        """Delete the instance folder (tests)."""
        shutil.rmtree(self.host(), ignore_errors=True)



def _own_tree(path: Path, uid: int, gid: int, *, dir_mode: int | None = None,
              file_mode: int | None = None) -> None:
    """chown (and chmod, when modes are given) ``path`` and everything under it."""
    if not path.exists():
        return
    for root, _dirs, files in os.walk(path):  # every folder is a root once
        os.lchown(root, uid, gid)
        if dir_mode is not None:
            os.chmod(root, dir_mode)
        for name in files:
            file = os.path.join(root, name)
            os.lchown(file, uid, gid)
            if file_mode is not None and not os.path.islink(file):
                os.chmod(file, file_mode)
