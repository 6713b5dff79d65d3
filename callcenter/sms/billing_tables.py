"""The SMS billing report as a table (xlsx, CSV, JSON), laid out like the ticket reports."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.sms.billing import BillingLine, BillingReport
from callcenter.tickets.reports import Column, Table

COLUMNS = (
    Column("month", "Tháng", 10),
    Column("audience_name", "Đối tượng nhận", 36),
    Column("messages", "Số tin nhắn tính cước", 14, "int"),
    Column("parts", "Số phần tin tính cước", 14, "int"),
    Column("delivered_messages", "Trong đó: tin đã báo nhận", 14, "int"),
    Column("delivered_parts", "Trong đó: phần tin đã báo nhận", 14, "int"),
    Column("failed_messages", "Tin không đến được (không tính cước)", 16, "int"),
    Column("failed_parts", "Phần tin không đến được", 14, "int"),
)


def _month_label(month: str | None) -> str:
    return "Cả kỳ" if month is None else f"{month[5:7]}/{month[:4]}"


def line_dict(line: BillingLine) -> dict[str, Any]:
    """A line as plain JSON values (month None: the whole period)."""
    return {"month": line.month, "audience": line.audience,
            "audience_name": line.audience_name, "messages": line.messages,
            "parts": line.parts, "delivered_messages": line.delivered_messages,
            "delivered_parts": line.delivered_parts, "failed_messages": line.failed_messages,
            "failed_parts": line.failed_parts}


def report_json(report: BillingReport, tenant_name: str) -> dict[str, Any]:
    """The report as JSON: per month and audience, the period's totals, the grand total."""
    total = line_dict(report.total)
    total.update(audience=None, audience_name="Tổng cộng")
    return {"tenant": report.tenant, "tenant_name": tenant_name,
            "period": {"label": report.period.label, "kind": report.period.kind,
                       "months": list(report.period.months), "timezone": report.timezone},
            "billed": "gateway accepted (sent) and not reported failed; counted in parts",
            "months": [line_dict(x) for x in report.months],
            "totals": [line_dict(x) for x in report.totals], "total": total}


def billing_table(report: BillingReport, tenant_name: str, now: dt.datetime) -> Table:
    """The report as one table: each month's audiences, then the period's, then the total."""
    rows: list[dict[str, Any]] = []
    lines = list(report.months)
    if report.period.kind == "quarter":
        lines += list(report.totals)
    for line in lines:
        rows.append({**line_dict(line), "month": _month_label(line.month)})
    rows.append({**line_dict(report.total), "month": _month_label(None),
                 "audience_name": "Tổng cộng"})
    local = now.astimezone(ZoneInfo(report.timezone))
    return Table(
        "Tin nhắn SMS",
        f"Báo cáo tin nhắn SMS - Tổng đài 1022 {tenant_name} - {report.period.describe()}",
        f"Lập lúc {local:%H:%M %d/%m/%Y} (giờ {report.timezone}); tính cước: tin đã được cổng "
        "SMS nhận gửi, trừ tin có báo cáo không đến được; đếm theo số phần tin",
        COLUMNS, tuple(rows), report.timezone, bold_last=True)
