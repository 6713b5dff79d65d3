"""SMS through a real Kannel (bearerbox + smsbox) to its test SMSC, fakesmsc, on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import secrets as pysecrets
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from aiohttp import web

from callcenter.config.model import ConsoleConfig
from callcenter.config.tls import server_ssl_context
from callcenter.sms import fakesmsc
from callcenter.sms.credentials import load_kannel_secrets
from callcenter.sms.dlr import add_routes
from callcenter.sms.kannel import KannelGateway, find_binaries, free_settings
from callcenter.sms.parts import sms_parts
from callcenter.sms.service import SMS_DISPATCHER, SMS_OUTBOX, dlr_base_url, sms_context
from callcenter.sms.store import BillingRow, SmsOutbox, enqueue
from callcenter.store.migrate import upgrade_head
from tests.support.kannel import (
    DlrServer,
    fast_dispatcher,
    free_port,
    started_gateway,
    target_for,
    wait_until,
)
from tests.support.tls import make_cert

NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"


def _number(prefix: str, n: int) -> str:
    """A destination unique to one test, so tests sharing one Kannel read their own texts."""
    return f"09{prefix}{n:04d}"


def _received(gateway: KannelGateway, numbers: set[str]) -> list[fakesmsc.ReceivedSms]:
    return [m for m in fakesmsc.received(gateway.fakesmsc_log) if m.receiver in numbers]


def _listening_addresses(ports: set[int]) -> set[str]:
    """Local addresses of listening TCP sockets on these ports (from /proc/net/tcp*)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            cols = line.split()
            addr, port = cols[1].rsplit(":", 1)
            if cols[3] == "0A" and int(port, 16) in ports:  # 0A: LISTEN
                found.add(addr)
    return found


def test_given_running_kannel_when_listening_then_loopback_only_and_generated_credentials(
        kannel: KannelGateway) -> None:
    s = kannel.settings
    ports = {s.admin_port, s.smsbox_port, s.sendsms_port, s.fake_smsc_port}
    assert _listening_addresses(ports) == {"0100007F"}  # 127.0.0.1, nothing else
    conf = kannel.conf_file.read_text()
    assert stat.S_IMODE(kannel.conf_file.stat().st_mode) == 0o600
    assert f'password = "{kannel.secrets.sendsms_password}"' in conf
    assert len(kannel.secrets.sendsms_password) >= 24 and "foobar" not in conf
    assert "concatenation = true" in conf and "max-messages = 10" in conf


def test_given_state_dir_when_secrets_loaded_twice_then_generated_once_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_kannel_secrets(tmp_path)
    assert load_kannel_secrets(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "sms-secrets.env").stat().st_mode) == 0o600
    assert first.sendsms_password != first.admin_password != first.dlr_key
    monkeypatch.setenv("HOTLINE_KANNEL_PASSWORD", "from-env-" + pysecrets.token_hex(8))
    assert load_kannel_secrets(tmp_path).sendsms_password.startswith("from-env-")


async def test_given_resolve_notice_when_dispatched_then_exact_text_two_parts_and_delivered(
        kannel: KannelGateway, sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    to = _number("11", 42)
    msg_id = sms_outbox.enqueue(tenant="dongnai", to_number=to, text=NOTICE,
                                purpose="resolve_notice", dedupe_key="resolve:DN-20261123-0042")
    again = sms_outbox.enqueue(tenant="dongnai", to_number=to, text=NOTICE,
                               purpose="resolve_notice", dedupe_key="resolve:DN-20261123-0042")
    assert msg_id is not None and again is None
    dispatcher = fast_dispatcher(sms_outbox, target_for(kannel, dlr_server))
    dispatcher.start()
    try:
        await wait_until(lambda: _received(kannel, {to}), what="the notice at fakesmsc")
        await wait_until(lambda: (m := sms_outbox.get(msg_id)) and m.status == "delivered",
                         what="the delivery report")
        await asyncio.sleep(0.3)  # a second copy would have arrived by now
    finally:
        await dispatcher.stop()
    got = _received(kannel, {to})
    assert [(m.sender, m.text, m.parts, m.coding) for m in got] == [
        ("1022", NOTICE, 2, "ucs2")]
    msg = sms_outbox.get(msg_id)
    assert msg is not None
    assert (msg.attempts, msg.smsc_id, msg.dlr_type) == (1, "fake", msg.dlr_type)
    assert msg.sent_at is not None and msg.delivered_at is not None
    month = msg.sent_at.astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
    assert sms_outbox.report(month) == [BillingRow("dongnai", 1, 2, 1, 0)]


@pytest.mark.parametrize("text", [
    "Hen gap lai: {ma} [so] ~1022~ ^_^ \\ | €5 @ £ ¥ è é ù ì ò Ç Ø ø Å å Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ",
    "b" * 152 + "€" + "c" * 152,  # the € may not be cut: 3 parts, not 2
    "a" * 160,
    "a" * 159 + "]",
    "ơ" * 70,
    "Chào ông 😀 " + "d" * 57 + "😀" + "e" * 70,  # a surrogate pair across a part boundary
    "Lịch hẹn: 08:00 ngày 24/11, mang theo CCCD. Tổng đài 1022 + 100% miễn phí & nhanh",
])
async def test_given_text_when_sent_then_fakesmsc_gets_it_exactly_in_the_counted_parts(
        kannel: KannelGateway, sms_outbox: SmsOutbox, text: str) -> None:
    to = _number("22", zlib.crc32(text.encode()) % 10000)
    sms_outbox.enqueue(tenant="dongnai", to_number=to, text=text, purpose="reminder",
                       dedupe_key=f"t:{to}")
    dispatcher = fast_dispatcher(sms_outbox, target_for(kannel))
    dispatcher.start()
    try:
        await wait_until(lambda: _received(kannel, {to}), what="the text at fakesmsc")
    finally:
        await dispatcher.stop()
    (got,) = _received(kannel, {to})
    enc = sms_parts(text)
    assert (got.text, got.parts, got.coding) == (text, enc.parts, enc.coding)


async def test_given_kannel_stopped_when_dispatching_then_texts_wait_and_go_once_when_back(
        own_kannel: KannelGateway, sms_outbox: SmsOutbox) -> None:
    own_kannel.stop()
    numbers = {_number("33", n) for n in range(5)}
    for n, to in enumerate(sorted(numbers)):
        sms_outbox.enqueue(tenant="thanhhoa", to_number=to, text=f"{NOTICE} ({n})",
                           purpose="resolve_notice", dedupe_key=f"resolve:TH-{n}")
    dispatcher = fast_dispatcher(sms_outbox, target_for(own_kannel))
    dispatcher.start()
    try:
        await wait_until(lambda: all(m.attempts >= 3 for m in sms_outbox.recent()),
                         what="three attempts each while Kannel is down")
        msgs = sms_outbox.recent()
        assert {m.status for m in msgs} <= {"queued", "sending"}
        assert all("gateway unreachable" in (m.last_error or "") for m in msgs)
        await asyncio.to_thread(own_kannel.start)
        await wait_until(lambda: sms_outbox.counts() == {"sent": 5}, what="all sent")
        await wait_until(lambda: len(_received(own_kannel, numbers)) >= 5, what="all at fakesmsc")
        await asyncio.sleep(0.5)  # nothing more may come
    finally:
        await dispatcher.stop()
    got = _received(own_kannel, numbers)
    assert sorted(m.receiver for m in got) == sorted(numbers)
    assert {m.text for m in got} == {f"{NOTICE} ({n})" for n in range(5)}


@pytest.mark.postgres
async def test_given_two_dispatchers_on_postgres_when_sending_then_each_text_exactly_once(
        kannel: KannelGateway, postgres_database: str) -> None:
    upgrade_head(postgres_database)
    boxes = [SmsOutbox(postgres_database) for _ in range(2)]
    numbers = [_number("44", n) for n in range(150)]
    with boxes[0].engine.begin() as conn:
        for n, to in enumerate(numbers):
            enqueue(conn, tenant="hcm", to_number=to, text=f"Thông báo số {n}",
                    purpose="unit_notice", dedupe_key=f"u:{n}")
    dispatchers = [fast_dispatcher(box, target_for(kannel), concurrency=8) for box in boxes]
    for d in dispatchers:
        d.start()
    try:
        await wait_until(lambda: boxes[0].counts() == {"sent": 150}, timeout=30,
                         what="150 sent")
        await wait_until(lambda: len(_received(kannel, set(numbers))) >= 150,
                         what="150 at fakesmsc")
        await asyncio.sleep(0.5)
    finally:
        for d in dispatchers:
            await d.stop()
        attempts = {m.attempts for m in boxes[0].recent(limit=200)}
        for box in boxes:
            box.close()
    got = _received(kannel, set(numbers))
    assert sorted(m.receiver for m in got) == sorted(numbers)  # each once, none twice
    assert attempts == {1}



# With console.tls_cert the app's port speaks only TLS: Kannel's delivery reports must come
# back over https, or every SMS would stay "sent" forever.
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_given_app_wired_with_sms_context_when_notice_queued_then_sent_and_delivered(
        kannel: KannelGateway, tmp_path: Path, https: bool) -> None:
    # The wiring the composition root uses: sms_context in cleanup_ctx, add_routes.
    port = free_port()
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    state = kannel.directory.parent  # the gateway's sms-secrets.env lives here
    sms = dataclasses.replace(kannel.settings, concurrency=4)
    app = web.Application()
    app.cleanup_ctx.append(sms_context(sms, state, url,
                                       dlr_base_url("0.0.0.0", port, https=https)))
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = None
    if https:
        pair = make_cert(tmp_path / "tls")
        tls = server_ssl_context(ConsoleConfig(tls_cert=str(pair.cert), tls_key=str(pair.key)))
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    try:
        outbox = app[SMS_OUTBOX]
        msg_id = outbox.enqueue(tenant="dongnai", to_number=_number("55", 1 + https),
                                text=NOTICE, purpose="resolve_notice",
                                dedupe_key="resolve:DN-APP-1")
        app[SMS_DISPATCHER].wake()
        await wait_until(lambda: (m := outbox.get(msg_id)) and m.status == "delivered",
                         what="sent through the app and reported back to it")
    finally:
        await runner.cleanup()
    assert [m.text for m in _received(kannel, {_number("55", 1 + https)})] == [NOTICE]


def test_given_a_box_we_do_not_hold_when_stopping_then_it_is_stopped_too(
        tmp_path: Path) -> None:
    # As when a stop signal lands between a box's start and its registration: a process
    # running with this gateway's config that the gateway does not hold.
    gateway = started_gateway(tmp_path)
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                              str(gateway.conf_file)])
    try:
        deadline = time.monotonic() + 5
        while stray.pid not in gateway._strays() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stray.pid in gateway._strays()
        gateway.stop()
        assert stray.wait(10) is not None
        assert gateway._strays() == []
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


async def test_given_texts_sent_and_reported_when_kannel_logs_read_then_no_number_or_text_in_clear(
        kannel: KannelGateway, sms_outbox: SmsOutbox, dlr_server: DlrServer) -> None:
    gsm_text, to_gsm, to_ucs2 = "Ho so 4711 cua ong da xong", _number("33", 71), _number("33", 72)
    ids = [sms_outbox.enqueue(tenant="dongnai", to_number=to, text=text, purpose="reminder",
                              dedupe_key=f"privacy:{to}")
           for to, text in ((to_gsm, gsm_text), (to_ucs2, NOTICE))]
    dispatcher = fast_dispatcher(sms_outbox, target_for(kannel, dlr_server))
    dispatcher.start()
    try:
        await wait_until(lambda: all((m := sms_outbox.get(i)) and m.status == "delivered"
                                     for i in ids if i is not None), what="both reports")
    finally:
        await dispatcher.stop()
    # What Kannel keeps (fakesmsc.log is the test SMSC's own output, not a production file).
    logs = {p.name: p.read_text(errors="replace") for p in kannel.directory.glob("*.log")
            if p.name != "fakesmsc.log"}
    assert "Sent SMS [SMSC:fake]" in logs["bearerbox-access.log"]  # still says what went
    ucs2_hex = NOTICE[:20].encode("utf-16-be").hex()
    for name, text in logs.items():
        for secret in (to_gsm[1:], to_ucs2[1:], "4711", NOTICE[:20], ucs2_hex,
                       ucs2_hex.upper()):
            assert secret not in text, (name, secret)


def test_given_smsbox_panicking_on_its_first_link_when_started_then_started_again_and_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Seen under load: smsbox links to a just-started bearerbox, the link drops and smsbox
    # panics (exit 1). The real bearerbox and SMSC stay up; a second smsbox must be started.
    real = find_binaries(need_fakesmsc=True)
    marker = tmp_path / "panicked-once"
    wrapper = tmp_path / "bin" / "smsbox"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\n"
                       f"if [ ! -e {marker} ]; then touch {marker}; "
                       "echo 'PANIC: lock_out: Assertion failed' >&2; exit 1; fi\n"
                       f"exec {real.smsbox} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    gateway = KannelGateway(free_settings(), load_kannel_secrets(tmp_path), tmp_path / "kannel")
    try:
        with caplog.at_level(logging.WARNING, "callcenter.sms.kannel"):
            gateway.start()
        assert marker.exists() and gateway.ready()
        assert "smsbox exited with 1 while starting" in caplog.text
    finally:
        gateway.stop()
    assert not gateway.running()
