"""Process settings from the environment (paths, URLs); the hotline's own rules live in the YAML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.sms.config import SmsSettings

ROOT = Path(__file__).resolve().parents[2]  # the checkout (callcenter/config/ is two below)


@dataclass(frozen=True)
class Settings:
    """Where things are. Every field has an environment variable; defaults suit `make run`."""

    config_path: Path
    state_dir: Path
    database_url: str
    redis_url: str | None  # None: start a private redis-server on a unix socket in state_dir
    instance: str  # PBX instance name (folder under the rootfs's /srv/hotline)
    sounds_override: Path  # recorded prompts: <dir>/<tenant>/<prompt_id>.wav
    log_level: str = "INFO"
    watch_config: bool = True  # reload when the file changes; off: only SIGHUP/`reload`
    bench_plain_number: str | None = None  # bench/ only: a number answered by plain dialplan
    sms: SmsSettings = field(default_factory=SmsSettings)  # HOTLINE_SMS, HOTLINE_KANNEL_*
    secrets_path: Path | None = None  # ARI/AMI credentials; None: STATE_DIR/secrets.env
    prompt_cache_dir: Path | None = None  # generated prompts; None: HOTLINE_CACHE/prompts
    service_user: str = "hotline1022"  # the unprivileged user the app runs as when root starts it
    app_slot: int = 1  # HOTLINE_APP_SLOT: which of service.app_instances this process is
    # Redis behind Sentinel (docs/sentinel.md): REDIS_SENTINELS (host:port,...) and
    # REDIS_SENTINEL_MASTER; set, they replace REDIS_URL. REDIS_PASSWORD: the data nodes',
    # REDIS_SENTINEL_PASSWORD: the sentinels' own (both optional).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_password: str | None = None
    redis_sentinel_password: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """HOTLINE_CONFIG, HOTLINE_STATE, DATABASE_URL, REDIS_URL, HOTLINE_INSTANCE, ..."""
        default_config, default_state = default_places()
        state = Path(os.environ.get("HOTLINE_STATE", default_state)).resolve()
        given = overrides.get("config_path")  # `callcenter --config PATH`: sounds follow it too
        config = Path(str(given)) if given else Path(
            os.environ.get("HOTLINE_CONFIG", default_config))
        values: dict[str, object] = {
            "config_path": config,
            "state_dir": state,
            "database_url": os.environ.get("DATABASE_URL") or f"sqlite:///{state / 'hotline.db'}",
            "redis_url": os.environ.get("REDIS_URL") or None,
            "instance": os.environ.get("HOTLINE_INSTANCE", "main"),
            "sounds_override": Path(
                os.environ.get("HOTLINE_SOUNDS", config.resolve().parent / "sounds")
            ),
            "log_level": os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
            "bench_plain_number": os.environ.get("HOTLINE_BENCH_PLAIN_NUMBER") or None,
            "watch_config": os.environ.get("HOTLINE_WATCH_CONFIG", "1") not in ("0", "no", "off"),
            "sms": SmsSettings.from_env(),
            "secrets_path": _path_or_none(os.environ.get("HOTLINE_SECRETS")),
            "prompt_cache_dir": _path_or_none(os.environ.get("HOTLINE_PROMPT_CACHE")),
            "service_user": os.environ.get("HOTLINE_USER") or "hotline1022",
            "app_slot": _slot(os.environ.get("HOTLINE_APP_SLOT")),
            **redis_sentinel_settings(os.environ),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def private_redis_socket(self) -> Path:
        return self.state_dir / "redis.sock"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / "journal"

    @property
    def pid_file(self) -> Path:
        """The app process's pid (``app.pid``; ``app-<slot>.pid`` for slots after the first)."""
        return self.state_dir / ("app.pid" if self.app_slot == 1 else f"app-{self.app_slot}.pid")

    def http_port(self, base: int) -> int:
        """This app process's HTTP port: service.http_port for slot 1, the next ones after."""
        return base + self.app_slot - 1

    @property
    def secrets_file(self) -> Path:
        """Where the ARI/AMI credentials are kept (HOTLINE_SECRETS)."""
        return self.secrets_path or self.state_dir / "secrets.env"

    @property
    def prompt_cache(self) -> Path:
        """Generated prompts (HOTLINE_PROMPT_CACHE, else HOTLINE_CACHE/prompts)."""
        if self.prompt_cache_dir is not None:
            return self.prompt_cache_dir
        from callcenter.pbx.install import cache_dir

        return cache_dir() / "prompts"


def default_places() -> tuple[Path, Path]:
    """Config file and state folder when the environment names none: the checkout's
    ``config/`` and ``var/`` (``make run``), else the installed layout of a package install
    (``/etc/hotline1022/hotline.yaml``, ``/var/lib/hotline1022``), never site-packages."""
    if (ROOT / "config" / "hotline.yaml").exists() and (ROOT / "pyproject.toml").exists():
        return ROOT / "config" / "hotline.yaml", ROOT / "var"
    return Path("/etc/hotline1022/hotline.yaml"), Path("/var/lib/hotline1022")


class RedisSettingsError(ValueError):
    """REDIS_SENTINELS / REDIS_SENTINEL_MASTER are unusable (the message names the variable)."""


def redis_sentinel_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The Sentinel fields of Settings from ``env``: REDIS_SENTINELS (``host:port`` list, comma
    separated), REDIS_SENTINEL_MASTER (the service name the sentinels monitor),
    REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD. Either both of the first two or neither."""
    raw = (env.get("REDIS_SENTINELS") or "").strip()
    master = (env.get("REDIS_SENTINEL_MASTER") or "").strip()
    if not raw and master:
        raise RedisSettingsError(f"REDIS_SENTINEL_MASTER={master!r} is set but REDIS_SENTINELS "
                                 "is not: expected the sentinels as host:port[,host:port...]")
    sentinels: list[tuple[str, int]] = []
    for item in (part.strip() for part in raw.split(",")) if raw else ():
        host, sep, port = item.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")  # [::1]:26379
        host = host[1:-1] if bracketed else host
        plain = all(c.isalnum() or c in ".-_" or (bracketed and c == ":") for c in host)
        if (not sep or not host or not plain or not port.isdigit()
                or not 0 < int(port) < 65536):
            raise RedisSettingsError(
                f"REDIS_SENTINELS={raw!r}: {item!r} is not host:port (expected e.g. "
                "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381)")
        sentinels.append((host, int(port)))
    if sentinels and not master:
        raise RedisSettingsError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: "
                                 "expected the name the sentinels monitor (sentinel monitor "
                                 "<name> ...), e.g. hotline")
    if master and not master.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RedisSettingsError(f"REDIS_SENTINEL_MASTER={master!r}: expected a plain name "
                                 "(letters, digits, - _ .)")
    return {"redis_sentinels": tuple(sentinels), "redis_sentinel_master": master or None,
            "redis_password": env.get("REDIS_PASSWORD") or None,
            "redis_sentinel_password": env.get("REDIS_SENTINEL_PASSWORD") or None}


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def _slot(value: str | None) -> int:
    """HOTLINE_APP_SLOT: a whole number from 1 (unset: 1)."""
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"HOTLINE_APP_SLOT={value!r}: expected a whole number from 1 "
                         "(which of service.app_instances this app process is)")
    return int(value)
