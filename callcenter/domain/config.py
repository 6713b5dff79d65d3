"""Build and validate the typed ``HotlineConfig`` from YAML.

* ``parse_config(data, source)``: pure; validates the structure ``yaml.safe_load`` produced.
* ``parse_yaml_text(text, source)`` / ``parse_config_text(text, source)``: YAML text in memory.
* ``load_config(path)``: the single place that reads a file.

Every problem becomes a ``ConfigError`` naming the file, the dotted key path, the bad value and
what was expected; all problems found are collected in ``ConfigError.errors`` (the raised
error is the first). Unknown keys are errors, so a typo never silently falls back to a default.

Schema (see config/hotline.yaml for a commented example)::

    service: {ari_bind, ari_port, ami_bind, ami_port, http_bind, http_port, stasis_app, node}
    trunk: {bind, port, trusted_networks: [cidr, ...], media_address, rtp_start, rtp_end}
    tenants:
      - id, name, timezone, numbers: [...], shifts: [{name, start, end, lines}, ...],
        overrides: [{name, from, to, shifts: [...]}], prompts: {greeting, all_busy, unavailable}
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from callcenter.domain.model import (
    DEFAULT_PROMPTS,
    DateOverride,
    HotlineConfig,
    Prompts,
    ServiceConfig,
    Shift,
    Tenant,
    TrunkConfig,
)
from callcenter.domain.shifts import normalise_number

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
MAX_LINES = 1000
# "default" names the fallback extension/prompt folder in the rendered dialplan.
RESERVED_TENANT_IDS = frozenset({"default"})

_DAY = 24 * 3600
_TENANT_ID = re.compile(r"[a-z0-9_-]{1,32}")
_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_REPR_MAX = 120


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""Stands for the value of a required key that is absent (shown as ``<missing>``)."""


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


class ConfigError(ValueError):
    """An invalid configuration: which file, which key, which value, what was expected.

    ``str()`` is one line, ``{source}: {key} = {value}: {reason}`` (``value`` already being the
    repr of the bad value), followed by ``(+N more errors)`` when several problems were found;
    ``errors`` holds all of them (the first is this error), ``format_all()`` lists them.
    """

    def __init__(
        self,
        source: str,
        key: str,
        value: object,
        reason: str,
        *,
        line: int | None = None,
    ) -> None:
        self.source = source
        self.key = key
        self.raw_value = value
        self.value = _short_repr(value)
        self.reason = reason
        self.line = line  # 1-based line in the file, when known (YAML syntax errors)
        self.errors: list[ConfigError] = [self]
        super().__init__(self.line_text())

    @classmethod
    def collect(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error to raise carrying all of ``errors`` (must not be empty)."""
        first = errors[0]
        first.errors = list(errors)
        first.args = (str(first),)
        return first

    def line_text(self) -> str:
        """This error alone, as one line."""
        return f"{self.source}: {self.key} = {self.value}: {self.reason}"

    def format_all(self) -> str:
        """Every error found, one per line."""
        return "\n".join(e.line_text() for e in self.errors)

    def __str__(self) -> str:
        more = len(self.errors) - 1
        suffix = f" (+{more} more error{'s' if more > 1 else ''})" if more else ""
        return self.line_text() + suffix


def _join(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def _fmt_seconds(secs: int) -> str:
    h, rem = divmod(secs % _DAY, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _seconds(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", dt.date: "a date", dt.datetime: "a date-time"}
    return names.get(type(value), type(value).__name__)


class _Parser:
    """Walks the loaded YAML, collecting every error instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[ConfigError] = []

    def error(self, key: str, value: object, reason: str) -> None:
        self.errors.append(ConfigError(self.source, key, value, reason))

    # ---- generic shapes ------------------------------------------------------------------

    def mapping(
        self,
        value: object,
        key: str,
        allowed: Sequence[str],
        required: Iterable[str] = (),
    ) -> dict[str, object] | None:
        if not isinstance(value, dict):
            self.error(key or "<root>", value, f"expected a mapping, got {_type_name(value)}")
            return None
        result: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str) or k not in allowed:
                hint = ""
                if isinstance(k, str):
                    close = difflib.get_close_matches(k, allowed, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                elif isinstance(k, bool):
                    hint = " (YAML reads unquoted yes/no/on/off as booleans: quote the key)"
                self.error(
                    _join(key, str(k)), v,
                    f"unknown key{hint}; expected one of: {', '.join(allowed)}",
                )
                continue
            result[k] = v
        for k in required:
            if k not in result:
                self.error(_join(key, k), MISSING, "required key is missing")
        return result

    def list_(self, value: object, key: str, *, non_empty: bool = True) -> list[object] | None:
        if not isinstance(value, list):
            self.error(key, value, f"expected a list, got {_type_name(value)}")
            return None
        if non_empty and not value:
            self.error(key, value, "expected a non-empty list")
            return None
        return value

    def text(self, value: object, key: str, *, max_len: int = 200) -> str | None:
        if not isinstance(value, str):
            self.error(key, value, f"expected a string, got {_type_name(value)}")
            return None
        if not value.strip():
            self.error(key, value, "expected a non-empty string")
            return None
        if len(value) > max_len:
            self.error(key, value, f"expected at most {max_len} characters, got {len(value)}")
            return None
        return value

    def token(self, value: object, key: str) -> str | None:
        s = self.text(value, key)
        if s is not None and not _TOKEN.fullmatch(s):
            self.error(key, value, "expected 1-64 characters from A-Z a-z 0-9 _ . -")
            return None
        return s

    def node_name(self, value: object, key: str) -> str | None:
        # The node prefixes Asterisk's uniqueids and the record ids (at most 64 characters).
        s = self.token(value, key)
        if s is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", s):
            self.error(key, value, "expected 1-16 characters from A-Z a-z 0-9 _ -")
            return None
        return s

    def integer(self, value: object, key: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, value, f"expected an integer {low}..{high}, got {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(key, value, f"expected an integer {low}..{high}")
            return None
        return value

    def port(self, value: object, key: str) -> int | None:
        return self.integer(value, key, 1, 65535)

    def ip(self, value: object, key: str, *, ipv4_only: bool = False) -> str | None:
        s = self.text(value, key)
        if s is None:
            return None
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            self.error(key, value, "expected an IP address such as 127.0.0.1")
            return None
        if ipv4_only and addr.version != 4:
            self.error(key, value, "expected an IPv4 address (the SIP transport binds IPv4)")
            return None
        return s

    def host(self, value: object, key: str) -> str | None:
        s = self.text(value, key)
        if s is None:
            return None
        try:
            ipaddress.ip_address(s)
        except ValueError:
            if not _HOSTNAME.fullmatch(s):
                self.error(key, value, "expected an IP address or a host name")
                return None
        return s

    def time(self, value: object, key: str, *, allow_24: bool = False) -> dt.time | None:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.error(key, value, f'expected a time "HH:MM" in quotes, got {_type_name(value)}')
            return None
        if isinstance(value, int):
            # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080 (07:00 stays a string).
            guess = (
                f"{value // 60:02d}:{value % 60:02d}" if 0 <= value <= 24 * 60
                else _fmt_seconds(value) if 0 <= value < _DAY else None
            )
            was = f" (it was probably {guess})" if guess else ""
            self.error(
                key, value,
                f'expected a time "HH:MM" in quotes; YAML read an unquoted time as the base-60 '
                f'integer {value}{was}: write it quoted, e.g. "{guess or "18:00"}"',
            )
            return None
        m = _TIME.fullmatch(value.strip())
        if m is None:
            self.error(key, value, 'expected a time "HH:MM" or "HH:MM:SS"')
            return None
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if allow_24 and (h, mi, s) == (24, 0, 0):
            return dt.time(0, 0)  # "24:00" as an end is midnight
        if h > 23 or mi > 59 or s > 59:
            extra = ' ("24:00" is allowed only as an end)' if h == 24 else ""
            self.error(key, value, f'expected a time 00:00..23:59:59{extra}')
            return None
        return dt.time(h, mi, s)

    def date(self, value: object, key: str) -> dt.date | None:
        if isinstance(value, dt.datetime):
            self.error(key, value, 'expected a date "YYYY-MM-DD" without a time')
            return None
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and _DATE.fullmatch(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError as exc:
                self.error(key, value, f'expected a valid date "YYYY-MM-DD": {exc}')
                return None
        self.error(key, value, f'expected a date "YYYY-MM-DD", got {_type_name(value)}')
        return None

    # ---- sections --------------------------------------------------------------------------

    def service(self, value: object) -> ServiceConfig:
        d = ServiceConfig()
        if value is None:
            return d
        keys = ("ari_bind", "ari_port", "ami_bind", "ami_port", "http_bind", "http_port",
                "stasis_app", "node")
        m = self.mapping(value, "service", keys)
        if m is None:
            return d
        k = "service"
        result = ServiceConfig(
            ari_bind=self.ip(m.get("ari_bind", d.ari_bind), _join(k, "ari_bind")) or d.ari_bind,
            ari_port=self.port(m.get("ari_port", d.ari_port), _join(k, "ari_port")) or d.ari_port,
            ami_bind=self.ip(m.get("ami_bind", d.ami_bind), _join(k, "ami_bind")) or d.ami_bind,
            ami_port=self.port(m.get("ami_port", d.ami_port), _join(k, "ami_port")) or d.ami_port,
            http_bind=self.host(m.get("http_bind", d.http_bind), _join(k, "http_bind"))
            or d.http_bind,
            http_port=self.port(m.get("http_port", d.http_port), _join(k, "http_port"))
            or d.http_port,
            stasis_app=self.token(m.get("stasis_app", d.stasis_app), _join(k, "stasis_app"))
            or d.stasis_app,
            node=self.node_name(m.get("node", d.node), _join(k, "node")) or d.node,
        )
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
                        _join(k, f"{name_b}_port"), port_b,
                        f"expected a port different from service.{name_a}_port "
                        f"(both listen on {bind_b})",
                    )
        return result

    def trunk(self, value: object) -> TrunkConfig:
        d = TrunkConfig()
        if value is None:
            return d
        keys = ("bind", "port", "trusted_networks", "media_address", "rtp_start", "rtp_end")
        m = self.mapping(value, "trunk", keys)
        if m is None:
            return d
        k = "trunk"
        networks: list[str] = []
        raw_nets = m.get("trusted_networks", list(d.trusted_networks))
        nets = self.list_(raw_nets, _join(k, "trusted_networks"))
        for i, net in enumerate(nets or []):
            nk = _join(_join(k, "trusted_networks"), i)
            s = self.text(net, nk)
            if s is None:
                continue
            try:
                ipaddress.ip_network(s.strip(), strict=True)
            except ValueError as exc:
                self.error(nk, net, f"expected a network in CIDR form such as 10.0.0.0/8: {exc}")
                continue
            networks.append(s.strip())
        rtp_start = self.port(m.get("rtp_start", d.rtp_start), _join(k, "rtp_start"))
        rtp_end = self.port(m.get("rtp_end", d.rtp_end), _join(k, "rtp_end"))
        if rtp_start is not None and rtp_end is not None and rtp_start >= rtp_end:
            self.error(_join(k, "rtp_end"), rtp_end,
                       f"expected a port greater than trunk.rtp_start ({rtp_start})")
        port = self.port(m.get("port", d.port), _join(k, "port"))
        if (port is not None and rtp_start is not None and rtp_end is not None
                and rtp_start <= port <= rtp_end):
            self.error(_join(k, "port"), port,
                       f"expected a SIP port outside the RTP range {rtp_start}..{rtp_end}")
        return TrunkConfig(
            bind=self.ip(m.get("bind", d.bind), _join(k, "bind"), ipv4_only=True) or d.bind,
            port=port or d.port,
            trusted_networks=tuple(networks) or d.trusted_networks,
            media_address=self.ip(m.get("media_address", d.media_address),
                                  _join(k, "media_address")) or d.media_address,
            rtp_start=rtp_start or d.rtp_start,
            rtp_end=rtp_end or d.rtp_end,
        )

    def shift(self, value: object, key: str) -> Shift | None:
        m = self.mapping(value, key, ("name", "start", "end", "lines"),
                         ("name", "start", "end", "lines"))
        if m is None:
            return None
        name = self.text(m["name"], _join(key, "name"), max_len=64) if "name" in m else None
        start = self.time(m["start"], _join(key, "start")) if "start" in m else None
        end = self.time(m["end"], _join(key, "end"), allow_24=True) if "end" in m else None
        lines = (self.integer(m["lines"], _join(key, "lines"), 0, MAX_LINES)
                 if "lines" in m else None)
        if name is None or start is None or end is None or lines is None:
            return None
        return Shift(name=name, start=start, end=end, lines=lines)

    def shifts(self, value: object, key: str) -> tuple[Shift, ...] | None:
        items = self.list_(value, key)
        if items is None:
            return None
        parsed = [self.shift(item, _join(key, i)) for i, item in enumerate(items)]
        good = [s for s in parsed if s is not None]
        if len(good) != len(parsed):
            return None
        names: dict[str, int] = {}
        ok = True
        for i, s in enumerate(good):
            if s.name in names:
                self.error(_join(_join(key, i), "name"), s.name,
                           f"expected a unique shift name; {key}[{names[s.name]}] has it too")
                ok = False
            names.setdefault(s.name, i)
        if not self.partition(good, key):
            ok = False
        return tuple(good) if ok else None

    def partition(self, shifts: Sequence[Shift], key: str) -> bool:
        """Shifts must tile the 24 h circle: each ends exactly where the next one starts."""
        order = sorted(shifts, key=lambda s: _seconds(s.start))
        summary = [f"{s.name} {_fmt_seconds(_seconds(s.start))}-{_fmt_seconds(_seconds(s.end))}"
                   for s in order]
        ok = True
        same_start: set[tuple[str, str]] = set()
        for i, cur in enumerate(order):
            nxt = order[(i + 1) % len(order)]
            s0, e0, s1 = _seconds(cur.start), _seconds(cur.end), _seconds(nxt.start)
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
                           f"{cur.name!r} and {nxt.name!r} both start at {_fmt_seconds(s0)}")
                ok = False
                continue
            if length < dist:
                self.error(key, summary,
                           f"shifts must cover the 24 hours with no gap or overlap: gap "
                           f"{_fmt_seconds(e0)}-{_fmt_seconds(s1)} after {cur.name!r}")
                ok = False
            elif length > dist:
                self.error(key, summary,
                           f"shifts must cover the 24 hours with no gap or overlap: "
                           f"{cur.name!r} and {nxt.name!r} overlap "
                           f"{_fmt_seconds(s1)}-{_fmt_seconds(e0)}")
                ok = False
        return ok

    def override(self, value: object, key: str) -> DateOverride | None:
        m = self.mapping(value, key, ("name", "from", "to", "shifts"),
                         ("name", "from", "to", "shifts"))
        if m is None:
            return None
        name = self.text(m["name"], _join(key, "name"), max_len=64) if "name" in m else None
        start = self.date(m["from"], _join(key, "from")) if "from" in m else None
        end = self.date(m["to"], _join(key, "to")) if "to" in m else None
        shifts = self.shifts(m["shifts"], _join(key, "shifts")) if "shifts" in m else None
        if start is not None and end is not None and start > end:
            self.error(_join(key, "to"), m["to"],
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
        parsed = [(i, self.override(item, _join(key, i))) for i, item in enumerate(items)]
        good = [(i, o) for i, o in parsed if o is not None]
        ok = len(good) == len(parsed)
        by_start = sorted(good, key=lambda p: p[1].start_date)
        for (i_a, a), (i_b, b) in zip(by_start, by_start[1:], strict=False):
            if b.start_date <= a.end_date:
                self.error(
                    _join(_join(key, i_b), "from"), b.start_date.isoformat(),
                    f"expected override dates not overlapping {key}[{i_a}] {a.name!r} "
                    f"({a.start_date.isoformat()}..{a.end_date.isoformat()})",
                )
                ok = False
        return tuple(o for _, o in good) if ok else None

    def prompts(self, value: object, key: str) -> Prompts | None:
        keys = ("greeting", "all_busy", "unavailable")
        m = self.mapping(value, key, keys)
        if m is None:
            return None
        d = DEFAULT_PROMPTS
        return Prompts(
            greeting=self.text(m.get("greeting", d.greeting), _join(key, "greeting"),
                               max_len=2000) or d.greeting,
            all_busy=self.text(m.get("all_busy", d.all_busy), _join(key, "all_busy"),
                               max_len=2000) or d.all_busy,
            unavailable=self.text(m.get("unavailable", d.unavailable), _join(key, "unavailable"),
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
            nk = _join(key, i)
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
        keys = ("id", "name", "timezone", "numbers", "shifts", "overrides", "prompts")
        m = self.mapping(value, key, keys, ("id", "name", "numbers", "shifts"))
        if m is None:
            return None
        tid: str | None = None
        if "id" in m:
            tid = self.text(m["id"], _join(key, "id"))
            if tid is not None and not _TENANT_ID.fullmatch(tid):
                self.error(_join(key, "id"), tid, "expected 1-32 characters from a-z 0-9 _ -")
                tid = None
            elif tid is not None and tid in RESERVED_TENANT_IDS:
                self.error(_join(key, "id"), tid,
                           f"expected an id other than {tid!r}, which the dialplan reserves")
                tid = None
        name = self.text(m["name"], _join(key, "name")) if "name" in m else None
        tz = self.timezone(m.get("timezone", DEFAULT_TIMEZONE), _join(key, "timezone"))
        numbers = self.numbers(m["numbers"], _join(key, "numbers")) if "numbers" in m else None
        shifts = self.shifts(m["shifts"], _join(key, "shifts")) if "shifts" in m else None
        overrides = self.overrides(m.get("overrides"), _join(key, "overrides"))
        prompts: Prompts | None = None
        prompts_ok = True
        if m.get("prompts") is not None:
            prompts = self.prompts(m["prompts"], _join(key, "prompts"))
            prompts_ok = prompts is not None
        if (tid is None or name is None or tz is None or numbers is None or shifts is None
                or overrides is None or not prompts_ok):
            return None
        return Tenant(id=tid, name=name, timezone=tz, numbers=numbers, shifts=shifts,
                      overrides=overrides, prompts=prompts)

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
        for i, item in enumerate(items):
            tk = _join(key, i)
            tenant = self.tenant(item, tk)
            if tenant is None:
                continue
            if tenant.id in ids:
                self.error(_join(tk, "id"), tenant.id,
                           f"expected a unique tenant id; tenants[{ids[tenant.id]}] has it too")
            else:
                ids[tenant.id] = i
            for j, number in enumerate(tenant.numbers):
                norm = normalise_number(number)
                if norm in numbers:
                    ti, tj = numbers[norm]
                    self.error(_join(_join(tk, "numbers"), j), number,
                               f"expected a number unique across all tenants; "
                               f"tenants[{ti}].numbers[{tj}] is the same number ({norm})")
                else:
                    numbers[norm] = (i, j)
            result.append(tenant)
        return tuple(result)


def parse_config(data: object, source: str) -> HotlineConfig:
    """Validate what ``yaml.safe_load`` returned; raise ConfigError listing every problem."""
    parser = _Parser(source)
    root = parser.mapping(data, "", ("service", "trunk", "tenants"), ("tenants",))
    if root is None:
        raise ConfigError.collect(parser.errors)
    service = parser.service(root.get("service"))
    trunk = parser.trunk(root.get("trunk"))
    tenants = parser.tenants(root["tenants"]) if "tenants" in root else ()
    if parser.errors:
        raise ConfigError.collect(parser.errors)
    return HotlineConfig(tenants=tenants, trunk=trunk, service=service, source=source)


class _UniqueKeyLoader(yaml.SafeLoader):
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
