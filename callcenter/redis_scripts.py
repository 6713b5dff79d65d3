"""Lua scripts for Redis kept as package files (``<package>/lua/*.lua``), read once at import.

A line ``--#include NAME`` is replaced by ``lua/NAME.lua`` of the same package (shared
fragments, such as the line pool's clock and reclaim steps); ``prelude`` puts one file in front
of the script (the queue's helper library).
"""

from __future__ import annotations

import re
from importlib import resources

_INCLUDE = re.compile(r"^--#include (\w+)\n", re.M)


def lua_script(package: str, name: str, prelude: str | None = None) -> str:
    """The text of ``lua/<name>.lua`` in ``package``, its includes expanded."""
    folder = resources.files(package) / "lua"

    def read(file: str) -> str:
        return (folder / f"{file}.lua").read_text(encoding="utf-8")

    text = (read(prelude) if prelude else "") + read(name)
    return _INCLUDE.sub(lambda m: read(m.group(1)), text)
