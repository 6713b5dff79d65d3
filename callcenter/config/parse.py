"""Build and validate the typed ``HotlineConfig`` from YAML.

* ``parse_config(data, source)``: pure; validates the structure ``yaml.safe_load`` produced.
* ``parse_yaml_text(text, source)`` / ``parse_config_text(text, source)``: YAML text in memory.
* ``load_config(path)``: the single place that reads a file.

Every problem becomes a ``ConfigError`` naming the file, the dotted key path, the bad value and
what was expected; all problems found are collected in ``ConfigError.errors`` (the raised
error is the first). Unknown keys are errors, so a typo never silently falls back to a default.

Schema (see config/hotline.yaml for a commented example)::

    service: {ari_bind, ari_port, ami_bind, ami_port, http_bind, http_port, stasis_app, node,
              app_instances, login_attempts_per_minute, allow_remote}
    trunk: {bind, port, trusted_networks: [cidr, ...], media_address, rtp_start, rtp_end,
            outbound: {host, port, caller_id}}   # outbound optional: PJSIP endpoint
                                                # trunk-out; caller_id: shown on call backs
            edge: {host, port, tls}}   # a cluster's SIP edge (Kamailio): operators register
                                       # there (tls: TLS operators too)
    sip_guard: {max_failures, window_s, ban_s, max_refused, never_refuse: [cidr, ...],
                flood: {requests, unit_s, remove_latency_s}}   # flood: a cluster's edge only
    console: {tls_cert, tls_key, trusted_proxies: [cidr, ...]}   # optional
    sip_tls: {port, cert, key}   # operators over TLS (transport-tls on trunk.bind); cert and
                                 # key together, or neither (`callcenter run` makes a pair)
    mail: {host, port, from, starttls, ca_file, username_env, password_env, enabled}
                                 # optional: the SMTP server of mailed reports (mail/rules.py)
    mail_in: {bind, port, max_bytes, per_sender_per_day, field, tenants: {tenant: [address]}}
                                 # optional: e-mail in, the tenants' mailboxes (mailin/rules.py)
    edge: {host, port, carrier_networks: [cidr, ...], ping_interval_s,
           nodes: [{name, host, port}, ...]}   # optional: a production SIP edge machine
                                 # (`callcenter edge render`); host/port default: trunk.edge
    tenants:
      - id, name, timezone, numbers: [...],
        shifts: [{name, start, end, lines, min_operators, callback_when_full}, ...],
        overrides: [{name, from, to, shifts: [...]}],
        prompts: {greeting, all_busy, unavailable, callback_offer, callback_confirm}
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from callcenter.config.base import (
    _DAY,
    MISSING,
    BaseParser,
    ConfigError,
    fmt_seconds,
    join_key,
    seconds_of,
)
from callcenter.config.model import (
    DEFAULT_FIELDS,
    DEFAULT_PROMPTS,
    FIELD_GROUPS,
    ConsoleConfig,
    DateOverride,
    EdgeConfig,
    EdgeNodeConfig,
    Field,
    FloodLimit,
    HotlineConfig,
    OutboundTrunk,
    Prompts,
    ServiceConfig,
    Shift,
    SipEdge,
    SipGuardConfig,
    SipTlsConfig,
    Tenant,
    TrunkConfig,
)
from callcenter.intake.policy import WEBFORM_KEYS, parse_webform_section
from callcenter.ivr.config import parse_ivr
from callcenter.ivr.tree import IvrTree
from callcenter.mail.rules import REPORTS_KEYS, parse_mail_section, parse_reports_section
from callcenter.mailin.rules import parse_mail_in_section
from callcenter.numbers import normalise_number
from callcenter.quality.rules import QUALITY_KEYS, parse_quality_section
from callcenter.queue.policy import OPERATOR_KEYS, parse_operators_section
from callcenter.recordings.retention import RETENTION_KEYS, parse_recordings_section
from callcenter.tickets.config import TICKET_KEYS, parse_ticket_sections

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
MAX_LINES = 1000
MAX_MIN_OPERATORS = 1000
# "default" names the fallback extension/prompt folder in the rendered dialplan.
RESERVED_TENANT_IDS = frozenset({"default"})

_TENANT_ID = re.compile(r"[a-z0-9_-]{1,32}")
_FIELD_ID = re.compile(r"[a-z0-9_]{1,32}")
_NUMBER = re.compile(r"\+?[0-9]{2,20}")


class _Parser(BaseParser):
    """The hotline config's sections, on top of the generic shapes."""

    # ---- sections --------------------------------------------------------------------------

    def service(self, value: object) -> ServiceConfig:
        d = ServiceConfig()
        if value is None:
            return d
        keys = ("ari_bind", "ari_port", "ami_bind", "ami_port", "http_bind", "http_port",
                "stasis_app", "node", "login_attempts_per_minute", "app_instances",
                "allow_remote")
        m = self.mapping(value, "service", keys)
        if m is None:
            return d
        k = "service"
        result = ServiceConfig(
            ari_bind=self.ip(m.get("ari_bind", d.ari_bind), join_key(k, "ari_bind")) or d.ari_bind,
            ari_port=self.port(m.get("ari_port", d.ari_port), join_key(k, "ari_port"))
            or d.ari_port,
            ami_bind=self.ip(m.get("ami_bind", d.ami_bind), join_key(k, "ami_bind")) or d.ami_bind,
            ami_port=self.port(m.get("ami_port", d.ami_port), join_key(k, "ami_port"))
            or d.ami_port,
            http_bind=self.host(m.get("http_bind", d.http_bind), join_key(k, "http_bind"))
            or d.http_bind,
            http_port=self.port(m.get("http_port", d.http_port), join_key(k, "http_port"))
            or d.http_port,
            stasis_app=self.token(m.get("stasis_app", d.stasis_app), join_key(k, "stasis_app"))
            or d.stasis_app,
            node=self.node_name(m.get("node", d.node), join_key(k, "node")) or d.node,
            login_attempts_per_minute=self.integer(
                m.get("login_attempts_per_minute", d.login_attempts_per_minute),
                join_key(k, "login_attempts_per_minute"), 3, 10_000)
            or d.login_attempts_per_minute,
            app_instances=self.integer(m.get("app_instances", d.app_instances),
                                       join_key(k, "app_instances"), 1, 8)
            or d.app_instances,
            allow_remote=bool(self.boolean(m.get("allow_remote", d.allow_remote),
                                           join_key(k, "allow_remote"))),
        )
        # ARI and AMI control the PBX (originate, hang up, reload): never reachable from the
        # network by accident.
        if not result.allow_remote:
            for name, bind in (("ari_bind", result.ari_bind), ("ami_bind", result.ami_bind)):
                if not ipaddress.ip_address(bind).is_loopback:
                    self.error(join_key(k, name), bind,
                               "expected a loopback address (127.0.0.1 or ::1); set "
                               "service.allow_remote: true to listen on another address")
        # The three TCP listeners must not collide (same address, or one on every address).
        listeners = [("ari", result.ari_bind, result.ari_port),
                     ("ami", result.ami_bind, result.ami_port),
                     ("http", result.http_bind, result.http_port)]
        wildcard = {"0.0.0.0", "::"}
        for i, (name_a, bind_a, port_a) in enumerate(listeners):
            for name_b, bind_b, port_b in listeners[i + 1:]:
                same_addr = bind_a == bind_b or bind_a in wildcard or bind_b in wildcard
                if port_a == port_b and same_addr:
                    self.error(
                        join_key(k, f"{name_b}_port"), port_b,
                        f"expected a port different from service.{name_a}_port "
                        f"(both listen on {bind_b})",
                    )
        return result

    def trunk(self, value: object) -> TrunkConfig:
        d = TrunkConfig()
        if value is None:
            return d
        keys = ("bind", "port", "trusted_networks", "media_address", "rtp_start", "rtp_end",
                "outbound", "edge")
        m = self.mapping(value, "trunk", keys)
        if m is None:
            return d
        k = "trunk"
        networks = self.networks(m.get("trusted_networks", list(d.trusted_networks)),
                                 join_key(k, "trusted_networks"))
        rtp_start = self.port(m.get("rtp_start", d.rtp_start), join_key(k, "rtp_start"))
        rtp_end = self.port(m.get("rtp_end", d.rtp_end), join_key(k, "rtp_end"))
        if rtp_start is not None and rtp_end is not None and rtp_start >= rtp_end:
            self.error(join_key(k, "rtp_end"), rtp_end,
                       f"expected a port greater than trunk.rtp_start ({rtp_start})")
        port = self.port(m.get("port", d.port), join_key(k, "port"))
        if (port is not None and rtp_start is not None and rtp_end is not None
                and rtp_start <= port <= rtp_end):
            self.error(join_key(k, "port"), port,
                       f"expected a SIP port outside the RTP range {rtp_start}..{rtp_end}")
        bind = self.ip(m.get("bind", d.bind), join_key(k, "bind"), ipv4_only=True) or d.bind
        outbound = None
        if m.get("outbound") is not None:
            outbound = self.outbound(m["outbound"], join_key(k, "outbound"), bind, port)
        edge = self.edge(m["edge"], join_key(k, "edge")) if m.get("edge") is not None else None
        return TrunkConfig(
            bind=bind,
            port=port or d.port,
            trusted_networks=tuple(networks) or d.trusted_networks,
            media_address=self.ip(m.get("media_address", d.media_address),
                                  join_key(k, "media_address")) or d.media_address,
            rtp_start=rtp_start or d.rtp_start,
            rtp_end=rtp_end or d.rtp_end,
            outbound=outbound,
            edge=edge,
        )

    def edge(self, value: object, key: str) -> SipEdge | None:
        """trunk.edge: {host: IPv4, port, tls} of the cluster's SIP edge."""
        m = self.mapping(value, key, ("host", "port", "tls"), ("host",))
        if m is None or "host" not in m:
            return None
        host = self.ip(m["host"], join_key(key, "host"), ipv4_only=True)
        port = self.port(m.get("port", 5060), join_key(key, "port"))
        tls = self.boolean(m.get("tls", False), join_key(key, "tls"))
        return (SipEdge(host, port, bool(tls)) if host is not None and port is not None
                else None)

    def edge_section(self, value: object, trunk_edge: SipEdge | None) -> EdgeConfig | None:
        """edge: a production SIP edge machine (Kamailio, `callcenter edge render`). host and
        port default to trunk.edge's (the floating address the nodes send operators' calls
        to); carrier_networks and nodes are required."""
        k = "edge"
        m = self.mapping(value, k, ("host", "port", "carrier_networks", "ping_interval_s",
                                    "nodes"), ("carrier_networks", "nodes"))
        if m is None:
            return None
        if "host" not in m and trunk_edge is None:
            self.error(join_key(k, "host"), MISSING, "expected the IPv4 address Kamailio "
                       "listens on (the edges' floating address); or set trunk.edge")
        host = (self.ip(m["host"], join_key(k, "host"), ipv4_only=True) if "host" in m
                else trunk_edge.host if trunk_edge is not None else None)
        port = (self.port(m["port"], join_key(k, "port")) if "port" in m
                else trunk_edge.port if trunk_edge is not None else 5060)
        ping = self.integer(m.get("ping_interval_s", 1), join_key(k, "ping_interval_s"), 1, 60)
        networks = (self.networks(m["carrier_networks"], join_key(k, "carrier_networks"))
                    if "carrier_networks" in m else [])
        for i, net in enumerate(networks):
            # Carrier sources are trusted with citizens' calls and never rate limited nor
            # refused: every address would open the edge to anyone.
            if ipaddress.ip_network(net).prefixlen == 0:
                self.error(join_key(join_key(k, "carrier_networks"), i), net,
                           "expected the carrier's own networks (its SBCs), not every address")
        nodes = (self.edge_nodes(m["nodes"], join_key(k, "nodes"), host, port)
                 if "nodes" in m else [])
        if host is None or port is None or ping is None or not networks or not nodes:
            return None
        return EdgeConfig(host=host, port=port, carrier_networks=tuple(networks),
                          nodes=tuple(nodes), ping_interval_s=ping)

    def edge_nodes(self, value: object, key: str, edge_host: str | None,
                   edge_port: int | None) -> list[EdgeNodeConfig]:
        """edge.nodes: [{name, host, port}], names and addresses unique, none the edge's."""
        nodes: list[EdgeNodeConfig] = []
        names: dict[str, int] = {}
        addresses: dict[tuple[str, int], int] = {}
        for i, item in enumerate(self.list_(value, key) or []):
            nk = join_key(key, i)
            m = self.mapping(item, nk, ("name", "host", "port"), ("name", "host"))
            if m is None or "name" not in m or "host" not in m:
                continue
            name = self.node_name(m["name"], join_key(nk, "name"))
            host = self.ip(m["host"], join_key(nk, "host"), ipv4_only=True)
            port = self.port(m.get("port", 5060), join_key(nk, "port"))
            if name is None or host is None or port is None:
                continue
            if name in names:
                self.error(join_key(nk, "name"), name, f"expected a node name unique in "
                           f"{key}; {key}[{names[name]}] has it too")
                continue
            if (host, port) in addresses:
                self.error(join_key(nk, "port"), port, f"expected one node per address; "
                           f"{key}[{addresses[host, port]}] is {host}:{port} too")
                continue
            if (host, port) == (edge_host, edge_port):
                self.error(join_key(nk, "host"), host, f"expected an Asterisk node's address, "
                           f"not the edge's own ({host}:{port})")
                continue
            names[name], addresses[host, port] = i, i
            nodes.append(EdgeNodeConfig(name, host, port))
        return nodes

    def networks(self, value: object, key: str, *, non_empty: bool = True) -> list[str]:
        """A list of networks in CIDR form; each malformed one is an error naming its key."""
        networks: list[str] = []
        for i, net in enumerate(self.list_(value, key, non_empty=non_empty) or []):
            nk = join_key(key, i)
            s = self.text(net, nk)
            if s is None:
                continue
            try:
                ipaddress.ip_network(s.strip(), strict=True)
            except ValueError as exc:
                self.error(nk, net, f"expected a network in CIDR form such as 10.0.0.0/8: {exc}")
                continue
            networks.append(s.strip())
        return networks

    def sip_guard(self, value: object) -> SipGuardConfig:
        d = SipGuardConfig()
        if value is None:
            return d
        m = self.mapping(value, "sip_guard", ("max_failures", "window_s", "ban_s",
                                              "max_refused", "never_refuse", "flood"))
        if m is None:
            return d
        k = "sip_guard"

        def number(name: str, low: int, high: int) -> int:
            default: int = getattr(d, name)
            return self.integer(m.get(name, default), join_key(k, name), low, high) or default

        return SipGuardConfig(
            max_failures=number("max_failures", 1, 1000),
            window_s=number("window_s", 1, 86_400),
            ban_s=number("ban_s", 1, 30 * 86_400),
            max_refused=number("max_refused", 1, 100_000),
            never_refuse=tuple(self.networks(m.get("never_refuse", []),
                                             join_key(k, "never_refuse"), non_empty=False)),
            flood=self.flood(m.get("flood"), join_key(k, "flood")),
        )

    def flood(self, value: object, key: str) -> FloodLimit:
        """sip_guard.flood: the cluster edge's per-source flood limit (Kamailio's pike)."""
        d = FloodLimit()
        if value is None:
            return d
        m = self.mapping(value, key, ("requests", "unit_s", "remove_latency_s"))
        if m is None:
            return d

        def number(name: str, low: int, high: int) -> int:
            default: int = getattr(d, name)
            return self.integer(m.get(name, default), join_key(key, name), low, high) or default

        result = FloodLimit(requests=number("requests", 1, 100_000),
                            unit_s=number("unit_s", 1, 300),
                            remove_latency_s=number("remove_latency_s", 1, 86_400))
        if result.remove_latency_s < result.unit_s:
            self.error(join_key(key, "remove_latency_s"), result.remove_latency_s,
                       f"expected at least sip_guard.flood.unit_s ({result.unit_s}): a source "
                       f"must be remembered for a whole sampling unit")
        return result

    def console(self, value: object) -> ConsoleConfig:
        d = ConsoleConfig()
        if value is None:
            return d
        k = "console"
        m = self.mapping(value, k, ("tls_cert", "tls_key", "trusted_proxies"))
        if m is None:
            return d
        files: dict[str, str | None] = {}
        for name in ("tls_cert", "tls_key"):
            raw = m.get(name)
            files[name] = None if raw is None else self.text(raw, join_key(k, name),
                                                              max_len=4096)
        # One without the other would serve plain HTTP while the admin believes it is HTTPS.
        for name, other in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
            if m.get(name) is None and m.get(other) is not None:
                self.error(join_key(k, name), MISSING,
                           f"expected a PEM file path: console.{other} is set, and HTTPS "
                           "needs both the certificate and its private key")
        return ConsoleConfig(
            tls_cert=files["tls_cert"], tls_key=files["tls_key"],
            trusted_proxies=tuple(self.networks(m.get("trusted_proxies", []),
                                                join_key(k, "trusted_proxies"),
                                                non_empty=False)))

    def sip_tls(self, value: object) -> SipTlsConfig:
        d = SipTlsConfig()
        if value is None:
            return d
        m = self.mapping(value, "sip_tls", ("port", "cert", "key"))
        if m is None:
            return d
        k = "sip_tls"
        files = {name: self.text(m[name], join_key(k, name), max_len=1000)
                 for name in ("cert", "key") if m.get(name) is not None}
        for name, other in (("cert", "key"), ("key", "cert")):
            if name in files and other not in m:
                self.error(join_key(k, other), None,
                           f"expected the {'private key' if other == 'key' else 'certificate'} "
                           f"file that goes with sip_tls.{name} (PEM)")
        return SipTlsConfig(port=self.port(m.get("port", d.port), join_key(k, "port")) or d.port,
                            cert=files.get("cert"), key=files.get("key"))

    def outbound(self, value: object, key: str, bind: str,
                 port: int | None) -> OutboundTrunk | None:
        m = self.mapping(value, key, ("host", "port", "caller_id"), ("host",))
        if m is None or "host" not in m:
            return None
        host = self.host(m["host"], join_key(key, "host"))
        if host is not None and ":" in host:
            self.error(join_key(key, "host"), host,
                       "expected an IPv4 address or a host name (the SIP transport is IPv4)")
            return None
        out_port = self.port(m.get("port", 5060), join_key(key, "port"))
        caller_id = None
        if m.get("caller_id") is not None:
            caller_id = self.text(m["caller_id"], join_key(key, "caller_id"))
            if caller_id is not None and not re.fullmatch(r"\+?[0-9]{2,20}", caller_id):
                self.error(join_key(key, "caller_id"), caller_id,
                           "expected the hotline's number, digits only (e.g. \"02511022\")")
                caller_id = None
        if host is None or out_port is None:
            return None
        if host == bind and out_port == (port or TrunkConfig().port):
            # Calls sent there would come straight back in as citizens' calls.
            self.error(join_key(key, "port"), out_port,
                       f"expected another address than the hotline's own SIP listener "
                       f"({bind}:{out_port})")
            return None
        return OutboundTrunk(host=host, port=out_port, caller_id=caller_id)

    def shift(self, value: object, key: str) -> Shift | None:
        m = self.mapping(value, key, ("name", "start", "end", "lines", "min_operators",
                                      "callback_when_full"),
                         ("name", "start", "end", "lines"))
        if m is None:
            return None
        name = self.text(m["name"], join_key(key, "name"), max_len=64) if "name" in m else None
        start = self.time(m["start"], join_key(key, "start")) if "start" in m else None
        end = self.time(m["end"], join_key(key, "end"), allow_24=True) if "end" in m else None
        lines = (self.integer(m["lines"], join_key(key, "lines"), 0, MAX_LINES)
                 if "lines" in m else None)
        min_operators = self.integer(m.get("min_operators", 0), join_key(key, "min_operators"),
                                     0, MAX_MIN_OPERATORS)
        offer = self.boolean(m.get("callback_when_full", False),
                             join_key(key, "callback_when_full"))
        if (name is None or start is None or end is None or lines is None
                or min_operators is None or offer is None):
            return None
        return Shift(name=name, start=start, end=end, lines=lines, min_operators=min_operators,
                     callback_when_full=offer)

    def shifts(self, value: object, key: str) -> tuple[Shift, ...] | None:
        items = self.list_(value, key)
        if items is None:
            return None
        parsed = [self.shift(item, join_key(key, i)) for i, item in enumerate(items)]
        good = [s for s in parsed if s is not None]
        if len(good) != len(parsed):
            return None
        names: dict[str, int] = {}
        ok = True
        for i, s in enumerate(good):
            if s.name in names:
                self.error(join_key(join_key(key, i), "name"), s.name,
                           f"expected a unique shift name; {key}[{names[s.name]}] has it too")
                ok = False
            names.setdefault(s.name, i)
        if not self.partition(good, key):
            ok = False
        return tuple(good) if ok else None

    def partition(self, shifts: Sequence[Shift], key: str) -> bool:
        """Shifts must tile the 24 h circle: each ends exactly where the next one starts."""
        order = sorted(shifts, key=lambda s: seconds_of(s.start))
        summary = [
            f"{s.name} {fmt_seconds(seconds_of(s.start))}-{fmt_seconds(seconds_of(s.end))}"
            for s in order
        ]
        ok = True
        same_start: set[tuple[str, str]] = set()
        for i, cur in enumerate(order):
            nxt = order[(i + 1) % len(order)]
            s0, e0, s1 = seconds_of(cur.start), seconds_of(cur.end), seconds_of(nxt.start)
            length = (e0 - s0) % _DAY or _DAY  # start == end: the whole day
            dist = (s1 - s0) % _DAY
            if len(order) == 1:
                dist = _DAY
            elif dist == 0:  # two shifts start at the same time
                if (nxt.name, cur.name) in same_start:
                    continue  # already reported from the other side (two shifts only)
                same_start.add((cur.name, nxt.name))
                self.error(key, summary,
                           f"shifts must cover the 24 hours with no gap or overlap: "
                           f"{cur.name!r} and {nxt.name!r} both start at {fmt_seconds(s0)}")
                ok = False
                continue
            if length < dist:
                self.error(key, summary,
                           f"shifts must cover the 24 hours with no gap or overlap: gap "
                           f"{fmt_seconds(e0)}-{fmt_seconds(s1)} after {cur.name!r}")
                ok = False
            elif length > dist:
                self.error(key, summary,
                           f"shifts must cover the 24 hours with no gap or overlap: "
                           f"{cur.name!r} and {nxt.name!r} overlap "
                           f"{fmt_seconds(s1)}-{fmt_seconds(e0)}")
                ok = False
        return ok

    def override(self, value: object, key: str) -> DateOverride | None:
        m = self.mapping(value, key, ("name", "from", "to", "shifts"),
                         ("name", "from", "to", "shifts"))
        if m is None:
            return None
        name = self.text(m["name"], join_key(key, "name"), max_len=64) if "name" in m else None
        start = self.date(m["from"], join_key(key, "from")) if "from" in m else None
        end = self.date(m["to"], join_key(key, "to")) if "to" in m else None
        shifts = self.shifts(m["shifts"], join_key(key, "shifts")) if "shifts" in m else None
        if start is not None and end is not None and start > end:
            self.error(join_key(key, "to"), m["to"],
                       f"expected a date on or after from ({start.isoformat()})")
            return None
        if name is None or start is None or end is None or shifts is None:
            return None
        return DateOverride(name=name, start_date=start, end_date=end, shifts=shifts)

    def overrides(self, value: object, key: str) -> tuple[DateOverride, ...] | None:
        if value is None:
            return ()
        items = self.list_(value, key, non_empty=False)
        if items is None:
            return None
        parsed = [(i, self.override(item, join_key(key, i))) for i, item in enumerate(items)]
        good = [(i, o) for i, o in parsed if o is not None]
        ok = len(good) == len(parsed)
        by_start = sorted(good, key=lambda p: p[1].start_date)
        for (i_a, a), (i_b, b) in zip(by_start, by_start[1:], strict=False):
            if b.start_date <= a.end_date:
                self.error(
                    join_key(join_key(key, i_b), "from"), b.start_date.isoformat(),
                    f"expected override dates not overlapping {key}[{i_a}] {a.name!r} "
                    f"({a.start_date.isoformat()}..{a.end_date.isoformat()})",
                )
                ok = False
        return tuple(o for _, o in good) if ok else None

    def prompts(self, value: object, key: str) -> Prompts | None:
        keys = ("greeting", "all_busy", "unavailable", "callback_offer", "callback_confirm")
        m = self.mapping(value, key, keys)
        if m is None:
            return None
        d = DEFAULT_PROMPTS
        return Prompts(
            callback_offer=self.text(m.get("callback_offer", d.callback_offer),
                                     join_key(key, "callback_offer"), max_len=2000)
            or d.callback_offer,
            callback_confirm=self.text(m.get("callback_confirm", d.callback_confirm),
                                       join_key(key, "callback_confirm"), max_len=2000)
            or d.callback_confirm,
            greeting=self.text(m.get("greeting", d.greeting), join_key(key, "greeting"),
                               max_len=2000) or d.greeting,
            all_busy=self.text(m.get("all_busy", d.all_busy), join_key(key, "all_busy"),
                               max_len=2000) or d.all_busy,
            unavailable=self.text(m.get("unavailable", d.unavailable), join_key(key, "unavailable"),
                                  max_len=2000) or d.unavailable,
        )

    def timezone(self, value: object, key: str) -> str | None:
        s = self.text(value, key, max_len=64)
        if s is None:
            return None
        try:
            ZoneInfo(s)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(s, sorted(available_timezones()), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(key, value, f"expected an IANA time zone such as "
                                   f"{DEFAULT_TIMEZONE}{hint}")
            return None
        return s

    def numbers(self, value: object, key: str) -> tuple[str, ...] | None:
        items = self.list_(value, key)
        if items is None:
            return None
        result: list[str] = []
        ok = True
        for i, item in enumerate(items):
            nk = join_key(key, i)
            if isinstance(item, int) and not isinstance(item, bool):
                self.error(nk, item, 'expected a quoted string of digits such as "02511022": '
                                     "YAML reads unquoted digits as an integer (a leading 0 is "
                                     "lost, and 0-prefixed digits may be read as octal)")
                ok = False
                continue
            if not isinstance(item, str) or not _NUMBER.fullmatch(item):
                self.error(nk, item, "expected 2-20 digits, optionally after a leading +")
                ok = False
                continue
            result.append(item)
        return tuple(result) if ok else None

    def tenant(self, value: object, key: str) -> Tenant | None:
        keys = ("id", "name", "timezone", "numbers", "shifts", "overrides", "prompts", "fields",
                "ivr", *TICKET_KEYS, *OPERATOR_KEYS, *RETENTION_KEYS, *REPORTS_KEYS,
                *QUALITY_KEYS, *WEBFORM_KEYS)
        m = self.mapping(value, key, keys, ("id", "name", "numbers", "shifts"))
        if m is None:
            return None
        tid: str | None = None
        if "id" in m:
            tid = self.text(m["id"], join_key(key, "id"))
            if tid is not None and not _TENANT_ID.fullmatch(tid):
                self.error(join_key(key, "id"), tid, "expected 1-32 characters from a-z 0-9 _ -")
                tid = None
            elif tid is not None and tid in RESERVED_TENANT_IDS:
                self.error(join_key(key, "id"), tid,
                           f"expected an id other than {tid!r}, which the dialplan reserves")
                tid = None
        name = self.text(m["name"], join_key(key, "name")) if "name" in m else None
        tz = self.timezone(m.get("timezone", DEFAULT_TIMEZONE), join_key(key, "timezone"))
        numbers = self.numbers(m["numbers"], join_key(key, "numbers")) if "numbers" in m else None
        shifts = self.shifts(m["shifts"], join_key(key, "shifts")) if "shifts" in m else None
        overrides = self.overrides(m.get("overrides"), join_key(key, "overrides"))
        prompts: Prompts | None = None
        prompts_ok = True
        if m.get("prompts") is not None:
            prompts = self.prompts(m["prompts"], join_key(key, "prompts"))
            prompts_ok = prompts is not None
        fields: tuple[Field, ...] | None = DEFAULT_FIELDS
        if m.get("fields") is not None:
            fields = self.fields(m["fields"], join_key(key, "fields"))
        ivr: IvrTree | None = None
        ivr_ok = True
        if m.get("ivr") is not None and fields is not None:
            ivr = parse_ivr(self, m["ivr"], join_key(key, "ivr"), fields)
            ivr_ok = ivr is not None
        tickets = parse_ticket_sections(self, m, key, fields or DEFAULT_FIELDS)
        operators = parse_operators_section(self, m, key)
        recordings = parse_recordings_section(self, m, key)
        reports = parse_reports_section(self, m, key)
        quality = parse_quality_section(self, m, key)
        webform = parse_webform_section(self, m, key)
        if (tid is None or name is None or tz is None or numbers is None or shifts is None
                or overrides is None or not prompts_ok or fields is None or not ivr_ok
                or tickets is None or operators is None or recordings is None
                or reports is None or quality is None or webform is None):
            return None
        return Tenant(id=tid, name=name, timezone=tz, numbers=numbers, shifts=shifts,
                      overrides=overrides, prompts=prompts, fields=fields, ivr=ivr,
                      tickets=tickets, operators=operators, recordings=recordings,
                      reports=reports, quality=quality, webform=webform)

    def fields(self, value: object, key: str) -> tuple[Field, ...] | None:
        items = self.list_(value, key)
        if items is None:
            return None
        result: list[Field] = []
        seen: dict[str, int] = {}
        ok = True
        for i, item in enumerate(items):
            fk = join_key(key, i)
            m = self.mapping(item, fk, ("id", "name", "group"), ("id", "name"))
            if m is None or "id" not in m or "name" not in m:
                ok = False
                continue
            fid = self.text(m["id"], join_key(fk, "id"), max_len=32)
            fname = self.text(m["name"], join_key(fk, "name"))
            group = (self.choice(m["group"], join_key(fk, "group"), FIELD_GROUPS)
                     if m.get("group") is not None else None)
            if group is None and m.get("group") is not None:
                ok = False
            if fid is not None and not _FIELD_ID.fullmatch(fid):
                self.error(join_key(fk, "id"), fid, "expected 1-32 characters from a-z 0-9 _")
                fid = None
            if fid is not None and fid in seen:
                self.error(join_key(fk, "id"), fid,
                           f"expected a unique field id; {key}[{seen[fid]}] has it too")
                fid = None
            if fid is None or fname is None:
                ok = False
                continue
            seen[fid] = i
            result.append(Field(fid, fname, group))
        return tuple(result) if ok else None

    def tenants(self, value: object) -> tuple[Tenant, ...]:
        key = "tenants"
        if value is None:
            self.error(key, value, "expected a list of at least one tenant")
            return ()
        items = self.list_(value, key)
        if items is None:
            return ()
        result: list[Tenant] = []
        ids: dict[str, int] = {}
        numbers: dict[str, tuple[int, int]] = {}
        prefixes: dict[str, int] = {}
        extensions: dict[str, tuple[int, int]] = {}
        for i, item in enumerate(items):
            tk = join_key(key, i)
            tenant = self.tenant(item, tk)
            if tenant is None:
                continue
            if tenant.id in ids:
                self.error(join_key(tk, "id"), tenant.id,
                           f"expected a unique tenant id; tenants[{ids[tenant.id]}] has it too")
            else:
                ids[tenant.id] = i
            for j, number in enumerate(tenant.numbers):
                norm = normalise_number(number)
                if norm in numbers:
                    ti, tj = numbers[norm]
                    self.error(join_key(join_key(tk, "numbers"), j), number,
                               f"expected a number unique across all tenants; "
                               f"tenants[{ti}].numbers[{tj}] is the same number ({norm})")
                else:
                    numbers[norm] = (i, j)
            # Ticket codes (DN-20261123-0042) must tell the provinces apart.
            prefix = tenant.tickets.code_prefix if tenant.tickets is not None else None
            if prefix is not None and prefix in prefixes:
                self.error(join_key(tk, "tickets.code_prefix"), prefix,
                           f"expected a ticket code prefix unique across tenants (the default "
                           f"is the tenant id in capitals); tenants[{prefixes[prefix]}] uses it "
                           f"too")
            elif prefix is not None:
                prefixes[prefix] = i
            # PJSIP endpoint names are global: one extension belongs to one tenant.
            for j, op in enumerate(tenant.operators.operators):
                if op.extension in extensions:
                    ti, tj = extensions[op.extension]
                    self.error(join_key(join_key(tk, "operators"), j) + ".extension",
                               op.extension, f"expected an extension unique across all "
                               f"tenants; tenants[{ti}].operators[{tj}] has it too")
                else:
                    extensions[op.extension] = (i, j)
            result.append(tenant)
        return tuple(result)


def parse_config(data: object, source: str) -> HotlineConfig:
    """Validate what ``yaml.safe_load`` returned; raise ConfigError listing every problem."""
    parser = _Parser(source)
    root = parser.mapping(data, "", ("service", "trunk", "sip_guard", "console", "sip_tls",
                                     "mail", "mail_in", "edge", "tenants"),
                          ("tenants",))
    if root is None:
        raise ConfigError.collect(parser.errors)
    service = parser.service(root.get("service"))
    trunk = parser.trunk(root.get("trunk"))
    sip_guard = parser.sip_guard(root.get("sip_guard"))
    console = parser.console(root.get("console"))
    sip_tls = parser.sip_tls(root.get("sip_tls"))
    mail = parse_mail_section(parser, root.get("mail"))
    mail_in = parse_mail_in_section(parser, root.get("mail_in"))
    edge = (parser.edge_section(root["edge"], trunk.edge) if root.get("edge") is not None
            else None)
    tenants = parser.tenants(root["tenants"]) if "tenants" in root else ()
    for at, tenant in (mail_in.addresses.items() if mail_in else ()):
        if tenant not in {t.id for t in tenants}:
            parser.error(f"mail_in.tenants.{tenant}", at, "no tenant has this id")
    if parser.errors:
        raise ConfigError.collect(parser.errors)
    return HotlineConfig(tenants=tenants, trunk=trunk, service=service, sip_guard=sip_guard,
                         console=console, sip_tls=sip_tls, mail=mail, mail_in=mail_in,
                         edge=edge, source=source)


# libyaml's parser when PyYAML was built with it (Debian's and the wheels' are): the pure-Python
# one takes ~3 ms per province of the national config (210 ms of 243 for 63, bench/provinces.py),
# libyaml a tenth of that. Construction (safe types, the duplicate-key check) stays in Python.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: dict[object, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first given at line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_yaml_text(text: str, source: str) -> object:
    """YAML text to plain data; a syntax error or duplicate key raises ConfigError (``<yaml>``)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        lines = text.splitlines()
        snippet = lines[line - 1].strip() if line is not None and line <= len(lines) else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        where = f"line {line}, column {column}" if line is not None else "unknown position"
        raise ConfigError(source, "<yaml>", snippet, f"invalid YAML at {where}: {what}",
                          line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, "<yaml>", "", f"invalid YAML: {exc}") from exc


def parse_config_text(text: str, source: str) -> HotlineConfig:
    """``parse_yaml_text`` then ``parse_config``."""
    return parse_config(parse_yaml_text(text, source), source)
