"""Sending one mail over SMTP with the standard library's ``smtplib`` (blocking: run in a thread).

``send_mail`` builds the MIME message (UTF-8 text, attachments base64) and hands it to the
server: EHLO, STARTTLS when configured (the certificate checked against ``ca_file`` or the
system's CAs, and the host name), AUTH when a login is configured, then MAIL/RCPT/DATA.

Outcomes the dispatcher acts on:

* returns normally: the server took the mail for every recipient ("sent");
* ``PermanentMailError``: the server refused it for good (5xx on MAIL, RCPT or DATA, every
  recipient refused, login refused): "failed", not retried;
* ``TemporaryMailError``: anything else (connection refused or lost, timeout, 4xx, TLS not
  offered or failing): tried again after a back-off.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from callcenter.mail.rules import MailConfig, sender_address
from callcenter.mail.store import Attachment

SMTP_TIMEOUT_S = 60.0


class MailError(Exception):
    """Sending failed."""


class TemporaryMailError(MailError):
    """Not sent this time; try again later."""


class PermanentMailError(MailError):
    """Refused for good."""


@dataclass(frozen=True)
class MailServer:
    """Everything needed to reach the server, the login already read from the environment."""

    host: str
    port: int
    sender: str  # "Name <address>" or an address
    starttls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    timeout_s: float = SMTP_TIMEOUT_S
    ssl_context: ssl.SSLContext | None = None  # tests: trust a self-signed certificate


def server_from_config(cfg: MailConfig, env: Mapping[str, str] | None = None) -> MailServer:
    """The server of ``mail:``, its login read from the environment variables it names.

    A named variable that is unset or empty is an error (TemporaryMailError: it may be set
    before the next try), naming the variable, never its value.
    """
    env = os.environ if env is None else env
    user = password = None
    if cfg.username_env and cfg.password_env:
        user, password = env.get(cfg.username_env), env.get(cfg.password_env)
        missing = [n for n, v in ((cfg.username_env, user), (cfg.password_env, password))
                   if not v]
        if missing:
            raise TemporaryMailError(f"SMTP login: environment variable(s) {', '.join(missing)} "
                                     f"(named by mail.username_env / mail.password_env) not set")
    return MailServer(cfg.host, cfg.port, cfg.sender, cfg.starttls, cfg.ca_file, user, password)


def server_of(cfg: MailConfig | None) -> MailServer | None:
    """The server to send through now: None without ``mail:`` or with ``enabled: false``."""
    if cfg is None or not cfg.enabled:
        return None
    return server_from_config(cfg)


def build_message(server: MailServer, to: Sequence[str], subject: str, body: str,
                  attachments: Sequence[Attachment], message_id: str | None = None
                  ) -> EmailMessage:
    """The MIME message: UTF-8 text, then each attachment."""
    msg = EmailMessage()
    msg["From"] = server.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id or make_msgid(domain=sender_address(server.sender)
                                                 .rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg.set_content(body, charset="utf-8")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=a.filename)
    return msg


def _tls_context(server: MailServer) -> ssl.SSLContext:
    if server.ssl_context is not None:
        return server.ssl_context
    return ssl.create_default_context(cafile=server.ca_file)


def send_mail(server: MailServer, to: Sequence[str], subject: str, body: str,
              attachments: Sequence[Attachment] = (), message_id: str | None = None) -> None:
    """Hand one mail to the server (see the module docstring for the outcomes)."""
    msg = build_message(server, to, subject, body, attachments, message_id)
    try:
        with smtplib.SMTP(server.host, server.port, timeout=server.timeout_s) as smtp:
            smtp.ehlo()
            if server.starttls:
                if not smtp.has_extn("starttls"):
                    raise TemporaryMailError(f"{server.host}:{server.port} does not offer "
                                             "STARTTLS (mail.starttls is true): not sent")
                smtp.starttls(context=_tls_context(server))
                smtp.ehlo()
            if server.username is not None and server.password is not None:
                smtp.login(server.username, server.password)
            refused = smtp.send_message(msg, from_addr=sender_address(server.sender),
                                        to_addrs=list(to))
    except smtplib.SMTPAuthenticationError as e:
        raise PermanentMailError(f"SMTP login refused: {e.smtp_code} {_text(e.smtp_error)}"
                                 ) from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = {code for code, _ in e.recipients.values()}
        what = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in e.recipients.items())
        if all(500 <= c < 600 for c in codes):
            raise PermanentMailError(f"every recipient refused: {what}") from None
        raise TemporaryMailError(f"recipients refused for now: {what}") from None
    except smtplib.SMTPResponseException as e:
        text = f"{e.smtp_code} {_text(e.smtp_error)}"
        if 500 <= e.smtp_code < 600:
            raise PermanentMailError(f"SMTP server refused the mail: {text}") from None
        raise TemporaryMailError(f"SMTP server busy: {text}") from None
    except (smtplib.SMTPException, OSError) as e:  # refused, reset, timeout, TLS failure
        raise TemporaryMailError(f"SMTP {server.host}:{server.port}: "
                                 f"{type(e).__name__}: {e}") from None
    if refused:
        # Some recipients took it: it is sent (a retry would repeat it to the others).
        raise PartlySent(refused)


class PartlySent(MailError):
    """Sent, but some recipients were refused (the others have it: not tried again)."""

    def __init__(self, refused: dict[str, tuple[int, bytes]]):
        super().__init__("; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items()))


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
