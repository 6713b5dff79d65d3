"""Credentials: ARI and AMI (from the environment, or generated once into a 0600 file) and
operators' SIP passwords (from the environment variable or file the config names)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callcenter.config.base import ConfigError
from callcenter.ops.files import write_atomic

if TYPE_CHECKING:
    from callcenter.config.model import HotlineConfig
    from callcenter.queue.policy import SecretRef

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
        text = "# Generated at first run; keep private (mode 0600).\n" + "".join(
            f"{k}={stored[k]}\n" for k in keys if k in stored)
        write_atomic(path, text, 0o600)
    _keep_private(path)
    return values


def _keep_private(path: Path) -> None:
    """Take away what other users may do with a secrets file, never what its owner or group
    already have: an installer's 0640 root:hotline1022 file stays readable by the app."""
    try:
        st = path.lstat()
    except OSError:
        return
    mode = st.st_mode & 0o777
    if stat.S_ISLNK(st.st_mode) or not mode & 0o037:  # never chmod through a link
        return
    try:
        os.chmod(path, mode & 0o640)
    except OSError as e:  # not ours to change (read-only /etc under systemd): say so, go on
        log.warning("%s is readable by other users (mode %o) and could not be tightened: %s",
                    path, mode, e.strerror)


class _Hidden:
    def __repr__(self) -> str:
        return "<hidden>"


# A user name is a section name in ari.conf/manager.conf ([name]) and the user of HTTP basic
# auth (no ':'): letters, digits and _ . - only.
_ACCOUNT_USER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_pbx_secrets(values: Mapping[str, str], path: Path) -> None:
    """Raise ConfigError naming the variable and where it came from when a value would break
    (or inject lines into) ari.conf/manager.conf or the AMI login."""
    for key, value in values.items():
        if key.endswith("_USER"):
            problem = None if _ACCOUNT_USER.fullmatch(value) else \
                "expected 1-64 characters from A-Z a-z 0-9 _ . -"
        else:
            problem = _check_password(value)
        if problem is not None:
            source = "environment" if os.environ.get(key) else str(path)
            raise ConfigError(source, key, _Hidden(), problem)


def load_secrets(state_dir: Path, path: Path | None = None) -> Secrets:
    """Environment first, then ``path`` (default STATE_DIR/secrets.env); missing values
    generated, saved 0600. ConfigError for a value that cannot go into Asterisk's config."""
    path = path or state_dir / "secrets.env"
    values = load_env_secrets(path, KEYS, {"HOTLINE_ARI_USER": "hotline-ari",
                                           "HOTLINE_AMI_USER": "hotline-ami"})
    _check_pbx_secrets(values, path)
    return Secrets(
        ari_user=values["HOTLINE_ARI_USER"],
        ari_password=values["HOTLINE_ARI_PASSWORD"],
        ami_user=values["HOTLINE_AMI_USER"],
        ami_password=values["HOTLINE_AMI_PASSWORD"],
    )


# ---- Operators' SIP passwords --------------------------------------------------------------
# The config names where each password is kept (callcenter.queue.policy.SecretRef);
# they are read here, at render time, by the process that writes pjsip.conf. Decision: one
# operator whose secret is missing or unusable is left out of pjsip.conf (an ERROR names them)
# and the rest of the hotline starts; that operator's phone gets 401 until the secret is set
# and the config re-rendered (`callcenter reload`). `callcenter check-config` lists them.

log = logging.getLogger("callcenter.config.secrets")

# Asterisk's config parser trims values and cuts them at ';' (comment) unless escaped (the
# templates escape it); a line break or NUL would end the line and start one of the secret's
# choosing; spaces or NUL are also trimmed or cut between a file, a softphone's form and a
# digest. Such passwords are refused rather than silently altered (pjsip.conf itself holds
# only the operators' digests, see pbx/render.py).
_MAX_PASSWORD = 128
# Scanners on the Internet guess short numeric passwords (101, 1234...) within minutes; the
# SIP guard only slows them down. Shorter ones are a config error (`check_operator_secrets`).
MIN_PASSWORD = 16


class OperatorSecretError(ValueError):
    """An operator's SIP password cannot be read; names tenant, extension and where it was."""

    def __init__(self, tenant: str, extension: str, where: str, reason: str,
                 *, weak: bool = False):
        self.tenant, self.extension, self.where, self.reason = tenant, extension, where, reason
        self.weak = weak  # set, but too short to keep out a password-guessing scanner
        super().__init__(f"operator {extension} of tenant {tenant}: {where}: {reason}")


def _where(ref: SecretRef, base: Path) -> tuple[str, Path | None]:
    if ref.kind == "env":
        return f"environment variable {ref.name}", None
    path = Path(ref.name)
    path = path if path.is_absolute() else base / path
    return f"secret file {path}", path


def _check_password(value: str) -> str | None:
    """Why this password cannot go into pjsip.conf, or None when it can."""
    if not value:
        return "is empty"
    if value != value.strip():
        return "has leading or trailing spaces (Asterisk would trim them)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "contains a control character or line break"
    if len(value) > _MAX_PASSWORD:
        return f"is longer than {_MAX_PASSWORD} characters"
    return None


def read_operator_password(ref: SecretRef, tenant: str, extension: str, base: Path,
                           environ: Mapping[str, str]) -> str:
    """One operator's password; raise OperatorSecretError saying what is wrong and where."""
    where, path = _where(ref, base)
    if path is None:
        value = environ.get(ref.name)
        if value is None:
            raise OperatorSecretError(tenant, extension, where, "is not set")
    else:
        try:
            value = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise OperatorSecretError(tenant, extension, where, "does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise OperatorSecretError(tenant, extension, where,
                                      f"cannot be read: {reason}") from None
        # Files written with `echo` end in a line break; that is not part of the password.
        value = value.removesuffix("\n").removesuffix("\r")
    problem = _check_password(value)
    if problem is not None:
        raise OperatorSecretError(tenant, extension, where, problem)
    if len(value) < MIN_PASSWORD:
        raise OperatorSecretError(
            tenant, extension, where,
            f"is {len(value)} characters long: expected at least {MIN_PASSWORD} "
            f"(`callcenter operator secret {extension}` writes a strong one)", weak=True)
    return value


def config_dir(config: HotlineConfig) -> Path:
    """Where relative secret files are: the config file's folder (``config.source``; the
    current folder for a config built in memory)."""
    return Path(config.source).resolve().parent if config.source != "<memory>" else Path.cwd()


def resolve_operator_passwords(
        config: HotlineConfig, environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[OperatorSecretError]]:
    """Every operator's password by extension, and the problems of those that have none.

    Files are relative to the config file's folder (see ``config_dir``)."""
    env = os.environ if environ is None else environ
    base = config_dir(config)
    passwords: dict[str, str] = {}
    problems: list[OperatorSecretError] = []
    for tenant in config.tenants:
        for op in tenant.operators.operators:
            try:
                passwords[op.extension] = read_operator_password(
                    op.secret, tenant.id, op.extension, base, env)
            except OperatorSecretError as e:
                problems.append(e)
    return passwords, problems


def operator_passwords(config: HotlineConfig,
                       environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Passwords by extension of the operators whose secret resolves; each other operator is
    logged at ERROR (not rendered, so they cannot register) and left out."""
    passwords, problems = resolve_operator_passwords(config, environ)
    for p in problems:
        log.error("%s; this operator is left out of the PBX (cannot register) until it is "
                  "fixed and the config reloaded", p)
    return passwords


def check_operator_secrets(config: HotlineConfig,
                           environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError (every weak one listed) when an operator's password is set but
    shorter than MIN_PASSWORD; the error names the key and where the password is, never it.

    A weak password is refused like any invalid config (a reload keeps the old config in
    force); an unset one is not (the operator is left out, see above)."""
    weak = {(p.tenant, p.extension): p for p in resolve_operator_passwords(config, environ)[1]
            if p.weak}
    errors = []
    for ti, tenant in enumerate(config.tenants):
        for oi, op in enumerate(tenant.operators.operators):
            problem = weak.get((tenant.id, op.extension))
            if problem is not None:
                key = f"tenants[{ti}].operators[{oi}].secret_{op.secret.kind}"
                errors.append(ConfigError(
                    config.source, key, op.secret.name,
                    f"the SIP password of operator {op.extension} in {problem.where} "
                    f"{problem.reason}"))
    if errors:
        raise ConfigError.collect(errors)


# ---- `callcenter operator secret EXT` ------------------------------------------------------
OPERATORS_ENV = "operators.env"  # next to the config: systemd's EnvironmentFile= for the units


@dataclass(frozen=True)
class WrittenSecret:
    """Where a new operator password went, and the password (shown once to the admin)."""

    path: Path
    variable: str | None  # the environment variable's name when it went into OPERATORS_ENV
    password: str


def _set_env_line(text: str, key: str, value: str) -> str:
    """``text`` of a KEY=value file with ``key`` set: its line replaced (a later duplicate
    would win in systemd's EnvironmentFile=, so duplicates go), else its commented placeholder
    ``#KEY=``, else a line added; every other line kept as it was."""
    lines = text.splitlines()

    def named(line: str) -> bool:
        return "=" in line and line.lstrip("#").partition("=")[0].strip() == key

    active = [i for i, line in enumerate(lines) if named(line) and not line.startswith("#")]
    placeholders = [i for i, line in enumerate(lines) if named(line) and line.startswith("#")]
    if active:
        lines[active[0]] = f"{key}={value}"
        lines = [line for i, line in enumerate(lines) if i not in active[1:]]
    elif placeholders:
        lines[placeholders[0]] = f"{key}={value}"
    else:
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _replace_private(path: Path, text: str) -> None:
    """Write ``path`` at once, mode 0600; an existing file keeps its owner and group (and at
    most 0640: an installer's root:hotline1022 file stays readable by the app)."""
    try:
        st = path.stat()
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
        mode = stat.S_IMODE(st.st_mode) & 0o640 | 0o600
    except FileNotFoundError:
        owner, mode = None, 0o600
    if owner is not None and os.geteuid() != 0:
        owner = None  # only root can give a file away; ours stays ours
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, mode, owner)


def write_operator_secret(config: HotlineConfig, extension: str) -> WrittenSecret:
    """A new random password for this operator, written where the config says it is kept:
    their secret file, or their variable's line in OPERATORS_ENV next to the config.
    Raise LookupError when no tenant lists the extension."""
    op = next((o for t in config.tenants for o in t.operators.operators
               if o.extension == extension), None)
    if op is None:
        raise LookupError(extension)
    password = secrets.token_urlsafe(24)  # 32 characters of A-Z a-z 0-9 - _
    base = config_dir(config)
    if op.secret.kind == "file":
        _, path = _where(op.secret, base)
        assert path is not None
        _replace_private(path, password + "\n")
        return WrittenSecret(path, None, password)
    path = base / OPERATORS_ENV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# Operators' SIP passwords, one per line: HOTLINE_OP_<extension>=password\n"
    _replace_private(path, _set_env_line(text, op.secret.name, password))
    return WrittenSecret(path, op.secret.name, password)
