"""Fixtures for the SMS tests: a real Kannel (bearerbox + smsbox + fakesmsc) on free loopback
ports, an outbox, a delivery-report server, and waiting helpers.

Import the fixtures you use into the test module (pytest finds them there).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from callcenter.runtime.ports import free_port
from callcenter.sms.config import LOOPBACK
from callcenter.sms.credentials import KannelSecrets, load_kannel_secrets
from callcenter.sms.dispatcher import SendsmsTarget, SmsDispatcher
from callcenter.sms.dlr import DLR_PATH, SMS_DLR, DlrReceiver, add_routes
from callcenter.sms.kannel import (
    KannelGateway,
    KannelStartError,
    KannelUnavailable,
    find_binaries,
    free_settings,
)
from callcenter.sms.store import SmsOutbox
from callcenter.store.migrate import upgrade_head


def _require_kannel() -> None:
    try:
        find_binaries(need_fakesmsc=True)
    except KannelUnavailable as e:
        pytest.skip(f"Kannel not installed ({e})")


def started_gateway(directory: Path, *, mo_url: str | None = None,
                    interactive_fakesmsc: bool = False) -> KannelGateway:
    """A running Kannel with its own folder, secrets and free ports (new ports if taken);
    citizens' SMS to `mo_url`, and with `interactive_fakesmsc` sent by `gateway.send_mo`."""
    _require_kannel()
    secrets = load_kannel_secrets(directory)
    for attempt in range(3):
        gateway = KannelGateway(free_settings(), secrets, directory / "kannel", mo_url=mo_url,
                                interactive_fakesmsc=interactive_fakesmsc)
        try:
            gateway.start()
            return gateway
        except KannelStartError:  # a port taken between choosing and binding: choose again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def kannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KannelGateway]:
    """One running Kannel for the session's tests (tests that stop Kannel make their own)."""
    gateway = started_gateway(tmp_path_factory.mktemp("kannel"))
    yield gateway
    gateway.stop()


@pytest.fixture
def own_kannel(tmp_path: Path) -> Iterator[KannelGateway]:
    """A running Kannel of this test's own, stopped afterwards."""
    gateway = started_gateway(tmp_path)
    yield gateway
    gateway.stop()


@pytest.fixture
def sms_outbox(tmp_path: Path) -> Iterator[SmsOutbox]:
    """An outbox on a fresh, migrated SQLite database."""
    url = f"sqlite:///{tmp_path / 'db' / 'hotline.db'}"
    upgrade_head(url)
    box = SmsOutbox(url)
    yield box
    box.close()


@dataclass
class DlrServer:
    """The app's delivery-report endpoint, served alone on a free loopback port."""

    base_url: str
    key: str
    hits: list[web.Request]


@pytest.fixture
async def dlr_server(sms_outbox: SmsOutbox) -> AsyncIterator[DlrServer]:
    """GET /sms/dlr on loopback, writing into `sms_outbox`."""
    key = "test-dlr-key"
    hits: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        hits.append(request)
        return await handler(request)

    app = web.Application(middlewares=[record])
    app[SMS_DLR] = DlrReceiver(sms_outbox, key)
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield DlrServer(f"http://{LOOPBACK}:{port}{DLR_PATH}", key, hits)
    await runner.cleanup()


def target_for(gateway: KannelGateway, dlr: DlrServer | None = None,
               secrets: KannelSecrets | None = None) -> SendsmsTarget:
    """The sendsms target of a gateway, with reports to `dlr` if given."""
    s = secrets or gateway.secrets
    return SendsmsTarget(url=gateway.sendsms_url, username=s.sendsms_user,
                         password=s.sendsms_password, sender="1022",
                         dlr_base_url=dlr.base_url if dlr else None,
                         dlr_key=dlr.key if dlr else "")


def fast_dispatcher(outbox: SmsOutbox, target: SendsmsTarget, **kw: object) -> SmsDispatcher:
    """A dispatcher with test-sized intervals (polls every 20 ms, retries after ~50-100 ms)."""
    options: dict[str, object] = {"poll_interval": 0.02, "backoff_base": 0.1,
                                  "backoff_cap": 0.2, "request_timeout": 5.0}
    options.update(kw)
    return SmsDispatcher(outbox, target, **options)  # type: ignore[arg-type]


async def wait_until(check: Callable[[], object], timeout: float = 30.0,
                     what: str = "condition") -> None:
    """Poll `check` (sync, run in a thread) until truthy; fail the test after `timeout`.
    Generous: once in CI, on a 2-core machine loaded by four other suites, a 3-part text had
    not reached fakesmsc after 10 s and the dispatcher's stop then took 15 s more (a sendsms
    request held by smsbox, we think; not reproduced since)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")
