"""The SIP TLS certificate and key operators' softphones see (PJSIP ``transport-tls``).

Configured (``sip_tls.cert``/``sip_tls.key``, relative to the config file), or made
self-signed by ``callcenter run`` on its first start in the state folder (``sip-tls/``) and
reused afterwards, its SHA-256 fingerprint logged so operators can pin it in their softphones.
The render copies the pair into the instance (0640, Asterisk's group: the rootfs cannot see
the state folder), never world-readable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from callcenter.config.base import ConfigError
from callcenter.config.model import HotlineConfig
from callcenter.config.secrets import config_dir

log = logging.getLogger(__name__)

SELF_SIGNED_DIR = "sip-tls"  # under the state folder
CERT_NAME, KEY_NAME = "cert.pem", "key.pem"
SELF_SIGNED_DAYS = 3650


@dataclass(frozen=True)
class TlsPair:
    """A certificate and its private key (PEM text)."""

    cert_pem: str
    key_pem: str

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), as softphones show it: AB:CD:..."""
        return sha256_fingerprint(self.cert_pem)


def sha256_fingerprint(cert_pem: str) -> str:
    """The certificate's SHA-256 fingerprint in colon-separated upper-case hex."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _read(path: Path, source: str, key: str, what: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(source, key, str(path),
                          f"expected a readable PEM {what} file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, key, str(path), f"expected a PEM {what} file (text), "
                                                  f"not a binary one (DER?)") from None


def load_pair(cert: Path, key: Path, *, source: str, keys: tuple[str, str]) -> TlsPair:
    """Read and check a pair; ConfigError naming ``keys`` (cert key, key key) when a file is
    missing or the key does not go with the certificate."""
    cert_key, key_key = keys
    cert_pem = _read(cert, source, cert_key, "certificate")
    key_pem = _read(key, source, key_key, "private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # What Asterisk will do with them at start: fails on a key of another certificate.
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as e:
        raise ConfigError(source, key_key, str(key),
                          f"expected the PEM private key of the certificate {cert_key} = "
                          f"{str(cert)!r} (they do not load as a pair: {e})") from None
    try:
        sha256_fingerprint(cert_pem)
    except ValueError:
        raise ConfigError(source, cert_key, str(cert),
                          "expected a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    return TlsPair(cert_pem, key_pem)


def self_signed_paths(state_dir: Path) -> tuple[Path, Path]:
    """Where `callcenter run` keeps its self-signed certificate and key."""
    folder = state_dir / SELF_SIGNED_DIR
    return folder / CERT_NAME, folder / KEY_NAME


def tls_pair(config: HotlineConfig, state_dir: Path | None) -> TlsPair | None:
    """The configured pair, else the self-signed one in ``state_dir`` if made, else None."""
    tls = config.sip_tls
    if tls.cert is not None and tls.key is not None:
        base = config_dir(config)
        return load_pair(base / tls.cert, base / tls.key, source=config.source,
                         keys=("sip_tls.cert", "sip_tls.key"))
    if state_dir is None:
        return None
    cert, key = self_signed_paths(state_dir)
    if not cert.exists():
        return None
    return load_pair(cert, key, source=str(cert.parent), keys=(CERT_NAME, KEY_NAME))


def ensure_self_signed(config: HotlineConfig, state_dir: Path,
                       common_name: str = "hotline1022") -> TlsPair:
    """The SIP TLS pair to use: the configured one, or a self-signed one made on the first call
    (openssl, RSA 2048, 10 years) and reused afterwards. Made: logged with its fingerprint."""
    existing = tls_pair(config, state_dir)
    if existing is not None:
        return existing
    cert, key = self_signed_paths(state_dir)
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp_cert, tmp_key = cert.with_suffix(".tmp"), key.with_suffix(".tmp")
    old = os.umask(0o077)  # the key is never readable by other users, even for a moment
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-days", str(SELF_SIGNED_DAYS), "-subj", f"/CN={common_name}",
             "-keyout", str(tmp_key), "-out", str(tmp_cert)],
            check=True, capture_output=True, timeout=60)
    finally:
        os.umask(old)
    os.replace(tmp_key, key)  # the key first: a certificate is only ever found with its key
    os.replace(tmp_cert, cert)
    pair = load_pair(cert, key, source=str(cert.parent), keys=(CERT_NAME, KEY_NAME))
    log.warning("made a self-signed SIP TLS certificate %s (CN=%s); pin it in the operators' "
                "softphones: SHA-256 %s (or set sip_tls.cert and sip_tls.key)",
                cert, common_name, pair.fingerprint)
    return pair
