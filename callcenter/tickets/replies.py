"""Citizens' SMS (Kannel's MO, ``callcenter.sms.mo``) into the ticket service: the answer to
the resolve notice's satisfaction question (``callcenter.tickets.survey``).

The composition root passes ``reply_handler(lambda: app[TICKETS])`` to ``sms_context``; the
service's blocking work runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from callcenter.sms.mo import IncomingSms, MoHandler
from callcenter.tickets.service import ReplyResult, TicketService


def reply_handler(service: Callable[[], TicketService]) -> MoHandler:
    """What the MO route does with a citizen's SMS: ``TicketService.citizen_reply``."""

    async def handle(msg: IncomingSms) -> ReplyResult:
        return await asyncio.to_thread(service().citizen_reply, message_id=msg.message_id,
                                       from_number=msg.sender, to_number=msg.receiver,
                                       text=msg.text)

    return handle
