"""`callcenter cluster run|status`: several Asterisk nodes behind Kamailio on this machine."""

from __future__ import annotations

import argparse
import json
from typing import Any

from callcenter.config.settings import Settings


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Bring up the edge and the nodes in the foreground (Ctrl-C stops them all)."""
    from callcenter.cluster.runner import run_cluster

    run_cluster(settings, args.nodes, edge_port=args.port, edge_host=args.host)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Each node: its state, SIP address, Asterisk and app pids, the edge's view of it."""
    from callcenter.cluster.runner import node_files
    from callcenter.cluster.status import node_status
    from callcenter.pbx.install import cache_dir

    state = node_files(settings)
    status = node_status(state, cache_dir() / "run")
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return 0
    if not status["nodes"]:
        print("no cluster has run here (make cluster)")
        return 1
    print(f"edge {state.get('edge', {}).get('sip', '?')}")
    if status.get("redis"):
        r = status["redis"]
        print(f"redis {r['master_name']}: primary {r['primary'] or '?'}, sentinels "
              f"{', '.join(r['sentinels'])}")
    for n in status["nodes"]:
        apps = ",".join(str(p) for p in n["app_pids"]) or "-"
        print(f"{n['name']:8} {n['state']:8} sip {n['sip']:16} asterisk "
              f"{n['asterisk_pid'] or '-'}  app {apps}  edge {n['edge']}")
    return 0


def register(sub: Any) -> None:
    """Add `cluster run` and `cluster status`."""
    c = sub.add_parser("cluster", help="several Asterisk nodes behind a Kamailio SIP edge")
    csub = c.add_subparsers(dest="cluster_command", required=True)
    r = csub.add_parser("run", help="bring up Kamailio and N nodes in the foreground")
    r.add_argument("--nodes", type=int, default=2, help="Asterisk nodes (default 2)")
    r.add_argument("--host", default="127.0.0.1", help="the edge's SIP address")
    r.add_argument("--port", type=int, default=5060, help="the edge's SIP port (UDP)")
    r.set_defaults(handler=cmd_run)
    r = csub.add_parser("status", help="the nodes of the running cluster")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_status)
