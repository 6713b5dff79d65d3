"""A private PostgreSQL cluster for `make cluster` when DATABASE_URL is not set.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``: initdb, postgres), a data
folder and a unix socket under the run's folder, no TCP port (``listen_addresses=''``), trust
authentication for the local socket only. Under root it runs as the service account (the
PostgreSQL server refuses root), which then owns the data. ``postgres`` is our child, stopped
by its pid (SIGINT: PostgreSQL's fast shutdown). The data stays between runs, like the SQLite
file it replaces; a different machine's operator sets DATABASE_URL instead (docs/scale-out.md).
"""

from __future__ import annotations

import getpass
import glob
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from callcenter.ops.processes import RunAs, release_guard, spawn

log = logging.getLogger(__name__)

DATABASE = "hotline"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing, or the private server did not start."""


def server_bin() -> Path:
    """The newest installed PostgreSQL server's bin folder (Debian's layout), else PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable("the PostgreSQL server is not installed (Debian: `apt-get install "
                              "postgresql`, or `make deps`), and DATABASE_URL is not set")


class PrivatePostgres:
    """initdb once, then ``postgres`` on a unix socket in ``folder``."""

    def __init__(self, folder: Path, run_as: RunAs | None = None):
        self.folder = Path(folder)
        self.run_as = run_as
        self.user = run_as.name if run_as is not None else getpass.getuser()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """For SQLAlchemy/psycopg: the socket folder as ``host`` (no password: trust)."""
        return f"postgresql+psycopg://{self.user}@/{DATABASE}?host={self.folder}"

    def _popen(self) -> dict[str, object]:
        return dict(self.run_as.popen()) if self.run_as is not None else {}

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              cwd=self.folder, **self._popen())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: "
                                      f"{(done.stderr or done.stdout).strip()[-500:]}")

    def start(self, timeout: float = 30.0) -> None:
        bin_dir = server_bin()
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o750)
        if self.run_as is not None:
            self.run_as.chown(self.folder)
        if not (self.data / "PG_VERSION").exists():
            log.info("initialising a private PostgreSQL cluster in %s", self.data)
            self._run([str(bin_dir / "initdb"), "-D", str(self.data), "-U", self.user,
                       "--auth-local=trust", "--auth-host=reject", "-E", "UTF8",
                       "--locale=C.UTF-8", "--no-instructions"])
        (self.folder / "postgres.log").touch()
        if self.run_as is not None:
            self.run_as.chown(self.folder / "postgres.log")
        log_file = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 - the child's
        try:
            self.proc = spawn(
                "postgres", [str(bin_dir / "postgres"), "-D", str(self.data),
                             "-k", str(self.folder), "-c", "listen_addresses=",
                             "-c", "max_connections=200"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, guard=self.run_as is not None,  # it changes user
                **self._popen())
        finally:
            log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {self.proc.returncode} (its "
                                          f"log: {self.folder / 'postgres.log'})")
            if self._ready(bin_dir):
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise PostgresUnavailable("the private PostgreSQL did not answer in time")
        try:
            self._run([str(bin_dir / "createdb"), "-h", str(self.folder),
                       "-U", self.user, DATABASE])
        except PostgresUnavailable as e:
            if "already exists" not in str(e):
                self.stop()
                raise
        log.info("private PostgreSQL %s on %s (pid %d)", bin_dir.parent.name, self.folder,
                 self.proc.pid)

    def _ready(self, bin_dir: Path) -> bool:
        ready = bin_dir / "pg_isready"
        if not ready.exists():
            ready = Path(shutil.which("pg_isready") or "pg_isready")
        done = subprocess.run([str(ready), "-q", "-h", str(self.folder), "-U", self.user,
                               "-d", "postgres"], capture_output=True, timeout=10)
        return done.returncode == 0

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT) by pid; SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                release_guard(self.proc)
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        release_guard(self.proc)
        log.info("private PostgreSQL stopped")
