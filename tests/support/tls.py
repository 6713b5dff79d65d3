"""Self-signed certificates for the TLS tests, made by the system's ``openssl`` (the venv has
no ``cryptography``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class CertPair:
    """A certificate for 127.0.0.1 and its unencrypted key, both PEM."""

    cert: Path
    key: Path


def make_cert(folder: Path, name: str = "console") -> CertPair:
    """A fresh self-signed pair ``name.crt`` / ``name.key`` in ``folder`` (valid 2 days)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    pair = CertPair(folder / f"{name}.crt", folder / f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(pair.key), "-out", str(pair.cert)],
                   check=True, capture_output=True, timeout=60)
    return pair


def encrypt_key(pair: CertPair, out: Path) -> Path:
    """``pair.key`` encrypted with a pass phrase, written to ``out``."""
    subprocess.run(["openssl", "pkey", "-in", str(pair.key), "-aes256", "-passout",
                    "pass:phrase-nobody-types", "-out", str(out)],
                   check=True, capture_output=True, timeout=60)
    return out
