"""The cluster's nodes as one config file each, derived from the hotline's own (pure: a mapping
in, mappings out; no I/O).

Node ``i`` (1-based) is the hotline's config with its own name (``service.node``: every call
record it writes carries it), its own Stasis application, ports and RTP range, and a trunk that
trusts only the edge (Kamailio): the carrier reaches the nodes through the edge alone. The
tenants, pools, IVR and operators are the same on every node; pools and the queue are shared
through Redis (keyed per tenant), so limits hold across nodes.

Ports, with the edge on ``edge_port`` (5060): node i's SIP on edge_port + 10*i (5070, 5080 ...),
its operators' TLS one above; ARI, AMI and the console 10*(i-1) above the config's; the
config's RTP range cut into equal parts. Operators register at the edge (``trunk.edge``),
over UDP or over TLS (the edge's TLS port: edge_port + 1), which any node reaches them
through.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

NODE_PORT_STEP = 10
MAX_NODES = 8


@dataclass(frozen=True)
class NodePlan:
    """One node: its name, the host its trunk listens on, its SIP port, and its config."""

    name: str
    index: int
    sip_host: str
    sip_port: int
    http_port: int
    config: dict[str, Any]


def plan_nodes(base: dict[str, Any], count: int, edge_host: str = "127.0.0.1",
               edge_port: int = 5060) -> list[NodePlan]:
    """``count`` node configs from the hotline's config data ``base`` (as read from YAML)."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"nodes: expected 1 to {MAX_NODES}, got {count}")
    service = base.get("service") or {}
    trunk = base.get("trunk") or {}
    rtp_start = int(trunk.get("rtp_start", 10000))
    rtp_end = int(trunk.get("rtp_end", 20000))
    share = (rtp_end - rtp_start + 1) // count
    if share < 100:
        raise ValueError(f"trunk.rtp_start..rtp_end ({rtp_start}-{rtp_end}) is too small for "
                         f"{count} nodes: expected at least 100 RTP ports each")
    stasis = str(service.get("stasis_app", "hotline"))
    plans = []
    for i in range(1, count + 1):
        data = copy.deepcopy(base)
        offset = NODE_PORT_STEP * (i - 1)
        name = f"node{i}"
        svc = data.setdefault("service", {})
        svc["node"] = name
        svc["stasis_app"] = f"{stasis}-{name}"
        svc["ari_port"] = int(service.get("ari_port", 8088)) + offset
        svc["ami_port"] = int(service.get("ami_port", 5038)) + offset
        svc["http_port"] = int(service.get("http_port", 8022)) + offset
        t = data.setdefault("trunk", {})
        sip_port = edge_port + NODE_PORT_STEP * i
        t["bind"] = "127.0.0.1" if edge_host.startswith("127.") else t.get("bind", "0.0.0.0")
        t["port"] = sip_port
        # Only the edge reaches a node's trunk: the carrier's networks are the edge's business.
        t["trusted_networks"] = [f"{edge_host}/32"]
        # Operators register at the edge (over UDP or TLS); the node reaches them through it.
        t["edge"] = {"host": edge_host, "port": edge_port, "tls": True}
        t["rtp_start"] = rtp_start + share * (i - 1)
        t["rtp_end"] = rtp_start + share * i - 1
        tls = data.get("sip_tls") or {}
        data["sip_tls"] = {**tls, "port": sip_port + 1}
        plans.append(NodePlan(name, i, str(t["bind"]), sip_port, svc["http_port"], data))
    return plans


@dataclass(frozen=True)
class PlannedPort:
    """A port a node (or the edge) will listen on: who, what, where, over which transport."""

    node: str  # "node1" ... or "edge"
    what: str  # SIP, SIP TLS, ARI, AMI, console
    host: str
    port: int
    transport: str  # "udp" | "tcp"

    def describe(self) -> str:
        return f"{self.node} {self.what} ({self.transport} {self.host}:{self.port})"


def planned_ports(plans: list[NodePlan], edge_host: str = "127.0.0.1",
                  edge_port: int = 5060) -> list[PlannedPort]:
    """Every port the cluster will listen on: the edge's SIP (UDP) and SIP TLS (edge_port + 1,
    TCP), then each node's SIP (UDP), its
    operators' TLS, ARI, AMI and each app's console (TCP), binds as the config gives them
    (defaults as config/model.py's)."""
    ports = [PlannedPort("edge", "SIP", edge_host, edge_port, "udp"),
             PlannedPort("edge", "SIP TLS", edge_host, edge_port + 1, "tcp")]
    for p in plans:
        svc = p.config.get("service") or {}
        ports += [
            PlannedPort(p.name, "SIP", p.sip_host, p.sip_port, "udp"),
            PlannedPort(p.name, "SIP TLS", p.sip_host, int(p.config["sip_tls"]["port"]), "tcp"),
            PlannedPort(p.name, "ARI", str(svc.get("ari_bind", "127.0.0.1")),
                        int(svc["ari_port"]), "tcp"),
            PlannedPort(p.name, "AMI", str(svc.get("ami_bind", "127.0.0.1")),
                        int(svc["ami_port"]), "tcp"),
        ]
        # One console per app process (service.app_instances): slot n on http_port + n - 1.
        apps = int(svc.get("app_instances", 1))
        ports += [PlannedPort(p.name, "console" if apps == 1 else f"console (app {slot})",
                              str(svc.get("http_bind", "127.0.0.1")),
                              int(svc["http_port"]) + slot - 1, "tcp")
                  for slot in range(1, apps + 1)]
    return ports


def _overlap(a: str, b: str) -> bool:
    """Two binds that share a port: the same address, or either on every address."""
    return a == b or "0.0.0.0" in (a, b)


def port_clashes(ports: list[PlannedPort]) -> list[str]:
    """Pairs of planned ports that would take the same port (the plan's own steps meeting
    the config's ports, e.g. an ARI port 10 below the console's): one line each, naming both."""
    clashes = []
    for i, a in enumerate(ports):
        for b in ports[i + 1:]:
            if (a.port == b.port and a.transport == b.transport
                    and _overlap(a.host, b.host)):
                clashes.append(f"{a.describe()} and {b.describe()} would share port {a.port}")
    return clashes
