"""`callcenter quality ...`: the weekly review sample and the per-operator quality report.

    callcenter quality sample --tenant T [--week 2026-W49] [--json]
    callcenter quality report --tenant T (--week 2026-W49 | --month 2026-12) [--xlsx FILE]
                              [--json]

Without ``--week``/``--month`` the current local week. Exit 0 on success; 1 for an invalid
config, tenant or period; 2 when the config file or the database is unavailable (the message
says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from callcenter.config.settings import Settings


class _Refused(Exception):
    """A usage or setup error: printed, exit ``code`` (1: invalid input, 2: unavailable)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def register(sub: Any) -> None:
    """Add `quality sample` and `quality report` to the `callcenter` parser."""
    p = sub.add_parser("quality", help="quality review of operators' answers: the weekly "
                                       "sample, the per-operator report")
    q = p.add_subparsers(dest="quality_command", required=True)
    s = q.add_parser("sample", help="the week's calls to review, per operator")
    s.add_argument("--tenant", required=True)
    s.add_argument("--week", help="ISO week, e.g. 2026-W49 (default: this local week)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_sample)
    r = q.add_parser("report", help="per operator: reviews, average scores, 'đùn đẩy' calls")
    r.add_argument("--tenant", required=True)
    period = r.add_mutually_exclusive_group()
    period.add_argument("--week", help="ISO week, e.g. 2026-W49 (default: this local week)")
    period.add_argument("--month", help="a month, e.g. 2026-12")
    r.add_argument("--xlsx", type=Path, help="also write the report as an xlsx workbook")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_report)


def _setup(settings: Settings, tenant_id: str, period_text: str | None) -> tuple[Any, Any]:
    """The tenant in force and the period asked for."""
    from callcenter.clock import utcnow
    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config
    from callcenter.quality.rules import parse_period, week_of

    try:
        config = load_config(settings.config_path)
    except ConfigError as e:
        raise _Refused(f"invalid config: {e}") from e
    except OSError as e:
        raise _Refused(f"cannot read config {settings.config_path}: {e}", 2) from e
    tenant = config.tenant(tenant_id)
    if tenant is None:
        known = ", ".join(t.id for t in config.tenants)
        raise _Refused(f"no tenant {tenant_id!r} in {settings.config_path} (known: {known})")
    try:
        period = (parse_period(period_text, tenant.timezone) if period_text
                  else week_of(utcnow(), tenant.timezone))
    except ValueError as e:
        raise _Refused(str(e)) from e
    return tenant, period


def _db_error(e: Exception) -> int:
    print(f"error: quality reviews unavailable ({str(e).splitlines()[0]}); is the database "
          "migrated (`callcenter db upgrade`)?", file=sys.stderr)
    return 2


def cmd_sample(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.quality.rules import weekly_sample
    from callcenter.quality.store import QualityStore

    try:
        tenant, week = _setup(settings, args.tenant, args.week)
        if "-W" not in week.key:
            raise _Refused("the sample is drawn per week: give --week 2026-W49")
    except _Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    store = QualityStore(settings.database_url)
    try:
        drawn = weekly_sample(store.candidates(tenant.id, week), tenant=tenant.id, week=week,
                              per_operator=tenant.quality.sample_per_operator)
        reviewed = store.reviewed_calls(i for ids in drawn.values() for i in ids)
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"tenant": tenant.id, "week": week.key, "sample": drawn,
                          "reviewed": reviewed}, ensure_ascii=False))
        return 0
    print(f"Mẫu kiểm tra chất lượng {week.label}, {tenant.name}:")
    if not drawn:
        print("  (không có cuộc gọi nào đã nghe máy và còn ghi âm)")
    for op, ids in drawn.items():
        print(f"  điện thoại viên {op}:")
        for i in ids:
            who = ", ".join(reviewed.get(i, []))
            print(f"    {i}" + (f"  (đã chấm: {who})" if who else ""))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.clock import utcnow
    from callcenter.quality.report import report_rows, report_table
    from callcenter.quality.rules import operator_report
    from callcenter.quality.store import QualityStore
    from callcenter.tickets.reports import xlsx_bytes

    try:
        tenant, period = _setup(settings, args.tenant, args.week or args.month)
    except _Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    store = QualityStore(settings.database_url)
    try:
        reviews = store.reviews_in(tenant.id, period)
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    names = {o.extension: o.name for o in tenant.operators.operators}
    rows = report_rows(operator_report([r.facts() for r in reviews]), names)
    if args.xlsx is not None:
        table = report_table(tenant.name, period, rows, tenant.timezone, utcnow())
        args.xlsx.write_bytes(xlsx_bytes([table]))
        print(f"wrote {args.xlsx}", file=sys.stderr)
    if args.json:
        print(json.dumps({"tenant": tenant.id, "period": period.key, "operators": [
            {k: v for k, v in r.items() if k not in ("stt", "buck_passing_calls")}
            for r in rows]}, ensure_ascii=False))
        return 0
    print(f"Chất lượng trả lời {period.label}, {tenant.name}: {len(reviews)} phiếu chấm")
    if not rows:
        print("  (chưa có phiếu chấm nào trong kỳ)")

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for r in rows:
        rate = r["no_buck_passing_rate"]
        print(f"  {r['operator']:<6} {r['name']:<22} phiếu {r['reviews']:>3}  chào hỏi "
              f"{num(r['greeting'])}  chính xác {num(r['accuracy'])}  thái độ "
              f"{num(r['attitude'])}  không đùn đẩy {'-' if rate is None else f'{rate:.0%}'}"
              + (f"  đùn đẩy: {r['buck_passing_calls']}" if r["buck_passing_count"] else ""))
    return 0
