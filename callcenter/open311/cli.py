"""`callcenter open311 key ...`: keys of third-party apps that POST service requests.

    callcenter open311 key create NAME --tenant T   # the key is printed ONCE, on the last line
    callcenter open311 key list [--tenant T] [--json]
    callcenter open311 key revoke NAME|ID

Only the key's hash is stored (``callcenter.open311.store``): a lost key cannot be shown again;
revoke it and create another (names are never reused). Exit 0 on success; 1 for an invalid
name, an unknown tenant or key, or a key already revoked; 2 when the config or the database is
unavailable (the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from callcenter.config.settings import Settings


def register(sub: Any) -> None:
    """Add `open311 key create|list|revoke` to the `callcenter` parser."""
    p = sub.add_parser("open311", help="Open311 GeoReport v2: keys of third-party apps")
    area = p.add_subparsers(dest="open311_command", required=True)
    key = area.add_parser("key", help="create, list or revoke an app's key")
    k = key.add_subparsers(dest="open311_key_command", required=True)
    c = k.add_parser("create", help="a new key for an app (printed once, on the last line)")
    c.add_argument("name", help="the app's name, e.g. dichvucong-app (a-z 0-9 . _ -)")
    c.add_argument("--tenant", required=True, help="the jurisdiction (tenant id) it posts to")
    c.set_defaults(handler=cmd_create)
    ls = k.add_parser("list", help="keys and when they were last used (never the secrets)")
    ls.add_argument("--tenant", help="only this tenant's keys")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    r = k.add_parser("revoke", help="stop a key working, for good")
    r.add_argument("key", metavar="NAME|ID")
    r.set_defaults(handler=cmd_revoke)


def _db_error(e: Exception) -> int:
    print(f"error: Open311 keys unavailable ({str(e).splitlines()[0]}); is the database "
          "migrated (`callcenter db upgrade`)?", file=sys.stderr)
    return 2


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config
    from callcenter.open311.store import Open311KeyError, Open311Store

    try:
        config = load_config(settings.config_path)
    except ConfigError as e:
        print(f"error: invalid config: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot read config {settings.config_path}: {e}", file=sys.stderr)
        return 2
    if config.tenant(args.tenant) is None:
        known = ", ".join(t.id for t in config.tenants)
        print(f"error: no tenant {args.tenant!r} in {settings.config_path} (known: {known})",
              file=sys.stderr)
        return 1
    store = Open311Store(settings.database_url)
    try:
        info, key = store.create_key(args.name, args.tenant)
    except Open311KeyError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    print(f"Open311 key {info.name} (id {info.id}) for {info.tenant}: give it to the app as "
          "api_key; it is shown only now.")
    print(key)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.open311.store import Open311Store

    store = Open311Store(settings.database_url)
    try:
        keys = store.keys(args.tenant)
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"keys": [k.to_json_dict() for k in keys]}, ensure_ascii=False))
        return 0
    if not keys:
        print("no Open311 keys" + (f" for {args.tenant}" if args.tenant else ""))
    for k in keys:
        used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        state = (f"revoked {k.revoked_at.isoformat(timespec='seconds')}"
                 if k.revoked and k.revoked_at else "active")
        print(f"{k.name}\t{k.id}\t{k.tenant}\tcreated "
              f"{k.created_at.isoformat(timespec='seconds')}\tlast used {used}\t{state}")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.open311.store import Open311KeyError, Open311Store

    store = Open311Store(settings.database_url)
    try:
        info = store.revoke(args.key)
    except Open311KeyError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        return _db_error(e)
    finally:
        store.close()
    print(f"revoked Open311 key {info.name} (id {info.id}, {info.tenant})")
    return 0
