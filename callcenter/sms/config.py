"""The SMS part's process settings, from the environment (see `SmsSettings.from_env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
FAKE_SMSC = "fake"


class SmsSettingsError(ValueError):
    """An SMS environment variable holds something unusable; names the variable."""


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SmsSettingsError(f"{key}={raw!r}: expected a whole number") from None
    if not low <= value <= high:
        raise SmsSettingsError(f"{key}={value}: expected {low}..{high}")
    return value


@dataclass(frozen=True)
class SmsSettings:
    """Where Kannel listens and how the dispatcher uses it. Defaults suit `make run`.

    The default ports stay clear of Debian's own Kannel service (13000-13013), which we
    never use: `callcenter run` starts its own bearerbox and smsbox with its own config.
    """

    enabled: bool = True  # HOTLINE_SMS=0: no Kannel, no dispatcher (the outbox still fills)
    gateway_url: str | None = None  # HOTLINE_KANNEL_URL: an existing smsbox; none started
    smsc: str = FAKE_SMSC  # HOTLINE_KANNEL_SMSC: "fake" or a file with the real `group = smsc`
    admin_port: int = 13100  # HOTLINE_KANNEL_ADMIN_PORT (bearerbox admin/status HTTP)
    smsbox_port: int = 13101  # HOTLINE_KANNEL_SMSBOX_PORT (bearerbox <- smsbox)
    fake_smsc_port: int = 13110  # HOTLINE_KANNEL_FAKE_SMSC_PORT (bearerbox <- fakesmsc)
    sendsms_port: int = 13113  # HOTLINE_KANNEL_SENDSMS_PORT (smsbox's sendsms HTTP)
    sender: str = "1022"  # HOTLINE_SMS_SENDER: the "from" the citizen sees
    # HOTLINE_SMS_CONCURRENCY: requests in flight to smsbox. With delivery reports each
    # sendsms request takes ~40-80 ms in Kannel, so 16 give < 200/s and 32 about 400/s (P7).
    concurrency: int = 32

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmsSettings:
        """HOTLINE_SMS, HOTLINE_KANNEL_URL, HOTLINE_KANNEL_SMSC, HOTLINE_KANNEL_*_PORT, ..."""
        env = os.environ if env is None else env
        port = (1, 65535)
        return cls(
            enabled=env.get("HOTLINE_SMS", "1") not in ("0", "no", "off"),
            gateway_url=env.get("HOTLINE_KANNEL_URL") or None,
            smsc=env.get("HOTLINE_KANNEL_SMSC") or FAKE_SMSC,
            admin_port=_int(env, "HOTLINE_KANNEL_ADMIN_PORT", cls.admin_port, *port),
            smsbox_port=_int(env, "HOTLINE_KANNEL_SMSBOX_PORT", cls.smsbox_port, *port),
            fake_smsc_port=_int(env, "HOTLINE_KANNEL_FAKE_SMSC_PORT", cls.fake_smsc_port,
                                *port),
            sendsms_port=_int(env, "HOTLINE_KANNEL_SENDSMS_PORT", cls.sendsms_port, *port),
            sender=env.get("HOTLINE_SMS_SENDER") or cls.sender,
            concurrency=_int(env, "HOTLINE_SMS_CONCURRENCY", cls.concurrency, 1, 512),
        )

    @property
    def fake(self) -> bool:
        """True when the SMSC is Kannel's test SMSC, fakesmsc (development, tests)."""
        return self.smsc == FAKE_SMSC

    @property
    def sendsms_url(self) -> str:
        """The sendsms endpoint the dispatcher posts to."""
        if self.gateway_url:
            return self.gateway_url
        return f"http://{LOOPBACK}:{self.sendsms_port}/cgi-bin/sendsms"
