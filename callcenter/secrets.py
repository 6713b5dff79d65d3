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


def load_env_secrets(path: Path, keys: tuple[str, ...],
                     defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Each key from the environment, else from ``path``, else its default or a new random
    value; new values are written back to ``path`` (mode 0600, replaced atomically)."""
    stored = _read_env_file(path)
    values: dict[str, str] = {}
    changed = False
    for key in keys:
        value = os.environ.get(key) or stored.get(key)
        if not value:
            value = stored[key] = (defaults or {}).get(key) or secrets.token_urlsafe(24)
            changed = True
        values[key] = value
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Generated at first run; keep private (mode 0600).\n")
            f.writelines(f"{k}={stored[k]}\n" for k in keys if k in stored)
        os.replace(tmp, path)
    if path.exists():
        os.chmod(path, 0o600)
    return values


def load_secrets(state_dir: Path) -> Secrets:
    """Environment first, then STATE_DIR/secrets.env; missing values generated, saved 0600."""
    values = load_env_secrets(state_dir / "secrets.env", KEYS,
                              {"HOTLINE_ARI_USER": "hotline-ari",
                               "HOTLINE_AMI_USER": "hotline-ami"})
    return Secrets(
        ari_user=values["HOTLINE_ARI_USER"],
        ari_password=values["HOTLINE_ARI_PASSWORD"],
        ami_user=values["HOTLINE_AMI_USER"],
        ami_password=values["HOTLINE_AMI_PASSWORD"],
    )
