"""Waiting before the next try: exponential back-off, capped, optionally jittered; pure.

One rule for every reconnecting adapter (ARI's websocket, AMI, the call-record journal's
database writes, SMS sends): the first wait is ``initial``, each failure doubles it up to
``cap``, a success starts again at ``initial``. Jitter spreads reconnects of several
instances after a shared outage (a PBX restart) so they do not all knock at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): base * 2^(attempt-1), capped, jittered.

    ``rand`` in [0, 1) scales the delay into [50 %, 100 %) of the capped value ("equal jitter"),
    so retries of many messages spread out yet never come sooner than half the step.
    """
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay * (0.5 + rand / 2)


@dataclass
class Backoff:
    """The waits of one retry loop: ``next()`` after a failure, ``reset()`` after a success.

    ``jitter`` is the spread around the wait (0.2: between 80 % and 120 % of it).
    """

    initial: float
    cap: float
    jitter: float = 0.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    _current: float = field(default=-1.0, repr=False)

    def __post_init__(self) -> None:
        self._current = self.initial

    @property
    def current(self) -> float:
        """The wait the next failure gets (before jitter)."""
        return self._current

    def next(self) -> float:
        """The seconds to wait now; the following wait doubles (up to ``cap``)."""
        wait = self._current
        self._current = min(self._current * 2, self.cap)
        if self.jitter:
            wait *= 1 - self.jitter + 2 * self.jitter * self.rand()
        return wait

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self._current = self.initial
