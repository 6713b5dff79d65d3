"""How long a line stays held after the citizen hangs up (issue 15: within 1 s in every state),
measured end to end: from the moment the hang-up is sent to the phone until the tenant's line
count in Redis drops, polled every 20 ms.

Used by tests/e2e/test_fault_hangups.py and by the queue and listen-in tests that already drive
a caller into those states (test_queue.py, test_listen.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.stack import Stack, wait_until

RELEASE_LIMIT_S = 1.0
POLL_S = 0.02


def hang_up_and_time_release(stack: Stack, hang_up: Callable[[], None], state: str) -> float:
    """Run ``hang_up`` (the citizen's phone sends BYE or CANCEL) with one line held; return the
    seconds until the pool shows it free, asserted under ``RELEASE_LIMIT_S``."""
    held = stack.pool_in_use()
    assert held == 1, f"{state}: {held} lines held before the hang-up, expected 1"
    start = time.monotonic()
    hang_up()
    freed = wait_until(lambda: stack.pool_in_use() == 0, 5 * RELEASE_LIMIT_S, POLL_S)
    elapsed = time.monotonic() - start
    print(f"line released {elapsed * 1000:.0f} ms after the hang-up ({state})")
    assert freed, f"{state}: line still held 5 s after the hang-up:\n{stack.app_log_tail()}"
    assert elapsed < RELEASE_LIMIT_S, (
        f"{state}: line released after {elapsed:.3f} s:\n{stack.app_log_tail()}")
    return elapsed
