"""`callcenter run`: bring up the whole hotline in the foreground and stop it all on Ctrl-C.

Order up: config, Redis, database (alembic upgrade head), Kannel (SMS), Asterisk (provisioned
if needed), app. Order down: app (records flushed, SMS dispatcher drained), Kannel, Asterisk,
private Redis.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from callcenter.app import build_app, serve
from callcenter.config_file import load_config
from callcenter.pbx.install import ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.process import AsteriskProcess, PbxStartError
from callcenter.pbx.render import render
from callcenter.queue.server import PrivateRedis, answers
from callcenter.secrets import load_secrets
from callcenter.settings import Settings
from callcenter.sms.credentials import load_kannel_secrets
from callcenter.sms.kannel import KannelGateway, start_for_run

log = logging.getLogger("callcenter.run")


async def run_app_until_signal(settings: Settings, redis_url: str) -> None:
    """Serve the app until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    app = build_app(settings, redis_url)
    await serve(app, stop)


def dump_tasks() -> None:
    """SIGUSR1: log where every task of the app is waiting (for a stuck service)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=6)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
        log.warning("task %s: %s", task.get_name(), where or "(not started)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _check_free(bind: str, port: int, kind: int, what: str) -> None:
    """Refuse to start over a leftover process: it would answer in our place."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((bind, port))
        except OSError as e:
            raise PbxStartError(
                f"{what} port {bind}:{port} is already in use ({e.strerror}); is an earlier "
                f"hotline or Asterisk still running? (pgrep -a asterisk)") from None


def run_all(settings: Settings) -> None:
    """Provision and start every part, serve, then stop them in reverse order.

    SIGINT and SIGTERM at any moment (even during the first rootfs build) stop what was
    started; during the teardown itself they are ignored so it always completes.
    """
    config = load_config(settings.config_path)  # refuse to start on a broken config
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    private_redis: PrivateRedis | None = None
    pbx: AsteriskProcess | None = None
    kannel: KannelGateway | None = None
    try:
        if settings.redis_url and answers(settings.redis_url):
            redis_url = settings.redis_url
        else:
            if settings.redis_url:
                log.warning("REDIS_URL does not answer; starting a private redis-server")
            private_redis = PrivateRedis(settings.private_redis_socket)
            private_redis.start()
            redis_url = private_redis.url
        log.info("database: %s (alembic upgrade head on start)",
                 _safe_url(settings.database_url))
        # SMS: our own Kannel unless off or external; not installed -> texts wait in the outbox.
        kannel = start_for_run(settings.sms, load_kannel_secrets(settings.state_dir),
                               settings.state_dir)
        install = ensure_asterisk()
        log.info("PBX: %s (%s)", install.version,
                 f"chroot {install.root}" if install.root else "host")
        layout = PbxLayout.for_instance(install, settings.instance, settings.state_dir)
        secrets = load_secrets(settings.state_dir)
        render(config, layout, secrets, prompt_cache=settings.prompt_cache,
               sounds_override=settings.sounds_override,
               bench_plain_number=settings.bench_plain_number)
        svc, trunk = config.service, config.trunk
        _check_free(svc.ari_bind, svc.ari_port, socket.SOCK_STREAM, "ARI")
        _check_free(trunk.bind, trunk.port, socket.SOCK_DGRAM, "SIP")
        pbx = AsteriskProcess(layout, f"http://{svc.ari_bind}:{svc.ari_port}",
                              secrets.ari_user, secrets.ari_password)
        pbx.start()
        log.info("SIP trunk listening on %s:%d (udp)", trunk.bind, trunk.port)
        asyncio.run(run_app_until_signal(settings, redis_url))
    except KeyboardInterrupt as e:
        log.info("interrupted (%s)", e or "SIGINT")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("stopping")
        try:
            if kannel is not None:
                kannel.stop()
            if pbx is not None:
                pbx.stop()
        finally:
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
