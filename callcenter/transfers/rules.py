"""Transfers of a bridged caller to level-2 units' hotlines: who may be dialled, what is refused.

The call machine (``callcenter.calls``) carries transfers out; this module answers the
questions asked before an event reaches it, the same for the phone's transfer button and for
the HTTP API: is this number (or unit id) one of the tenant's units' hotlines, and can the call
be transferred, completed or cancelled now. Refusals carry stable ids (the API shows them) and
a Vietnamese message (operators read it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from callcenter import calls as cm
from callcenter.config.model import Field
from callcenter.ivr import status as sts
from callcenter.ivr.tree import Prompt
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


# -- warm transfer: what the unit hears of the ticket before the citizen is joined ----------
#
# When a unit answers an operator's consultation (attended transfer) and the call is linked
# to a ticket (the desk's LinkCall: ticket_calls holds the call record id), the unit's leg
# hears "Tổng đài 1022 chuyển phản ánh mã số <digits> lĩnh vực <field>" before it is put
# with the operator. Spoken like the IVR's status lookup (callcenter.ivr.status): fixed
# fragments built ahead (the digits are the status lookup's own ``st-n-*``), never one-off
# synthesis per ticket; a recorded ``xf-*.wav`` replaces any of them.

WARM_INTRO = Prompt("xf-intro", "Tổng đài 1022 chuyển phản ánh mã số", clip=True)
WARM_FIELD = Prompt("xf-field", "lĩnh vực", clip=True)


@dataclass(frozen=True)
class WarmTicket:
    """The ticket an attended transfer carries: its code and field (name None: unknown)."""

    code: str
    field: str
    field_name: str | None = None


def field_prompt(field_id: str, name: str) -> Prompt:
    """A field's name as a fragment (a recorded ``xf-field-<id>.wav`` replaces it)."""
    return Prompt(f"xf-field-{field_id}", name, clip=True)


def announces(state: cm.CallState, unit_channel: str) -> bool:
    """Whether the unit answering on ``unit_channel`` hears a ticket: only the leg of the
    attended transfer in progress, before it was answered (a blind transfer joins the caller
    at once; a late or stray answer is hung up)."""
    t = state.transfer
    return (state.phase is cm.Phase.BRIDGED and t is not None and t.kind == "attended"
            and t.unit_channel == unit_channel and not t.unit_answered)


def pick_ticket(tickets: Iterable[WarmTicket]) -> WarmTicket | None:
    """The ticket to announce among those linked to the call (oldest first): the newest."""
    found = list(tickets)
    return found[-1] if found else None


def announcement(ticket: WarmTicket | None) -> list[Prompt]:
    """What the unit hears: nothing without a ticket; else intro, the code's number digit by
    digit (as the status lookup reads it), and the field when the tenant knows it."""
    if ticket is None:
        return []
    digits = [sts.number_prompt(int(c)) for c in sts.code_number(ticket.code) if c.isdigit()]
    out = [WARM_INTRO, *digits]
    if ticket.field_name:
        out += [WARM_FIELD, field_prompt(ticket.field, ticket.field_name)]
    return out


def warm_fragments(fields: Iterable[Field]) -> list[Prompt]:
    """Every fragment an announcement can use, for building ahead."""
    return [WARM_INTRO, WARM_FIELD, *(sts.number_prompt(n) for n in range(10)),
            *(field_prompt(f.id, f.name) for f in fields)]
