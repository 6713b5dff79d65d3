"""Audit details shown in Vietnamese (callcenter.console.listing.audit_note), on the details
the ticket core really writes (so a change of wording there fails here)."""

from __future__ import annotations

from callcenter.console.listing import audit_note
from callcenter.tickets import rules as tk
from tests.unit.tickets.test_rules import OP, POLICY, SUP, T0, YT, H, M, new

UNITS = {u.id: u.name for u in POLICY.units}
FIELDS = {"health": "Y tế", "transport": "Giao thông vận tải"}


def notes(*events: tk.Event, ticket: tk.Ticket | None = None) -> list[tuple[str, str]]:
    """(event, Vietnamese note) of every audit entry written along ``events``."""
    t = ticket or new()
    out: list[tuple[str, str]] = []
    for e in events:
        t, effects = tk.apply(t, e, POLICY)
        out += [(a.event, audit_note(a.event, a.detail, units=UNITS, fields=FIELDS))
                for a in effects if isinstance(a, tk.AuditEntry)]
    return out


def test_given_opened_ticket_then_channel_and_field_in_vietnamese() -> None:
    _, effects = tk.open_ticket(POLICY, code="DN-20261123-0001", tenant="dongnai",
                                channel="phone", content="Hỏi", field="health", at=T0, actor=OP,
                                urgent=True)
    (entry,) = [a for a in effects if isinstance(a, tk.AuditEntry)]
    assert audit_note(entry.event, entry.detail, units=UNITS, fields=FIELDS) == \
        "Kênh: Điện thoại; lĩnh vực: Y tế; khẩn"


def test_given_a_ticket_life_then_every_note_is_vietnamese() -> None:
    got = notes(
        tk.Forward(T0 + 10 * M, OP, "so_y_te"),
        tk.Accept(T0 + 20 * M, YT),
        tk.Return(T0 + H, YT, "Không thuộc thẩm quyền"),
        tk.Forward(T0 + 2 * H, SUP, "ubnd_lt", "Giao huyện xử lý"),
        tk.Resolve(T0 + 60 * H, tk.Actor("lt1", "unit", "ubnd_lt"), "Đã xử lý",
                   reply_document=True),
        tk.Reopen(T0 + 61 * H, OP, "Người dân chưa hài lòng"),
        tk.Reclassify(T0 + 62 * H, SUP, "transport", None, False),
    )
    assert got == [
        ("forward", "Chuyển cho Sở Y tế theo phân công tự động"),
        ("accept", "Sở Y tế tiếp nhận xử lý"),
        ("return", "Sở Y tế trả lại. Lý do: Không thuộc thẩm quyền"),
        ("forward", "Chuyển cho UBND huyện Long Thành (khác phân công tự động: Sở Y tế). "
                    "Ghi chú: Giao huyện xử lý"),
        ("resolve", "UBND huyện Long Thành cập nhật kết quả, kèm văn bản trả lời, trễ 2 ngày"),
        ("reopen", "Lý do: Người dân chưa hài lòng"),
        ("reclassify", "lĩnh vực: Y tế → Giao thông vận tải; địa bàn: long_thanh.an_phuoc → "
                       "không rõ"),
    ]


def test_given_answer_from_faq_or_link_or_close_then_vietnamese() -> None:
    assert notes(tk.Answer(T0 + M, OP, "Theo FAQ", "YT-01")) == [
        ("answer", "Trả lời tại tổng đài theo câu hỏi thường gặp YT-01")]
    assert notes(tk.LinkCall(T0 + M, OP, "pbx1:9.9"), tk.LinkCall(T0 + 2 * M, OP, "pbx1:9.9")) \
        == [("link_call", "Cuộc gọi pbx1:9.9"),
            ("link_call", "Cuộc gọi pbx1:9.9 (đã gắn trước đó)")]


def test_given_a_detail_of_unknown_shape_then_shown_as_written() -> None:
    assert audit_note("forward", "something new", units=UNITS, fields=FIELDS) == "something new"
    assert audit_note("attach", "a.pdf (application/pdf, 10 bytes)", units=UNITS,
                      fields=FIELDS) == "a.pdf (application/pdf, 10 bytes)"
    assert audit_note("late", "resolve deadline 2026-11-24T01:00:00+00:00 passed; with so_y_te",
                      units=UNITS, fields=FIELDS) == \
        "Quá hạn giải quyết; phiếu đang ở đơn vị Sở Y tế"


def test_given_a_call_transferred_to_a_unit_then_vietnamese_with_the_units_name() -> None:
    system = tk.Actor("warm-transfer", "system")
    assert notes(tk.TransferCall(T0 + M, system, "ubnd_lt", "pbx1:1764910000.42")) == [
        ("transfer_call", "Chuyển cuộc gọi đến UBND huyện Long Thành (đơn vị được xem phiếu)")]
