"""What an operator hears or reads after a log-in, log-out, pause, unpause or "ready": pure texts.

The same words serve the phone's feature codes (spoken by the prompt library), the CLI and the
HTTP API. Each text has a stable ``key``; ``prompt_id`` (``agent-<key>``) names the recorded
file that may replace the synthesised speech (``config/sounds/<tenant>/agent-login.wav``). A
recording replaces the whole sentence, so it cannot say the extension or the reason: record
generic words ("Đã đăng nhập.") if you record these at all.

Error keys are the stable error ids without the ``agent.`` prefix (``agent.illegal`` ->
``illegal``), so the CLI and the API show the id next to the Vietnamese sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callcenter.queue.agent import PENDING_LOGOUT, PENDING_PAUSE, AgentState, AgentStatus
from callcenter.queue.policy import PauseReason

ACTIONS: tuple[str, ...] = ("login", "logout", "pause", "unpause", "ready")

# Error ids (stable: CLI stderr, HTTP error bodies, log lines).
UNKNOWN = "agent.unknown"  # the extension is no operator of any tenant
NOT_LOADED = "agent.not_loaded"  # configured, but the queue (Redis) does not know it yet
BAD_ACTION = "agent.bad_action"
BAD_REASON = "agent.bad_reason"
ILLEGAL = "agent.illegal"  # the action cannot happen in the operator's state
BUSY = "agent.busy"  # the state kept changing under us (compare-and-set gave up)
UNAVAILABLE = "agent.unavailable"  # the queue's store (Redis) did not answer
ERROR_IDS: tuple[str, ...] = (UNKNOWN, NOT_LOADED, BAD_ACTION, BAD_REASON, ILLEGAL, BUSY,
                              UNAVAILABLE)

STATE_LABELS: dict[AgentStatus, str] = {
    AgentStatus.LOGGED_OUT: "Chưa đăng nhập",
    AgentStatus.AVAILABLE: "Sẵn sàng",
    AgentStatus.RINGING: "Đang đổ chuông",
    AgentStatus.ON_CALL: "Đang nghe máy",
    AgentStatus.WRAP_UP: "Hoàn tất cuộc gọi",
    AgentStatus.PAUSED: "Tạm nghỉ",
}


@dataclass(frozen=True)
class AgentText:
    """A sentence for the operator and the stable key it is known by."""

    key: str  # "login", "pause_pending", "illegal" ...
    text: str  # Vietnamese

    @property
    def prompt_id(self) -> str:
        """The prompt id of the spoken form (a recorded ``<id>.wav`` replaces it)."""
        return "agent-" + self.key.replace("_", "-")


def state_label(status: AgentStatus) -> str:
    """The Vietnamese name of an agent state."""
    return STATE_LABELS[status]


def reasons_text(reasons: Sequence[PauseReason]) -> str:
    """The pause reasons with the digit the phone takes: ``1: Nghỉ giải lao; 2: Họp``."""
    return "; ".join(f"{i}: {r.label}" for i, r in enumerate(reasons, start=1))


def confirmation(action: str, before: AgentState, after: AgentState,
                 reason_label: str | None = None) -> AgentText:
    """What the operator is told after ``action`` took ``before`` to ``after``."""
    ext = after.extension
    ready = f"Máy lẻ {ext} sẵn sàng nhận cuộc gọi."
    if action == "login":
        if before.status is AgentStatus.LOGGED_OUT:
            return AgentText("login", f"Đã đăng nhập. {ready}")
        return AgentText("logout_cancelled", f"Đã hủy yêu cầu đăng xuất. Máy lẻ {ext} tiếp tục "
                                             "làm việc sau cuộc gọi này.")
    if action == "logout":
        if after.pending == PENDING_LOGOUT:
            return AgentText("logout_pending", f"Máy lẻ {ext} sẽ đăng xuất khi cuộc gọi hiện "
                                               "tại kết thúc.")
        return AgentText("logout", f"Đã đăng xuất. Máy lẻ {ext} sẽ không nhận cuộc gọi.")
    if action == "pause":
        label = reason_label or after.pending_reason or after.reason or ""
        if after.pending == PENDING_PAUSE:
            return AgentText("pause_pending", f"Sẽ tạm nghỉ khi cuộc gọi hiện tại kết thúc: "
                                              f"{label}.")
        return AgentText("pause", f"Đã tạm nghỉ: {label}.")
    if action == "unpause":
        if before.status is AgentStatus.PAUSED:
            return AgentText("unpause", f"Đã hết tạm nghỉ. {ready}")
        return AgentText("pause_cancelled", "Đã hủy yêu cầu tạm nghỉ.")
    if action == "ready":
        if before.status is not AgentStatus.WRAP_UP:
            return AgentText("already_ready", f"Máy lẻ {ext} đang sẵn sàng nhận cuộc gọi.")
        if after.status is AgentStatus.LOGGED_OUT:
            return AgentText("ready_logout", "Đã kết thúc hoàn tất cuộc gọi và đăng xuất.")
        if after.status is AgentStatus.PAUSED:
            return AgentText("ready_pause", f"Đã kết thúc hoàn tất cuộc gọi. Máy lẻ {ext} "
                                            f"chuyển sang tạm nghỉ: {reason_label or ''}.")
        return AgentText("ready", f"Đã kết thúc hoàn tất cuộc gọi. {ready}")
    raise ValueError(f"unknown agent action {action!r}")


def refusal(error_id: str, extension: str, *, action: str = "",
            state: AgentState | None = None,
            reasons: Sequence[PauseReason] = ()) -> AgentText:
    """Why the action was refused, in Vietnamese (``error_id``: one of ``ERROR_IDS``)."""
    key = error_id.removeprefix("agent.")
    ext = extension
    if error_id == UNKNOWN:
        return AgentText(key, "Máy lẻ này chưa được khai báo là tổng đài viên.")
    if error_id == NOT_LOADED:
        return AgentText(key, f"Máy lẻ {ext} chưa có trong hàng đợi của tổng đài. Xin thử lại "
                              "sau ít phút.")
    if error_id == BAD_ACTION:
        return AgentText(key, "Thao tác không hợp lệ. Các thao tác: đăng nhập, đăng xuất, tạm "
                              "nghỉ, hết tạm nghỉ, sẵn sàng.")
    if error_id == BAD_REASON:
        listed = reasons_text(reasons)
        return AgentText(key, "Lý do tạm nghỉ không hợp lệ." + (f" Xin chọn {listed}."
                                                                 if listed else ""))
    if error_id == BUSY:
        return AgentText(key, f"Trạng thái máy lẻ {ext} đang thay đổi. Xin thử lại.")
    if error_id == UNAVAILABLE:
        return AgentText(key, "Hệ thống tổng đài viên tạm thời gián đoạn. Xin thử lại sau.")
    if error_id != ILLEGAL:
        raise ValueError(f"unknown agent error id {error_id!r}")
    status = state.status if state is not None else None
    if action == "login":
        return AgentText(key, f"Máy lẻ {ext} đã đăng nhập rồi.")
    if status is AgentStatus.LOGGED_OUT:
        if action == "logout":
            return AgentText(key, f"Máy lẻ {ext} đã đăng xuất rồi.")
        return AgentText(key, f"Máy lẻ {ext} chưa đăng nhập. Xin đăng nhập trước.")
    if action == "unpause":
        return AgentText(key, f"Máy lẻ {ext} không ở trạng thái tạm nghỉ.")
    if action == "ready":
        return AgentText(key, f"Máy lẻ {ext} không ở trạng thái hoàn tất cuộc gọi.")
    where = f" khi đang ở trạng thái {state_label(status).lower()}" if status else ""
    return AgentText(key, f"Không thực hiện được thao tác này{where}.")
