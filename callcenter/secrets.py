"""Credentials for ARI and AMI: from the environment, or generated once into a 0600 file."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEYS = ("HOTLINE_ARI_USER", "HOTLINE_ARI_PASSWORD", "HOTLINE_AMI_USER", "HOTLINE_AMI_PASSWORD")


@dataclass(frozen=True)
class Secrets:
    """Never well-known defaults: generated per installation unless the environment sets them."""

    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def load_secrets(state_dir: Path) -> Secrets:
    """Environment first, then STATE_DIR/secrets.env; missing values generated, saved 0600."""
    path = state_dir / "secrets.env"
    stored = _read_env_file(path)
    defaults = {
        "HOTLINE_ARI_USER": "hotline-ari",
        "HOTLINE_AMI_USER": "hotline-ami",
    }
    values: dict[str, str] = {}
    changed = False
    for key in KEYS:
        if os.environ.get(key):
            values[key] = os.environ[key]
        elif stored.get(key):
            values[key] = stored[key]
        else:
            values[key] = defaults.get(key) or secrets.token_urlsafe(24)
            stored[key] = values[key]
            changed = True
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Generated at first run; keep private (mode 0600).\n")
            for key in KEYS:
                if key in stored:
                    f.write(f"{key}={stored[key]}\n")
        os.replace(tmp, path)
    os.chmod(path, 0o600) if path.exists() else None
    return Secrets(
        ari_user=values["HOTLINE_ARI_USER"],
        ari_password=values["HOTLINE_ARI_PASSWORD"],
        ami_user=values["HOTLINE_AMI_USER"],
        ami_password=values["HOTLINE_AMI_PASSWORD"],
    )
