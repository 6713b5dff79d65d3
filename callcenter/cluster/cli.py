"""`callcenter cluster run|status`: several Asterisk nodes behind Kamailio on this machine;
`callcenter edge render|reload`: a production edge machine's Kamailio files (production.py)."""

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


def _edge_files(args: argparse.Namespace, settings: Settings) -> tuple[Any, list[str]]:
    """Render the config's edge section into --out (checked by `kamailio -c` first)."""
    from pathlib import Path

    from callcenter.cli_errors import EXIT_INVALID, CommandError
    from callcenter.cluster.edge import EdgeError
    from callcenter.cluster.production import (
        NoEdgeSection,
        default_edge_dir,
        edge_gid,
        production_edge,
        render_checked,
    )
    from callcenter.config.file import load_config

    config = load_config(settings.config_path)
    try:
        edge, nodes = production_edge(config)
    except NoEdgeSection:
        raise CommandError(f"{settings.config_path} has no edge: section: this machine is "
                           "no production edge",
                           "add one (host, carrier_networks, nodes; docs/scale-out.md, "
                           "Production)", EXIT_INVALID) from None
    folder = Path(args.out) if args.out else default_edge_dir(settings)
    try:
        changed = render_checked(edge, nodes, folder, edge_gid())
    except EdgeError as e:
        raise CommandError(f"{e}\nthe files in {folder} were left as they were",
                           "fix the config (or install the missing Kamailio module) and "
                           "render again", EXIT_INVALID) from None
    what = ", ".join(changed) if changed else "nothing changed"
    print(f"rendered {folder} (checked by kamailio -c): {what}; {len(nodes)} node(s), "
          f"{len(edge.operators)} operator(s), listening on udp:{edge.listen_host}:"
          f"{edge.listen_port}")
    return folder, changed


def cmd_edge_render(args: argparse.Namespace, settings: Settings) -> int:
    """Write kamailio.cfg and dispatcher.list for this edge machine."""
    _edge_files(args, settings)
    return 0


def cmd_edge_reload(args: argparse.Namespace, settings: Settings) -> int:
    """Render, then have the running edge re-read its nodes (dispatcher.reload)."""
    from callcenter.cli_errors import CommandError
    from callcenter.cluster.edge import EdgeError
    from callcenter.cluster.production import reload_dispatcher

    folder, changed = _edge_files(args, settings)
    try:
        reload_dispatcher(folder)
    except EdgeError as e:
        raise CommandError(str(e), "start it: systemctl start hotline1022-edge") from None
    print("the edge re-read dispatcher.list (its nodes)")
    if "kamailio.cfg" in changed:
        print("kamailio.cfg changed (listen address, carrier networks, operators or SIP "
              "guard): it applies at the next restart: systemctl restart hotline1022-edge "
              "(registrations are in memory: the operators' phones register again)")
    return 0


def register(sub: Any) -> None:
    """Add `cluster run`, `cluster status`, `edge render` and `edge reload`."""
    e = sub.add_parser("edge", help="a production SIP edge machine (Kamailio): its files from "
                                    "the config's edge: section")
    esub = e.add_subparsers(dest="edge_command", required=True)
    for name, handler, text in (
            ("render", cmd_edge_render, "write kamailio.cfg and dispatcher.list, checked by "
                                        "kamailio -c first (a refused config keeps the old "
                                        "files)"),
            ("reload", cmd_edge_reload, "render, then make the running edge re-read its nodes "
                                        "(kamcmd dispatcher.reload)")):
        r = esub.add_parser(name, help=text)
        r.add_argument("--out", metavar="DIR",
                       help="the edge's folder (default: $HOTLINE_EDGE_DIR, else "
                            "/var/lib/hotline1022-edge as root, else STATE/edge)")
        r.set_defaults(handler=handler)
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
