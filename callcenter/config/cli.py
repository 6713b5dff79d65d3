"""`callcenter config ...`: configs made for the administrator (``config provinces``).

``callcenter config provinces`` writes the national config: the 63 provinces as tenants, each
with its own 0XXX1022 number, a day/night pool and a small IVR (callcenter/config/national.py),
checked with the same validator as `callcenter check-config` before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from callcenter.cli_errors import EXIT_INVALID
from callcenter.config.settings import Settings


def register(sub: Any) -> None:
    """Add `config provinces` to the `callcenter` parser."""
    p = sub.add_parser("config", help="config: write a generated config (the 63 provinces)")
    config = p.add_subparsers(dest="config_command", required=True)
    c = config.add_parser("provinces", help="write a hotline.yaml with the 63 provinces as tenants")
    c.add_argument("--out", metavar="FILE",
                   help="write here (refused if it exists, unless --force); default: stdout")
    c.add_argument("--force", action="store_true", help="replace --out if it exists")
    c.add_argument("--only", metavar="CODES",
                   help="only these provinces: area codes or ids, comma-separated "
                        "(e.g. 0251,0237,028 or dongnai,thanhhoa)")
    c.add_argument("--day-lines", type=int, default=15,
                   help="lines of each province's day shift, 07:00-18:00 (default 15)")
    c.add_argument("--night-lines", type=int, default=2,
                   help="lines of each province's night shift, 18:00-07:00 (default 2)")
    c.add_argument("--short-code", metavar="CODE",
                   help="the province the bare 1022 reaches (area code or id); default: none")
    c.set_defaults(handler=cmd_provinces)


def cmd_provinces(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.config.base import ConfigError
    from callcenter.config.national import national_yaml
    from callcenter.config.parse import MAX_LINES, parse_config_text

    for option, lines in (("--day-lines", args.day_lines), ("--night-lines", args.night_lines)):
        if not 0 <= lines <= MAX_LINES:
            print(f"error: {option} {lines}: expected 0..{MAX_LINES} lines", file=sys.stderr)
            return EXIT_INVALID
    codes = [c for c in args.only.split(",") if c.strip()] if args.only else None
    target = Path(args.out) if args.out else None
    try:
        text = national_yaml(codes, day_lines=args.day_lines, night_lines=args.night_lines,
                             short_code=args.short_code)
        # The same validation as check-config: what is written always loads.
        config = parse_config_text(text, str(target or "<stdout>"))
    except ValueError as e:  # an unknown code (ConfigError too: e.g. lines out of range)
        if isinstance(e, ConfigError):
            for err in e.errors:
                print(f"invalid: {err.line_text()}", file=sys.stderr)
        else:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    if target is None:
        sys.stdout.write(text)
        return 0
    if target.exists() and not args.force:
        print(f"error: {target} exists; use --force to replace it", file=sys.stderr)
        return EXIT_INVALID
    target.write_text(text, encoding="utf-8")
    numbers = sum(len(t.numbers) for t in config.tenants)
    print(f"wrote {target}: {len(config.tenants)} provinces, {numbers} numbers; check it with "
          f"`callcenter check-config {target}`", file=sys.stderr)
    return 0
