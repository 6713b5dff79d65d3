"""`callcenter prompts build`: make every IVR prompt ahead of time, so no caller waits for one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from callcenter.config.settings import Settings


def build_prompts(settings: Settings, tenant_ids: list[str] | None = None,
                  progress: Any = None) -> tuple[int, int]:
    """Synthesise the menus' and the FAQ's prompts not cached yet; (made, already there)."""
    from callcenter.config.file import load_config
    from callcenter.faq.store import FaqStore
    from callcenter.ivr import menu as mn
    from callcenter.ivr.prompt_library import PromptLibrary
    from callcenter.ivr.runtime import tenant_prompts
    from callcenter.ops.accounts import service_account
    from callcenter.pbx.install import ensure_asterisk
    from callcenter.pbx.layout import PbxLayout
    from callcenter.store.migrate import upgrade_head

    config = load_config(settings.config_path)
    layout = PbxLayout.for_instance(ensure_asterisk(), settings.instance, settings.state_dir)
    library = PromptLibrary(layout.host("sounds"), layout.pbx("sounds"),
                            settings.sounds_override)
    tenants = [t for t in config.tenants if tenant_ids is None or t.id in tenant_ids]
    library.scan_recorded([t.id for t in tenants])
    upgrade_head(settings.database_url)
    store = FaqStore(settings.database_url)
    try:
        wanted = []
        for t in tenants:
            faq: mn.FaqSource = store.catalogue(t.id) if t.ivr is not None else mn.NoFaq()
            wanted += [(t.id, p) for p in tenant_prompts(t, faq)]
    finally:
        store.close()
    result = library.build(wanted, progress)
    layout.set_ownership(service_account(settings.service_user))
    return result


def cmd_prompts_build(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.tools.progress import Progress

    with Progress("prompts", stream=sys.stderr) as bar:
        made, there = build_prompts(settings, args.tenant or None, bar.update)
    print(f"prompts: {made} made, {there} already there")
    return 0


def register(sub: Any) -> None:
    """Add `prompts build`."""
    c = sub.add_parser("prompts", help="IVR prompts (Vietnamese speech, cached)")
    psub = c.add_subparsers(dest="prompts_command", required=True)
    b = psub.add_parser("build", help="make every menu and FAQ prompt ahead of time")
    b.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    b.set_defaults(handler=cmd_prompts_build)
