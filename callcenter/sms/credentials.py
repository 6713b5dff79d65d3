"""Kannel's sendsms and admin passwords and the delivery-report key: never defaults.

From the environment, else generated once into STATE_DIR/sms-secrets.env (mode 0600), the
way `callcenter.secrets` keeps the ARI and AMI ones (a file of its own: that module rewrites
its file with its own keys only).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "sms-secrets.env"
KEYS = ("HOTLINE_KANNEL_USER", "HOTLINE_KANNEL_PASSWORD", "HOTLINE_KANNEL_ADMIN_PASSWORD",
        "HOTLINE_SMS_DLR_KEY")
_DEFAULTS = {"HOTLINE_KANNEL_USER": "hotline-sms"}
# Written into kannel.conf between double quotes: nothing that could end the value.
_FORBIDDEN = set('"\\\n\r#')


@dataclass(frozen=True)
class KannelSecrets:
    """The sendsms user, Kannel's admin/status password, and the key signing DLR URLs."""

    sendsms_user: str
    sendsms_password: str
    admin_password: str
    dlr_key: str


def _read(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def load_kannel_secrets(state_dir: Path) -> KannelSecrets:
    """Environment first, then STATE_DIR/sms-secrets.env; missing values generated, saved 0600."""
    path = state_dir / FILE_NAME
    stored = _read(path)
    values: dict[str, str] = {}
    changed = False
    for key in KEYS:
        value = os.environ.get(key) or stored.get(key)
        if not value:
            value = stored[key] = _DEFAULTS.get(key) or secrets.token_urlsafe(24)
            changed = True
        if _FORBIDDEN & set(value):
            raise ValueError(f"{key}: must not contain quotes, backslashes, '#' or newlines")
        values[key] = value
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Generated at first run; keep private (mode 0600).\n")
            f.writelines(f"{k}={stored[k]}\n" for k in KEYS if k in stored)
        os.replace(tmp, path)
    return KannelSecrets(
        sendsms_user=values["HOTLINE_KANNEL_USER"],
        sendsms_password=values["HOTLINE_KANNEL_PASSWORD"],
        admin_password=values["HOTLINE_KANNEL_ADMIN_PASSWORD"],
        dlr_key=values["HOTLINE_SMS_DLR_KEY"],
    )
