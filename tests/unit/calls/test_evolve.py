"""calls.evolve.replace: the same object as dataclasses.replace, for the machine's dataclasses."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter import calls as cm
from callcenter.calls.evolve import replace
from callcenter.ivr import menu as mn

T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
STATE = cm.CallState("c1", "pbx1", "1022", "0909", "c1", T0, phase=cm.Phase.IVR,
                     tenant_id="dongnai", line_held=True,
                     menu=mn.MenuState(node="main", seq=3))


@given(phase=st.sampled_from(list(cm.Phase)), legs=st.integers(0, 9),
       operator=st.none() | st.text(max_size=4), urgent=st.booleans())
def test_given_changes_when_replaced_then_same_as_dataclasses_replace(
        phase: cm.Phase, legs: int, operator: str | None, urgent: bool) -> None:
    changes = {"phase": phase, "legs": legs, "operator": operator, "urgent": urgent}
    ours = replace(STATE, **changes)
    theirs = dataclasses.replace(STATE, **changes)  # type: ignore[arg-type]
    assert ours == theirs and hash(ours) == hash(theirs) and type(ours) is cm.CallState
    assert STATE.phase is cm.Phase.IVR and STATE.legs == 0  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.phase = cm.Phase.ENDED  # type: ignore[misc]


def test_given_menu_and_transfer_when_replaced_then_same_as_dataclasses_replace() -> None:
    assert STATE.menu is not None
    assert replace(STATE.menu, seq=9) == dataclasses.replace(STATE.menu, seq=9)
    t = cm.Transfer(T0, "101", "u1", "0251", "blind", "api", "c1-unit1")
    assert replace(t, moh=True) == dataclasses.replace(t, moh=True)


def test_given_unknown_field_when_replaced_then_type_error() -> None:
    with pytest.raises(TypeError, match="no field phasee"):
        replace(STATE, phasee=cm.Phase.ENDED)


def test_given_dataclass_with_post_init_when_replaced_then_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            assert self.n >= 0

    with pytest.raises(TypeError, match="not a plain dataclass"):
        replace(Checked(1), n=2)
