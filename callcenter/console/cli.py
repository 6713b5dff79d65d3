"""`callcenter user ...`: API users and their tokens.

    callcenter user add NAME --role operator|supervisor|admin|unit --tenant T [--unit U]
                        [--full-name TEXT] [--password-stdin]
    callcenter user create-admin NAME --tenant T [--full-name TEXT] [--password-stdin]
    callcenter user passwd NAME [--password-stdin]         # console password
    callcenter user unlock NAME                            # clear the wait after failures
    callcenter user token NAME [--label TEXT] [--days N]   # prints a new token, once
    callcenter user list [--tenant T] [--json]
    callcenter user revoke NAME [--token ID]               # every token of NAME, or one
    callcenter user disable NAME | user enable NAME

Console passwords are asked twice at a terminal; with ``--password-stdin`` (or when stdin
is not a terminal) the first line of stdin is the password. They are hashed with argon2id
(``callcenter.console.passwords``) and never printed. ``create-admin`` makes the first admin
with a password, and refuses once an active admin exists. A new password clears the wait
after wrong passwords and ends the user's console sessions.

The tenant and unit are checked against the configuration (HOTLINE_CONFIG). Exit codes:
0 done, 1 refused (unknown tenant or unit, name taken, no such user), 2 the database is
unreachable. The database is migrated first, as the service does at start, so the first
admin can be created before the first run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Any

from callcenter.config.settings import Settings
from callcenter.store.users import USER_ROLES


def register(sub: Any) -> None:
    """Add `user` and its subcommands to the top-level CLI's subparsers."""
    p = sub.add_parser("user", help="users: add, create-admin, passwd, token, list, revoke")
    us = p.add_subparsers(dest="user_command", required=True)
    c = us.add_parser("add", help="create a user")
    c.add_argument("name", help="login name: a-z 0-9 . _ -")
    c.add_argument("--role", required=True, choices=USER_ROLES)
    c.add_argument("--tenant", required=True, help="tenant (province) id from the config")
    c.add_argument("--unit", help="level-2 unit id (required for --role unit)")
    c.add_argument("--full-name")
    c.add_argument("--password-stdin", action="store_true",
                   help="set a console password read from the first line of stdin")
    c.set_defaults(handler=cmd_add)
    c = us.add_parser("create-admin", help="create the first admin, with a console password")
    c.add_argument("name", help="login name: a-z 0-9 . _ -")
    c.add_argument("--tenant", required=True, help="tenant (province) id from the config")
    c.add_argument("--full-name")
    c.add_argument("--password-stdin", action="store_true",
                   help="read the password from stdin instead of asking")
    c.set_defaults(handler=cmd_create_admin)
    c = us.add_parser("passwd", help="set a user's console password (asked, or from stdin)")
    c.add_argument("name")
    c.add_argument("--password-stdin", action="store_true",
                   help="read the password from stdin instead of asking")
    c.set_defaults(handler=cmd_passwd)
    c = us.add_parser("unlock", help="clear a user's console login wait after wrong passwords")
    c.add_argument("name")
    c.set_defaults(handler=cmd_unlock)
    c = us.add_parser("token", help="issue a new API token (printed once; keep it)")
    c.add_argument("name")
    c.add_argument("--label", help="what the token is for, e.g. 'desk 3'")
    c.add_argument("--days", type=int, help="expires after this many days (default: never)")
    c.set_defaults(handler=cmd_token)
    c = us.add_parser("list", help="users, their roles and tokens")
    c.add_argument("--tenant")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)
    c = us.add_parser("revoke", help="revoke a user's tokens (all, or --token ID)")
    c.add_argument("name")
    c.add_argument("--token", help="the token id (the part after hl1_), as `user list` shows")
    c.set_defaults(handler=cmd_revoke)
    c = us.add_parser("disable", help="disable a user: no token of theirs works any more")
    c.add_argument("name")
    c.set_defaults(handler=cmd_disable)
    c = us.add_parser("enable", help="enable a disabled user again")
    c.add_argument("name")
    c.set_defaults(handler=cmd_enable)


class _Refused(Exception):
    """Stop with exit code 1 and this message."""


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _run(settings: Settings, fn: Any, args: argparse.Namespace) -> int:
    """Run a command body on a migrated store: refusals -> 1, database errors -> 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.store.migrate import upgrade_head
    from callcenter.store.users import UserError, UserStore

    try:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        upgrade_head(settings.database_url)
        store = UserStore(settings.database_url)
    except SQLAlchemyError as e:
        _err(f"database unavailable: {str(e).splitlines()[0][:300]}")
        return 2
    try:
        return int(fn(args, settings, store))
    except (_Refused, UserError) as e:
        _err(str(e))
        return 1
    except SQLAlchemyError as e:
        _err(f"database unavailable: {str(e).splitlines()[0][:300]}")
        return 2
    finally:
        store.close()


def _check_config(settings: Settings, tenant_id: str, unit_id: str | None) -> None:
    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config
    from callcenter.tickets.config import policy_of

    try:
        config = load_config(settings.config_path)
    except ConfigError as e:
        raise _Refused(f"invalid config: {e}") from e
    except OSError as e:
        raise _Refused(f"cannot read config {settings.config_path}: {e}") from e
    tenant = config.tenant(tenant_id)
    if tenant is None:
        known = ", ".join(t.id for t in config.tenants)
        raise _Refused(f"unknown tenant {tenant_id!r} in {settings.config_path} "
                       f"(known: {known})")
    if unit_id is not None:
        policy = policy_of(tenant)
        if policy.unit(unit_id) is None:
            known = ", ".join(u.id for u in policy.units) or "none"
            raise _Refused(f"unknown unit {unit_id!r} of tenant {tenant_id} (known: {known})")


def _read_password(name: str, from_stdin: bool) -> str:
    """A new password: the first line of stdin, or asked twice at a terminal; checked."""
    import getpass

    from callcenter.console.passwords import PasswordRejected, check_password_rules

    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = getpass.getpass(f"new console password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise _Refused("the two passwords differ; nothing changed")
    try:
        check_password_rules(password, name)
    except PasswordRejected as e:
        raise _Refused(f"{e.id}: {e.message}") from None
    return password


def _set_password(store: Any, name: str, password: str) -> None:
    from callcenter.console.passwords import Passwords

    store.set_password(name, Passwords().hash(password))


def _add(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from callcenter.store.users import check_user_fields

    check_user_fields(args.name, args.role, args.tenant, args.unit)
    _check_config(settings, args.tenant, args.unit)
    password = _read_password(args.name, True) if args.password_stdin else None
    user = store.add_user(args.name, args.role, args.tenant, args.unit,
                          full_name=args.full_name)
    if password is not None:
        _set_password(store, user.name, password)
    where = f" of unit {user.unit}" if user.unit else ""
    login = "; console password set" if password is not None else ""
    print(f"added {user.name}: {user.role} in {user.tenant}{where}{login}; "
          f"`callcenter user token {user.name}` gives a token")
    return 0


def _create_admin(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from callcenter.store.users import check_user_fields

    check_user_fields(args.name, "admin", args.tenant, None)
    _check_config(settings, args.tenant, None)
    if store.count_admins():
        raise _Refused("an active admin exists already: an admin adds users "
                       "(`callcenter user add NAME --role admin ... --password-stdin`)")
    password = _read_password(args.name, args.password_stdin)
    user = store.add_user(args.name, "admin", args.tenant, full_name=args.full_name)
    _set_password(store, user.name, password)
    print(f"added the first admin {user.name} in {user.tenant}; log in at /console/login")
    return 0


def _passwd(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    if store.get_user(args.name) is None:
        raise _Refused(f"user.not_found: no user named {args.name!r}")
    _set_password(store, args.name, _read_password(args.name, args.password_stdin))
    print(f"console password of {args.name} set; their console sessions ended")
    return 0


def _unlock(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    user = store.unlock(args.name)
    print(f"{user.name} unlocked")
    return 0


def _token(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    expires = None
    if args.days is not None:
        if not 1 <= args.days <= 3650:
            raise _Refused("--days: expected 1..3650")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.days)
    info, token = store.issue_token(args.name, label=args.label, expires_at=expires)
    until = f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
    print(f"token {info.id} for {info.user}{until}; shown once, keep it safe:",
          file=sys.stderr)
    print(token)
    return 0


def _list(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    now = dt.datetime.now(dt.UTC)
    users = store.list_users(args.tenant)
    tokens = store.tokens()
    by_user: dict[str, list[Any]] = {}
    for t in tokens:
        by_user.setdefault(t.user, []).append(t)
    if args.json:
        print(json.dumps([{
            "name": u.name, "role": u.role, "tenant": u.tenant, "unit": u.unit,
            "active": u.active, "full_name": u.full_name,
            "created_at": u.created_at.isoformat(),
            "tokens": [{"id": t.id, "label": t.label, "created_at": t.created_at.isoformat(),
                        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                        "revoked": t.revoked, "usable": t.usable(now)}
                       for t in by_user.get(u.name, [])],
        } for u in users], ensure_ascii=False))
        return 0
    print(f"{'name':<20} {'role':<10} {'tenant':<10} {'unit':<20} {'active':<6} tokens")
    for u in users:
        mine = by_user.get(u.name, [])
        usable = [t for t in mine if t.usable(now)]
        print(f"{u.name:<20} {u.role:<10} {u.tenant:<10} {u.unit or '-':<20} "
              f"{'yes' if u.active else 'no':<6} {len(usable)} usable"
              + (f" ({', '.join(t.id for t in usable)})" if usable else ""))
    return 0


def _revoke(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    n = store.revoke(args.name, args.token)
    print(f"revoked {n} token(s) of {args.name}")
    return 0


def _set_active(active: bool) -> Any:
    def body(args: argparse.Namespace, settings: Settings, store: Any) -> int:
        user = store.set_active(args.name, active)
        print(f"{user.name} {'enabled' if user.active else 'disabled'}")
        return 0

    return body


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _add, args)


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _token, args)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _list, args)


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _revoke, args)


def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _set_active(False), args)


def cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _set_active(True), args)


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _create_admin, args)


def cmd_passwd(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _passwd, args)


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, _unlock, args)
