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
which any node reaches them through.
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
        # Operators register at the edge; the node reaches them through it.
        t["edge"] = {"host": edge_host, "port": edge_port}
        t["rtp_start"] = rtp_start + share * (i - 1)
        t["rtp_end"] = rtp_start + share * i - 1
        tls = data.get("sip_tls") or {}
        data["sip_tls"] = {**tls, "port": sip_port + 1}
        plans.append(NodePlan(name, i, str(t["bind"]), sip_port, svc["http_port"], data))
    return plans
