"""Where one PBX instance keeps its rendered config, sounds, spool and logs."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from callcenter.pbx.install import AsteriskInstall

SUBDIRS = ("etc", "lib", "spool", "run", "log", "cache", "sounds", "moh", "recordings")


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
        """Make the folders (call `chown_tree` once everything is written into them)."""
        for sub in SUBDIRS:
            self.host(sub).mkdir(parents=True, exist_ok=True)
        # Bridge recordings (ARI) go to <astspooldir>/recording, which Asterisk does not create.
        self.recordings().mkdir(parents=True, exist_ok=True)
        if self.install.root is not None:
            # Asterisk must resolve the machine's own name locally, not via DNS: with the
            # rootfs's empty hosts file, calls stalled ~5 s in bursts (ARCHITECTURE.md).
            shutil.copyfile("/etc/hosts", self.install.host_path("/etc/hosts"))

    def chown_tree(self) -> None:
        """Give the instance to the asterisk user so it can read prompts, write spool and logs."""
        uid, gid = self.install.uid_gid
        os.lchown(self.host(), uid, gid)
        for root, dirs, files in os.walk(self.host()):
            for name in (*dirs, *files):
                os.lchown(os.path.join(root, name), uid, gid)

    def remove(self) -> None:
        """Delete the instance folder (tests)."""
        shutil.rmtree(self.host(), ignore_errors=True)
