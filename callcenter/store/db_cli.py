"""`callcenter db upgrade|current`: the database schema, migrated with the shipped migrations.

An upgrade of the package ships new migrations; `callcenter db upgrade` applies them to
DATABASE_URL from any folder (no alembic.ini needed). `callcenter run` and `callcenter app`
also upgrade on start; this command lets an administrator do it first and see the result.
"""

from __future__ import annotations

import argparse
from typing import Any

from callcenter.config.settings import Settings


def _shown(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "none (empty database)"


def _safe(url: str) -> str:
    from callcenter.store.urls import normalise_url

    return normalise_url(url).render_as_string(hide_password=True)


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Apply every pending migration; print the revision before and after."""
    from callcenter.store.migrate import current_revisions, head_revisions, upgrade_head

    before = current_revisions(settings.database_url)
    upgrade_head(settings.database_url)
    after = current_revisions(settings.database_url)
    print(f"database: {_safe(settings.database_url)}")
    print(f"revision before: {_shown(before)}")
    print(f"revision after:  {_shown(after)}"
          f"{' (head)' if set(after) == set(head_revisions()) else ''}")
    if before == after:
        print("already up to date: nothing to do")
    return 0


def cmd_current(args: argparse.Namespace, settings: Settings) -> int:
    """Print the database's revision and whether migrations are pending."""
    from callcenter.store.migrate import current_revisions, head_revisions

    current, head = current_revisions(settings.database_url), head_revisions()
    print(f"database: {_safe(settings.database_url)}")
    print(f"revision: {_shown(current)}")
    if set(current) == set(head):
        print("up to date (head)")
    else:
        print(f"behind: the newest shipped is {', '.join(head)}; run `callcenter db upgrade`")
    return 0


def register(sub: Any) -> None:
    """Add `db upgrade` and `db current`."""
    p = sub.add_parser("db", help="the database schema: migrate it, show its revision")
    dsub = p.add_subparsers(dest="db_command", required=True)
    c = dsub.add_parser("upgrade", help="apply every pending migration to DATABASE_URL "
                                        "(alembic upgrade head)")
    c.set_defaults(handler=cmd_upgrade)
    c = dsub.add_parser("current", help="the revision DATABASE_URL is at, and the newest shipped")
    c.set_defaults(handler=cmd_current)
