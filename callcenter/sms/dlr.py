"""Delivery reports: Kannel's smsbox calls the dlr-url we gave with each message.

Each message's dlr-url names its outbox id and a signature of it (HMAC with the key in
STATE_DIR/sms-secrets.env), so nothing but the gateway we told can change a message's status;
Kannel fills in the report's type (%d), SMSC (%i), SMSC message id (%F) and reply (%A).

Kannel's types: 1 delivered to the phone, 2 undelivered, 4 buffered at the SMSC, 8 accepted
by the SMSC, 16 rejected by the SMSC. See `SmsOutbox.mark_dlr` for what each does.

The signature cannot cover the report's type: Kannel takes one dlr-url per message when it
is sent and puts the type into its %d for each report, so every other byte of the URL is the
same for all types, and a signature per type would have to sit in that URL for every type,
readable by whoever sees one report. Whoever holds a filled-in URL can therefore report
another type for that message; what bounds it is that a final status (delivered, failed) is
never changed by a later report (`SmsOutbox.mark_dlr`). Input that is not plain ASCII where
Kannel sends ASCII (id, type, k, smsc, fid) is a 400, never an error of ours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from callcenter.clock import utcnow
from callcenter.sms.batching import GroupCommit
from callcenter.sms.store import DLR_TYPES, DeliveryReport, SmsOutbox

log = logging.getLogger(__name__)

DLR_PATH = "/sms/dlr"
# Every report type: the SMSC's ack (8) also proves a send whose answer we never saw.
DLR_MASK = sum(DLR_TYPES)
_MAX_TEXT = 200


def dlr_signature(key: str, msg_id: int) -> str:
    """The signature of one message's dlr-url (hex, 20 characters)."""
    mac = hmac.new(key.encode(), f"sms-dlr:{msg_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:20]


def dlr_url(base: str, key: str, msg_id: int) -> str:
    """The dlr-url for one message: our id and signature, Kannel's %-escapes for the rest."""
    ours = urllib.parse.urlencode({"id": msg_id, "k": dlr_signature(key, msg_id)})
    return f"{base}?{ours}&type=%d&smsc=%i&fid=%F&st=%A"


@dataclass
class DlrReceiver:
    """What the delivery-report handler needs: the outbox, the key, a clock.

    Reports arriving together are written in one transaction (`GroupCommit`); each request
    is answered once its own report is committed.
    """

    outbox: SmsOutbox
    key: str
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    writer: GroupCommit[DeliveryReport, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.writer = GroupCommit(self._apply, name="sms-dlr-writer")

    def _apply(self, reports: list[DeliveryReport]) -> list[str | None]:
        return self.outbox.apply_reports(reports, self.clock())

    async def close(self) -> None:
        """Wait for reports being written."""
        await self.writer.close()


SMS_DLR = web.AppKey("sms_dlr", DlrReceiver)


_DIGITS = re.compile(r"[0-9]{1,18}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def _printable(text: str | None) -> str | None:
    """The SMSC's free text (%A) with control characters replaced: an SMPP receipt's "text:"
    may hold raw bytes of a UCS-2 message (NUL among them, which PostgreSQL refuses); the
    report itself is still good."""
    if text is None:
        return None
    return "".join("\ufffd" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def _error(status: int, error_id: str, detail: str) -> web.Response:
    return web.json_response({"error": error_id, "detail": detail}, status=status)


async def dlr_view(request: web.Request) -> web.Response:
    """GET /sms/dlr?id=&k=&type=[&smsc=&fid=&st=]: apply one delivery report."""
    receiver = request.config_dict[SMS_DLR]
    q = request.query
    # ASCII digits only: int() would take "１" (fullwidth) or "٨" (Arabic-Indic) for 1 and 8.
    if not (_DIGITS.fullmatch(q.get("id", "")) and _DIGITS.fullmatch(q.get("type", ""))):
        return _error(400, "sms_dlr_bad_request", "id and type must be whole numbers")
    msg_id, dlr_type = int(q["id"]), int(q["type"])
    if msg_id <= 0 or dlr_type not in DLR_TYPES:
        return _error(400, "sms_dlr_bad_request",
                      f"id must be positive, type one of {', '.join(map(str, DLR_TYPES))}")
    # compare_digest refuses (TypeError) a str with non-ASCII characters: check first.
    given = q.get("k", "")
    if not (_PRINTABLE_ASCII.fullmatch(given)
            and hmac.compare_digest(given, dlr_signature(receiver.key, msg_id))):
        return _error(403, "sms_dlr_bad_signature", "signature does not match the message")
    texts = {name: (q.get(name) or None) for name in ("smsc", "fid", "st")}
    if any(v is not None and len(v) > _MAX_TEXT for v in texts.values()):
        return _error(400, "sms_dlr_bad_request", f"smsc, fid and st: at most {_MAX_TEXT} chars")
    # Kannel's SMSC id and the SMSC's message id are ASCII names; anything else is not a report.
    if any(v is not None and not _PRINTABLE_ASCII.fullmatch(v)
           for v in (texts["smsc"], texts["fid"])):
        return _error(400, "sms_dlr_bad_request", "smsc and fid must be printable ASCII")
    status = await receiver.writer.submit(DeliveryReport(
        msg_id, dlr_type, detail=_printable(texts["st"]), smsc_id=texts["smsc"],
        smsc_message_id=texts["fid"]))
    if status is None:
        return _error(404, "sms_dlr_unknown_message", f"no SMS {msg_id} in the outbox")
    log.debug("SMS %d: delivery report %d -> %s", msg_id, dlr_type, status)
    return web.json_response({"id": msg_id, "status": status})


def add_routes(app: web.Application) -> None:
    """Serve delivery reports at /sms/dlr (needs app[SMS_DLR], see callcenter.sms.service)."""
    app.router.add_get(DLR_PATH, dlr_view)
