"""Recording retention: delete call recordings older than their tenant's ``recordings.keep_days``.

The rules are pure (``callcenter.recordings.retention``); this adapter asks the database which
records still name a recording (``callcenter.recordings.audit``), deletes the files and
marks and audits each record. The app runs it daily (``retention_job``, an owned background
task wired in ``callcenter/app.py``); ``callcenter recordings purge [--dry-run]`` runs it by
hand. Files in the recordings folder that no record names are only reported: they may belong
to a call whose record is still in the journal, or to another tool.

Order of one deletion: the file first, then the record and the audit row in one transaction.
If the database fails in between, the next run finds the record again, sees the file gone and
marks it all the same (``file_found`` false in the audit): no record keeps naming a deleted
file for long, and no audit row claims a deletion that did not happen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from callcenter.config.model import HotlineConfig
from callcenter.config.settings import Settings
from callcenter.recordings.audit import RecordingStore
from callcenter.recordings.retention import (
    Recorded,
    RecordingsPolicy,
    due_recordings,
    longest_keep_days,
    unnamed_old_files,
)

log = logging.getLogger("callcenter.recordings.purge")

DAY_S = 24 * 3600.0
JOB_ACTOR = "retention-job"
CLI_ACTOR = "callcenter recordings purge"


def locate_recordings(settings: Settings) -> Path | None:
    """The PBX instance's recordings folder on the host, without building or running anything.

    Asterisk on PATH: STATE/pbx-INSTANCE/spool/recording. Otherwise the rootfs
    (HOTLINE_ROOTFS, else the cache's rootfs/) if one was built: /srv/hotline/INSTANCE inside
    it. None when neither exists (no PBX ever ran here: there are no recordings).
    """
    from callcenter.pbx.install import installed_asterisk
    from callcenter.pbx.layout import PbxLayout

    install = installed_asterisk()
    if install is None:
        return None
    return PbxLayout.for_instance(install, settings.instance, settings.state_dir).recordings()


@dataclass
class PurgeResult:
    """What one run did (or, dry, would do)."""

    deleted: list[str] = field(default_factory=list)  # file names whose records were marked
    missing: int = 0  # of those, files that were already gone
    failed: list[str] = field(default_factory=list)  # "name: reason"; retried next run
    unnamed_old: list[str] = field(default_factory=list)  # reported, never deleted
    dry_run: bool = False

    def summary(self) -> str:
        """One line with the counts."""
        verb = "would delete" if self.dry_run else "deleted"
        return (f"recording retention: {len(self.deleted)} {verb} ({self.missing} already "
                f"missing), {len(self.failed)} failed, {len(self.unnamed_old)} old file(s) "
                f"no call record names (reported, not deleted)")


def _policies(config: HotlineConfig) -> dict[str, RecordingsPolicy]:
    return {t.id: t.recordings for t in config.tenants}


def _candidates(store: RecordingStore, policies: dict[str, RecordingsPolicy],
                now: dt.datetime) -> list[Recorded]:
    """Per tenant, the records its limit may make due (the pure rule decides)."""
    found: list[Recorded] = []
    for tenant, policy in policies.items():
        if policy.keep_days is not None:
            found += store.ended_before(policy.keep_days, now, tenants=[tenant])
    longest = longest_keep_days(policies.values())
    if longest is not None:  # tenants no longer configured: the longest limit in force
        found += store.ended_before(longest, now, other_than=list(policies))
    return found


def _inside(folder: Path, name: str) -> Path | None:
    """The file ``name`` names under ``folder``, or None if it would lead out of it."""
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts:
        return None
    return folder / rel


def _files(folder: Path) -> dict[str, dt.datetime]:
    """Every file under the folder (relative name -> modification time, UTC)."""
    out: dict[str, dt.datetime] = {}
    if not folder.is_dir():
        return out
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue  # deleted meanwhile
            out[path.relative_to(folder).as_posix()] = dt.datetime.fromtimestamp(mtime, dt.UTC)
    return out


def purge_recordings(store: RecordingStore, recordings: Path, config: HotlineConfig,
                     now: dt.datetime, *, actor: str, dry_run: bool = False) -> PurgeResult:
    """Delete the due recordings, mark and audit their records; report unnamed old files."""
    policies = _policies(config)
    result = PurgeResult(dry_run=dry_run)
    for rec, keep_days in due_recordings(_candidates(store, policies, now), policies, now):
        path = _inside(recordings, rec.recording)
        if path is None:
            result.failed.append(f"{rec.recording}: not a file name inside {recordings}")
            log.error("call %s names the recording %r, which is not inside %s: not deleted",
                      rec.call_id, rec.recording, recordings)
            continue
        found, size = path.is_file(), None
        if dry_run:
            result.deleted.append(rec.recording)
            result.missing += 0 if found else 1
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            found = False
        except OSError as e:
            result.failed.append(f"{rec.recording}: {e.strerror or e}")
            log.error("recording %s of call %s not deleted (retried at the next run): %s",
                      path, rec.call_id, e.strerror or e)
            continue
        else:
            found = True
        if store.mark_deleted(rec, at=now, actor=actor, keep_days=keep_days, file_found=found,
                              size_bytes=size if found else None):
            result.deleted.append(rec.recording)
            result.missing += 0 if found else 1
    named = store.named_recordings()
    if not dry_run:
        named -= set(result.deleted)
    result.unnamed_old = unnamed_old_files(_files(recordings), named, policies, now)
    if result.unnamed_old:
        shown = ", ".join(result.unnamed_old[:5])
        more = len(result.unnamed_old) - 5
        log.warning("%d file(s) in %s are older than the longest keep_days and no call record "
                    "names them (not deleted; check and remove them by hand): %s%s",
                    len(result.unnamed_old), recordings, shown,
                    f" and {more} more" if more > 0 else "")
    return result


async def retention_job(purge: Callable[[], PurgeResult], interval_s: float = DAY_S,
                        first_delay_s: float = 60.0) -> None:
    """Run ``purge`` in a thread once a day (first a minute after start) until cancelled."""
    await asyncio.sleep(first_delay_s)  # let calls and the record writer settle first
    while True:
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(purge)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database may be away: the next day's run catches up
            log.error("recording retention failed (retrying in %.0f s): %s", interval_s,
                      str(e).splitlines()[0][:300] if str(e) else repr(e))
        else:
            log.info("%s", result.summary())
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
