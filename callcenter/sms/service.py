"""Wiring for the composition root: the outbox, the dispatcher task, the DLR receiver and
the receiver of citizens' SMS (MO).

In `callcenter/app.py`, after the store's context (it migrates the database)::

    app.cleanup_ctx.append(sms_context(settings.sms, settings.state_dir,
                                       app[DATABASE],
                                       dlr_base_url(cfg.service.http_bind, cfg.service.http_port),
                                       mo_handler=...))  # what a citizen's SMS does
    add_routes(app)  # from callcenter.sms.dlr: GET /sms/dlr
    add_mo_routes(app)  # from callcenter.sms.mo: GET /sms/mo

Kannel learns where MO goes from its config: `app_mo_url` (for `KannelGateway(mo_url=...)`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from callcenter.sms.config import LOOPBACK, SmsSettings
from callcenter.sms.credentials import load_kannel_secrets
from callcenter.sms.dispatcher import SendsmsTarget, SmsDispatcher
from callcenter.sms.dlr import DLR_PATH, SMS_DLR, DlrReceiver
from callcenter.sms.mo import SMS_MO, MoHandler, MoReceiver, mo_url
from callcenter.sms.store import SmsOutbox
from callcenter.store.database import DatabaseRef

SMS_OUTBOX = web.AppKey("sms_outbox", SmsOutbox)
SMS_DISPATCHER = web.AppKey("sms_dispatcher", SmsDispatcher)


def app_base_url(http_bind: str, http_port: int, *, https: bool = False) -> str:
    """Where Kannel (on this machine) reaches the app's HTTP port; ``https`` when the app
    serves its port over TLS (``console.tls_cert``: Kannel, without
    ``ssl-trusted-ca-file``, does not check the certificate of a loopback callback)."""
    host = LOOPBACK if http_bind in ("", "0.0.0.0", "::") else http_bind  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{http_port}"


def dlr_base_url(http_bind: str, http_port: int, *, https: bool = False) -> str:
    """Where Kannel reaches the app's delivery-report handler (see `app_base_url`)."""
    return app_base_url(http_bind, http_port, https=https) + DLR_PATH


def app_mo_url(http_bind: str, http_port: int, key: str, *, https: bool = False) -> str:
    """The URL Kannel's sms-service calls with each citizen's SMS (see `callcenter.sms.mo`)."""
    return mo_url(app_base_url(http_bind, http_port, https=https), key)


def sms_context(sms: SmsSettings, state_dir: Path, database: DatabaseRef, dlr_base: str,
                mo_handler: MoHandler | None = None,
                ) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx: app[SMS_OUTBOX], app[SMS_DLR], (SMS on) a running app[SMS_DISPATCHER],
    and with `mo_handler` app[SMS_MO] (citizens' SMS from Kannel)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        secrets = load_kannel_secrets(state_dir)
        outbox = SmsOutbox(database)
        app[SMS_OUTBOX] = outbox
        receiver = app[SMS_DLR] = DlrReceiver(outbox, secrets.dlr_key)
        if mo_handler is not None:
            app[SMS_MO] = MoReceiver(secrets.mo_key, mo_handler)
        dispatcher = None
        if sms.enabled:
            target = SendsmsTarget(url=sms.sendsms_url, username=secrets.sendsms_user,
                                   password=secrets.sendsms_password, sender=sms.sender,
                                   dlr_base_url=dlr_base, dlr_key=secrets.dlr_key)
            dispatcher = SmsDispatcher(outbox, target, concurrency=sms.concurrency)
            app[SMS_DISPATCHER] = dispatcher
            dispatcher.start()  # task "sms-dispatcher", owned by the dispatcher
        yield
        if dispatcher is not None:
            await dispatcher.stop()
        await receiver.close()
        outbox.close()

    return ctx
