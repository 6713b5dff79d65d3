"""`callcenter sms ...`: the billing report, a test text, and a look into the outbox."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from callcenter.config.settings import Settings

STATUS_CHOICES = ("queued", "sending", "sent", "delivered", "failed", "expired")


def register(sub: Any) -> None:
    """Add `sms report`, `sms send` and `sms outbox` to the `callcenter` parser."""
    p = sub.add_parser("sms", help="SMS: billing report, test text, outbox")
    sms = p.add_subparsers(dest="sms_command", required=True)
    c = sms.add_parser("report", help="billing: per tenant in a month; with --tenant, texts to "
                                      "citizens and to officials per month/quarter in parts")
    c.add_argument("--tenant", help="one tenant: its texts per audience (citizens, officials, "
                                    "other), in its time zone")
    when = c.add_mutually_exclusive_group(required=True)
    when.add_argument("--month", help="YYYY-MM, a local calendar month")
    when.add_argument("--quarter", help="YYYY-Qn, e.g. 2026-Q4 (with --tenant)")
    c.add_argument("--xlsx", metavar="FILE", help="also write the report to an xlsx file "
                                                  "(with --tenant)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_report)
    c = sms.add_parser("send", help="queue a text (the running service sends it)")
    c.add_argument("--tenant", required=True)
    c.add_argument("--to", required=True, help="phone number, e.g. 0909000111 or +84909000111")
    c.add_argument("--text", required=True)
    c.add_argument("--purpose", default="test")
    c.add_argument("--key", help="dedupe key (default: a new one, so every call sends)")
    c.set_defaults(handler=cmd_send)
    c = sms.add_parser("outbox", help="latest messages in the outbox")
    c.add_argument("--status", choices=STATUS_CHOICES)
    c.add_argument("--tenant")
    c.add_argument("--last", type=int, default=20)
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_outbox)


def _outbox(settings: Settings) -> Any:
    from callcenter.sms.store import SmsOutbox

    return SmsOutbox(settings.database_url)


def _db_error(e: Exception) -> int:
    print(f"error: SMS outbox unavailable ({str(e).splitlines()[0]}); is the database "
          "migrated (`callcenter db upgrade`)?", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    if args.tenant is not None:
        return _audience_report(args, settings)
    if args.quarter is not None or args.xlsx is not None:
        print("error: --quarter and --xlsx need --tenant", file=sys.stderr)
        return 2
    box = _outbox(settings)
    try:
        rows = box.report(args.month)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        box.close()
    if args.json:
        print(json.dumps({"month": args.month, "tenants": [r.__dict__ for r in rows]},
                         ensure_ascii=False))
        return 0
    print(f"SMS {args.month} (giờ Việt Nam)")
    print(f"{'tenant':<14} {'tin nhắn':>9} {'phần':>7} {'đã nhận':>8} {'lỗi':>6}")
    for r in rows:
        print(f"{r.tenant:<14} {r.messages:>9} {r.parts:>7} {r.delivered:>8} {r.failed:>6}")
    total = (sum(r.messages for r in rows), sum(r.parts for r in rows),
             sum(r.delivered for r in rows), sum(r.failed for r in rows))
    print(f"{'tổng':<14} {total[0]:>9} {total[1]:>7} {total[2]:>8} {total[3]:>6}")
    return 0


def _audience_report(args: argparse.Namespace, settings: Settings) -> int:
    """`sms report --tenant T --month M | --quarter Q [--xlsx FILE] [--json]`."""
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.clock import utcnow
    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config
    from callcenter.sms import billing_tables as bt
    from callcenter.sms.billing import BillingPeriodError, billing_period
    from callcenter.tickets.reports import xlsx_bytes

    try:
        period = billing_period(args.month, args.quarter)
        config = load_config(settings.config_path)
    except (BillingPeriodError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tenant = next((t for t in config.tenants if t.id == args.tenant), None)
    if tenant is None:
        print(f"error: unknown tenant {args.tenant!r}: expected one of "
              f"{', '.join(t.id for t in config.tenants)}", file=sys.stderr)
        return 2
    box = _outbox(settings)
    try:
        report = box.billing_report(tenant.id, period, tenant.timezone)
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        box.close()
    if args.xlsx:
        table = bt.billing_table(report, tenant.name, utcnow())
        Path(args.xlsx).write_bytes(xlsx_bytes([table]))
    if args.json:
        print(json.dumps(bt.report_json(report, tenant.name), ensure_ascii=False))
        return 0
    print(f"SMS {tenant.name} {report.period.describe()} (giờ {tenant.timezone}); "
          "tính cước theo phần tin")
    print(f"{'tháng':<8} {'đối tượng':<12} {'tin':>7} {'phần':>7} {'báo nhận':>9} "
          f"{'lỗi (tin)':>9}")
    short = {"citizen": "người dân", "official": "cán bộ", "other": "khác"}
    lines = list(report.months) + (list(report.totals) if period.kind == "quarter" else [])
    for x in lines:
        print(f"{x.month or 'cả kỳ':<8} {short[x.audience]:<12} {x.messages:>7} {x.parts:>7} "
              f"{x.delivered_parts:>9} {x.failed_messages:>9}")
    t = report.total
    print(f"{'tổng':<21} {t.messages:>7} {t.parts:>7} {t.delivered_parts:>9} "
          f"{t.failed_messages:>9}")
    if args.xlsx:
        print(f"written: {args.xlsx}")
    return 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.store.migrate import upgrade_head

    key = args.key or f"{args.purpose}:{uuid.uuid4().hex}"
    try:
        upgrade_head(settings.database_url)
        box = _outbox(settings)
        try:
            msg_id = box.enqueue(tenant=args.tenant, to_number=args.to, text=args.text,
                                 purpose=args.purpose, dedupe_key=key)
            msg = box.get(msg_id) if msg_id is not None else box.by_dedupe_key(key)
        finally:
            box.close()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        return _db_error(e)
    if msg_id is None:
        print(f"already queued under {key}: SMS {msg.id if msg else '?'}, no new message")
        return 0
    assert msg is not None
    print(f"queued SMS {msg.id} to {msg.to_number}: {msg.coding}, {msg.parts} part(s), "
          f"key {key}")
    return 0


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    box = _outbox(settings)
    try:
        rows = box.recent(status=args.status, limit=args.last, tenant=args.tenant)
        counts = box.counts()
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        box.close()
    if args.json:
        print(json.dumps({"counts": counts, "messages": [m.to_json_dict() for m in rows]},
                         ensure_ascii=False))
        return 0
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox empty")
    for m in rows:
        text = m.text if len(m.text) <= 40 else m.text[:39] + "…"
        print(f"{m.id:>7} {m.created_at:%Y-%m-%d %H:%M} {m.tenant:<10} {m.to_number:<13} "
              f"{m.status:<9} {m.attempts:>2} {m.parts}p  {text}"
              + (f"  [{m.last_error}]" if m.last_error and m.status != "sent" else ""))
    return 0
