"""Transfers of a bridged caller to level-2 units' hotlines: the call machine (blind, attended,
from the phone's button and from the API), the unit checks, the dialplan (the state in Redis
is tested in tests/unit/calls/test_codec.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from callcenter import calls as cm
from callcenter.ari_app.service import is_unit_leg
from callcenter.pbx.render import render_texts
from callcenter.tickets.config import FocalPerson, Level2Unit
from callcenter.transfers import rules as xf
from callcenter.transfers.ari import operator_of
from tests.unit.calls.test_queueing import at, bridged
from tests.unit.test_render_operators import SECRETS, config_data, layout, load

OP = "c1-op1"
BRIDGE = "c1-bridge"
UNIT = "c1-unit1"


def blind_button() -> cm.TransferRequested:
    return cm.TransferRequested(at(20), "101", "so_y_te", "02513822000", "blind", "button",
                                refer_channel=OP)


def attended_api() -> cm.TransferRequested:
    return cm.TransferRequested(at(20), "101", "so_y_te", "02513822000", "attended", "api")


# ---- blind ---------------------------------------------------------------------------------
def test_given_bridged_when_button_blind_transfer_then_refer_accepted_and_unit_dialled() -> None:
    state, cmds = cm.step(bridged(), blind_button())
    assert cmds == [cm.TransferProgress(OP, "channel_progress"),
                    cm.DialUnit("02513822000", UNIT, cm.UNIT_RING_TIMEOUT_S)]
    assert state.phase is cm.Phase.BRIDGED and state.operator_channel == OP  # still talking
    assert state.transfer is not None and state.transfer.unit_channel == UNIT


def test_given_blind_transfer_when_unit_answers_then_unit_joins_and_operator_leaves() -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, cmds = cm.step(state, cm.UnitAnswered(at(25), UNIT))
    assert cmds == [cm.MoveToBridge(UNIT, BRIDGE), cm.TransferProgress(OP, "channel_answered"),
                    cm.HangupChannel(OP), cm.EndOperatorCall("dongnai", "101", after=(OP,))]
    assert state.phase is cm.Phase.TRANSFERRED and state.unit_channel == UNIT
    assert state.operator_channel is None and state.talk_ended_at == at(25)
    assert state.transfers == (cm.TransferRecord(at(20), "101", "so_y_te", "02513822000",
                                                 "blind", True, "completed"),)
    # The operator's leg ending now (we hung it up) changes nothing.
    assert cm.step(state, cm.OperatorGone(at(25.1), OP, 16)) == (state, [])


def test_given_transferred_when_unit_hangs_up_then_call_ends_answered_with_record() -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, _ = cm.step(state, cm.UnitAnswered(at(25), UNIT))
    state, cmds = cm.step(state, cm.UnitGone(at(90), UNIT, 16))
    assert state.phase is cm.Phase.CLOSING and cmds == [cm.Hangup("normal")]
    state, cmds = cm.step(state, cm.HungUp(at(90.1), 16, "Normal Clearing"))
    assert cmds == [cm.DestroyBridge(BRIDGE), cm.ReleaseLine("dongnai"), cm.WriteRecord()]
    assert state.outcome == "answered" and state.transfers[0].result == "completed"


def test_given_transferred_when_caller_hangs_up_then_unit_leg_is_hung_up() -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, _ = cm.step(state, cm.UnitAnswered(at(25), UNIT))
    state, cmds = cm.step(state, cm.HungUp(at(60), 16, "Normal Clearing"))
    assert cmds == [cm.HangupChannel(UNIT), cm.DestroyBridge(BRIDGE), cm.ReleaseLine("dongnai"),
                    cm.WriteRecord()]
    assert state.phase is cm.Phase.ENDED and state.outcome == "answered"


@pytest.mark.parametrize(("cause", "reply"), [(19, "channel_declined"),
                                              (None, "channel_declined"),
                                              (17, "channel_unavailable")])
def test_given_blind_transfer_when_unit_does_not_answer_then_caller_stays_with_operator(
        cause: int | None, reply: str) -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, cmds = cm.step(state, cm.UnitGone(at(40), UNIT, cause))
    assert cmds == [cm.TransferProgress(OP, reply)]
    assert state.phase is cm.Phase.BRIDGED and state.operator_channel == OP
    assert state.transfer is None
    assert state.transfers == (cm.TransferRecord(at(20), "101", "so_y_te", "02513822000",
                                                 "blind", False, "no_answer"),)
    # A second try dials a new leg.
    state, cmds = cm.step(state, dataclasses.replace(blind_button(), at=at(50)))
    assert cmds[-1] == cm.DialUnit("02513822000", "c1-unit2", cm.UNIT_RING_TIMEOUT_S)


def test_given_transfer_in_progress_when_button_again_then_declined_and_api_raises() -> None:
    state, _ = cm.step(bridged(), blind_button())
    again, cmds = cm.step(state, dataclasses.replace(blind_button(), refer_channel=OP))
    assert again == state and cmds == [cm.TransferProgress(OP, "channel_declined")]
    with pytest.raises(cm.IllegalTransition):
        cm.step(state, attended_api())
    assert xf.request_refusal(state) == xf.IN_PROGRESS


def test_given_blind_transfer_when_operator_hangs_up_then_caller_waits_with_music() -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, cmds = cm.step(state, cm.OperatorGone(at(22), OP, 16))
    assert cmds == [cm.EndOperatorCall("dongnai", "101", after=()), cm.BridgeMoh(BRIDGE, True)]
    assert state.phase is cm.Phase.BRIDGED and state.talk_ended_at == at(22)
    answered, cmds = cm.step(state, cm.UnitAnswered(at(25), UNIT))
    assert cmds == [cm.MoveToBridge(UNIT, BRIDGE), cm.BridgeMoh(BRIDGE, False)]
    assert answered.phase is cm.Phase.TRANSFERRED
    # ... or the unit never answers: nobody is left, the caller is told goodbye by hang-up.
    ended, cmds = cm.step(state, cm.UnitGone(at(40), UNIT, 19))
    assert ended.phase is cm.Phase.CLOSING and cmds == [cm.Hangup("normal")]
    assert ended.transfers[-1].result == "no_answer"


def test_given_transfer_when_caller_hangs_up_then_unit_leg_and_operator_go() -> None:
    state, _ = cm.step(bridged(), blind_button())
    state, cmds = cm.step(state, cm.HungUp(at(30), 16, "Normal Clearing"))
    assert cmds == [cm.TransferProgress(OP, "channel_declined"), cm.HangupChannel(UNIT),
                    cm.HangupChannel(OP), cm.DestroyBridge(BRIDGE), cm.ReleaseLine("dongnai"),
                    cm.EndOperatorCall("dongnai", "101", after=(OP,)), cm.WriteRecord()]
    assert state.transfers[-1].result == "failed" and state.outcome == "answered"
    # The unit answering after that is hung up at once.
    assert cm.step(state, cm.UnitAnswered(at(31), UNIT))[1] == [cm.HangupChannel(UNIT)]


# ---- attended ------------------------------------------------------------------------------
def test_given_api_attended_when_requested_then_operator_consults_and_caller_hears_music(
) -> None:
    state, cmds = cm.step(bridged(), attended_api())
    assert cmds == [cm.CreateBridge("c1-consult1"), cm.MoveToBridge(OP, "c1-consult1", BRIDGE),
                    cm.BridgeMoh(BRIDGE, True),
                    cm.DialUnit("02513822000", UNIT, cm.UNIT_RING_TIMEOUT_S)]
    assert xf.complete_refusal(state) == xf.NOT_ANSWERED
    with pytest.raises(cm.IllegalTransition):
        cm.step(state, cm.TransferCompleted(at(21), "api"))
    state, cmds = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    assert cmds == [cm.MoveToBridge(UNIT, "c1-consult1")]
    assert state.phase is cm.Phase.BRIDGED and xf.complete_refusal(state) is None


def test_given_consultation_when_completed_then_unit_takes_caller() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    state, cmds = cm.step(state, cm.TransferCompleted(at(40), "api"))
    assert cmds == [cm.MoveToBridge(UNIT, BRIDGE, "c1-consult1"), cm.BridgeMoh(BRIDGE, False),
                    cm.HangupChannel(OP), cm.DestroyBridge("c1-consult1"),
                    cm.EndOperatorCall("dongnai", "101", after=(OP,))]
    assert state.phase is cm.Phase.TRANSFERRED and state.talk_ended_at == at(40)
    assert state.transfers == (cm.TransferRecord(at(20), "101", "so_y_te", "02513822000",
                                                 "attended", True, "completed"),)


def test_given_consultation_when_cancelled_then_operator_back_with_caller() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    assert xf.cancel_refusal(state) is None
    state, cmds = cm.step(state, cm.TransferCancelled(at(30)))
    assert cmds == [cm.HangupChannel(UNIT), cm.BridgeMoh(BRIDGE, False),
                    cm.MoveToBridge(OP, BRIDGE, "c1-consult1"), cm.DestroyBridge("c1-consult1")]
    assert state.phase is cm.Phase.BRIDGED and state.transfer is None
    assert state.transfers[-1] == cm.TransferRecord(at(20), "101", "so_y_te", "02513822000",
                                                    "attended", True, "returned")
    assert xf.cancel_refusal(state) == xf.NO_TRANSFER


def test_given_consultation_when_unit_does_not_answer_then_operator_back_no_answer() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, cmds = cm.step(state, cm.UnitGone(at(40), UNIT, 19))
    assert cmds == [cm.BridgeMoh(BRIDGE, False), cm.MoveToBridge(OP, BRIDGE, "c1-consult1"),
                    cm.DestroyBridge("c1-consult1")]
    assert state.transfers[-1].result == "no_answer" and not state.transfers[-1].answered


def test_given_phone_consultation_when_refer_replaces_then_transfer_completes() -> None:
    consult = "pbx-99.7"
    ev = cm.TransferRequested(at(20), "101", "so_y_te", "02513822000", "attended", "button",
                              consult_channel=consult)
    state, cmds = cm.step(bridged(), ev)
    assert cmds == [cm.CreateBridge("c1-consult1"), cm.AnswerLeg(consult),
                    cm.MoveToBridge(consult, "c1-consult1"), cm.BridgeMoh(BRIDGE, True),
                    cm.DialUnit("02513822000", UNIT, cm.UNIT_RING_TIMEOUT_S)]
    state, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    done, cmds = cm.step(state, cm.TransferCompleted(at(40), "button", OP))
    assert cmds == [cm.MoveToBridge(UNIT, BRIDGE, "c1-consult1"),
                    cm.TransferProgress(OP, "channel_answered"), cm.BridgeMoh(BRIDGE, False),
                    cm.HangupChannel(OP), cm.HangupChannel(consult),
                    cm.DestroyBridge("c1-consult1"),
                    cm.EndOperatorCall("dongnai", "101", after=(OP, consult))]
    assert done.phase is cm.Phase.TRANSFERRED
    # Hanging up the consultation instead returns to the caller (the phone unholds).
    back, cmds = cm.step(state, cm.OperatorGone(at(30), consult, 16))
    assert cmds == [cm.HangupChannel(UNIT), cm.BridgeMoh(BRIDGE, False),
                    cm.DestroyBridge("c1-consult1")]
    assert back.phase is cm.Phase.BRIDGED and back.transfers[-1].result == "returned"
    # The caller hanging up mid-consultation: the operator is freed once both of the phone's
    # calls are gone (issue 19.3).
    _, cmds = cm.step(state, cm.HungUp(at(30), 16))
    ends = [c for c in cmds if isinstance(c, cm.EndOperatorCall)]
    assert ends == [cm.EndOperatorCall("dongnai", "101", after=(OP, consult))]
    assert {cm.HangupChannel(OP), cm.HangupChannel(consult)} <= set(cmds)
    # The operator hanging up their first call once the unit answered completes the transfer:
    # the phone's consultation is hung up, and they are freed once it is gone.
    _, cmds = cm.step(state, cm.OperatorGone(at(30), OP, 16))
    ends = [c for c in cmds if isinstance(c, cm.EndOperatorCall)]
    assert ends == [cm.EndOperatorCall("dongnai", "101", after=(consult,))]
    assert cm.HangupChannel(consult) in cmds


def test_given_no_consultation_when_phone_refers_with_replaces_then_declined() -> None:
    state, cmds = cm.step(bridged(), cm.TransferCompleted(at(40), "button", OP))
    assert cmds == [cm.TransferProgress(OP, "channel_declined")]
    assert state.phase is cm.Phase.BRIDGED


def test_given_not_bridged_then_request_refused() -> None:
    from tests.unit.calls.test_queueing import ringing

    assert xf.request_refusal(ringing()) == xf.NOT_BRIDGED
    assert xf.request_refusal(bridged()) is None
    with pytest.raises(cm.IllegalTransition):
        cm.step(ringing(), attended_api())


# ---- units and numbers ---------------------------------------------------------------------
UNITS = (
    Level2Unit("so_y_te", "Sở Y tế", "department", (FocalPerson("An", "0912345678"),),
               "02513822000"),
    Level2Unit("vp", "Văn phòng", "department", (FocalPerson("Bình", "0912345679"),), None),
    Level2Unit("dien", "Điện lực", "other", (FocalPerson("Chi", "0912345670"),), "+842513999999"),
)


def test_given_units_when_number_looked_up_then_only_hotlines_match() -> None:
    assert [u.id for u in xf.targets(UNITS)] == ["so_y_te", "dien"]
    assert xf.unit_for_number(UNITS, "0251 3822 000") == UNITS[0]
    assert xf.unit_for_number(UNITS, "+842513822000") == UNITS[0]
    assert xf.unit_for_number(UNITS, "02513999999") == UNITS[2]
    assert xf.unit_for_number(UNITS, "0909000111") is None
    assert xf.unit_for_number(UNITS, "") is None
    assert xf.unit_for_id(UNITS, "vp") is None  # no hotline: not a transfer target
    assert xf.unit_for_id(UNITS, "dien") == UNITS[2]
    assert all(xf.MESSAGES[k] for k in xf.MESSAGES)


def test_given_channels_then_legs_and_operators_named() -> None:
    assert is_unit_leg("pbx-17.3-unit2") and not is_unit_leg("pbx-17.3-op1")
    assert operator_of({"name": "PJSIP/101-0000001a"}) == "101"


def test_given_adopted_mid_transfer_when_resumed_then_transfer_given_up() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, cmds = cm.step(state, cm.Resume(at(30)))
    assert cm.HangupChannel(UNIT) in cmds and state.transfer is None
    assert state.transfers[-1].result == "failed"
    transferred, _ = cm.step(bridged(), blind_button())
    transferred, _ = cm.step(transferred, cm.UnitAnswered(at(25), UNIT))
    assert cm.step(transferred, cm.Resume(at(30))) == (transferred, [])


def test_given_units_with_hotlines_when_rendered_then_operators_may_consult_them(
        tmp_path: Path) -> None:
    data = config_data()
    data["tenants"][0]["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department", "hotline": "02513822000",
         "focal_persons": [{"name": "An", "phone": "0912345678"}]},
        {"id": "vp", "name": "Văn phòng", "kind": "department",
         "focal_persons": [{"name": "Bình", "phone": "0912345679"}]}]
    data["tenants"][0]["tickets"] = {"fallback_unit": "vp"}
    cfg = load(tmp_path, data)
    text = render_texts(cfg, layout(tmp_path), SECRETS,
                        passwords={"101": "a", "102": "b", "201": "c"})["extensions.conf"]
    section = text.split("[from-operators]")[1].split("\n[")[0]
    assert "exten => 02513822000,1,Set(PJSIP_TRANSFER_HANDLING()=ari-only)" in section
    assert "same => n,Stasis(hotline,consult,02513822000)" in section
    # Consultations come before the catch-all refusal.
    assert section.index("consult,") < section.index("exten => _[0-9*#+a-zA-Z],1,Hangup(34)")
