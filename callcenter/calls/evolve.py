"""``replace`` for the call machine's frozen dataclasses, without their ``__init__``. Pure.

``dataclasses.replace`` reads every field and calls ``__init__``, which sets every field of a
frozen dataclass through ``object.__setattr__``: ~14 µs for a ``CallState`` (44 fields), and
the machine replaces the state twice before a caller is answered (issue 20,
bench/answer_profile.py). Copying the instance's attributes gives the same object in ~2 µs for
the dataclasses this applies to: every field set by ``__init__`` (no ``init=False``, no
``InitVar``), no ``__post_init__``, no ``__slots__`` (checked once per class).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS: dict[type, frozenset[str]] = {}


def _plain_fields(cls: type) -> frozenset[str]:
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__") \
            or "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: not a plain dataclass (use dataclasses.replace)")
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields) or any(
            isinstance(v, dataclasses.InitVar) for v in cls.__dict__.get("__annotations__", {})
            .values()):
        raise TypeError(f"{cls.__name__}: fields outside __init__ (use dataclasses.replace)")
    return frozenset(f.name for f in fields)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the frozen dataclass ``obj`` with ``changes`` (as ``dataclasses.replace``;
    an unknown field name raises TypeError)."""
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = _plain_fields(cls)
    if not names.issuperset(changes):
        unknown = ", ".join(sorted(set(changes) - names))
        raise TypeError(f"{cls.__name__} has no field {unknown}")
    new: T = object.__new__(cls)
    attributes = new.__dict__
    attributes.update(obj.__dict__)
    attributes.update(changes)
    return new
