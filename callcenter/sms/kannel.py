"""Kannel as a process we own: render kannel.conf, start bearerbox + smsbox (+ fakesmsc), stop.

Debian's `kannel` package ships an init script and /etc/kannel/kannel.conf (wapbox on
13000-13002); we use neither: our binaries run in the foreground with our own config in
STATE_DIR/kannel/, on ports of our own (see `SmsSettings`), all bound to 127.0.0.1.

Order up: bearerbox (admin HTTP answers), smsbox, and with the test SMSC fakesmsc; ready
when bearerbox's status shows the smsbox on-line (and the fake SMSC online) and smsbox's
sendsms port answers. Order down: smsbox (no new requests), bearerbox (its spool keeps what
was accepted), fakesmsc; each SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import jinja2

from callcenter.ops.files import write_atomic
from callcenter.ops.processes import RunAs, spawn
from callcenter.runtime.ports import lease_ports
from callcenter.sms.config import LOOPBACK, SmsSettings
from callcenter.sms.credentials import KannelSecrets
from callcenter.sms.parts import MAX_PARTS

log = logging.getLogger(__name__)

# Package data (callcenter/sms/templates/kannel.conf.j2), next to this module.
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
SBIN = ("/usr/sbin", "/usr/local/sbin")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")  # Debian's kannel-extras
# fakesmsc needs one MO message template even with `-m 0` (send none); never sent.
FAKESMSC_IDLE_MO = "1022 1022 text nop"
_FORBIDDEN_IN_CONF = set('"\\\n\r#')  # what would end a quoted kannel.conf value
SMSBOX_STARTS = 3  # smsbox may panic on its first link to a just-started bearerbox (below)


class KannelUnavailable(RuntimeError):
    """The Kannel binaries are not installed (Debian packages kannel, kannel-extras)."""


class KannelStartError(RuntimeError):
    """Kannel did not come up; carries the tail of its logs."""


@dataclass(frozen=True)
class KannelBinaries:
    """Where bearerbox, smsbox and (for the test SMSC) fakesmsc are."""

    bearerbox: str
    smsbox: str
    fakesmsc: str | None


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN:  # /usr/sbin is not on every user's PATH
        path = Path(folder) / name
        if os.access(path, os.X_OK):
            return str(path)
    return None


def find_binaries(need_fakesmsc: bool = True) -> KannelBinaries:
    """The installed binaries, or KannelUnavailable naming the missing package."""
    bearerbox, smsbox = _which("bearerbox"), _which("smsbox")
    if not bearerbox or not smsbox:
        raise KannelUnavailable("bearerbox/smsbox not found: install the Debian package "
                                "`kannel` (make deps)")
    fake = str(FAKESMSC) if os.access(FAKESMSC, os.X_OK) else None
    if need_fakesmsc and fake is None:
        raise KannelUnavailable(f"{FAKESMSC} not found: install the Debian package "
                                "`kannel-extras` (make deps), or configure a real SMSC "
                                "(HOTLINE_KANNEL_SMSC=/path/to/smsc.conf)")
    return KannelBinaries(bearerbox, smsbox, fake)


def render_config(settings: SmsSettings, secrets: KannelSecrets, directory: Path,
                  mo_url: str | None = None) -> str:
    """kannel.conf for these settings, with every file under `directory`; citizens' SMS go
    to `mo_url` (see `callcenter.sms.mo.mo_url`), or nowhere without it."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Kannel config, not HTML
    )
    if not settings.fake and not Path(settings.smsc).is_file():
        raise KannelStartError(f"HOTLINE_KANNEL_SMSC={settings.smsc}: expected 'fake' or the "
                               "path of a file with the SMSC's `group = smsc` block")
    if mo_url is not None and _FORBIDDEN_IN_CONF & set(mo_url):
        raise KannelStartError(f"{mo_url!r}: the MO URL must not hold quotes, '#' or newlines")
    return env.get_template("kannel.conf.j2").render(
        s=settings, secrets=secrets, dir=str(directory.resolve()), max_parts=MAX_PARTS,
        mo_url=mo_url)


class KannelGateway:
    """bearerbox + smsbox (+ fakesmsc) for one state folder; start() and stop() may repeat."""

    def __init__(self, settings: SmsSettings, secrets: KannelSecrets, directory: Path,
                 run_as: RunAs | None = None, *, mo_url: str | None = None,
                 interactive_fakesmsc: bool = False):
        self.settings = settings
        self.secrets = secrets
        self.directory = directory
        self.run_as = run_as  # a root run starts the boxes unprivileged (smsbox serves HTTP)
        self.mo_url = mo_url  # where smsbox passes citizens' SMS (callcenter.sms.mo)
        # Tests: fakesmsc reads MO lines ("FROM TO text WORDS") on its stdin (`send_mo`).
        # It then reads what bearerbox sends only between lines (every ~3 s): not for tests
        # that wait for texts or delivery reports.
        self.interactive_fakesmsc = interactive_fakesmsc
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stdins: list[IO[bytes]] = []

    @property
    def conf_file(self) -> Path:
        return self.directory / "kannel.conf"

    @property
    def fakesmsc_log(self) -> Path:
        """What fakesmsc received (its debug log): see `callcenter.sms.fakesmsc`."""
        return self.directory / "fakesmsc.log"

    @property
    def sendsms_url(self) -> str:
        return self.settings.sendsms_url

    def _ports(self) -> dict[str, int]:
        s = self.settings
        ports = {"admin": s.admin_port, "smsbox": s.smsbox_port, "sendsms": s.sendsms_port}
        if s.fake:
            ports["fake SMSC"] = s.fake_smsc_port
        return ports

    def _check_ports_free(self) -> None:
        """Refuse to start over a leftover Kannel: it would answer with other credentials."""
        for what, port in self._ports().items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As Kannel binds: connections of a just-stopped Kannel in TIME_WAIT are fine.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((LOOPBACK, port))
                except OSError as e:
                    raise KannelStartError(
                        f"Kannel {what} port {LOOPBACK}:{port} is already in use ({e.strerror});"
                        " is an earlier hotline's Kannel still running? (pgrep -a bearerbox)"
                    ) from None

    def _spawn(self, name: str, argv: list[str], out: Path, stdin: int = subprocess.DEVNULL
               ) -> None:
        f: IO[bytes] = open(out, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.procs[name] = spawn(
                name, argv, stdin=stdin, stdout=f, stderr=f, cwd=self.directory,
                start_new_session=True,  # Ctrl-C goes to us; we stop Kannel in order
                **(self.run_as.popen() if self.run_as else {}),
            )
        finally:
            f.close()

    def start(self, timeout: float = 20.0) -> None:
        """Render the config, start the boxes, and wait until sendsms is usable."""
        if self.running():
            return
        bins = find_binaries(need_fakesmsc=self.settings.fake)
        self._check_ports_free()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "spool").mkdir(exist_ok=True)
        text = render_config(self.settings, self.secrets, self.directory, self.mo_url)
        write_atomic(self.conf_file, text, 0o600)  # holds passwords
        if self.run_as is not None:  # the boxes read their config and write logs and spool here
            self.run_as.chown(self.directory, recursive=True)
        conf = str(self.conf_file)
        deadline = time.monotonic() + timeout
        try:
            # -v 4: only panics on stderr; the boxes' own logs (log-level 1) are in the folder.
            self._spawn("bearerbox", [bins.bearerbox, "-v", "4", conf],
                        self.directory / "bearerbox.out")
            self._wait(lambda: self._status() is not None, deadline, "bearerbox admin HTTP")
            smsbox = [bins.smsbox, "-v", "4", conf]
            self._spawn("smsbox", smsbox, self.directory / "smsbox.out")
            if self.settings.fake:
                assert bins.fakesmsc is not None
                fake = [bins.fakesmsc, "-H", LOOPBACK, "-r", str(self.settings.fake_smsc_port)]
                if self.interactive_fakesmsc:  # no message argument: MO lines from stdin
                    self._spawn("fakesmsc", fake, self.fakesmsc_log, stdin=subprocess.PIPE)
                else:
                    self._spawn("fakesmsc", [*fake, "-m", "0", FAKESMSC_IDLE_MO],
                                self.fakesmsc_log)
            for attempt in range(1, SMSBOX_STARTS + 1):
                try:
                    self._wait(self.ready, deadline, "smsbox and SMSC on-line")
                    break
                except KannelStartError:
                    if attempt == SMSBOX_STARTS or not self._only_smsbox_died():
                        raise
                # Seen with Kannel 1.4.5 under load: smsbox connects to a just-started
                # bearerbox, the link drops at once and smsbox panics (gwlib/conn.c lock_out:
                # conn != NULL). Bearerbox is fine; a second smsbox connects.
                log.warning("smsbox exited with %s while starting (%s); starting it again",
                            self.procs["smsbox"].returncode, self._last_line("smsbox.log"))
                self._spawn("smsbox", smsbox, self.directory / "smsbox.out")
        except BaseException:
            self.stop()
            raise
        log.info("Kannel up: sendsms on %s (SMSC: %s)", self.sendsms_url,
                 "fakesmsc" if self.settings.fake else self.settings.smsc)

    def send_mo(self, sender: str, receiver: str, text: str) -> None:
        """The fake SMSC delivers an SMS from `sender` (a phone) to `receiver` (tests).

        Needs ``interactive_fakesmsc``; `text` is sent as a plain ("text") message. Send the
        next one after this one arrived: fakesmsc reads its stdin through stdio and waits on
        the descriptor, so a second line written at once sits in its buffer until a third.
        """
        proc = self.procs.get("fakesmsc")
        if not self.interactive_fakesmsc or proc is None or proc.stdin is None:
            raise RuntimeError("send_mo needs a gateway started with interactive_fakesmsc")
        line = f"{sender} {receiver} text {text}"
        if "\n" in line or "\r" in line:
            raise ValueError("one line per message: no newline in the text")
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    def _only_smsbox_died(self) -> bool:
        """smsbox has exited while bearerbox (and the fake SMSC) still run."""
        return self.procs["smsbox"].poll() is not None and all(
            proc.poll() is None for name, proc in self.procs.items() if name != "smsbox")

    def _last_line(self, name: str) -> str:
        try:
            lines = (self.directory / name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "empty log"

    def _wait(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise KannelStartError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail()}")
            if check():
                return
            time.sleep(0.05)
        raise KannelStartError(f"Kannel: no {what} in time:\n{self.log_tail()}")

    def _status(self) -> str | None:
        query = urllib.parse.urlencode({"password": self.secrets.admin_password})
        url = f"http://{LOOPBACK}:{self.settings.admin_port}/status.txt?{query}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                return str(resp.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError):
            return None

    def ready(self) -> bool:
        """Bearerbox sees the smsbox (and the fake SMSC) on-line, and sendsms answers."""
        status = self._status()
        if status is None or "smsbox:" not in status or "on-line" not in status:
            return False
        if self.settings.fake and "(online" not in status:
            return False
        try:
            with socket.create_connection((LOOPBACK, self.settings.sendsms_port), timeout=1):
                return True
        except OSError:
            return False

    def running(self) -> bool:
        """True while any of our boxes is alive."""
        return any(p.poll() is None for p in self.procs.values())

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of each box's log, for error messages."""
        texts = []
        for name in ("bearerbox.log", "smsbox.log", "bearerbox.out", "smsbox.out",
                     "fakesmsc.log"):
            path = self.directory / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                texts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(texts)

    def stop(self, timeout: float = 10.0) -> None:
        """smsbox, bearerbox, fakesmsc: SIGTERM, wait, then SIGKILL. Never leaves one behind."""
        for name in ("smsbox", "bearerbox", "fakesmsc"):
            proc = self.procs.pop(name, None)
            if proc is not None and proc.stdin is not None:
                # Closed after the process ends: fakesmsc (interactive) crashes on EOF.
                self._stdins.append(proc.stdin)
            if proc is None or proc.poll() is not None:
                continue
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop on %s", name, signal.Signals(sig).name)
        self._stop_strays()
        for pipe in self._stdins:
            with contextlib.suppress(OSError):
                pipe.close()
        self._stdins.clear()
        log.info("Kannel stopped")

    def _strays(self) -> list[int]:
        """Processes started with this gateway's config file that we do not hold: a stop
        signal landing between a box's start and its registration leaves one unowned."""
        needle = str(self.conf_file).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if needle in argv and state != "Z":
                found.append(int(entry.name))
        return found

    def _stop_strays(self, timeout: float = 5.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            strays = self._strays()
            if not strays:
                return
            log.warning("stopping %d Kannel process(es) we did not hold: %s", len(strays),
                        strays)
            for pid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._strays():
                time.sleep(0.05)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_settings(base: SmsSettings | None = None) -> SmsSettings:
    """`base` (default settings) with four free loopback ports: for tests and benchmarks.

    The ports are drawn below the kernel's ephemeral range: a port the kernel may hand to an
    outgoing connection at any moment (ours, Kannel's) could be gone by the time the boxes
    bind it.
    """
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < 4:
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        if not lease_ports([port]):  # another test or benchmark process has it
            continue
        ports.append(port)
    return dataclasses.replace(base or SmsSettings(), admin_port=ports[0],
                               smsbox_port=ports[1], fake_smsc_port=ports[2],
                               sendsms_port=ports[3])


def start_for_run(settings: SmsSettings, secrets: KannelSecrets,
                  state_dir: Path, run_as: RunAs | None = None,
                  mo_url: str | None = None) -> KannelGateway | None:
    """For `callcenter run`: our own Kannel, or None (SMS off, external gateway, not installed).

    Without Kannel the hotline still runs: texts wait in the outbox until a gateway is there.
    """
    if not settings.enabled:
        log.info("SMS off (HOTLINE_SMS=0): texts stay in the outbox")
        return None
    if settings.gateway_url:
        log.info("SMS through the existing Kannel at %s", settings.gateway_url)
        return None
    gateway = KannelGateway(settings, secrets, state_dir / "kannel", run_as, mo_url=mo_url)
    try:
        gateway.start()
    except (KannelUnavailable, KannelStartError) as e:
        # Calls matter more than texts: the hotline runs, the texts wait in the outbox.
        log.error("SMS gateway not started: %s; texts wait in the outbox", e)
        return None
    return gateway
