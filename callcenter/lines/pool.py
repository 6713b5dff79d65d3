"""Line pools: whether one more call of a province may take a line now. Pure.

The live count (``in_use``) is kept atomically in Redis by the queue adapter; this module only
decides from a snapshot of it. ``in_use`` may exceed ``limit`` for a while after a shift change
lowers the limit (calls already up are never cut): then nobody new is admitted until it drops.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolView:
    """A snapshot of one tenant's line pool: lines paid for in the current shift, lines in use."""

    tenant_id: str
    limit: int
    in_use: int

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.in_use < 0:
            raise ValueError(f"in_use must be >= 0, got {self.in_use}")

    @property
    def free(self) -> int:
        """Lines still free (0 when the pool is full or over its limit)."""
        return max(0, self.limit - self.in_use)


def admit(view: PoolView) -> bool:
    """True if one more call may take a line: strictly fewer lines in use than paid for."""
    return view.in_use < view.limit


@dataclass(frozen=True)
class Admission:
    """The decision with its reason, for logs and the console."""

    admitted: bool
    view: PoolView
    reason: str


def decide(view: PoolView) -> Admission:
    """``admit`` plus a one-line reason."""
    if view.limit == 0:
        return Admission(False, view, f"{view.tenant_id}: shift closed (0 lines)")
    if admit(view):
        return Admission(
            True, view, f"{view.tenant_id}: line {view.in_use + 1} of {view.limit}"
        )
    return Admission(
        False, view, f"{view.tenant_id}: all {view.limit} lines busy ({view.in_use} in use)"
    )
