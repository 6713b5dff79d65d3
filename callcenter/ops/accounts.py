"""The unprivileged system account the app runs as (``hotline1022`` unless HOTLINE_USER)."""

from __future__ import annotations

import logging
import pwd
import shutil
import subprocess

from callcenter.ops.processes import RunAs

log = logging.getLogger(__name__)


class AccountError(RuntimeError):
    """The service account is missing and could not be created."""


def service_account(name: str) -> RunAs | None:
    """The account if it exists on this machine, else None."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return RunAs(name, entry.pw_uid, entry.pw_gid)


def ensure_service_account(name: str) -> RunAs:
    """The account, created as a system user with its own group when missing (root only)."""
    found = service_account(name)
    if found is not None:
        return found
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "Tong dai 1022 hotline service", name],
        capture_output=True, text=True)
    found = service_account(name)
    if found is None:
        raise AccountError(f"could not create the system user {name!r} for the app "
                           f"({proc.stderr.strip() or f'useradd exit {proc.returncode}'}); "
                           f"create it (useradd --system --user-group {name}) or set "
                           f"HOTLINE_USER to an existing unprivileged user")
    if found.uid == 0:
        raise AccountError(f"HOTLINE_USER={name!r} is root: the app must run unprivileged")
    log.info("created the system user %s (uid %d) for the app", name, found.uid)
    return found
