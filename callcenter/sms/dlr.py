"""Delivery reports: Kannel's smsbox calls the dlr-url we gave with each message.

Each message's dlr-url names its outbox id and a signature of it (HMAC with the key in
STATE_DIR/sms-secrets.env), so nothing but the gateway we told can change a message's status;
Kannel fills in the report's type (%d), SMSC (%i), SMSC message id (%F) and reply (%A).

Kannel's types: 1 delivered to the phone, 2 undelivered, 4 buffered at the SMSC, 8 accepted
by the SMSC, 16 rejected by the SMSC. See `SmsOutbox.mark_dlr` for what each does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
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


def _error(status: int, error_id: str, detail: str) -> web.Response:
    return web.json_response({"error": error_id, "detail": detail}, status=status)


async def dlr_view(request: web.Request) -> web.Response:
    """GET /sms/dlr?id=&k=&type=[&smsc=&fid=&st=]: apply one delivery report."""
    receiver = request.config_dict[SMS_DLR]
    q = request.query
    try:
        msg_id = int(q.get("id", ""))
        dlr_type = int(q.get("type", ""))
    except ValueError:
        return _error(400, "sms_dlr_bad_request", "id and type must be whole numbers")
    if msg_id <= 0 or dlr_type not in DLR_TYPES:
        return _error(400, "sms_dlr_bad_request",
                      f"id must be positive, type one of {', '.join(map(str, DLR_TYPES))}")
    if not hmac.compare_digest(q.get("k", ""), dlr_signature(receiver.key, msg_id)):
        return _error(403, "sms_dlr_bad_signature", "signature does not match the message")
    texts = {name: (q.get(name) or None) for name in ("smsc", "fid", "st")}
    if any(v is not None and len(v) > _MAX_TEXT for v in texts.values()):
        return _error(400, "sms_dlr_bad_request", f"smsc, fid and st: at most {_MAX_TEXT} chars")
    status = await receiver.writer.submit(DeliveryReport(
        msg_id, dlr_type, detail=texts["st"], smsc_id=texts["smsc"],
        smsc_message_id=texts["fid"]))
    if status is None:
        return _error(404, "sms_dlr_unknown_message", f"no SMS {msg_id} in the outbox")
    log.debug("SMS %d: delivery report %d -> %s", msg_id, dlr_type, status)
    return web.json_response({"id": msg_id, "status": status})


def add_routes(app: web.Application) -> None:
    """Serve delivery reports at /sms/dlr (needs app[SMS_DLR], see callcenter.sms.service)."""
    app.router.add_get(DLR_PATH, dlr_view)
