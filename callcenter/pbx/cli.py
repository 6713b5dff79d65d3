"""`callcenter pbx render|run`: the PBX half of the service, for systemd units and admins.

``render`` (as root) provisions or finds Asterisk and writes the instance's configuration and
prompts with their ownership (the app's account may rewrite them later); ``run`` replaces
itself with Asterisk in the foreground, chrooted when needed, dropping to the asterisk user.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from callcenter.config.settings import Settings


def _layout(settings: Settings) -> Any:
    from callcenter.pbx.install import ensure_asterisk
    from callcenter.pbx.layout import PbxLayout

    return PbxLayout.for_instance(ensure_asterisk(), settings.instance, settings.state_dir)


def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    """Write the instance's Asterisk configuration and prompts from the hotline config."""
    from callcenter.config.file import load_config
    from callcenter.config.secrets import load_secrets
    from callcenter.ops.accounts import service_account
    from callcenter.pbx.render import render

    config = load_config(settings.config_path)
    layout = _layout(settings)
    secrets = load_secrets(settings.state_dir, settings.secrets_file)
    account = service_account(settings.service_user)
    changed = render(config, layout, secrets, prompt_cache=settings.prompt_cache,
                     sounds_override=settings.sounds_override, app_account=account)
    if account is not None and settings.prompt_cache.exists():  # the app rewrites prompts later
        account.chown(settings.prompt_cache, recursive=True)
    print(f"rendered {layout.host('etc')}: "
          f"{', '.join(changed) if changed else 'nothing changed'}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Become Asterisk (foreground) for this instance: what a supervisor starts and stops."""
    from callcenter.pbx.process import asterisk_argv

    layout = _layout(settings)
    if not (layout.host("etc") / "asterisk.conf").exists():
        print(f"error: {layout.host('etc')} has no configuration: run `callcenter pbx render` "
              f"first (as root)", file=sys.stderr)
        return 1
    argv = asterisk_argv(layout, "-f", "-n")
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def register(sub: Any) -> None:
    """Add `pbx render` and `pbx run`."""
    c = sub.add_parser("pbx", help="the Asterisk instance: render its files, run it")
    psub = c.add_subparsers(dest="pbx_command", required=True)
    r = psub.add_parser("render", help="write Asterisk's configuration and prompts (as root)")
    r.set_defaults(handler=cmd_render)
    r = psub.add_parser("run", help="run Asterisk in the foreground (for a service manager)")
    r.set_defaults(handler=cmd_run)
