"""Event-loop lag: how late a timer that should fire every ``interval`` seconds really fires.

A late loop means late answers, late prompts after a digit, late timers for every caller at once;
this is the app's own health figure under load (bench/ivr_capacity.py, later /metrics).
"""

from __future__ import annotations

import asyncio
import collections
import time


class LoopLag:
    """Samples the lag of the running loop; keeps the last ``keep`` samples (seconds)."""

    def __init__(self, interval: float = 0.05, keep: int = 2400):
        self.interval = interval
        self.samples: collections.deque[float] = collections.deque(maxlen=keep)

    async def run(self) -> None:
        """Owned task: sleep ``interval``, record how much later than asked it woke."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, loop.time() - start - self.interval))

    def reset(self) -> None:
        """Forget the samples (a benchmark step starts afresh)."""
        self.samples.clear()

    def summary(self) -> dict[str, float | int]:
        """p50/p99/max in milliseconds over the samples kept."""
        values = sorted(self.samples)
        if not values:
            return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)

        return {"samples": len(values), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                "max_ms": round(values[-1] * 1000, 3), "at": round(time.time(), 3)}
