"""Start, watch and stop one Asterisk instance (in the foreground, owned by us)."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from callcenter.ops.processes import release_guard, spawn, stop_child_group
from callcenter.pbx.layout import PbxLayout

log = logging.getLogger(__name__)


class PbxStartError(RuntimeError):
    """Asterisk did not come up; carries the tail of its log."""


def asterisk_argv(layout: PbxLayout, *extra: str) -> list[str]:
    """The command that runs this instance's Asterisk (chrooted when needed, as its user)."""
    install = layout.install
    args = ["-C", layout.conf_file, *extra]
    if os.geteuid() == 0 and install.asterisk_user() is not None:
        # Debian's files belong to the asterisk user: run as it, never as root.
        args = ["-U", "asterisk", "-G", "asterisk", *args]
    return install.command(*args)


class AsteriskProcess:
    """A running Asterisk bound to one instance layout."""

    def __init__(self, layout: PbxLayout, ari_url: str, ari_user: str, ari_password: str):
        self.layout = layout
        self.ari_url = ari_url.rstrip("/")
        self._auth = base64.b64encode(f"{ari_user}:{ari_password}".encode()).decode()
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self, *extra: str) -> list[str]:
        return asterisk_argv(self.layout, *extra)

    def start(self, timeout: float = 60.0) -> None:
        """Start in the foreground (-f) and wait until ARI answers."""
        out = open(self.layout.host("log") / "console.log", "ab")  # noqa: SIM115
        # guard: Asterisk drops to its own user, which clears the death signal; a watcher
        # process stops it when we die without stopping it (kill -9, OOM killer).
        self.proc = spawn(
            "asterisk", self._argv("-f", "-n"), guard=True, stdin=subprocess.DEVNULL,
            stdout=out, stderr=out,
            start_new_session=True,  # Ctrl-C in the terminal goes to us; we stop it in order
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PbxStartError(
                    f"Asterisk exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.ari_ready():
                log.info("Asterisk %s up (pid %d)", self.layout.install.version, self.proc.pid)
                return
            time.sleep(0.1)
        self.stop()
        raise PbxStartError(f"ARI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def ari_ready(self) -> bool:
        req = urllib.request.Request(
            f"{self.ari_url}/ari/asterisk/info", headers={"Authorization": f"Basic {self._auth}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:  # noqa: S310 - loopback ARI
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def rx(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command on the running Asterisk (asterisk -rx)."""
        proc = subprocess.run(
            self.layout.install.command("-C", self.layout.conf_file, "-rx", command),
            capture_output=True, text=True, timeout=timeout,
        )
        return proc.stdout

    def log_tail(self, lines: int = 30) -> str:
        texts = []
        for name in ("messages.log", "console.log"):
            p: Path = self.layout.host("log") / name
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-lines:]
                texts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(texts)

    def stop(self, timeout: float = 10.0) -> None:
        """core stop now, then SIGTERM, then SIGKILL: never leave an Asterisk behind."""
        if self.proc is None:
            return
        try:
            self._stop(timeout)
        finally:
            release_guard(self.proc)

    def _stop(self, timeout: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return
        try:
            self.rx("core stop now", timeout=5)
        except (subprocess.TimeoutExpired, OSError):
            pass
        stop_child_group(self.proc, ((None, timeout), (signal.SIGTERM, 5.0),
                                     (signal.SIGKILL, 5.0)))
        log.info("Asterisk stopped")
