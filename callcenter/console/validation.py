"""Request validation that also writes the OpenAPI schema: one description of each body and
parameter, so the spec cannot drift from what the handlers accept.

Every refusal is a 422 ``request.invalid`` naming the field (``details.field``). Strings are
refused when they hold control characters (NUL cannot be stored by PostgreSQL; the others
have no business in a petition) or lone surrogates (not UTF-8).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.console.errors import invalid

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def _text_ok(value: str, where: str) -> None:
    if _CONTROL.search(value):
        raise invalid(where, "control characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(where, "not valid Unicode text") from None


@dataclass(frozen=True)
class Str:
    """A string of bounded length, optionally from a set or of a pattern."""

    max_len: int
    min_len: int = 1
    enum: tuple[str, ...] | None = None
    pattern: str | None = None  # full match
    nullable: bool = False
    description: str | None = None
    strip: bool = True  # surrounding whitespace is not counted towards min_len

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": ["string", "null"] if self.nullable else "string"}
        if self.enum is not None:
            s["enum"] = list(self.enum) + ([None] if self.nullable else [])
        else:
            s["maxLength"] = self.max_len
            if self.min_len:
                s["minLength"] = self.min_len
            if self.pattern is not None:
                s["pattern"] = f"^(?:{self.pattern})$"
        if self.description:
            s["description"] = self.description
        return s

    def check(self, value: object, where: str) -> str | None:
        if value is None:
            if self.nullable:
                return None
            raise invalid(where, "must not be null")
        if not isinstance(value, str):
            raise invalid(where, "expected a string")
        _text_ok(value, where)
        if self.enum is not None:
            if value not in self.enum:
                raise invalid(where, f"expected one of {', '.join(self.enum)}")
            return value
        if len(value) > self.max_len:
            raise invalid(where, f"at most {self.max_len} characters")
        if len(value.strip() if self.strip else value) < self.min_len:
            raise invalid(where, "must not be empty" if self.min_len == 1
                          else f"at least {self.min_len} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise invalid(where, f"expected the pattern {self.pattern}")
        return value


@dataclass(frozen=True)
class Int:
    """An integer in a range (JSON booleans are not integers here)."""

    minimum: int
    maximum: int
    description: str | None = None

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "integer", "minimum": self.minimum,
                             "maximum": self.maximum}
        if self.description:
            s["description"] = self.description
        return s

    def check(self, value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise invalid(where, "expected an integer")
        if not self.minimum <= value <= self.maximum:
            raise invalid(where, f"expected {self.minimum}..{self.maximum}")
        return value


@dataclass(frozen=True)
class Bool:
    """true or false."""

    nullable: bool = False
    description: str | None = None

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": ["boolean", "null"] if self.nullable else "boolean"}
        if self.description:
            s["description"] = self.description
        return s

    def check(self, value: object, where: str) -> bool | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, bool):
            raise invalid(where, "expected true or false")
        return value


@dataclass(frozen=True)
class StrList:
    """A list of strings, each checked by ``item``."""

    item: Str
    max_items: int
    description: str | None = None

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "array", "items": self.item.schema(),
                             "maxItems": self.max_items}
        if self.description:
            s["description"] = self.description
        return s

    def check(self, value: object, where: str) -> list[str]:
        if not isinstance(value, list):
            raise invalid(where, "expected a list")
        if len(value) > self.max_items:
            raise invalid(where, f"at most {self.max_items} items")
        out = []
        for i, v in enumerate(value):
            checked = self.item.check(v, f"{where}[{i}]")
            if checked is not None:
                out.append(checked)
        return out


Spec = Str | Int | Bool | StrList


@dataclass(frozen=True)
class Obj:
    """A JSON object with known keys (unknown keys are refused: typos must not pass)."""

    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()
    title: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "type": "object",
            "properties": {k: v.schema() for k, v in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            s["required"] = list(self.required)
        if self.title:
            s["title"] = self.title
        return s

    def check(self, value: object, where: str = "body") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise invalid(where, "expected a JSON object")
        for key in value:
            if key not in self.fields:
                raise invalid(key, "unknown field")
        for key in self.required:
            if key not in value:
                raise invalid(key, "required")
        out = dict(self.defaults)
        for key, spec in self.fields.items():
            if key in value:
                out[key] = spec.check(value[key], key)
        return out


# ---- query and path parameters ---------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A query or path parameter: ``kind`` str, int, bool, date, datetime or month."""

    name: str
    kind: str = "str"
    where: str = "query"
    required: bool = False
    description: str = ""
    max_len: int = 64
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any]
        if self.kind == "int":
            s = {"type": "integer"}
            if self.minimum is not None:
                s["minimum"] = self.minimum
            if self.maximum is not None:
                s["maximum"] = self.maximum
        elif self.kind == "bool":
            s = {"type": "boolean"}
        elif self.kind == "date":
            s = {"type": "string", "format": "date"}
        elif self.kind == "datetime":
            s = {"type": "string", "format": "date-time"}
        elif self.kind == "month":
            s = {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"}
        elif self.enum is not None:
            s = {"type": "string", "enum": list(self.enum)}
        else:
            s = {"type": "string", "minLength": 1, "maxLength": self.max_len}
            if self.pattern is not None:
                s["pattern"] = f"^(?:{self.pattern})$"
        if self.default is not None:
            s["default"] = self.default
        return s

    def openapi(self) -> dict[str, Any]:
        p: dict[str, Any] = {"name": self.name, "in": self.where,
                             "required": self.required or self.where == "path",
                             "schema": self.schema()}
        if self.description:
            p["description"] = self.description
        return p

    def parse(self, raw: str | None) -> Any:
        """The parameter's value from its text (``default`` when absent)."""
        name = self.name
        if raw is None:
            if self.required:
                raise invalid(name, "required")
            return self.default
        _text_ok(raw, name)
        if self.kind == "int":
            if not re.fullmatch(r"-?[0-9]{1,12}", raw):
                raise invalid(name, "expected an integer")
            n = int(raw)
            if (self.minimum is not None and n < self.minimum) or (
                    self.maximum is not None and n > self.maximum):
                raise invalid(name, f"expected {self.minimum}..{self.maximum}")
            return n
        if self.kind == "bool":
            if raw not in ("true", "false", "1", "0"):
                raise invalid(name, "expected true or false")
            return raw in ("true", "1")
        if self.kind == "date":
            try:
                return dt.date.fromisoformat(raw) if len(raw) == 10 else _bad_date(name)
            except ValueError:
                raise invalid(name, "expected a date YYYY-MM-DD") from None
        if self.kind == "datetime":
            return parse_time(raw, name)
        if self.kind == "month":
            m = _MONTH.fullmatch(raw)
            if m is None or not 1 <= int(m[2]) <= 12:
                raise invalid(name, "expected a month YYYY-MM")
            return raw
        if self.enum is not None:
            if raw not in self.enum:
                raise invalid(name, f"expected one of {', '.join(self.enum)}")
            return raw
        if not raw or len(raw) > self.max_len:
            raise invalid(name, f"expected 1..{self.max_len} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            raise invalid(name, f"expected the pattern {self.pattern}")
        return raw


def _bad_date(name: str) -> dt.date:
    raise invalid(name, "expected a date YYYY-MM-DD")


def parse_time(raw: str, name: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset (``Z`` allowed), as aware UTC."""
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(name, "expected an ISO 8601 time with offset, e.g. "
                            "2026-11-23T08:00:00+07:00") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(name, "the time needs a UTC offset (e.g. +07:00 or Z)")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise invalid(name, "time out of range") from None


def parse_query(params: tuple[Param, ...], query: Mapping[str, str]) -> dict[str, Any]:
    """Every declared query parameter parsed (unknown ones are ignored, as browsers add some);
    a parameter given twice is refused, so no filter is silently dropped."""
    out: dict[str, Any] = {}
    getall = getattr(query, "getall", None)
    for p in params:
        if p.where != "query":
            continue
        if getall is not None and len(getall(p.name, [])) > 1:
            raise invalid(p.name, "given more than once")
        out[p.name] = p.parse(query.get(p.name))
    return out
