"""A progress bar for long CLI jobs: redrawn in place on a terminal, a line per ~10 % otherwise.

No dependency: on a TTY it writes ``\\r`` and redraws at most every `redraw_s` seconds; in a
log file or a pipe (cron, CI) it writes one plain line each time another tenth is done, so
the output stays readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 30


class Progress:
    """Progress of `total` steps, written to `stream` (stderr by default).

    `update` fits a callback of either shape, ``(done)`` or ``(done, total)``: a job that
    learns its total only once it starts passes it there.
    """

    def __init__(self, label: str = "", total: int = 0, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, redraw_s: float = 0.1):
        self.total = max(0, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.redraw_s = redraw_s
        self.done = 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = clock()
        self._drawn_at: float | None = None
        self._tenths = 0  # last tenth reported (non-TTY)
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        """`n` more steps are done."""
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None) -> None:
        """`done` steps are done in all (clamped to 0..total); `total` may change it."""
        if total is not None and total != self.total:
            self.total = max(0, total)
            self._tenths = self.done * 10 // self.total if self.total else 0
        self.done = min(max(0, done), self.total) if self.total else max(0, done)
        if self.tty:
            now = self.clock()
            if (self._drawn_at is None or now - self._drawn_at >= self.redraw_s
                    or self.done == self.total):
                self._drawn_at = now
                self.stream.write("\r" + self.render(now))
                self.stream.flush()
        elif self.total:
            tenths = self.done * 10 // self.total
            if tenths > self._tenths:
                self._tenths = tenths
                self.stream.write(self.render(self.clock()) + "\n")
                self.stream.flush()

    def render(self, now: float) -> str:
        """The current state in one line: label, bar (TTY), count/total, percent, rate."""
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        pct = 100 * self.done // self.total if self.total else 100
        head = f"{self.label}: " if self.label else ""
        bar = ""
        if self.tty:
            filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
        return f"{head}{bar}{self.done}/{self.total} ({pct}%) {rate:.1f}/s"

    def close(self) -> None:
        """Finish the line (TTY); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.tty and self._drawn_at is not None:
            self.stream.write("\r" + self.render(self.clock()) + "\n")
            self.stream.flush()
