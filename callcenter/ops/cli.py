"""`callcenter backup`, `callcenter restore` and `callcenter recordings purge`."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from callcenter.cli_errors import CommandError
from callcenter.config.settings import Settings


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Write a new backup folder under --to and print its path."""
    from callcenter.ops.backup import Places, backup

    out = backup(Places.of(settings), Path(args.to), with_secrets=args.with_secrets)
    print(out)
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Verify a backup folder and restore it into this installation."""
    from callcenter.ops.backup import Places, restore

    restore(Path(args.source), Places.of(settings), settings, force=args.force)
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Apply recording retention now (what the app's daily job does)."""
    from callcenter.config.file import load_config
    from callcenter.recordings.audit import RecordingStore
    from callcenter.recordings.purge import CLI_ACTOR, locate_recordings, purge_recordings

    config = load_config(settings.config_path)
    recordings = locate_recordings(settings)
    if recordings is None:
        raise CommandError("no PBX instance folder on this machine, so no recordings folder",
                           "run it where the hotline's Asterisk runs (HOTLINE_ROOTFS, "
                           "HOTLINE_INSTANCE, HOTLINE_STATE as the service has them)")
    store = RecordingStore(settings.database_url)
    try:
        result = purge_recordings(store, recordings, config, dt.datetime.now(dt.UTC),
                                  actor=CLI_ACTOR, dry_run=args.dry_run)
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    for name in result.deleted:
        print(f"{verb} {name}")
    for problem in result.failed:
        print(f"failed {problem}", file=sys.stderr)
    for name in result.unnamed_old:
        print(f"unnamed {name}  (no call record names it; not deleted)")
    print(result.summary())
    return 1 if result.failed else 0


def register(sub: Any) -> None:
    """Add `backup`, `restore` and `recordings purge`."""
    c = sub.add_parser("backup", help="back up the database, recordings, attachments, journal "
                                      "and config into a new folder")
    c.add_argument("--to", required=True, metavar="DIR",
                   help="where to make the backup folder (hotline1022-backup-<UTC time>)")
    c.add_argument("--with-secrets", action="store_true",
                   help="also include the ARI/AMI credentials and operators' passwords")
    c.set_defaults(handler=cmd_backup)
    c = sub.add_parser("restore", help="restore a backup folder (checksums verified first), "
                                       "then migrate the database to head")
    c.add_argument("--from", dest="source", required=True, metavar="PATH",
                   help="the backup folder `callcenter backup` wrote")
    c.add_argument("--force", action="store_true",
                   help="overwrite a non-empty database/state, even while the service runs")
    c.set_defaults(handler=cmd_restore)
    c = sub.add_parser("recordings", help="call recordings: retention")
    rsub = c.add_subparsers(dest="recordings_command", required=True)
    p = rsub.add_parser("purge", help="delete recordings older than their tenant's "
                                      "recordings.keep_days (the app does it daily)")
    p.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    p.set_defaults(handler=cmd_purge)
