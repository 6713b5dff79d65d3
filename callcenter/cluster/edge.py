"""The cluster's SIP edge: its settings taken from the hotline config (the carrier's networks,
the SIP guard, the operators' digests, the TLS pair), Kamailio's config rendered from
templates/kamailio.cfg.j2, and Kamailio itself run in the foreground
(``kamailio -f CFG -DD -E -w DIR``), owned by us. `make cluster` (runner.py) and a production
edge (production.py) both take their settings from here."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from callcenter.config.model import HotlineConfig
from callcenter.config.secrets import config_dir, operator_passwords
from callcenter.ops.files import write_atomic
from callcenter.ops.processes import release_guard, spawn, stop_child_group
from callcenter.pbx.render import SIP_REALM, operator_accounts, scanner_user_agent_regex
from callcenter.pbx.tls import ensure_self_signed, self_signed_paths

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")
DISPATCHER_SET = 1
ROUND_ROBIN = 4  # ds_select_dst's algorithm 4
MAX_EXPIRES = 3600  # the longest registration the edge accepts (s)


class EdgeError(RuntimeError):
    """Kamailio is missing, refused its config or did not come up."""


@dataclass(frozen=True)
class EdgeNode:
    """One Asterisk node as the edge reaches it (its trunk transport)."""

    name: str
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"


@dataclass(frozen=True)
class Pike:
    """Flood limit per source: more than ``requests`` requests in ``unit_s`` seconds blocks the
    source until it has been quiet for ``remove_latency_s``."""

    unit_s: int = 2
    requests: int = 30
    remove_latency_s: int = 4


@dataclass(frozen=True)
class AuthGuard:
    """Wrong passwords per source at the edge, as the single node's SIP guard counts them
    (the ``sip_guard`` config section): ``max_failures`` wrong digest answers for an operator
    that exists within ``window_s`` seconds refuse the source for ``ban_s`` seconds."""

    max_failures: int = 5
    window_s: int = 60
    ban_s: int = 600

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s < 1 or self.ban_s < 1:
            raise ValueError("max_failures, window_s and ban_s of at least 1 expected")


@dataclass(frozen=True)
class EdgeTls:
    """The edge's SIP over TLS listener for operators' softphones: ``port`` on the edge's
    listen host, the certificate and key (PEM files, unencrypted key) it presents. The files
    are copied into the edge's folder at render (readable by Kamailio's account)."""

    port: int
    cert: Path
    key: Path


@dataclass(frozen=True)
class EdgeSettings:
    """Where the edge listens and who it trusts.

    ``carrier_networks``: sources whose INVITEs are citizens' calls (the carrier's SBCs);
    anything else is refused. They and the nodes are never rate limited (one carrier address
    carries every citizen's call) and never refused for wrong passwords; nor are the
    ``never_refuse`` networks (``sip_guard.never_refuse``: e.g. the operators' office).
    """

    listen_host: str = "127.0.0.1"
    listen_port: int = 5060
    carrier_networks: tuple[str, ...] = ("127.0.0.1/32",)
    ping_interval_s: int = 1
    fr_timer_ms: int = 1500
    children: int = 2
    debug: int = 2
    pike: Pike = field(default_factory=Pike)
    guard: AuthGuard = field(default_factory=AuthGuard)
    never_refuse: tuple[str, ...] = ()
    # (extension, md5 of "extension:realm:password") of each operator registering here.
    operators: tuple[tuple[str, str], ...] = ()
    # None: UDP only. Set: operators may also register (and be rung) over TLS.
    tls: EdgeTls | None = None
    # Operators who must use TLS (operators_require_tls): registering over UDP is refused.
    tls_only: tuple[str, ...] = ()


def edge_operators(config: HotlineConfig,
                   tls: bool = False) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(extension, HA1) of the operators who register at the edge, and those of them who must
    use TLS. ``tls`` (the edge has its TLS listener): every operator; otherwise all but those
    who must use TLS (they register at a node's TLS port, as without an edge). Passwords as
    `callcenter run` finds them (environment or files)."""
    accounts = [a for a in operator_accounts(config, operator_passwords(config))
                if tls or not a.tls]
    return (tuple((a.extension, a.password_digest) for a in accounts),
            tuple(a.extension for a in accounts if a.tls))


def edge_tls_for(config: HotlineConfig, folder: Path, port: int) -> EdgeTls:
    """The edge's TLS listener on ``port``: the hotline's ``sip_tls`` pair when configured,
    else a self-signed one made in ``folder`` (``sip-tls/``) as `callcenter run` makes a
    node's, on the first run, and reused (its fingerprint logged when made)."""
    ensure_self_signed(config, folder, common_name="hotline1022-edge")
    tls = config.sip_tls
    if tls.cert is not None and tls.key is not None:
        base = config_dir(config)
        return EdgeTls(port, base / tls.cert, base / tls.key)
    cert, key = self_signed_paths(folder)
    return EdgeTls(port, cert, key)


def edge_settings_for(config: HotlineConfig, base: dict[str, Any], edge_host: str,
                      edge_port: int,
                      operators: tuple[tuple[str, str], ...] = (),
                      tls: EdgeTls | None = None,
                      tls_only: tuple[str, ...] = ()) -> EdgeSettings:
    """The edge's settings from the hotline's config: the carrier's networks as written in it
    (``trunk.trusted_networks``; only 127.0.0.1 when not written), the SIP guard's settings
    (``sip_guard``: wrong passwords per source, never_refuse, the flood limit), the
    operators' digests."""
    guard, flood = config.sip_guard, config.sip_guard.flood
    return EdgeSettings(
        listen_host=edge_host, listen_port=edge_port,
        carrier_networks=tuple((base.get("trunk") or {}).get("trusted_networks")
                               or ["127.0.0.1/32"]),
        pike=Pike(unit_s=flood.unit_s, requests=flood.requests,
                  remove_latency_s=flood.remove_latency_s),
        guard=AuthGuard(max_failures=guard.max_failures, window_s=guard.window_s,
                        ban_s=guard.ban_s),
        never_refuse=guard.never_refuse,
        operators=operators, tls=tls, tls_only=tls_only)


def module_dir() -> str:
    """Where Debian's kamailio package keeps its modules."""
    for d in MODULE_DIRS:
        if Path(d).is_dir():
            return d
    return MODULE_DIRS[0]


def dispatcher_list_text(nodes: Sequence[EdgeNode]) -> str:
    """dispatcher.list: every node in set 1, its name as the destination's attribute."""
    lines = ["# setid destination flags priority attributes (rendered: do not edit)"]
    lines += [f"{DISPATCHER_SET} {n.uri} 0 0 name={n.name}" for n in nodes]
    return "\n".join(lines) + "\n"


TLS_CERT_FILE, TLS_KEY_FILE = "sip-tls.crt", "sip-tls.key"  # in the edge's folder


def render_edge_texts(settings: EdgeSettings, nodes: Sequence[EdgeNode],
                      workdir: Path) -> dict[str, str]:
    """kamailio.cfg and dispatcher.list by name (nothing written; with TLS, the config names
    the certificate and key as render_edge copies them into ``workdir``)."""
    if not nodes:
        raise ValueError("the edge needs at least one Asterisk node")
    if settings.tls is not None and settings.tls.port == settings.listen_port:
        raise ValueError(f"the edge's TLS port {settings.tls.port} is its UDP port: expected "
                         f"another (SIP over TLS is TCP, but one port for both confuses phones)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - Kamailio's config, not HTML
    node_nets = sorted({f"{n.host}/32" for n in nodes})
    ctx = {
        "debug": settings.debug, "children": settings.children,
        "listen_host": settings.listen_host, "listen_port": settings.listen_port,
        "module_dir": module_dir(), "fr_timer_ms": settings.fr_timer_ms,
        "pike": settings.pike, "ping_interval_s": settings.ping_interval_s,
        "dispatcher_list": str(workdir / "dispatcher.list"),
        "ctl_socket": str(ctl_socket(workdir)),
        "scanner_user_agents": scanner_user_agent_regex(),
        "carrier_networks": list(settings.carrier_networks),
        "trusted_networks": sorted({*settings.carrier_networks, *node_nets}),
        "never_refuse": sorted({*settings.carrier_networks, *node_nets,
                                *settings.never_refuse}),
        "guard": settings.guard,
        "algorithm": ROUND_ROBIN,
        "realm": SIP_REALM,
        "operators": [(ext, ha1) for ext, ha1 in settings.operators
                      if ext.isdigit() and all(c in "0123456789abcdef" for c in ha1)],
        "tls": None if settings.tls is None else {
            # Through Kamailio's working folder (this one: Kamailio.start), not by their
            # path: tls.so opens them after dropping to Kamailio's account, which may not be
            # let through the state folder's parents (0750, another owner); a process may
            # always follow its own /proc/self/cwd.
            "port": settings.tls.port, "cert": f"/proc/self/cwd/{TLS_CERT_FILE}",
            "key": f"/proc/self/cwd/{TLS_KEY_FILE}",
            # A phone's connection outlives its registration by a little (registrar's
            # tcp_persistent_flag sets its lifetime to the registration's expiry).
            "max_expires": MAX_EXPIRES},
        "tls_only": sorted(ext for ext in settings.tls_only if ext.isdigit()),
        "max_expires": MAX_EXPIRES,
    }
    return {"kamailio.cfg": env.get_template("kamailio.cfg.j2").render(ctx),
            "dispatcher.list": dispatcher_list_text(nodes)}


def ctl_socket(workdir: Path) -> Path:
    return workdir / "kamailio_ctl"


def render_edge(settings: EdgeSettings, nodes: Sequence[EdgeNode], workdir: Path) -> Path:
    """Write the edge's files into ``workdir``; the path of kamailio.cfg."""
    workdir.mkdir(parents=True, exist_ok=True)
    texts = render_edge_texts(settings, nodes, workdir)
    if settings.tls is not None:
        try:
            texts[TLS_CERT_FILE] = settings.tls.cert.read_text()
            texts[TLS_KEY_FILE] = settings.tls.key.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise EdgeError(f"the edge's TLS certificate or key cannot be read: {e}") from None
    for name, text in texts.items():
        write_atomic(workdir / name, text, 0o640)  # operators' digests, the key: not for all
    return workdir / "kamailio.cfg"


def kamailio_binary() -> str:
    binary = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if not binary:
        raise EdgeError("kamailio is not installed (run `make deps`: Debian's kamailio)")
    return binary


# `kamcmd dispatcher.list` prints, per destination: URI, FLAGS (A active / I inactive /
# D disabled, then P probing / X not), then its attributes.
_DS_ENTRY = re.compile(r"URI:\s*(?P<uri>\S+)\s+FLAGS:\s*(?P<flags>\S+)")


def parse_dispatcher_list(text: str) -> dict[str, str]:
    """``kamcmd dispatcher.list``'s text -> {uri: "up" | "down" | "disabled"}."""
    states = {}
    for m in _DS_ENTRY.finditer(text):
        first = m.group("flags")[:1]
        states[m.group("uri")] = {"A": "up", "I": "down", "D": "disabled"}.get(first, "unknown")
    return states


class Kamailio:
    """A Kamailio edge in the foreground: its own process group, stopped with SIGTERM."""

    def __init__(self, workdir: Path, settings: EdgeSettings, nodes: Sequence[EdgeNode]):
        self.workdir = workdir
        self.settings = settings
        self.nodes = list(nodes)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kamailio.log"

    def render(self) -> Path:
        return render_edge(self.settings, self.nodes, self.workdir)

    def check(self) -> None:
        """``kamailio -c``: the rendered config parses and its modules load."""
        cfg = self.render()
        out = subprocess.run([kamailio_binary(), "-c", "-f", cfg.name], capture_output=True,
                             text=True, timeout=30, cwd=self.workdir)
        if out.returncode != 0:
            raise EdgeError(f"kamailio refused {cfg}:\n{out.stderr[-3000:]}")

    def start(self, timeout: float = 15.0) -> None:
        """Render, start, and wait until its control socket answers."""
        cfg = self.render()
        # The config by name from its folder (cwd): the files it names relative to itself
        # (the TLS pair) are opened from there, even after Kamailio drops to its account.
        argv = [kamailio_binary(), "-f", cfg.name, "-DD", "-E", "-w", str(self.workdir)]
        if os.geteuid() == 0 and _has_user("kamailio"):
            # Never as root: the Debian package's account owns only what it is given here.
            shutil.chown(self.workdir, "kamailio", "kamailio")
            if self.settings.tls is not None:
                # tls.so reads them in its children, after the switch: readable by the group.
                for name in (TLS_CERT_FILE, TLS_KEY_FILE):
                    shutil.chown(self.workdir / name, group="kamailio")
            argv += ["-u", "kamailio", "-g", "kamailio"]
        ctl_socket(self.workdir).unlink(missing_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115
        # guard: Kamailio drops to its own user, which clears the death signal.
        self.proc = spawn("kamailio", argv, guard=True, stdin=subprocess.DEVNULL, stdout=out,
                          stderr=out, start_new_session=True, cwd=self.workdir)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgeError(f"kamailio exited with {self.proc.returncode}:\n"
                                f"{self.log_tail()}")
            if self.rpc("core.version") is not None:
                log.info("Kamailio edge up on %s:%d (pid %d)", self.settings.listen_host,
                         self.settings.listen_port, self.proc.pid)
                return
            time.sleep(0.1)
        self.stop()
        raise EdgeError(f"kamailio did not answer on its control socket:\n{self.log_tail()}")

    def rpc(self, *command: str, timeout: float = 3.0) -> str | None:
        """One ``kamcmd`` command on the control socket; its output, None when it fails."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        try:
            out = subprocess.run([kamcmd, "-s", f"unix:{ctl_socket(self.workdir)}", *command],
                                 capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    def node_states(self) -> dict[str, str]:
        """{node name: "up" | "down" | ...} as the edge's dispatcher sees them now."""
        return states_by_name(self.rpc("dispatcher.list"), self.nodes)

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group (the main process and its children), then SIGKILL."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                stop_child_group(self.proc, ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)))
            log.info("Kamailio edge stopped")
        finally:
            release_guard(self.proc)


def states_by_name(listing: str | None, nodes: Sequence[EdgeNode]) -> dict[str, str]:
    """The dispatcher's view by node name ("unknown" for all when the edge does not answer)."""
    by_uri = parse_dispatcher_list(listing or "")
    return {n.name: by_uri.get(n.uri, "unknown") for n in nodes}


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
