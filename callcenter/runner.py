"""`callcenter run`: bring up the whole hotline in the foreground and stop it all on Ctrl-C.

Order up: config, Redis, database (alembic upgrade head), Asterisk (provisioned if needed), app.
Order down: app (records flushed), Asterisk, private Redis.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from callcenter.app import build_app, serve
from callcenter.domain.config import load_config
from callcenter.pbx.install import ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.process import AsteriskProcess
from callcenter.pbx.render import render
from callcenter.queue.server import resolve_redis
from callcenter.secrets import load_secrets
from callcenter.settings import Settings

log = logging.getLogger("callcenter.run")


async def run_app_until_signal(settings: Settings, redis_url: str) -> None:
    """Serve the app until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = build_app(settings, redis_url)
    await serve(app, stop)


def run_all(settings: Settings, *, bench_plain_number: str | None = None) -> None:
    """Provision and start every part, serve, then stop them in reverse order."""
    config = load_config(settings.config_path)  # refuse to start on a broken config
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    redis_url, private_redis = resolve_redis(settings.redis_url, settings.private_redis_socket)
    pbx: AsteriskProcess | None = None
    try:
        log.info("database: %s (alembic upgrade head on start)", _safe_url(settings.database_url))
        install = ensure_asterisk()
        log.info("PBX: %s (%s)", install.version,
                 f"chroot {install.root}" if install.root else "host")
        layout = PbxLayout.for_instance(install, settings.instance, settings.state_dir)
        secrets = load_secrets(settings.state_dir)
        render(config, layout, secrets, prompt_cache=settings.prompt_cache,
               sounds_override=settings.sounds_override, bench_plain_number=bench_plain_number)
        pbx = AsteriskProcess(layout, f"http://{config.service.ari_bind}:{config.service.ari_port}",
                              secrets.ari_user, secrets.ari_password)
        pbx.start()
        log.info("SIP trunk listening on %s:%d (udp)", config.trunk.bind, config.trunk.port)
        asyncio.run(run_app_until_signal(settings, redis_url))
    finally:
        log.info("stopping")
        if pbx is not None:
            pbx.stop()
        if private_redis is not None:
            private_redis.stop()
        log.info("stopped")


def _safe_url(url: str) -> str:
    """Database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url
