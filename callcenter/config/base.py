"""Generic building blocks for validating configuration: the error type and a collecting parser.

Pure: no I/O. ``callcenter.config.parse`` builds the hotline config with them; sections that
live in their own module (IVR menus, ticket policy) use the same ``BaseParser`` so their errors
read alike.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

_DAY = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
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


def join_key(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def fmt_seconds(secs: int) -> str:
    h, rem = divmod(secs % _DAY, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def seconds_of(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", dt.date: "a date", dt.datetime: "a date-time"}
    return names.get(type(value), type(value).__name__)

class BaseParser:
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
            self.error(key or "<root>", value, f"expected a mapping, got {type_name(value)}")
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
                    join_key(key, str(k)), v,
                    f"unknown key{hint}; expected one of: {', '.join(allowed)}",
                )
                continue
            result[k] = v
        for k in required:
            if k not in result:
                self.error(join_key(key, k), MISSING, "required key is missing")
        return result

    def list_(self, value: object, key: str, *, non_empty: bool = True) -> list[object] | None:
        if not isinstance(value, list):
            self.error(key, value, f"expected a list, got {type_name(value)}")
            return None
        if non_empty and not value:
            self.error(key, value, "expected a non-empty list")
            return None
        return value

    def text(self, value: object, key: str, *, max_len: int = 200) -> str | None:
        if not isinstance(value, str):
            self.error(key, value, f"expected a string, got {type_name(value)}")
            return None
        if not value.strip():
            self.error(key, value, "expected a non-empty string")
            return None
        if len(value) > max_len:
            self.error(key, value, f"expected at most {max_len} characters, got {len(value)}")
            return None
        return value

    def choice(self, value: object, key: str, choices: Sequence[str]) -> str | None:
        """A string that is one of ``choices``; else an error listing them."""
        s = self.text(value, key, max_len=64)
        if s is not None and s not in choices:
            self.error(key, value, f"expected one of: {', '.join(choices)}")
            return None
        return s

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
            self.error(key, value, f"expected an integer {low}..{high}, got {type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(key, value, f"expected an integer {low}..{high}")
            return None
        return value

    def port(self, value: object, key: str) -> int | None:
        return self.integer(value, key, 1, 65535)

    def boolean(self, value: object, key: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(key, value, f"expected true or false, got {type_name(value)}")
            return None
        return value

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
            self.error(key, value, f'expected a time "HH:MM" in quotes, got {type_name(value)}')
            return None
        if isinstance(value, int):
            # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080 (07:00 stays a string).
            guess = (
                f"{value // 60:02d}:{value % 60:02d}" if 0 <= value <= 24 * 60
                else fmt_seconds(value) if 0 <= value < _DAY else None
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
        self.error(key, value, f'expected a date "YYYY-MM-DD", got {type_name(value)}')
        return None
