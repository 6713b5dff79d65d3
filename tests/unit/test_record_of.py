"""record_of: a finished call's state becomes its record, with the operators' part."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from callcenter import calls as cm
from callcenter.store import data
from callcenter.store.recorder import record_of

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _s(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def finished(**fields: object) -> cm.CallState:
    base = cm.new_call("1763859600.7", "pbx1", "1022", "0909123456", "1763859600.7", T0)
    values: dict[str, object] = {
        "phase": cm.Phase.ENDED, "tenant_id": "dongnai", "shift": "day", "limit": 15,
        "answered_at": _s(1), "ended_at": _s(200), "outcome": "answered", "cause_code": 16,
        "cause": "16 Normal Clearing",
    } | fields
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def test_given_store_outcomes_then_the_call_machine_s_set_including_callback() -> None:
    assert data.OUTCOMES == (*cm.OUTCOMES, "dialback")  # calls back: outbound
    assert "callback" in data.OUTCOMES


def test_given_bridged_call_with_transfer_when_recorded_then_operator_part_mapped() -> None:
    transfer = cm.TransferRecord(at=dt.datetime(2026, 11, 23, 8, 2, tzinfo=VN), by="101",
                                 unit="so_y_te", number="0900000102", kind="blind",
                                 answered=True, result="completed")
    rec = record_of(finished(queued_at=_s(10), operator="101", bridged_at=_s(25),
                             talk_ended_at=_s(150), wrap_up_s=20, no_answers=1,
                             recording="dongnai/pbx1-1763859600.7.wav",
                             transfers=(transfer,)))
    assert rec.id == "pbx1:1763859600.7"
    assert (rec.operator, rec.queued_at, rec.bridged_at, rec.talk_ended_at) == (
        "101", _s(10), _s(25), _s(150))
    assert (rec.wrap_up_s, rec.no_answers, rec.recording) == (
        20, 1, "dongnai/pbx1-1763859600.7.wav")
    assert rec.transfers == [{"at": "2026-11-23T01:02:00+00:00", "by": "101",
                              "unit": "so_y_te", "number": "0900000102", "kind": "blind",
                              "answered": True, "result": "completed"}]
    assert (rec.wait_s, rec.talk_s) == (15.0, 125.0)


def test_given_call_never_queued_when_recorded_then_no_operator_part() -> None:
    rec = record_of(finished())
    assert (rec.operator, rec.queued_at, rec.transfers, rec.no_answers) == (None, None, None, 0)
    assert (rec.wait_s, rec.talk_s) == (None, None)
    d = rec.to_json_dict()
    assert tuple(d) == data.JSON_KEYS and d["transfers"] == []


def test_given_caller_chose_callback_when_recorded_then_wait_until_the_end() -> None:
    rec = record_of(finished(outcome="callback", answered_at=_s(1), queued_at=_s(10),
                             ended_at=_s(130), no_answers=3))
    assert (rec.outcome, rec.wait_s, rec.talk_s, rec.no_answers) == ("callback", 120.0,
                                                                      None, 3)


def test_given_naive_transfer_time_when_recorded_then_refused() -> None:
    transfer = cm.TransferRecord(at=dt.datetime(2026, 11, 23, 8, 2), by="101", unit="u",
                                 number="1", kind="blind")
    with pytest.raises(ValueError, match="timezone-aware"):
        record_of(finished(transfers=(transfer,)))


def test_given_record_when_to_dict_and_back_then_equal_with_operator_part() -> None:
    rec = record_of(finished(queued_at=_s(10).astimezone(VN), operator="101",
                             bridged_at=_s(25), talk_ended_at=_s(150)))
    assert rec.queued_at is not None and rec.queued_at.tzinfo == dt.UTC
    assert data.CallRecordData.from_dict(rec.to_dict()) == rec


@pytest.mark.parametrize("bad", [{"no_answers": -1}, {"operator": ""}, {"operator": "x" * 33},
                                 {"transfers": [1]}, {"outcome": "transferred"},
                                 {"queued_at": dt.datetime(2026, 11, 23, 8, 0)}])
def test_given_bad_operator_fields_when_record_built_then_refused(bad: dict[str, object]
                                                                 ) -> None:
    rec = record_of(finished())
    with pytest.raises((ValueError, TypeError)):
        dataclasses.replace(rec, **bad)  # type: ignore[arg-type]
