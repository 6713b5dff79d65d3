"""`callcenter callbacks ...`: the callers waiting to be called back, and marking them done."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from callcenter.config.settings import Settings

STATUS_TEXT = {"open": "chờ gọi lại", "done": "đã gọi lại", "cancelled": "đã hủy"}


def register(sub: Any) -> None:
    """Add `callbacks`, `callbacks done` and `callbacks cancel` to the `callcenter` parser."""
    p = sub.add_parser("callbacks", help="callback requests: list open ones, mark one done")
    p.add_argument("--tenant", help="only this tenant's requests")
    p.add_argument("--all", action="store_true", help="also requests done or cancelled")
    p.add_argument("--last", type=int, default=200, help="at most this many (default 200)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    cb = p.add_subparsers(dest="callbacks_command", required=False)
    for name, help_text in (("done", "mark a request done (the caller was called back)"),
                            ("cancel", "cancel a request (not to be called back)")):
        c = cb.add_parser(name, help=help_text)
        c.add_argument("id", type=int)
        c.add_argument("--by", required=True, help="the operator's extension (or user name)")
        c.add_argument("--note")
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=cmd_close, action=name)


def _store(settings: Settings) -> Any:
    from callcenter.callbacks.store import CallbackStore

    return CallbackStore(settings.database_url)


def _db_error(e: Exception) -> int:
    print(f"error: callback requests unavailable ({str(e).splitlines()[0]}); is the database "
          "migrated (`callcenter db upgrade`)?", file=sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.callbacks.store import CALLBACK_STATUSES
    from callcenter.calls.dialback import to_do_order

    store = _store(settings)
    try:
        statuses = CALLBACK_STATUSES if args.all else ("open",)
        # The night's pool-full requests first (calls.dialback.call_back_order).
        rows = to_do_order(store.recent(args.tenant, statuses=statuses, limit=args.last))
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_json_dict() for r in rows], ensure_ascii=False))
        return 0
    if not rows:
        print("Không có yêu cầu gọi lại nào." if not args.all else "Chưa có yêu cầu gọi lại.")
        return 0
    # Operators dial these numbers back: shown in full here (never in the log above DEBUG).
    print(f"{'id':>5}  {'tỉnh':<10} {'số gọi lại':<14} {'yêu cầu lúc':<25} trạng thái")
    for r in rows:
        line = (f"{r.id:>5}  {r.tenant:<10} {r.caller:<14} {r.requested_at.isoformat():<25} "
                f"{STATUS_TEXT.get(r.status, r.status)}")
        if r.handled_by:
            line += f" ({r.handled_by})"
        if r.note:
            line += f" — {r.note}"
        print(line)
    return 0


def cmd_close(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.callbacks.store import CallbackError

    store = _store(settings)
    try:
        close = store.done if args.action == "done" else store.cancel
        req = close(args.id, args.by, args.note)
    except CallbackError as e:
        print(f"error: {e.message} [{e.id}]", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    if args.json:
        print(json.dumps(req.to_json_dict(), ensure_ascii=False))
    else:
        print(f"yêu cầu gọi lại {req.id} ({req.caller}): {STATUS_TEXT[req.status]}, "
              f"bởi {req.handled_by}")
    return 0
