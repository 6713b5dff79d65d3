"""The console's TLS files in the config: checked at load and reload, errors naming the key."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from callcenter.app import apply_tls
from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig
from callcenter.config.tls import server_ssl_context
from tests.support.tls import CertPair, encrypt_key, make_cert


@pytest.fixture
def pair(config_path: Path) -> CertPair:
    return make_cert(config_path.parent / "tls")


def _with_console(config_path: Path, cert: str, key: str) -> Path:
    base = config_path.read_text(encoding="utf-8").split("\nconsole:", 1)[0]
    config_path.write_text(base + f"\nconsole:\n  tls_cert: {cert!r}\n  tls_key: {key!r}\n",
                           encoding="utf-8")
    return config_path


def test_given_cert_and_key_relative_to_the_config_when_loaded_then_tls_1_2_context(
        config_path: Path, pair: CertPair) -> None:
    config = load_config(_with_console(config_path, "tls/console.crt", "tls/console.key"))
    assert (config.console.tls_cert, config.console.tls_key) == (str(pair.cert), str(pair.key))
    context = server_ssl_context(config.console)
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2


def _refusal(config_path: Path, cert: str, key: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(_with_console(config_path, cert, key))
    return info.value


@pytest.mark.parametrize(("cert", "key", "bad_key", "why"), [
    ("tls/missing.crt", "tls/console.key", "console.tls_cert", "No such file"),
    ("tls/console.crt", "tls/missing.key", "console.tls_key", "No such file"),
    ("tls", "tls/console.key", "console.tls_cert", "cannot read"),  # a folder: unreadable
    ("tls/console.key", "tls/console.key", "console.tls_cert", "expected a PEM certificate"),
    ("tls/console.crt", "tls/console.crt", "console.tls_key", "expected the PEM private key"),
])
def test_given_missing_unreadable_or_wrong_file_when_loaded_then_error_names_the_key(
        config_path: Path, pair: CertPair, cert: str, key: str, bad_key: str,
        why: str) -> None:
    err = _refusal(config_path, cert, key)
    assert err.key == bad_key and why in err.reason
    assert str(config_path) in str(err)


def test_given_key_of_another_certificate_when_loaded_then_error_names_tls_key(
        config_path: Path, pair: CertPair) -> None:
    other = make_cert(config_path.parent / "tls", "other")
    err = _refusal(config_path, str(pair.cert), str(other.key))
    assert err.key == "console.tls_key" and "another certificate" in err.reason


def test_given_encrypted_key_when_loaded_then_refused_without_asking_a_pass_phrase(
        config_path: Path, pair: CertPair) -> None:
    encrypted = encrypt_key(pair, config_path.parent / "tls" / "encrypted.key")
    err = _refusal(config_path, str(pair.cert), str(encrypted))
    assert err.key == "console.tls_key" and "unencrypted" in err.reason


async def test_given_broken_pair_when_reloaded_then_old_config_kept(
        config_path: Path, pair: CertPair) -> None:
    live = LiveConfig(config_path, load_config(
        _with_console(config_path, str(pair.cert), str(pair.key))))
    before = live()
    other = make_cert(config_path.parent / "tls", "other")
    _with_console(config_path, str(pair.cert), str(other.key))
    assert not await live.reload("test")
    assert live() is before and live.last_error is not None
    assert "console.tls_key" in live.last_error


async def _served_certificate(context: ssl.SSLContext, trust: Path) -> bool:
    """Whether an HTTPS client trusting only ``trust`` completes a request to a site served
    with ``context``."""
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client_context = ssl.create_default_context(cafile=str(trust))
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"https://127.0.0.1:{port}/", ssl=client_context) as resp:
                    return await resp.text() == "ok"
            except aiohttp.ClientConnectorCertificateError:
                return False
    finally:
        await runner.cleanup()


# A certificate renewed in place (or moved) must reach the running site without a restart that
# would drop the operators' sessions' connections and the calls' websockets.
async def test_given_renewed_certificate_when_config_reloaded_then_next_handshakes_use_it(
        config_path: Path, pair: CertPair) -> None:
    old = load_config(_with_console(config_path, str(pair.cert), str(pair.key)))
    context = server_ssl_context(old.console)
    assert context is not None
    renewed = make_cert(config_path.parent / "tls", "renewed")
    assert await _served_certificate(context, pair.cert)
    assert not await _served_certificate(context, renewed.cert)
    new = load_config(_with_console(config_path, str(renewed.cert), str(renewed.key)))
    await apply_tls(context, old, new)
    assert await _served_certificate(context, renewed.cert)
