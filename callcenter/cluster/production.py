"""A production SIP edge machine: Kamailio's files from the hotline config's ``edge`` section
(`callcenter edge render|reload`, hotline1022-edge.service).

The same template as `make cluster` (templates/kamailio.cfg.j2), with the carrier's networks,
the listen address (the edges' floating address) and the nodes written in the config; the
operators' HA1 digests and the SIP guard's settings from the rest of it, as on a node.

The files go to one folder (``/var/lib/hotline1022-edge`` by default for root), owned
root:kamailio 1770: Kamailio, running as ``kamailio``, reads its config (0640 root:kamailio:
the operators' digests are for it alone) and creates its control socket there; the sticky bit
keeps it from replacing root's files. A new config is checked first by the real
``kamailio -c`` in a private folder inside that one; only then are the files replaced (each
atomically, dispatcher.list before kamailio.cfg). A refused config leaves the old files.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from callcenter.cluster.edge import (
    EdgeError,
    EdgeNode,
    EdgeSettings,
    ctl_socket,
    edge_operators,
    edge_settings_for,
    kamailio_binary,
    render_edge_texts,
)
from callcenter.config.model import HotlineConfig
from callcenter.config.settings import Settings
from callcenter.ops.files import write_atomic

EDGE_DIR = Path("/var/lib/hotline1022-edge")
EDGE_GROUP = "kamailio"  # Debian's kamailio package's account
# dispatcher.list first: a kamailio.cfg never names nodes that are not written yet.
FILES = ("dispatcher.list", "kamailio.cfg")


class NoEdgeSection(ValueError):
    """The hotline config has no ``edge`` section: this machine is no production edge."""


def default_edge_dir(settings: Settings) -> Path:
    """HOTLINE_EDGE_DIR, else /var/lib/hotline1022-edge for root (the unit's folder), else
    STATE/edge (a developer's checkout), as the PBX's cache folder is chosen."""
    if os.environ.get("HOTLINE_EDGE_DIR"):
        return Path(os.environ["HOTLINE_EDGE_DIR"])
    if os.geteuid() == 0:
        return EDGE_DIR
    return settings.state_dir / "edge"


def production_edge(config: HotlineConfig) -> tuple[EdgeSettings, list[EdgeNode]]:
    """The edge's settings and nodes from the config's ``edge`` section; its operators (with
    their passwords as `callcenter run` finds them: environment or files) and ``sip_guard``
    as `make cluster` takes them."""
    edge = config.edge
    if edge is None:
        raise NoEdgeSection(f"{config.source} has no edge: section")
    base = {"trunk": {"trusted_networks": list(edge.carrier_networks)}}
    # Operators who must use TLS register at a node's TLS port here: the production edge has
    # no TLS listener yet (`make cluster`'s has: edge_tls_for).
    operators, _ = edge_operators(config)
    settings = edge_settings_for(config, base, edge.host, edge.port, operators)
    settings = dataclasses.replace(settings, ping_interval_s=edge.ping_interval_s)
    return settings, [EdgeNode(n.name, n.host, n.port) for n in edge.nodes]


def edge_gid(group: str | None = EDGE_GROUP) -> int | None:
    """The group that may read the edge's files: kamailio's when root renders and it exists;
    None (the caller's own) otherwise."""
    if group is None or os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def prepare_folder(folder: Path, gid: int | None) -> None:
    """The folder: root:GROUP 1770 (Kamailio makes its control socket there, cannot touch
    root's files), or the caller's own 0750 when no group is given."""
    folder.mkdir(parents=True, exist_ok=True)
    if gid is not None:
        os.chown(folder, 0, gid)
        os.chmod(folder, 0o1770)
    else:
        os.chmod(folder, 0o750)


def check_config(cfg: Path) -> None:
    """``kamailio -c``: it parses, its modules load and take their parameters."""
    try:
        out = subprocess.run([kamailio_binary(), "-c", "-f", str(cfg)], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise EdgeError(f"kamailio -c {cfg} did not finish within 60 s") from None
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines()
                 if "ERROR" in line or "CRITICAL" in line] or out.stderr.splitlines()[-10:]
        raise EdgeError("kamailio refused the new config:\n" + "\n".join(lines[-15:]))


def render_checked(settings: EdgeSettings, nodes: Sequence[EdgeNode], folder: Path,
                   gid: int | None = None) -> list[str]:
    """Render the edge into ``folder`` once ``kamailio -c`` accepts it; the names of the files
    whose content changed. Raises EdgeError (nothing in ``folder`` replaced) when Kamailio
    refuses it, ValueError when there is no node."""
    prepare_folder(folder, gid)
    texts = render_edge_texts(settings, nodes, folder)
    # The check runs on the same texts rendered for a private folder (their paths name it):
    # the files in force are replaced only by a config Kamailio has accepted.
    with tempfile.TemporaryDirectory(prefix=".check-", dir=folder) as tmp:
        staging = Path(tmp)
        staged = render_edge_texts(settings, nodes, staging)
        if {n: t.replace(str(staging), str(folder)) for n, t in staged.items()} != texts:
            raise EdgeError("the checked config differs from the one to install (a path "
                            "outside the edge's folder depends on it?): nothing replaced")
        for name, text in staged.items():
            write_atomic(staging / name, text, 0o600)
        check_config(staging / "kamailio.cfg")
    owner = (0, gid) if gid is not None else None
    changed = []
    for name in (*FILES, *sorted(set(texts) - set(FILES))):
        path = folder / name
        try:
            old: str | None = path.read_text()
        except (OSError, UnicodeDecodeError):
            old = None
        write_atomic(path, texts[name], 0o640, owner=owner)  # owner and mode set each time
        if old != texts[name]:
            changed.append(name)
    return changed


def reload_dispatcher(folder: Path, timeout: float = 10.0) -> None:
    """``kamcmd dispatcher.reload`` on the running edge's control socket: it re-reads
    dispatcher.list (nodes added, removed, moved). Raises EdgeError when it cannot."""
    kamcmd = shutil.which("kamcmd") or shutil.which("kamcmd", path="/usr/sbin:/sbin")
    if not kamcmd:
        raise EdgeError("kamcmd is not installed (Debian's kamailio package has it)")
    sock = ctl_socket(folder)
    try:
        out = subprocess.run([kamcmd, "-s", f"unix:{sock}", "dispatcher.reload"],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgeError(f"the edge did not answer on {sock} within {timeout:g} s") from None
    if out.returncode != 0:
        raise EdgeError(f"kamcmd dispatcher.reload on {sock} failed (is the edge running? "
                        f"systemctl status hotline1022-edge): "
                        f"{(out.stderr or out.stdout).strip()[-500:]}")
