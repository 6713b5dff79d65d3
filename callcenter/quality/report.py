"""The per-operator quality report as rows and as an xlsx table (the console page, its export
and ``callcenter quality report`` share these); the figures come from ``rules.operator_report``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from callcenter.quality.rules import OperatorSummary, Period
from callcenter.tickets.reports import Column, Table

REPORT_COLUMNS: Final = (
    Column("stt", "STT", 6, "int"),
    Column("operator", "Số máy", 9),
    Column("name", "Điện thoại viên", 22),
    Column("reviews", "Số phiếu chấm", 10, "int"),
    Column("calls", "Số cuộc gọi được chấm", 12, "int"),
    Column("greeting", "Chào hỏi (TB, 1-5)", 11, "number"),
    Column("accuracy", "Trả lời chính xác (TB, 1-5)", 13, "number"),
    Column("attitude", "Thái độ (TB, 1-5)", 11, "number"),
    Column("no_buck_passing_rate", "Không đùn đẩy (tỷ lệ đạt)", 13, "percent"),
    Column("buck_passing_count", "Số cuộc có đùn đẩy", 11, "int"),
    Column("buck_passing_calls", "Cuộc gọi có đùn đẩy", 40),
)


def report_rows(summaries: Sequence[OperatorSummary],
                names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The report's rows, numbered, with the operators' names from the config."""
    return [{"stt": i, "operator": s.operator, "name": names.get(s.operator, ""),
             "reviews": s.reviews, "calls": s.calls, "greeting": s.greeting,
             "accuracy": s.accuracy, "attitude": s.attitude,
             "no_buck_passing_rate": s.no_buck_passing_rate,
             "buck_passing_count": len(s.buck_passing_calls),
             "buck_passing_calls": ", ".join(s.buck_passing_calls),
             "buck_passing_ids": list(s.buck_passing_calls)}
            for i, s in enumerate(summaries, 1)]


def report_table(tenant_name: str, period: Period, rows: Sequence[dict[str, Any]],
                 timezone: str, now: dt.datetime) -> Table:
    """The report as one xlsx sheet."""
    total = sum(r["reviews"] for r in rows)
    sub = (f"Giờ {timezone}; {total} phiếu chấm của {len(rows)} điện thoại viên; điểm 1-5 "
           f"(5 rất tốt); lập lúc {now.astimezone(ZoneInfo(timezone)):%H:%M %d/%m/%Y}")
    return Table("Chất lượng trả lời",
                 f"Kiểm tra chất lượng trả lời {period.label} - Tổng đài 1022 {tenant_name}",
                 sub, REPORT_COLUMNS, tuple(rows), timezone)
