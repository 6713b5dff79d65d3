"""Link a callback request to the ticket it is about, for a console user (API and page).

The code must be a ticket of the request's tenant that the user may see (through the console's
ticket service: ``ticket.bad_code``, ``ticket.not_found``; another tenant's ticket is as good as
absent). The request's calls (the one that asked, and the call back that reached the citizen,
if any) are linked to the ticket too, so its history names them; a call back made later
carries the ticket in its call record and links itself (``DialbackManager``). An empty code
unlinks the request (its calls stay on the ticket's history).
"""

from __future__ import annotations

from aiohttp import web

from callcenter.callbacks.store import CallbackRequest, CallbackStore
from callcenter.console.auth import actor_of, in_thread
from callcenter.console.context import SERVICE
from callcenter.console.errors import ApiError
from callcenter.store.users import User
from callcenter.tickets.config import TicketError


async def link_ticket(request: web.Request, store: CallbackStore, user: User,
                      callback_id: int, code: str | None) -> CallbackRequest:
    """Check and link (``code`` None or blank: unlink); raises ApiError / TicketError."""
    app = request.config_dict
    current = await in_thread(app, store.get, callback_id)
    if current is None or current.tenant != user.tenant:
        raise ApiError("callback.not_found", f"no callback request {callback_id}")
    code = (code or "").strip().upper() or None
    if code is not None:
        service = app[SERVICE]
        actor = actor_of(user)
        ticket = await in_thread(app, service.get, code, actor)
        if ticket.tenant != current.tenant:
            raise TicketError("ticket.not_found", f"no ticket {code}")
        calls = [current.call_id, *([current.dial_call_id] if current.dial_call_id else [])]
        for call_id in calls:
            await in_thread(app, service.link_call, code, call_id, actor)
    return await in_thread(app, store.link_ticket, callback_id, code)
