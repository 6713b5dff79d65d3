"""Citizens' SMS to the hotline's number (MO): Kannel's smsbox calls the app over HTTP.

Kannel's `sms-service` (kannel.conf, rendered with ``mo_url``) fetches
``GET /sms/mo?k=KEY&id=%I&from=%p&to=%P&text=%a`` for every message a phone sends to the
hotline's number: ``%I`` is Kannel's id of the message (a UUID; the same on a retry),
``%p`` the sender, ``%P`` the number it was sent to, ``%a`` the whole text.

*Authenticated.* ``k`` is a shared secret, ``HOTLINE_SMS_MO_KEY``, generated like Kannel's
other credentials (``callcenter.sms.credentials``) and written only into kannel.conf (0600);
a request without it, or from outside 127.0.0.0/8 / ::1 (Kannel runs on this machine), is
refused with 403 ``sms_mo_forbidden``.

*Never answered.* The service's ``max-messages = 0`` makes Kannel send nothing back whatever
the app says; the app answers 200 with an empty body once the message is recorded (a reply
SMS would be billed, and "unrecognised" texts get none either). If recording fails the app
answers 503 and smsbox tries again (``http-request-retry``); the message id makes the retry
harmless.

What a message means is not this module's business: ``MoReceiver.handle`` does it (the
composition root wires it to ``callcenter.tickets.replies``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

MO_PATH = "/sms/mo"
MAX_MO_TEXT = 2000  # a concatenated MO of 10 parts is ~1600 characters; more is not a reply
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_MESSAGE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
_NUMBER = re.compile(r"\+?[0-9]{1,20}")


@dataclass(frozen=True)
class IncomingSms:
    """One SMS a phone sent to the hotline's number, as Kannel passed it on."""

    message_id: str | None  # Kannel's id (a UUID), None if Kannel gave none
    sender: str
    receiver: str
    text: str


MoHandler = Callable[[IncomingSms], Awaitable[object]]


@dataclass(frozen=True)
class MoReceiver:
    """The shared secret Kannel's requests must carry, and what to do with a message."""

    key: str
    handle: MoHandler


SMS_MO = web.AppKey("sms_mo", MoReceiver)


def mo_url(base: str, key: str) -> str:
    """The sms-service get-url: our path and key, Kannel's %-escapes for the message."""
    ours = urllib.parse.urlencode({"k": key})
    return f"{base}{MO_PATH}?{ours}&id=%I&from=%p&to=%P&text=%a"


def _error(status: int, error_id: str, detail: str) -> web.Response:
    return web.json_response({"error": error_id, "detail": detail}, status=status)


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:  # a unix socket or a proxy's oddity: not Kannel on this machine
        return False


async def mo_view(request: web.Request) -> web.Response:
    """GET /sms/mo?k=&id=&from=&to=&text=: one citizen's SMS (see the module docstring)."""
    receiver = request.config_dict.get(SMS_MO)
    if receiver is None or not receiver.key:
        return _error(503, "sms_mo_off", "citizens' SMS are not received by this instance")
    q = request.query
    given = q.get("k", "")
    # compare_digest refuses (TypeError) a str with non-ASCII characters: check first.
    if not (_loopback(request.remote) and _PRINTABLE_ASCII.fullmatch(given)
            and hmac.compare_digest(given, receiver.key)):
        return _error(403, "sms_mo_forbidden", "missing or wrong key, or not from this machine")
    sender = (q.get("from") or "").strip()
    if not _NUMBER.fullmatch(sender):
        return _error(400, "sms_mo_bad_request", "from must be a phone number")
    message_id = (q.get("id") or "").strip() or None
    if message_id is not None and not _MESSAGE_ID.fullmatch(message_id):
        message_id = None  # not Kannel's UUID (an escape Kannel left alone): dedupe by answer
    text = q.get("text") or ""
    if len(text) > MAX_MO_TEXT:
        text = text[:MAX_MO_TEXT]
    msg = IncomingSms(message_id, sender, (q.get("to") or "").strip()[:32], text)
    try:
        await receiver.handle(msg)
    except Exception:  # recorded nothing: Kannel retries, the message id keeps it once
        log.exception("SMS from a citizen (Kannel id %s) not recorded", message_id)
        return _error(503, "sms_mo_unavailable", "not recorded; try again")
    return web.Response(status=200, body=b"")


def add_routes(app: web.Application) -> None:
    """Serve citizens' SMS at /sms/mo (needs app[SMS_MO], see callcenter.sms.service)."""
    app.router.add_get(MO_PATH, mo_view)
