"""Transfers of a bridged caller to level-2 units' hotlines: who may be dialled, what is refused.

The call machine (``callcenter.calls``) carries transfers out; this module answers the
questions asked before an event reaches it, the same for the phone's transfer button and for
the HTTP API: is this number (or unit id) one of the tenant's units' hotlines, and can the call
be transferred, completed or cancelled now. Refusals carry stable ids (the API shows them) and
a Vietnamese message (operators read it).
"""

from __future__ import annotations

from collections.abc import Iterable

from callcenter import calls as cm
from callcenter.numbers import same_number
from callcenter.tickets.config import Level2Unit

UNKNOWN_UNIT = "transfer.unknown_unit"
NOT_BRIDGED = "transfer.not_bridged"
IN_PROGRESS = "transfer.in_progress"
NO_TRANSFER = "transfer.none"
NOT_ANSWERED = "transfer.not_answered"
NOT_ATTENDED = "transfer.not_attended"
NOT_YOURS = "transfer.not_your_call"
CALL_NOT_FOUND = "transfer.call_not_found"
OTHER_INSTANCE = "transfer.other_instance"
UNAVAILABLE = "transfer.unavailable"

MESSAGES: dict[str, str] = {
    UNKNOWN_UNIT: "Số hoặc đơn vị này không phải đường dây nóng của đơn vị cấp 2 nào của "
                  "tỉnh; chỉ được chuyển cuộc gọi tới đơn vị cấp 2.",
    NOT_BRIDGED: "Cuộc gọi không đang được tổng đài viên tiếp nhận nên không thể chuyển.",
    IN_PROGRESS: "Cuộc gọi đang được chuyển; hãy hoàn tất hoặc hủy lần chuyển hiện tại.",
    NO_TRANSFER: "Cuộc gọi không có lần chuyển nào đang diễn ra.",
    NOT_ANSWERED: "Đơn vị chưa nhấc máy; chưa thể hoàn tất chuyển cuộc gọi.",
    NOT_ATTENDED: "Chuyển thẳng không cần hoàn tất; chỉ chuyển có tham vấn mới cần.",
    NOT_YOURS: "Tổng đài viên chỉ được chuyển cuộc gọi mình đang nghe.",
    CALL_NOT_FOUND: "Không tìm thấy cuộc gọi đang diễn ra với mã này.",
    OTHER_INSTANCE: "Cuộc gọi do một phiên bản khác của dịch vụ xử lý; hãy thao tác tại đó.",
    UNAVAILABLE: "Dịch vụ cuộc gọi chưa sẵn sàng; vui lòng thử lại.",
}



def targets(units: Iterable[Level2Unit]) -> tuple[Level2Unit, ...]:
    """The units one may transfer to: those with a hotline."""
    return tuple(u for u in units if u.hotline)


def unit_for_number(units: Iterable[Level2Unit], number: str) -> Level2Unit | None:
    """The unit whose hotline is ``number`` (as a phone or an operator wrote it), or None."""
    return next((u for u in targets(units) if u.hotline and same_number(u.hotline, number)),
                None)


def unit_for_id(units: Iterable[Level2Unit], unit_id: str) -> Level2Unit | None:
    """The unit ``unit_id`` if it has a hotline, or None."""
    return next((u for u in targets(units) if u.id == unit_id), None)


def request_refusal(state: cm.CallState) -> str | None:
    """Why a new transfer cannot start now (None: it can)."""
    if state.phase is not cm.Phase.BRIDGED or state.operator_channel is None:
        return NOT_BRIDGED
    if state.transfer is not None:
        return IN_PROGRESS
    return None


def complete_refusal(state: cm.CallState) -> str | None:
    """Why the transfer in progress cannot be completed now (None: it can)."""
    t = state.transfer
    if state.phase is not cm.Phase.BRIDGED or t is None:
        return NO_TRANSFER
    if t.kind != "attended":
        return NOT_ATTENDED
    if not t.unit_answered:
        return NOT_ANSWERED
    return None


def cancel_refusal(state: cm.CallState) -> str | None:
    """Why there is nothing to cancel (None: a transfer is in progress)."""
    if state.phase is not cm.Phase.BRIDGED or state.transfer is None:
        return NO_TRANSFER
    return None
