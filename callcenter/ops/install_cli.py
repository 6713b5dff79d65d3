"""`callcenter install [--root DIR] [--prefix DIR] [--no-pbx]`: the hotline as system services."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from callcenter.cli_errors import EXIT_INVALID, CommandError
from callcenter.config.settings import Settings


def default_prefix(root: Path) -> Path:
    """The venv this `callcenter` runs from; /opt/hotline1022 for another root or no venv."""
    from callcenter.ops.install import DEFAULT_PREFIX

    if root == Path("/") and sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return DEFAULT_PREFIX


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    """Create the users, /etc/hotline1022, /var/lib/hotline1022, kannel.conf and the units."""
    from callcenter.ops.install import Installer, InstallError, next_steps, systemd_is_running

    root = Path(args.root).resolve()
    if not root.is_dir():
        raise CommandError(f"--root {args.root}: no such folder", code=EXIT_INVALID)
    if os.geteuid() != 0:
        raise CommandError("callcenter install must run as root (it creates a system user "
                           "and sets owners)", "run it with sudo, or as root")
    prefix = Path(args.prefix) if args.prefix else default_prefix(root)
    if not prefix.is_absolute():
        raise CommandError(f"--prefix {args.prefix}: must be an absolute path",
                           code=EXIT_INVALID)
    host = root == Path("/")
    print(f"installing the hotline into {root} for the venv {prefix}")
    installer = Installer(root=root, prefix=prefix)
    try:
        report = installer.run(render_pbx=host and not args.no_pbx,
                               daemon_reload=host and systemd_is_running())
    except InstallError as e:
        for line in installer.report.lines:
            print(line)
        raise CommandError(str(e)) from None
    for line in report.lines:
        print(line)
    if report.changes:
        print(f"{report.changes} change(s) made")
    else:
        print("nothing changed: the installation is complete")
    for line in next_steps(root):
        print(line)
    return 0


def register(sub: Any) -> None:
    """Add `install`."""
    c = sub.add_parser("install", help="install the hotline as systemd services (as root; "
                                       "idempotent)")
    c.add_argument("--root", default="/", metavar="DIR",
                   help="install into this root instead of / (an image; its etc/passwd and "
                        "etc/group get the users); nothing is run there")
    c.add_argument("--prefix", metavar="DIR",
                   help="the venv the units run (DIR/bin/callcenter); default: this venv, "
                        "or /opt/hotline1022 with --root")
    c.add_argument("--no-pbx", action="store_true",
                   help="do not run `callcenter pbx render` (it builds the Asterisk rootfs "
                        "the first time)")
    c.set_defaults(handler=cmd_install)
