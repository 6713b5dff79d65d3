"""Redis for live state: REDIS_URL when it answers, else a private redis-server we own."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

from callcenter.ops.processes import RunAs, spawn

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """Neither REDIS_URL nor a private redis-server could be used."""


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis at url answers PING."""
    from callcenter.redis_clients import RedisTarget
    from callcenter.redis_clients import answers as target_answers

    return target_answers(RedisTarget(url), timeout)


class PrivateRedis:
    """A redis-server on a unix socket only (no TCP port), nothing kept on disk."""

    def __init__(self, socket_path: Path, run_as: RunAs | None = None):
        self.socket_path = socket_path
        self.run_as = run_as  # a root run starts it as the app's user (owner of the socket)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RedisUnavailable("redis-server is not installed and REDIS_URL is not set "
                                   "(run `make deps`, or set REDIS_URL)")
        if answers(self.url):
            log.info("private Redis already running on %s", self.socket_path)
            return
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self.proc = spawn(
            "redis-server", [binary, "--port", "0", "--unixsocket", str(self.socket_path),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", str(self.socket_path.parent), "--logfile", "", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            **(self.run_as.popen() if self.run_as else {}),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with {self.proc.returncode}")
            if answers(self.url):
                log.info("private Redis started on %s", self.socket_path)
                return
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable("private redis-server did not answer in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            log.info("private Redis stopped")
