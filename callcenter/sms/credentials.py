"""Kannel's sendsms and admin passwords, the delivery-report key and the key Kannel's
citizens' SMS (MO) requests carry: never defaults.

From the environment, else generated once into STATE_DIR/sms-secrets.env (mode 0600), the
way `callcenter.config.secrets` keeps the ARI and AMI ones (a file of its own: that module rewrites
its file with its own keys only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callcenter.config.secrets import load_env_secrets

FILE_NAME = "sms-secrets.env"
KEYS = ("HOTLINE_KANNEL_USER", "HOTLINE_KANNEL_PASSWORD", "HOTLINE_KANNEL_ADMIN_PASSWORD",
        "HOTLINE_SMS_DLR_KEY", "HOTLINE_SMS_MO_KEY")
_DEFAULTS = {"HOTLINE_KANNEL_USER": "hotline-sms"}
# Written into kannel.conf between double quotes: nothing that could end the value.
_FORBIDDEN = set('"\\\n\r#')


@dataclass(frozen=True)
class KannelSecrets:
    """The sendsms user, Kannel's admin/status password, the key signing DLR URLs, and the
    key in the URL Kannel calls with citizens' SMS (``callcenter.sms.mo``)."""

    sendsms_user: str
    sendsms_password: str
    admin_password: str
    dlr_key: str
    mo_key: str = ""  # "": citizens' SMS are not passed to the app


def load_kannel_secrets(state_dir: Path) -> KannelSecrets:
    """Environment first, then STATE_DIR/sms-secrets.env; missing values generated, saved 0600."""
    values = load_env_secrets(state_dir / FILE_NAME, KEYS, _DEFAULTS)
    for key, value in values.items():
        if _FORBIDDEN & set(value):
            raise ValueError(f"{key}: must not contain quotes, backslashes, '#' or newlines")
    return KannelSecrets(
        sendsms_user=values["HOTLINE_KANNEL_USER"],
        sendsms_password=values["HOTLINE_KANNEL_PASSWORD"],
        admin_password=values["HOTLINE_KANNEL_ADMIN_PASSWORD"],
        dlr_key=values["HOTLINE_SMS_DLR_KEY"],
        mo_key=values["HOTLINE_SMS_MO_KEY"],
    )
