"""Line pool admission: never more calls on lines than the shift pays for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.lines.pool import Admission, PoolView, admit, decide


@pytest.mark.parametrize(("limit", "in_use", "admitted"), [
    (15, 0, True), (15, 14, True), (15, 15, False), (2, 5, False), (0, 0, False), (1, 0, True),
])
def test_given_pool_when_admit_then_only_below_limit(
    limit: int, in_use: int, admitted: bool,
) -> None:
    assert admit(PoolView("dongnai", limit, in_use)) is admitted


def test_given_closed_shift_when_decide_then_refused_with_reason() -> None:
    view = PoolView("dongnai", 0, 0)
    assert decide(view) == Admission(False, view, "dongnai: shift closed (0 lines)")


def test_given_free_line_when_decide_then_admitted_naming_the_line() -> None:
    view = PoolView("dongnai", 15, 3)
    decision = decide(view)
    assert decision.admitted
    assert decision.reason == "dongnai: line 4 of 15"


def test_given_full_pool_when_decide_then_refused_as_busy() -> None:
    decision = decide(PoolView("dongnai", 2, 2))
    assert not decision.admitted
    assert "all 2 lines busy" in decision.reason


def test_given_pool_over_limit_after_shift_change_when_free_then_zero() -> None:
    assert PoolView("dongnai", 2, 9).free == 0
    assert PoolView("dongnai", 15, 9).free == 6


@pytest.mark.parametrize(("limit", "in_use"), [(-1, 0), (0, -1)])
def test_given_negative_counts_when_pool_view_built_then_value_error(
    limit: int, in_use: int,
) -> None:
    with pytest.raises(ValueError):
        PoolView("dongnai", limit, in_use)


# An event: a call arrives, a call ends, or the shift changes the limit.
events = st.one_of(
    st.just(("arrive", 0)),
    st.just(("leave", 0)),
    st.tuples(st.just("limit"), st.integers(0, 20)),
)


@given(st.integers(0, 20), st.lists(events, max_size=200))
def test_given_any_event_sequence_when_admitting_through_admit_then_admission_never_exceeds_limit(
    limit: int, sequence: list[tuple[str, int]],
) -> None:
    in_use = 0
    for kind, value in sequence:
        if kind == "arrive":
            view = PoolView("dongnai", limit, in_use)
            decision = decide(view)
            assert decision.admitted == admit(view)
            if admit(view):
                in_use += 1
                assert in_use <= limit  # an admitted call always fits
        elif kind == "leave":
            in_use = max(0, in_use - 1)
        else:
            limit = value  # calls already up are kept, even above a lowered limit
        assert PoolView("dongnai", limit, in_use).free == max(0, limit - in_use)


@given(st.integers(0, 1000), st.integers(0, 2000))
def test_given_only_arrivals_when_admitting_then_in_use_is_min_of_arrivals_and_limit(
    limit: int, arrivals: int,
) -> None:
    in_use = 0
    for _ in range(arrivals):
        if admit(PoolView("dongnai", limit, in_use)):
            in_use += 1
    assert in_use == min(arrivals, limit)
