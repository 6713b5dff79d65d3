"""What the operator desk shows of a call, pure: the IVR path as readable Vietnamese steps and
the call's phase in words. Time is passed in; nothing here reads Redis or the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from callcenter import calls as cm
from callcenter.ivr.menu import Step
from callcenter.ivr.tree import FaqNode, GoodbyeNode, IvrTree, MenuNode, OperatorNode

TITLE_MAX = 80  # characters of a prompt shown as a node's title

PHASE_LABELS: dict[cm.Phase, str] = {
    cm.Phase.ROUTING: "Đang định tuyến",
    cm.Phase.ADMITTING: "Đang cấp line",
    cm.Phase.GREETING: "Đang nghe lời chào",
    cm.Phase.IVR: "Đang ở menu tự động",
    cm.Phase.HOLDING: "Đang chờ máy",
    cm.Phase.QUEUED: "Đang chờ điện thoại viên",
    cm.Phase.RINGING: "Đang đổ chuông",
    cm.Phase.BRIDGED: "Đang đàm thoại",
    cm.Phase.TRANSFERRED: "Đã chuyển cho đơn vị",
    cm.Phase.BUSY_MESSAGE: "Báo hết line",
    cm.Phase.OFFER_ADMITTING: "Hết line, xét đề nghị gọi lại",
    cm.Phase.CALLBACK_OFFER: "Hết line, đề nghị gọi lại",
    cm.Phase.REJECTING: "Đang kết thúc",
    cm.Phase.CLOSING: "Đang kết thúc",
    cm.Phase.ENDED: "Đã kết thúc",
}


def phase_label(phase: cm.Phase) -> str:
    """The call's phase in Vietnamese."""
    return PHASE_LABELS[phase]


def shorten(text: str, limit: int = TITLE_MAX) -> str:
    """``text`` on one line, cut at a word boundary with an ellipsis past ``limit``."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] if " " in flat[:limit] else flat[:limit]
    return cut.rstrip(" ,.;:") + "…"


def node_title(tree: IvrTree | None, node_id: str | None,
               field_name: Callable[[str], str | None] = lambda f: None) -> str:
    """A node as the operator reads it: its prompt's words (shortened), else its id."""
    if node_id is None:
        return "?"
    node = tree.by_id.get(node_id) if tree is not None else None
    if node is None:
        return node_id
    prompt = getattr(node, "prompt", None)
    text = prompt.text if prompt is not None and prompt.text else None
    if isinstance(node, FaqNode) and text is None:
        if node.field is not None:
            return f"Hỏi đáp: {field_name(node.field) or node.field}"
        return f"Hỏi đáp ({node_id})"
    if isinstance(node, OperatorNode) and text is None:
        return "Gặp điện thoại viên"
    if isinstance(node, MenuNode | GoodbyeNode) and text is None:
        return node_id
    return shorten(text) if text else node_id


def step_text(step: Step, tree: IvrTree | None, questions: Mapping[str, str],
              field_name: Callable[[str], str | None] = lambda f: None) -> str:
    """One step of the IVR path in Vietnamese."""
    title = node_title(tree, step.node, field_name)
    event = step.event
    if event == "enter":
        return f"Vào «{title}»"
    if event == "digit":
        return f"Bấm phím {step.digit}"
    if event == "invalid":
        return f"Bấm phím không hợp lệ ({step.digit})" if step.digit else "Lựa chọn không hợp lệ"
    if event == "timeout":
        return "Không bấm phím (hết thời gian chờ)"
    if event == "faq":
        question = questions.get(step.faq or "")
        return f"Nghe giải đáp: {shorten(question)}" if question else \
            f"Nghe giải đáp (mục {step.faq})"
    if event == "feedback":
        return "Đánh giá: giải đáp có ích" if step.answer == "yes" else \
            "Đánh giá: chưa được giải đáp, muốn gặp điện thoại viên"
    if event == "operator":
        return "Chọn gặp điện thoại viên"
    if event == "goodbye":
        return "Nghe lời chào kết thúc"
    if event == "hangup":
        return "Gác máy"
    if event == "callback_offer":
        return "Hết line: nghe đề nghị gọi lại (bấm phím 1)"
    if event == "callback":
        return "Đăng ký được gọi lại"
    if event == "status":
        what = f"mã số {step.digit}" if step.digit else "theo số điện thoại"
        if step.answer == "unavailable":
            return f"Tra cứu phản ánh ({what}): hệ thống gián đoạn"
        if step.codes:
            return f"Tra cứu phản ánh ({what}): nghe phiếu {', '.join(step.codes.split())}"
        return f"Tra cứu phản ánh ({what}): không có phiếu"
    return f"{event} ({title})"


def ivr_steps(path: Sequence[Step], tree: IvrTree | None, questions: Mapping[str, str],
              field_name: Callable[[str], str | None] = lambda f: None) -> list[dict[str, Any]]:
    """The IVR path for the desk: each step's time, event, node and Vietnamese text."""
    return [{"at": s.at.isoformat(), "event": s.event, "node": s.node, "digit": s.digit,
             "faq": s.faq, "text": step_text(s, tree, questions, field_name)} for s in path]


def seconds_since(start: dt.datetime | None, now: dt.datetime) -> int | None:
    """Whole seconds from ``start`` to ``now`` (never negative); None without a start."""
    if start is None:
        return None
    return max(0, int((now - start).total_seconds()))
