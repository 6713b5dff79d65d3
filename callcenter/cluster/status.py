"""`callcenter cluster status`: each node of the running cluster, from the run's state file and
run records, with the edge's (Kamailio's dispatcher) view of it when the edge answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callcenter.cluster.edge import EdgeNode, EdgeSettings, Kamailio
from callcenter.ops.processes import RunRecord


def node_status(state: dict[str, Any], run_folder: Path) -> dict[str, Any]:
    """``{"nodes": [{"name", "state", "sip", "asterisk_pid", "app_pids", "edge"}]}``.

    ``state``: "up" when its Asterisk runs and the edge routes to it; "down" when it runs but
    the edge does not route to it (no answer to the probes); "stopped" when its Asterisk is
    not running; "running" when it runs and the edge cannot be asked.
    """
    nodes = state.get("nodes") or []
    edge_info = state.get("edge") or {}
    edge_view: dict[str, str] = {}
    if edge_info.get("workdir"):
        host, _, port = str(edge_info.get("sip", "127.0.0.1:5060")).rpartition(":")
        edge_nodes = []
        for n in nodes:
            nhost, _, nport = str(n["sip"]).rpartition(":")
            edge_nodes.append(EdgeNode(n["name"], nhost, int(nport)))
        edge = Kamailio(Path(edge_info["workdir"]), EdgeSettings(host, int(port)), edge_nodes)
        edge_view = edge.node_states()
    out = []
    for n in nodes:
        marks = [m for m in RunRecord(run_folder, n["instance"]).read() if m.alive()]
        asterisk = next((m.pid for m in marks if m.name == "asterisk"), None)
        apps = sorted(m.pid for m in marks if m.name == "app" or m.name.startswith("app-"))
        seen = edge_view.get(n["name"], "unknown")
        if asterisk is None:
            status = "stopped"
        elif seen in ("up", "down"):
            status = seen
        else:
            status = "running"
        out.append({"name": n["name"], "state": status, "sip": n["sip"],
                    "asterisk_pid": asterisk, "app_pids": apps, "edge": seen})
    result: dict[str, Any] = {"nodes": out}
    if state.get("redis"):
        result["redis"] = redis_status(state["redis"])
    return result


def redis_status(redis_info: dict[str, Any]) -> dict[str, Any]:
    """``{"master_name", "sentinels", "primary"}``: the primary as the first sentinel that
    answers names it now (None when none answers)."""
    import redis

    name = str(redis_info.get("master_name", "hotline"))
    sentinels = [str(s) for s in redis_info.get("sentinels") or []]
    primary: str | None = None
    for address in sentinels:
        host, _, port = address.rpartition(":")
        try:
            with redis.Redis(host, int(port), socket_timeout=1, socket_connect_timeout=1) as s:
                addr = s.sentinel_get_master_addr_by_name(name)
        except (redis.RedisError, OSError, ValueError):
            continue
        if addr:
            h = addr[0].decode() if isinstance(addr[0], bytes) else str(addr[0])
            primary = f"{h}:{int(addr[1])}"
            break
    return {"master_name": name, "sentinels": sentinels, "primary": primary,
            "private": bool(redis_info.get("private"))}
