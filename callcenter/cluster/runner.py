"""`callcenter cluster run` (``make cluster``): Kamailio in front of several Asterisk nodes on
this machine, in the foreground; Ctrl-C stops everything.

Each node is what `callcenter run` brings up for one hotline (its Asterisk instance and one app
process), with a config derived from the hotline's (cluster/plan.py) written beside it as
``.cluster-nodeN.yaml`` (the IVR and secret files it names are found there). All nodes share
one Redis (live state: pools and queue keyed per tenant, so limits are exact across nodes; a
private Sentinel set when none is given) and one database (a private PostgreSQL cluster when
DATABASE_URL is not set). Order up: Redis, database (alembic upgrade head, once), each node
(Asterisk, then its app), the edge last, when every node answers. Order down: the edge first
(no new calls), then each node's app (its records flushed) and Asterisk, then Redis, then
PostgreSQL.

What the run started is recorded as `callcenter run` records it (ops/processes.RunRecord): one
record for the cluster (the run itself, Kamailio, Redis and sentinels, PostgreSQL), one per
node (its Asterisk and app), so a killed run's leftovers are stopped by the next; children
die with the run (PDEATHSIG, guards). ``STATE/cluster/cluster.json`` lists the nodes (and the
Sentinel set, the private database) for `callcenter cluster status`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from callcenter.cluster.edge import (
    EdgeNode,
    EdgeSettings,
    Kamailio,
    edge_operators,
    edge_settings_for,
    edge_tls_for,
)
from callcenter.cluster.plan import NodePlan, plan_nodes, planned_ports, port_clashes
from callcenter.config.file import load_config
from callcenter.config.secrets import load_secrets
from callcenter.config.settings import Settings
from callcenter.ops.accounts import ensure_service_account
from callcenter.ops.files import write_atomic
from callcenter.ops.processes import ProcessMark, RunAs, RunRecord
from callcenter.pbx.install import cache_dir, ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.process import AsteriskProcess, PbxStartError
from callcenter.pbx.render import render
from callcenter.pbx.tls import ensure_self_signed
from callcenter.runtime.postgres_server import PostgresUnavailable, PrivatePostgres
from callcenter.runtime.redis_server import PrivateRedis, answers
from callcenter.runtime.runner import (
    AppProcess,
    Part,
    StopRequest,
    SupervisedPart,
    Supervisor,
    check_free,
    exit_code,
    hand_over,
    pbx_part,
    redis_part,
    renamed,
)
from callcenter.runtime.sentinel import SentinelSet
from callcenter.store.migrate import upgrade_head
from callcenter.store.urls import shown_url

log = logging.getLogger("callcenter.cluster")

STATE_FILE = "cluster.json"


def cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / "cluster"


def node_config_path(settings: Settings, plan: NodePlan) -> Path:
    """Beside the hotline's config: its IVR files and relative secret files resolve alike."""
    return settings.config_path.resolve().parent / f".cluster-{plan.name}.yaml"


@dataclass
class Node:
    """One running node: its plan, settings, Asterisk and app."""

    plan: NodePlan
    settings: Settings
    record: RunRecord
    pbx: AsteriskProcess | None = None
    apps: list[AppProcess] = field(default_factory=list)  # service.app_instances, slot 1 first

    def stop(self) -> None:
        for part in (*self.apps, self.pbx):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as e:  # one failing must not leave the others running
                log.error("%s: stopping %s failed: %r", self.plan.name, type(part).__name__, e)
        self.record.clear()


def edge_part(edge: Kamailio, record: RunRecord) -> SupervisedPart:
    """Kamailio as a supervised part: started again with the same config when it dies."""

    def restart() -> None:
        edge.stop()  # releases the dead one's guard
        edge.start()
        if edge.proc is not None:
            record.add("kamailio", edge.proc.pid)

    return SupervisedPart("Kamailio", edge.exited, restart)


def redis_set_part(redis_set: SentinelSet, port: int, record: RunRecord) -> SupervisedPart:
    """One process of the private Sentinel set as a supervised part: a data node that dies
    comes back as a replica (once the sentinels have promoted the other, when it was the
    primary), a sentinel from its own file. The restart waits for that (seconds; up to 30)."""
    kind = "sentinel" if port in redis_set.sentinel_ports else "redis"
    name = f"{kind} {port}"

    def restart() -> None:
        redis_set.restart(port)
        proc = redis_set.procs.get(port)
        if proc is not None:
            record.add(name.replace(" ", "-"), proc.pid)

    return SupervisedPart(name, lambda: exit_code(redis_set.procs.get(port)), restart)


def postgres_part(db: PrivatePostgres, record: RunRecord) -> SupervisedPart:
    """The private PostgreSQL as a supervised part: started again on its data when it dies
    (the apps' database-outage handling covers the seconds between)."""

    def restart() -> None:
        db.stop()  # releases the dead one's guard
        try:
            db.start()
        except PostgresUnavailable as e:  # e.g. its old children still hold the shared
            log.error("PostgreSQL did not start again: %s", e)  # memory: tried again
            return
        if db.proc is not None:
            record.add("postgres", db.proc.pid)

    return SupervisedPart("PostgreSQL", lambda: exit_code(db.proc), restart)


def cluster_name(settings: Settings) -> str:
    """The run's name: "cluster", or HOTLINE_INSTANCE when set (two clusters side by side,
    tests). Node N's PBX instance and run record are "<name>-nodeN"."""
    return "cluster" if settings.instance == "main" else settings.instance


def node_instance(settings: Settings, plan: NodePlan) -> str:
    return f"{cluster_name(settings)}-{plan.name}"


def write_state(folder: Path, edge: EdgeSettings, nodes: list[NodePlan],
                instances: list[str], live: LiveState | None = None,
                database_url: str | None = None) -> None:
    """What `callcenter cluster status` reads: the nodes, their SIP address and run record;
    the Redis Sentinel service the apps use, when there is one."""
    data: dict[str, Any] = {
        "edge": {"sip": f"{edge.listen_host}:{edge.listen_port}", "workdir": str(folder / "edge")},
        "nodes": [{"name": p.name, "sip": f"{p.sip_host}:{p.sip_port}", "instance": instance,
                   "http_port": p.http_port} for p, instance in zip(nodes, instances, strict=True)],
    }
    if live is not None and live.settings.redis_sentinels and live.settings.redis_sentinel_master:
        data["redis"] = {"master_name": live.settings.redis_sentinel_master,
                         "sentinels": [f"{h}:{p}" for h, p in live.settings.redis_sentinels],
                         "private": live.sentinels is not None}
    if database_url is not None:  # the private PostgreSQL's (no password in it)
        data["database"] = database_url
    write_atomic(folder / STATE_FILE, json.dumps(data, indent=2), 0o644)


@dataclass
class LiveState:
    """The Redis every node's app shares, and what this run started for it."""

    settings: Settings  # with REDIS_SENTINELS/REDIS_SENTINEL_MASTER when a set serves
    url: str
    private: PrivateRedis | None = None
    sentinels: SentinelSet | None = None

    def describe(self) -> str:
        if self.settings.redis_sentinels and self.settings.redis_sentinel_master:
            return (f"Redis Sentinel service {self.settings.redis_sentinel_master!r} via "
                    + ",".join(f"{h}:{p}" for h, p in self.settings.redis_sentinels))
        return self.url

    def stop(self) -> None:
        if self.sentinels is not None:
            self.sentinels.stop()
            log.info("Redis Sentinel set stopped")
        if self.private is not None:
            self.private.stop()


def live_state_url(settings: Settings, account: RunAs | None, record: RunRecord,
                   folder: Path) -> LiveState:
    """The Redis every node's app shares (issue 19 point 5).

    REDIS_SENTINELS (with REDIS_SENTINEL_MASTER) given: that Sentinel service. Else REDIS_URL
    when it is given and answers (the operator's own Redis). Else a private Redis Sentinel
    set under the run's folder: one primary, one replica, three sentinels on loopback ports
    (callcenter/runtime/sentinel.py), the apps told of it by REDIS_SENTINELS, so they follow
    a failover."""
    if settings.redis_sentinels and settings.redis_sentinel_master:
        return LiveState(settings, settings.redis_url or "")
    if settings.redis_url and answers(settings.redis_url):
        return LiveState(settings, settings.redis_url)
    if settings.redis_url:
        log.warning("REDIS_URL does not answer; starting a private Redis Sentinel set")
    # 3 s before a silent primary counts as down: a stall on a busy machine is no failover
    # (docs/sentinel.md); most of a failover's time.
    redis_set = SentinelSet(folder / "redis", run_as=account, down_after_ms=3000)
    redis_set.start()
    for name, pid in redis_set.pids.items():
        record.add(name, pid)
    primary = redis_set.master()
    url = f"redis://{primary[0]}:{primary[1]}/0" if primary else ""
    with_set = replace(settings, redis_sentinels=tuple(redis_set.sentinels),
                       redis_sentinel_master=redis_set.master_name)
    return LiveState(with_set, url, sentinels=redis_set)


def node_settings(settings: Settings, plan: NodePlan, folder: Path) -> Settings:
    return replace(settings, config_path=node_config_path(settings, plan),
                   state_dir=folder / plan.name, instance=node_instance(settings, plan))


def start_node(node: Node, redis_url: str, account: RunAs | None, stop: StopRequest) -> None:
    """Render and start the node's Asterisk, then its app(s)."""
    s, plan = node.settings, node.plan
    s.state_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(s.config_path)
    secrets = load_secrets(s.state_dir, s.secrets_file)
    ensure_self_signed(config, s.state_dir)
    if account is not None:
        hand_over(s, account)
    layout = PbxLayout.for_instance(ensure_asterisk(), s.instance, s.state_dir)
    render(config, layout, secrets, prompt_cache=s.prompt_cache,
           sounds_override=s.sounds_override, app_account=account, state_dir=s.state_dir)
    svc, trunk = config.service, config.trunk
    check_free(svc.ari_bind, svc.ari_port, socket.SOCK_STREAM, f"{plan.name} ARI")
    check_free(trunk.bind, trunk.port, socket.SOCK_DGRAM, f"{plan.name} SIP")
    stop.check()
    node.pbx = AsteriskProcess(layout, f"http://{svc.ari_bind}:{svc.ari_port}",
                               secrets.ari_user, secrets.ari_password)
    node.pbx.start()
    if node.pbx.proc is not None:
        node.record.add("asterisk", node.pbx.proc.pid)
    # One app process per Stasis application (service.app_instances), as `callcenter run`:
    # with two or more, a killed one's calls are adopted by its node's other(s).
    for slot in range(1, svc.app_instances + 1):
        stop.check()
        app = AppProcess(s, redis_url, account, node.record, slot)
        node.apps.append(app)
        app.start()
    log.info("%s: SIP %s:%d, console http://%s:%d", plan.name, trunk.bind, trunk.port,
             svc.http_bind, svc.http_port)


def check_ports(plans: list[NodePlan], edge_host: str, edge_port: int) -> None:
    """Before anything starts: every port the plan gives the edge and the nodes is its own
    (no two parts on one port) and free now (no leftover or other program on it). Raises
    PbxStartError naming the node, what and the port."""
    ports = planned_ports(plans, edge_host, edge_port)
    clashes = port_clashes(ports)
    if clashes:
        raise PbxStartError("the cluster's ports clash: " + "; ".join(clashes)
                            + " (change the ports in the hotline config, or --port)")
    for p in ports:
        check_free(p.host, p.port,
                   socket.SOCK_DGRAM if p.transport == "udp" else socket.SOCK_STREAM,
                   f"{p.node} {p.what}")


def claim_nodes(settings: Settings, plans: list[NodePlan]) -> dict[str, RunRecord]:
    """Each node's run record, claimed: what a killed earlier run left of the node (its
    Asterisk, its apps) is stopped now, before the ports are checked."""
    records = {}
    for plan in plans:
        record = records[plan.name] = RunRecord(cache_dir() / "run",
                                                node_instance(settings, plan))
        record.claim(functools.partial(_leftover, plan.name))
    return records


def _leftover(node: str, mark: ProcessMark) -> None:
    log.warning("%s: stopping %s (pid %d) left by an earlier run", node, mark.name, mark.pid)


def run_cluster(settings: Settings, count: int, edge_port: int = 5060,
                edge_host: str = "127.0.0.1") -> None:
    """Bring up the edge and ``count`` nodes; serve until SIGINT/SIGTERM; stop them all."""
    base = yaml.safe_load(settings.config_path.read_text())
    config = load_config(settings.config_path)  # refuse to start on a broken config
    plans = plan_nodes(base, count, edge_host, edge_port)
    os.umask(0o027)
    folder = cluster_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HOTLINE_SMS", "0")  # SMS: `make run`'s business, not the cluster's
    account = ensure_service_account(settings.service_user) if os.geteuid() == 0 else None
    if account is not None:
        os.chmod(settings.state_dir, 0o750)
        account.chown(settings.state_dir)
        account.chown(folder)
    record = RunRecord(cache_dir() / "run", cluster_name(settings))
    record.claim(lambda m: log.warning("stopping %s (pid %d) left by an earlier cluster run",
                                       m.name, m.pid))
    private_db = None if "DATABASE_URL" in os.environ else PrivatePostgres(folder / "postgres",
                                                                              account)
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    # Operators over TLS at the edge too, on the port above its UDP one (as a node's), with
    # the certificate the nodes would use (sip_tls), or one made as `callcenter run` makes it.
    edge_tls = edge_tls_for(config, folder, edge_port + 1)
    operators, tls_only = edge_operators(config, tls=True)
    edge_settings = edge_settings_for(config, base, edge_host, edge_port, operators, edge_tls,
                                      tls_only)
    edge = Kamailio(folder / "edge", edge_settings,
                    [EdgeNode(p.name, p.sip_host, p.sip_port) for p in plans])
    live: LiveState | None = None
    nodes: list[Node] = []
    try:
        for plan in plans:
            text = yaml.safe_dump(plan.config, allow_unicode=True, sort_keys=False)
            write_atomic(node_config_path(settings, plan),
                         f"# Derived by `callcenter cluster run` from {settings.config_path.name}"
                         f" for {plan.name}: edit that file, not this one.\n{text}", 0o640)
            if account is not None:
                account.chown(node_config_path(settings, plan))
        edge.check()  # Kamailio parses its config before anything starts
        write_state(folder, edge_settings, plans, [node_instance(settings, p) for p in plans])
        node_records = claim_nodes(settings, plans)
        check_ports(plans, edge_host, edge_port)
        live = live_state_url(settings, account, record, folder)
        settings, redis_url = live.settings, live.url
        write_state(folder, edge_settings, plans, [node_instance(settings, p) for p in plans],
                    live)
        log.info("live state: %s", live.describe())
        if private_db is not None:  # DATABASE_URL not set: one private PostgreSQL cluster
            private_db.start()
            if private_db.proc is not None:
                record.add("postgres", private_db.proc.pid)
            settings = replace(settings, database_url=private_db.url)
            write_state(folder, edge_settings, plans,
                        [node_instance(settings, p) for p in plans], live, settings.database_url)
        log.info("database: %s (alembic upgrade head, once for every node)",
                 shown_url(settings.database_url))
        upgrade_head(settings.database_url)
        if account is not None and settings.database_url.startswith("sqlite:///"):
            account.chown(Path(settings.database_url.removeprefix("sqlite:///")))
        for plan in plans:
            stop.check()
            node = Node(plan, node_settings(settings, plan, folder), node_records[plan.name])
            nodes.append(node)
            start_node(node, redis_url, account, stop)
        stop.check()
        edge.start()
        if edge.proc is not None:
            record.add("kamailio", edge.proc.pid)
        log.info("cluster up: carrier -> %s:%d -> %s", edge_host, edge_port,
                 ", ".join(f"{p.name} {p.sip_host}:{p.sip_port}" for p in plans))
        parts: list[Part] = [edge_part(edge, record)]
        for node in nodes:
            assert node.apps and node.pbx is not None
            parts += [renamed(f"{node.plan.name} {app.name}", app) for app in node.apps]
            parts.append(renamed(f"{node.plan.name} Asterisk", pbx_part(node.pbx, node.record)))
        if live.private is not None and live.private.proc is not None:
            parts.append(redis_part(live.private, record))
        if private_db is not None and private_db.proc is not None:
            parts.append(postgres_part(private_db, record))
        if live.sentinels is not None:
            parts += [redis_set_part(live.sentinels, port, record)
                      for port in (*live.sentinels.data_ports, *live.sentinels.sentinel_ports)]
        Supervisor(parts, stop=stop).watch()
    except KeyboardInterrupt as e:
        log.info("interrupted (%s)", e or "SIGINT")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("stopping the cluster")
        try:
            edge.stop()
        except Exception as e:
            log.error("stopping Kamailio failed: %r", e)
        for node in nodes:
            node.stop()
        if live is not None:
            try:
                live.stop()
            except Exception as e:
                log.error("stopping Redis failed: %r", e)
        if private_db is not None:
            try:
                private_db.stop()
            except Exception as e:
                log.error("stopping PostgreSQL failed: %r", e)
        record.clear()
        log.info("stopped")


def node_files(settings: Settings) -> dict[str, Any]:
    """The state file of the last run (empty when none)."""
    try:
        return dict(json.loads((cluster_dir(settings) / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return {}
