"""Back-off (callcenter.backoff): the waits of every reconnecting adapter; pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.backoff import Backoff, backoff_delay


@given(st.integers(1, 60), st.floats(0, 0.999))
def test_given_attempt_when_backing_off_then_exponential_capped_jittered(
        attempt: int, rand: float) -> None:
    delay = backoff_delay(attempt, base=2.0, cap=300.0, rand=rand)
    full = min(300.0, 2.0 * 2 ** (attempt - 1))
    assert full / 2 <= delay <= full


def test_given_first_attempts_when_backing_off_then_doubling() -> None:
    assert [backoff_delay(a, 2.0, 300.0, 0.999999) for a in (1, 2, 3, 4)] == pytest.approx(
        [2.0, 4.0, 8.0, 16.0], rel=1e-5)
    assert backoff_delay(20, 2.0, 300.0, 0.0) == 150.0


def test_given_failures_when_backing_off_then_doubling_up_to_cap_and_reset_after_success() -> None:
    b = Backoff(initial=0.5, cap=3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.current == 0.5 and b.next() == 0.5


@given(st.floats(0, 0.999), st.integers(0, 8))
def test_given_jitter_when_backing_off_then_within_the_spread(rand: float, failures: int) -> None:
    plain, jittered = Backoff(0.5, 30.0), Backoff(0.5, 30.0, jitter=0.2, rand=lambda: rand)
    for _ in range(failures):
        plain.next(), jittered.next()
    step = plain.next()
    assert 0.8 * step <= jittered.next() <= 1.2 * step
