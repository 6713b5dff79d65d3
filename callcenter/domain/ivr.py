"""IVR menu trees (pure data); the interpreter is callcenter.domain.menu."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IvrTree:
    """A tenant's validated menu tree (placeholder until the IVR lands)."""

    root: str
