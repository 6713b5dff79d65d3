"""A call's state as shared in Redis: written and read back equal in every phase, with its
transfers and IVR path; of the menus only the node, the token counter and the path."""

from __future__ import annotations

import dataclasses
import json

import pytest

from callcenter import calls as cm
from callcenter.calls.codec import CALL_KEY, CALL_TTL_S, state_from_json, state_to_json
from callcenter.ivr import menu as mn
from tests.unit.calls.test_queueing import at, bridged

UNIT = "c1-unit1"


def attended_api() -> cm.TransferRequested:
    return cm.TransferRequested(at(20), "101", "so_y_te", "02513822000", "attended", "api")


def everything(phase: cm.Phase) -> cm.CallState:
    """A state with every kind of field set (times, transfers, a transfer, an IVR path)."""
    path = (mn.Step(at(1), "enter", node="main"), mn.Step(at(2), "digit", node="main", digit="1"),
            mn.Step(at(3), "faq", node="health", faq="h1"),
            mn.Step(at(4), "feedback", node="health", answer="yes"))
    return dataclasses.replace(
        bridged(), phase=phase, answered_at=at(0), ended_at=at(90), outcome="answered",
        cause_code=16, cause="Normal Clearing", talk_ended_at=at(80), announced_at=at(6),
        menu=mn.MenuState(node="health", mode=mn.Mode.DONE, seq=7, path=path),
        operator_node="op", urgent=True, wrap_up_s=10, no_answers=2, recording="r/c1.wav",
        transfers=(cm.TransferRecord(at(30), "101", "vp", "0251", "blind", True, "returned"),),
        transfer=cm.Transfer(at(40), "101", "so_y_te", "02513822000", "attended", "button",
                             UNIT, refer_channel="c1-op1", consult_channel="c", unit_answered=True),
        unit_channel=UNIT, unit_legs=1, announcing=3, closing_token=4, queue_seq=1_000_002)


@pytest.mark.parametrize("phase", list(cm.Phase))
def test_given_any_phase_when_shared_then_read_back_equal(phase: cm.Phase) -> None:
    state = everything(phase)
    text = state_to_json(state)
    assert json.loads(text)["phase"] == phase.value
    assert state_from_json(text) == state
    assert state_from_json(text.encode()) == state  # as Redis returns it


@pytest.mark.parametrize("phase", list(cm.Phase))
def test_given_a_new_call_in_any_phase_then_read_back_equal(phase: cm.Phase) -> None:
    state = dataclasses.replace(cm.new_call("c9", "pbx2", "1022", "anonymous", "c9", at(0)),
                                phase=phase)
    assert state_from_json(state_to_json(state)) == state


def test_given_transfer_in_progress_when_state_shared_then_read_back_equal() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    assert state_from_json(state_to_json(state)) == state
    state, _ = cm.step(state, cm.TransferCompleted(at(40), "api"))
    assert state_from_json(state_to_json(state)) == state


def test_given_menus_in_progress_then_node_counter_and_path_kept_the_rest_done() -> None:
    done = everything(cm.Phase.IVR)
    assert done.menu is not None
    choosing = dataclasses.replace(done, menu=dataclasses.replace(
        done.menu, mode=mn.Mode.CHOOSING, history=("main",), failures=1, buffer="1",
        playing=6, timer=7))
    assert state_from_json(state_to_json(choosing)) == done


def test_key_and_lifetime() -> None:
    assert CALL_KEY.format("1764000000.10") == "hotline:call:1764000000.10"
    assert CALL_TTL_S == 24 * 3600
