"""Run one function in several threads released at the same instant (race tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(fn: Callable[[], object], threads: int) -> list[BaseException]:
    """Start `threads` threads calling fn at once; return the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def body() -> None:
        start.wait()
        try:
            fn()
        except BaseException as e:  # collected for the caller's assertion
            errors.append(e)

    workers = [threading.Thread(target=body) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return errors
