"""`callcenter mail ...`: a look into the mail outbox (`mail list`, alias `mail outbox`).

Reports are sent by hand with `callcenter report send daily|weekly|monthly|quarterly`
(registered with the other report commands in callcenter/tickets/cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from callcenter.config.settings import Settings

STATUS_CHOICES = ("queued", "sending", "sent", "failed")


def register(sub: Any) -> None:
    """Add `mail list` (alias `mail outbox`) to the `callcenter` parser."""
    p = sub.add_parser("mail", help="mail: the outbox of reports and other mails")
    mail = p.add_subparsers(dest="mail_command", required=True)
    c = mail.add_parser("list", aliases=["outbox"], help="latest mails in the outbox")
    c.add_argument("--status", choices=STATUS_CHOICES)
    c.add_argument("--tenant")
    c.add_argument("--last", type=int, default=20)
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.mail.store import MailOutbox

    box = MailOutbox(settings.database_url)
    try:
        rows = box.recent(status=args.status, limit=args.last, tenant=args.tenant)
        counts = box.counts()
    except SQLAlchemyError as e:
        print(f"error: mail outbox unavailable ({str(e).splitlines()[0]}); is the database "
              "migrated (`callcenter db upgrade`)?", file=sys.stderr)
        return 2
    finally:
        box.close()
    if args.json:
        print(json.dumps({"counts": counts, "mails": [m.to_json_dict() for m in rows]},
                         ensure_ascii=False))
        return 0
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox empty")
    for m in rows:
        to = ", ".join(m.to)
        to = to if len(to) <= 40 else to[:39] + "…"
        subject = m.subject if len(m.subject) <= 60 else m.subject[:59] + "…"
        print(f"{m.id:>6} {m.created_at:%Y-%m-%d %H:%M} {m.tenant:<10} {m.status:<8} "
              f"{m.attempts:>2}  {to:<40}  {subject}"
              + (f"  [{m.last_error}]" if m.last_error and m.status != "sent" else ""))
    return 0
