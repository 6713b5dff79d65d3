"""`callcenter pbx render|run`: the PBX half of the service, for systemd units and admins;
`callcenter operator secret EXT`: a new strong SIP password for an operator's softphone.

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
                     sounds_override=settings.sounds_override, app_account=account,
                     state_dir=settings.state_dir)
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


def cmd_operator_secret(args: argparse.Namespace, settings: Settings) -> int:
    """Write a new random SIP password where the config keeps this operator's; print it once."""
    from callcenter.cli_errors import EXIT_INVALID, CommandError
    from callcenter.config.file import load_config
    from callcenter.config.secrets import write_operator_secret

    # Not checked: replacing a weak password is what this command is for.
    config = load_config(settings.config_path, check_secrets=False)
    try:
        written = write_operator_secret(config, args.extension)
    except LookupError:
        raise CommandError(f"no operator {args.extension} in {settings.config_path}",
                           "give an extension listed under a tenant's operators",
                           EXIT_INVALID) from None
    where = (f"{written.variable} in {written.path}" if written.variable is not None
             else str(written.path))
    print(f"wrote a new SIP password for operator {args.extension} to {where}")
    print(f"password (shown once; type it into the softphone): {written.password}")
    if written.variable is not None:
        print("the service reads it at start: systemctl restart hotline1022.target (or export "
              f"{written.variable} before `make run`)")
    else:
        print("applied by `callcenter reload`")
    return 0


def register(sub: Any) -> None:
    """Add `pbx render`, `pbx run` and `operator secret`."""
    c = sub.add_parser("pbx", help="the Asterisk instance: render its files, run it")
    psub = c.add_subparsers(dest="pbx_command", required=True)
    r = psub.add_parser("render", help="write Asterisk's configuration and prompts (as root)")
    r.set_defaults(handler=cmd_render)
    r = psub.add_parser("run", help="run Asterisk in the foreground (for a service manager)")
    r.set_defaults(handler=cmd_run)
    c = sub.add_parser("operator", help="operators' SIP accounts")
    osub = c.add_subparsers(dest="operator_command", required=True)
    r = osub.add_parser("secret", help="write a new strong SIP password for an operator where "
                                       "the config keeps it (secret file or operators.env)")
    r.add_argument("extension", help="the operator's extension, e.g. 101")
    r.set_defaults(handler=cmd_operator_secret)
