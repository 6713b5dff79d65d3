"""What an operator is told after each feature code / CLI / API action, and why a refusal."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from callcenter.queue import agent as ag
from callcenter.queue import texts as tx
from callcenter.queue.policy import DEFAULT_PAUSE_REASONS, PauseReason

S = ag.AgentStatus
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def agent(status: S, **kw: object) -> ag.AgentState:
    return replace(ag.AgentState("101", status, T0, name="Lan", reachable=True), **kw)


def test_given_logged_out_when_login_then_ready_sentence_with_extension() -> None:
    t = tx.confirmation("login", agent(S.LOGGED_OUT), agent(S.AVAILABLE))
    assert t.text == "Đã đăng nhập. Máy lẻ 101 sẵn sàng nhận cuộc gọi."
    assert t.key == "login" and t.prompt_id == "agent-login"


def test_given_pending_logout_on_call_when_login_then_cancellation() -> None:
    before = agent(S.ON_CALL, pending=ag.PENDING_LOGOUT, call_id="c1")
    t = tx.confirmation("login", before, agent(S.ON_CALL, call_id="c1"))
    assert t.key == "logout_cancelled" and t.prompt_id == "agent-logout-cancelled"
    assert t.text.startswith("Đã hủy yêu cầu đăng xuất.")


def test_given_available_when_logout_then_logged_out_sentence() -> None:
    t = tx.confirmation("logout", agent(S.AVAILABLE), agent(S.LOGGED_OUT))
    assert t.text == "Đã đăng xuất. Máy lẻ 101 sẽ không nhận cuộc gọi."


def test_given_on_call_when_logout_then_pending_sentence() -> None:
    after = agent(S.ON_CALL, pending=ag.PENDING_LOGOUT, call_id="c1")
    t = tx.confirmation("logout", agent(S.ON_CALL, call_id="c1"), after)
    assert t.key == "logout_pending"
    assert t.text == "Máy lẻ 101 sẽ đăng xuất khi cuộc gọi hiện tại kết thúc."


def test_given_available_when_pause_then_reason_label_said() -> None:
    t = tx.confirmation("pause", agent(S.AVAILABLE), agent(S.PAUSED, reason="break"),
                        "Nghỉ giải lao")
    assert t.text == "Đã tạm nghỉ: Nghỉ giải lao."


def test_given_wrap_up_when_pause_then_pending_with_label() -> None:
    after = agent(S.WRAP_UP, pending=ag.PENDING_PAUSE, pending_reason="meeting")
    t = tx.confirmation("pause", agent(S.WRAP_UP), after, "Họp")
    assert t.key == "pause_pending"
    assert t.text == "Sẽ tạm nghỉ khi cuộc gọi hiện tại kết thúc: Họp."


def test_given_paused_when_unpause_then_ready_again() -> None:
    t = tx.confirmation("unpause", agent(S.PAUSED, reason="break"), agent(S.AVAILABLE))
    assert t.text == "Đã hết tạm nghỉ. Máy lẻ 101 sẵn sàng nhận cuộc gọi."


def test_given_pending_pause_when_unpause_then_cancellation() -> None:
    before = agent(S.ON_CALL, pending=ag.PENDING_PAUSE, pending_reason="break")
    t = tx.confirmation("unpause", before, agent(S.ON_CALL))
    assert (t.key, t.text) == ("pause_cancelled", "Đã hủy yêu cầu tạm nghỉ.")


@pytest.mark.parametrize(("after", "label", "key", "text"), [
    (agent(S.AVAILABLE), None, "ready",
     "Đã kết thúc hoàn tất cuộc gọi. Máy lẻ 101 sẵn sàng nhận cuộc gọi."),
    (agent(S.PAUSED, reason="meeting"), "Họp", "ready_pause",
     "Đã kết thúc hoàn tất cuộc gọi. Máy lẻ 101 chuyển sang tạm nghỉ: Họp."),
    (agent(S.LOGGED_OUT), None, "ready_logout", "Đã kết thúc hoàn tất cuộc gọi và đăng xuất."),
])
def test_given_wrap_up_when_ready_then_says_where_the_operator_went(
        after: ag.AgentState, label: str | None, key: str, text: str) -> None:
    t = tx.confirmation("ready", agent(S.WRAP_UP), after, label)
    assert (t.key, t.text) == (key, text)


def test_given_available_when_ready_then_already_ready() -> None:
    t = tx.confirmation("ready", agent(S.AVAILABLE), agent(S.AVAILABLE))
    assert t.key == "already_ready"
    assert t.text == "Máy lẻ 101 đang sẵn sàng nhận cuộc gọi."


def test_given_unknown_action_when_confirmation_then_value_error() -> None:
    with pytest.raises(ValueError, match="dance"):
        tx.confirmation("dance", agent(S.AVAILABLE), agent(S.AVAILABLE))


def test_given_unknown_extension_then_not_an_operator() -> None:
    t = tx.refusal(tx.UNKNOWN, "999")
    assert t.text == "Máy lẻ này chưa được khai báo là tổng đài viên."
    assert t.key == "unknown" and t.prompt_id == "agent-unknown"


def test_given_bad_reason_then_valid_reasons_listed_with_their_digits() -> None:
    t = tx.refusal(tx.BAD_REASON, "101", action="pause", reasons=DEFAULT_PAUSE_REASONS[:2])
    assert t.text == "Lý do tạm nghỉ không hợp lệ. Xin chọn 1: Nghỉ giải lao; 2: Họp."
    assert t.prompt_id == "agent-bad-reason"


@pytest.mark.parametrize(("action", "state", "text"), [
    ("login", agent(S.AVAILABLE), "Máy lẻ 101 đã đăng nhập rồi."),
    ("logout", agent(S.LOGGED_OUT), "Máy lẻ 101 đã đăng xuất rồi."),
    ("pause", agent(S.LOGGED_OUT), "Máy lẻ 101 chưa đăng nhập. Xin đăng nhập trước."),
    ("unpause", agent(S.LOGGED_OUT), "Máy lẻ 101 chưa đăng nhập. Xin đăng nhập trước."),
    ("unpause", agent(S.AVAILABLE), "Máy lẻ 101 không ở trạng thái tạm nghỉ."),
    ("ready", agent(S.ON_CALL), "Máy lẻ 101 không ở trạng thái hoàn tất cuộc gọi."),
    ("pause", agent(S.RINGING), "Không thực hiện được thao tác này khi đang ở trạng thái "
                                "đang đổ chuông."),
])
def test_given_state_when_illegal_then_reason_in_vietnamese(
        action: str, state: ag.AgentState, text: str) -> None:
    t = tx.refusal(tx.ILLEGAL, "101", action=action, state=state)
    assert (t.key, t.text) == ("illegal", text)


def test_given_every_error_id_then_a_sentence_and_the_id_as_key() -> None:
    reasons = (PauseReason("break", "Nghỉ giải lao"),)
    for error_id in tx.ERROR_IDS:
        t = tx.refusal(error_id, "101", action="pause", state=agent(S.AVAILABLE),
                       reasons=reasons)
        assert t.text and t.text.endswith(".")
        assert "agent." + t.key == error_id


def test_given_unknown_error_id_then_value_error() -> None:
    with pytest.raises(ValueError):
        tx.refusal("agent.nope", "101")


def test_given_every_state_then_vietnamese_label() -> None:
    assert {tx.state_label(s) for s in S} == {
        "Chưa đăng nhập", "Sẵn sàng", "Đang đổ chuông", "Đang nghe máy", "Hoàn tất cuộc gọi",
        "Tạm nghỉ"}
