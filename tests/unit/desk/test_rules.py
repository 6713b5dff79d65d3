"""What the operator desk shows of a call (callcenter.desk.rules): pure."""

from __future__ import annotations

import datetime as dt

from callcenter import calls as cm
from callcenter.desk.rules import ivr_steps, node_title, phase_label, seconds_since, shorten
from callcenter.ivr.menu import Step
from callcenter.ivr.tree import FaqNode, IvrTree, MenuNode, OperatorNode, Prompt

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
TREE = IvrTree(root="main", operator="op", nodes=(
    MenuNode("main", Prompt("main", "Chào mừng quý khách gọi Tổng đài 1022 tỉnh Đồng Nai. Để "
                                    "hỏi về y tế, bấm phím 1. Để gặp tổng đài viên, bấm phím 2."),
             (("1", "health"), ("2", "op")), 5.0, 3, Prompt("invalid", "Sai."), "op"),
    FaqNode("health", None, field="health"),
    OperatorNode("op", Prompt("op", "Xin giữ máy.")),
))


def test_given_path_through_menu_faq_and_operator_then_vietnamese_steps() -> None:
    path = (Step(T0, "enter", node="main"), Step(T0, "digit", node="main", digit="1"),
            Step(T0, "enter", node="health"), Step(T0, "faq", node="health", faq="abc"),
            Step(T0, "feedback", node="health", faq="abc", answer="operator"),
            Step(T0, "enter", node="op"), Step(T0, "operator", node="op"))
    steps = ivr_steps(path, TREE, {"abc": "Giờ làm việc của bệnh viện?"},
                      {"health": "Y tế"}.get)
    assert [s["text"] for s in steps] == [
        # 80 characters at most, cut at a word boundary.
        "Vào «Chào mừng quý khách gọi Tổng đài 1022 tỉnh Đồng Nai. Để hỏi về y tế, bấm "
        "phím…»",
        "Bấm phím 1",
        "Vào «Hỏi đáp: Y tế»",
        "Nghe giải đáp: Giờ làm việc của bệnh viện?",
        "Đánh giá: chưa được giải đáp, muốn gặp điện thoại viên",
        "Vào «Xin giữ máy.»",
        "Chọn gặp điện thoại viên",
    ]
    assert steps[1] == {"at": T0.isoformat(), "event": "digit", "node": "main", "digit": "1",
                        "faq": None, "text": "Bấm phím 1"}


def test_given_unknown_node_or_item_then_ids_shown() -> None:
    steps = ivr_steps((Step(T0, "enter", node="gone"), Step(T0, "faq", node="x", faq="k9"),
                       Step(T0, "invalid", node="main", digit="7"),
                       Step(T0, "timeout", node="main")), TREE, {})
    assert [s["text"] for s in steps] == [
        "Vào «gone»", "Nghe giải đáp (mục k9)", "Bấm phím không hợp lệ (7)",
        "Không bấm phím (hết thời gian chờ)"]
    assert node_title(None, "main") == "main"


def test_shorten_and_labels_and_seconds() -> None:
    assert shorten("a  b\nc") == "a b c"
    assert shorten("một hai ba bốn", 8) == "một hai…"
    assert phase_label(cm.Phase.BRIDGED) == "Đang đàm thoại"
    assert all(phase_label(p) for p in cm.Phase)
    assert seconds_since(None, T0) is None
    assert seconds_since(T0, T0 + dt.timedelta(seconds=75.9)) == 75
    assert seconds_since(T0 + dt.timedelta(seconds=5), T0) == 0
