"""`callcenter faq ...`: import department FAQ sheets, list versions, roll back, list, stats.

    callcenter faq import FILE --tenant ID [--field FIELD] [--by NAME]
    callcenter faq versions --tenant ID [--field FIELD]
    callcenter faq rollback --tenant ID --field FIELD --version N
    callcenter faq list --tenant ID [--field FIELD] [--json]
    callcenter faq stats [--tenant ID] [--since DATE] [--json]

Exit codes: 0 done, 1 refused (bad file, unknown tenant/field/version: nothing stored),
2 the database is unreachable. After an import or rollback that changed something, the
running app is told on Redis (``hotline:faq``) to reload the tenant's catalogue; it also
polls the store, so a missed message only delays the change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.config.model import Tenant
from callcenter.config.settings import Settings
from callcenter.faq.rules import FAQ_CHANNEL, known_fields_hint, match_field, parse_faq

PROGRESS_MIN_ITEMS = 200  # below this an import is instant: no progress lines
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"


def register(sub: Any) -> None:
    """Add `faq` and its subcommands to the top-level CLI's subparsers."""
    faq = sub.add_parser("faq", help="FAQ knowledge base: import sheets, versions, stats")
    fsub = faq.add_subparsers(dest="faq_command", required=True)

    c = fsub.add_parser("import", help="import a department's FAQ sheet (.xlsx, .xls, .csv)")
    c.add_argument("file", type=Path)
    c.add_argument("--tenant", required=True, help="tenant (province) id from the config")
    c.add_argument("--field", help="field of every row (id or name, e.g. health or 'Y tế'); "
                                   "required when the sheet has no field column")
    c.add_argument("--by", default=os.environ.get("USER") or None,
                   help="who imports, stored with the version (default: $USER)")
    c.set_defaults(handler=cmd_import)

    c = fsub.add_parser("versions", help="imported versions per field (* = active)")
    c.add_argument("--tenant", required=True)
    c.add_argument("--field")
    c.set_defaults(handler=cmd_versions)

    c = fsub.add_parser("rollback", help="make an earlier version of a field active again")
    c.add_argument("--tenant", required=True)
    c.add_argument("--field", required=True)
    c.add_argument("--version", required=True, type=int)
    c.set_defaults(handler=cmd_rollback)

    c = fsub.add_parser("list", help="active questions")
    c.add_argument("--tenant", required=True)
    c.add_argument("--field")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)

    c = fsub.add_parser("stats", help="per question: heard, helpful yes/no, deflection rate")
    c.add_argument("--tenant")
    c.add_argument("--since", help="only events from this date (YYYY-MM-DD, local midnight) "
                                   "or ISO 8601 time with offset")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_stats)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


class _Refused(Exception):
    """A reason to stop with exit code 1; the message is printed as an error."""


def _tenant(settings: Settings, tenant_id: str) -> Tenant:
    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config

    try:
        config = load_config(settings.config_path)
    except ConfigError as e:
        raise _Refused(f"invalid config: {e}") from e
    except OSError as e:
        raise _Refused(f"cannot read config {settings.config_path}: {e}") from e
    try:
        return config.require_tenant(tenant_id)
    except LookupError as e:
        raise _Refused(str(e)) from e


def _field_id(tenant: Tenant, text: str | None) -> str | None:
    if text is None:
        return None
    f = match_field(text, tenant.fields)
    if f is None:
        raise _Refused(f"unknown field {text!r} for tenant {tenant.id}; "
                       f"{known_fields_hint(tenant.fields)}")
    return f.id


def _run(fn: Any, *args: Any) -> int:
    """Run a command body: _Refused -> 1, database errors -> 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.faq.store import FaqStoreError

    try:
        return int(fn(*args))
    except (_Refused, FaqStoreError) as e:
        _err(str(e))
        return 1
    except SQLAlchemyError as e:
        first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        _err(f"database unavailable: {first}")
        return 2


def _store(settings: Settings) -> Any:
    from callcenter.faq.store import FaqStore
    from callcenter.store.migrate import upgrade_head

    # Migrations' chatter is for the service log, not an administrator's terminal.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade_head(settings.database_url)  # as the app does at start: the FAQ tables exist
    return FaqStore(settings.database_url)


# -- import ----------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Validate the whole file first; store it only if every row is valid."""
    return _run(_import, args, settings)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.faq.sheets import SheetError, read_upload
    from callcenter.tools.progress import Progress

    tenant = _tenant(settings, args.tenant)
    field_id = _field_id(tenant, args.field)
    try:
        upload = read_upload(args.file)
    except SheetError as e:
        raise _Refused(str(e)) from e
    result = parse_faq(upload.name, upload.sheets, tenant.fields, field_id)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.errors:
        for error in result.errors:
            _err(str(error))
        if any("unknown field" in error.message for error in result.errors):
            print(known_fields_hint(tenant.fields), file=sys.stderr)
        print(f"refused: {len(result.errors)} error(s) in {upload.name}; nothing was imported",
              file=sys.stderr)
        return 1
    groups = result.by_field()
    store = _store(settings)
    try:
        total = len(result.rows)
        bar = Progress(f"importing {upload.name}", total) if total >= PROGRESS_MIN_ITEMS else None
        try:
            infos = store.import_version(tenant.id, groups, upload.name, upload.sha256,
                                         args.by, dt.datetime.now(dt.UTC),
                                         bar.update if bar else None)
        finally:
            if bar:
                bar.close()
    finally:
        store.close()
    for info in infos:
        if info.unchanged:
            print(f"{info.field}: unchanged: active version {info.version} already has this "
                  f"file ({info.item_count} questions)")
        else:
            print(f"{info.field}: version {info.version} active, {info.item_count} questions "
                  f"from {info.source_name}")
    if any(not i.unchanged for i in infos):
        _announce(settings, tenant.id)
    return 0


def _announce(settings: Settings, tenant_id: str) -> None:
    """Best effort: tell running app instances to reload this tenant's FAQ now."""
    import redis

    from callcenter.redis_clients import RedisTarget, sync_client

    # The same Redis the app uses: REDIS_URL (or Sentinel's primary), else the private socket.
    url = RedisTarget.of(settings)
    try:
        client = sync_client(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            listeners = client.publish(FAQ_CHANNEL, json.dumps({"tenant": tenant_id}))
        finally:
            client.close()
    except (redis.RedisError, OSError) as e:
        print(f"note: Redis at {url} unreachable ({e}); a running app picks the change up "
              "within its poll interval")
        return
    print(f"reload announced on {FAQ_CHANNEL} ({listeners} app instance(s) listening)")


# -- versions, rollback, list ----------------------------------------------------------------


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    """The tenant's versions by field, newest first; * marks the active one."""
    return _run(_versions, args, settings)


def _versions(args: argparse.Namespace, settings: Settings) -> int:
    tenant = _tenant(settings, args.tenant)
    field_id = _field_id(tenant, args.field)
    store = _store(settings)
    try:
        versions = store.versions(tenant.id, field_id)
    finally:
        store.close()
    if not versions:
        print(f"no FAQ imported for {tenant.id}" + (f", field {field_id}" if field_id else ""))
        return 0
    zone = ZoneInfo(tenant.timezone)
    print(f"{'field':<22} {'ver':>4}   {'imported':<16} {'by':<12} {'items':>5}  source")
    for v in versions:
        mark = "*" if v.active else " "
        when = v.imported_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        print(f"{v.field:<22} {v.version:>4} {mark} {when:<16} {v.imported_by or '-':<12} "
              f"{v.item_count:>5}  {v.source_name} ({v.sha256[:12]})")
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Make an earlier version of one field active again."""
    return _run(_rollback, args, settings)


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    tenant = _tenant(settings, args.tenant)
    field_id = _field_id(tenant, args.field) or ""  # --field is required by argparse
    store = _store(settings)
    try:
        info = store.rollback(tenant.id, field_id, args.version)
    finally:
        store.close()
    if info.unchanged:
        print(f"{field_id}: version {info.version} is already active")
        return 0
    print(f"{field_id}: version {info.version} active again ({info.item_count} questions "
          f"from {info.source_name})")
    _announce(settings, tenant.id)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """The active questions, by field and position."""
    return _run(_list, args, settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    tenant = _tenant(settings, args.tenant)
    field_id = _field_id(tenant, args.field)
    store = _store(settings)
    try:
        items = store.active_items(tenant.id, field_id)
    finally:
        store.close()
    if args.json:
        print(json.dumps([{"field": i.field, "version": i.version, "position": i.position,
                           "key": i.key, "code": i.code, "question": i.question,
                           "answer": i.answer, "keywords": i.keywords, "unit": i.unit}
                          for i in items], ensure_ascii=False))
        return 0
    for i in items:
        code = f"[{i.code}] " if i.code else ""
        print(f"{i.field:<22} v{i.version:<3} {i.position:>3}. {code}{i.question}  ({i.key})")
    return 0


# -- stats -----------------------------------------------------------------------------------


def _since(text: str | None, zone: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(0), ZoneInfo(zone))
        at = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise _Refused(f"--since {text!r}: expected YYYY-MM-DD or an ISO 8601 time") from e
    if at.tzinfo is None:
        raise _Refused(f"--since {text!r}: give the offset (e.g. +07:00)")
    return at


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Per question: heard, yes, no and the deflection rate (yes / heard)."""
    return _run(_stats, args, settings)


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    zone = DEFAULT_ZONE
    if args.tenant is not None:
        zone = _tenant(settings, args.tenant).timezone
    since = _since(args.since, zone)
    store = _store(settings)
    try:
        stats = store.stats(args.tenant, since)
    finally:
        store.close()
    if args.json:
        print(json.dumps([s.to_json_dict() for s in stats], ensure_ascii=False))
        return 0
    print(f"{'heard':>6} {'yes':>5} {'no':>5} {'helped':>6}  {'tenant':<10} {'field':<20} question")
    for s in stats:
        rate = "-" if s.deflection is None else f"{100 * s.deflection:.0f}%"
        question = s.question if s.question is not None else f"(unknown item {s.key})"
        code = f"[{s.code}] " if s.code else ""
        print(f"{s.heard:>6} {s.yes:>5} {s.no:>5} {rate:>6}  {s.tenant:<10} "
              f"{s.field or '-':<20} {code}{question}")
    return 0
