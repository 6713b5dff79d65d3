"""Audit notes of chasing (chase, escalate, email) in Vietnamese, on the details the ticket
core really writes."""

from __future__ import annotations

from callcenter.console.listing import EVENT_LABELS, audit_note
from callcenter.tickets import rules as tk
from tests.unit.tickets.test_chasing import (
    POLICY,
    SYSTEM,
    THU_0730,
    WED_0730,
    late_ticket,
)

UNITS = {u.id: u.name for u in POLICY.units}


def test_given_escalating_chase_when_noted_then_every_entry_vietnamese() -> None:
    t = late_ticket(chased_at=WED_0730)
    _, effects = tk.apply(t, tk.Chase(THU_0730, SYSTEM), POLICY)
    got = [(a.event, audit_note(a.event, a.detail, units=UNITS, fields={}))
           for a in effects if isinstance(a, tk.AuditEntry)]
    assert got[:2] == [
        ("chase", "Đã đôn đốc UBND huyện Long Thành (trễ 3 ngày): nhắn tin 1 đầu mối; "
                  "đã báo cáo lãnh đạo"),
        ("escalate", "UBND huyện Long Thành trễ hạn 3 ngày: đã báo Chủ tịch UBND huyện, "
                     "Văn phòng UBND tỉnh"),
    ]
    mails = [note for event, note in got if event == "email"]
    assert mails and all(n.startswith("Thư ") and "<" in n and "key" not in n for n in mails)
    assert "Thư báo cáo gửi Chủ tịch UBND huyện <ct@lt.example>: " in "".join(mails)
    assert all(a.event in EVENT_LABELS for a in effects if isinstance(a, tk.AuditEntry))
