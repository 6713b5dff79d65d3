"""The console's own HTTPS: ``console.tls_cert`` / ``console.tls_key`` read and checked.

``load_config`` calls ``check_tls`` (at start and at every reload), so a missing or unreadable
file, or a pair that does not load, is a config error naming the key — and on reload the old
configuration keeps running. ``server_ssl_context`` builds the context the app's HTTP site
serves with (TLS 1.2 at least). Relative paths are taken from the config file's folder.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

from callcenter.config.base import ConfigError
from callcenter.config.model import ConsoleConfig, HotlineConfig


class _EncryptedKey(Exception):
    """The key asks for a pass phrase, which a service started by systemd cannot type."""


def _no_pass_phrase() -> bytes:
    raise _EncryptedKey


def server_ssl_context(console: ConsoleConfig) -> ssl.SSLContext | None:
    """The server-side TLS context of the console's files (None: plain HTTP)."""
    if console.tls_cert is None or console.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_pair(context, console.tls_cert, console.tls_key)
    return context


def load_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load the certificate chain and its key into ``context`` (never prompting)."""
    context.load_cert_chain(cert, key, password=_no_pass_phrase)


def check_tls(config: HotlineConfig, source: str) -> HotlineConfig:
    """``config`` with the TLS files' paths made absolute, once both read and load as a pair;
    ConfigError naming ``console.tls_cert`` or ``console.tls_key`` otherwise."""
    console = config.console
    if console.tls_cert is None or console.tls_key is None:
        return config
    base = Path(source).resolve().parent
    paths: dict[str, str] = {}
    for name, value in (("tls_cert", console.tls_cert), ("tls_key", console.tls_key)):
        path = base / value
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as e:
            raise ConfigError(source, f"console.{name}", value,
                              f"expected a readable PEM file; cannot read {path}: "
                              f"{e.strerror or e}") from None
        paths[name] = str(path)
    try:
        ssl.create_default_context(cafile=paths["tls_cert"])
    except ssl.SSLError as e:
        raise ConfigError(source, "console.tls_cert", console.tls_cert,
                          f"expected a PEM certificate: {e.reason or e}") from None
    try:
        load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), paths["tls_cert"], paths["tls_key"])
    except _EncryptedKey:
        raise ConfigError(source, "console.tls_key", console.tls_key,
                          "expected an unencrypted PEM private key (the service cannot type a "
                          "pass phrase)") from None
    except ssl.SSLError as e:
        why = ("it belongs to another certificate" if e.reason == "KEY_VALUES_MISMATCH"
               else e.reason or str(e))
        raise ConfigError(source, "console.tls_key", console.tls_key,
                          f"expected the PEM private key of console.tls_cert: {why}") from None
    return dataclasses.replace(config, console=dataclasses.replace(
        console, tls_cert=paths["tls_cert"], tls_key=paths["tls_key"]))
