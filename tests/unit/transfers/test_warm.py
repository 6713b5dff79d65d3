"""Warm transfer: what a unit answering an operator's consultation hears of the call's ticket,
when it hears it, and the transfer record naming the ticket (pure parts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from callcenter import calls as cm
from callcenter.config.model import DEFAULT_FIELDS, Field
from callcenter.ivr.menu import NoFaq
from callcenter.ivr.runtime import tenant_prompts
from callcenter.store.recorder import transfer_dict
from callcenter.transfers import rules as xf
from tests.unit.calls.test_queueing import at, bridged
from tests.unit.test_render_operators import config_data, load
from tests.unit.transfers.test_rules import UNIT, attended_api, blind_button

TICKET = xf.WarmTicket("DN-20261207-0042", "y_te", "Y tế")


def test_given_a_ticket_then_intro_number_digit_by_digit_and_field() -> None:
    ids = [p.id for p in xf.announcement(TICKET)]
    assert ids == ["xf-intro", "st-n-0", "st-n-0", "st-n-4", "st-n-2", "xf-field",
                   "xf-field-y_te"]
    texts = [p.text for p in xf.announcement(TICKET)]
    assert texts == ["Tổng đài 1022 chuyển phản ánh mã số", "không", "không", "bốn", "hai",
                     "lĩnh vực", "Y tế"]
    assert all(p.clip for p in xf.announcement(TICKET))  # fragments said in a row


def test_given_no_ticket_then_nothing_said_and_unknown_field_left_out() -> None:
    assert xf.announcement(None) == []
    ids = [p.id for p in xf.announcement(xf.WarmTicket("DN-20261207-0007", "gone", None))]
    assert ids == ["xf-intro", "st-n-0", "st-n-0", "st-n-0", "st-n-7"]


def test_every_fragment_of_an_announcement_is_built_ahead() -> None:
    fields = (*DEFAULT_FIELDS, Field("y_te", "Y tế"))
    ahead = {p.id: p for p in xf.warm_fragments(fields)}
    for code in ("DN-20261207-0042", "DN-20261207-1357", "DN-20261207-986"):
        for p in xf.announcement(xf.WarmTicket(code, "y_te", "Y tế")):
            assert ahead[p.id] == p


def test_the_newest_linked_ticket_is_the_one_told() -> None:
    older = xf.WarmTicket("DN-20261206-0003", "dien", "Điện")
    assert xf.pick_ticket([older, TICKET]) == TICKET
    assert xf.pick_ticket([]) is None


def test_only_the_unanswered_leg_of_an_attended_transfer_is_told() -> None:
    state, _ = cm.step(bridged(), attended_api())
    assert xf.announces(state, UNIT)
    assert not xf.announces(state, "c1-unit9")  # a stray leg
    answered, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    assert not xf.announces(answered, UNIT)  # already answered once
    blind, _ = cm.step(bridged(), blind_button())
    assert not xf.announces(blind, UNIT)  # the caller is joined at once
    assert not xf.announces(bridged(), UNIT)  # no transfer


def test_given_unit_told_a_ticket_then_the_transfer_record_names_it() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, cmds = cm.step(state, cm.UnitAnswered(at(24), UNIT, TICKET.code))
    assert cmds == [cm.MoveToBridge(UNIT, "c1-consult1")]  # as without a ticket
    state, _ = cm.step(state, cm.TransferCompleted(at(40), "api"))
    (rec,) = state.transfers
    assert (rec.result, rec.ticket) == ("completed", TICKET.code)
    d = transfer_dict(rec)
    assert d["ticket"] == TICKET.code and d["result"] == "completed"


def test_given_no_ticket_then_the_record_is_as_before() -> None:
    state, _ = cm.step(bridged(), attended_api())
    state, _ = cm.step(state, cm.UnitAnswered(at(24), UNIT))
    state, _ = cm.step(state, cm.TransferCancelled(at(30)))
    (rec,) = state.transfers
    assert rec.ticket is None and "ticket" not in transfer_dict(rec)
    assert rec.at.tzinfo is not None and rec.at == at(20) and isinstance(rec.at, dt.datetime)


def test_callcenter_calls_names_the_ticket_of_a_warm_transfer() -> None:
    from callcenter.cli import _transfer_text

    t = {"at": "2026-12-07T05:00:00+00:00", "by": "101", "unit": "so_y_te",
         "number": "02513822000", "kind": "attended", "answered": True, "result": "completed"}
    assert _transfer_text(t).endswith("attended answered completed")
    assert _transfer_text({**t, "ticket": TICKET.code}).endswith(
        "completed ticket DN-20261207-0042")


def test_tenants_with_unit_hotlines_build_the_announcement_ahead(tmp_path: Path) -> None:
    data = config_data()
    data["tenants"][0]["units"] = [
        {"id": "so_y_te", "name": "Sở Y tế", "kind": "department", "hotline": "02513822000",
         "focal_persons": [{"name": "An", "phone": "0912345678"}]}]
    data["tenants"][0]["tickets"] = {"fallback_unit": "so_y_te"}
    with_hotline = load(tmp_path, data).tenants[0]
    ids = {p.id for p in tenant_prompts(with_hotline, NoFaq())}  # no menus: only these
    assert {"xf-intro", "xf-field", "st-n-0", "st-n-9", "xf-field-health"} <= ids
    del data["tenants"][0]["units"][0]["hotline"]
    assert tenant_prompts(load(tmp_path, data).tenants[0], NoFaq()) == []  # nobody to call
