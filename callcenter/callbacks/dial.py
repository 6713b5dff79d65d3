"""Start a call back for a console user: the checks of ``rules.dial_refusal`` against the live
state (the request, the tenant's extensions, the queue's and the dialer's busy operators),
then ``DialbackManager.start``. Shared by the API route and the console form.
"""

from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.ari_app.dialback import Dialback, DialRefused
from callcenter.ari_app.service import STASIS
from callcenter.callbacks.store import CallbackStore
from callcenter.calls import dialback as rules
from callcenter.console.auth import in_thread
from callcenter.console.context import CONFIG
from callcenter.queue.redis import ACD
from callcenter.store.users import User

log = logging.getLogger("callcenter.callbacks.dial")


async def start_dialback(request: web.Request, store: CallbackStore, user: User,
                         callback_id: int, extension: str | None) -> Dialback:
    """Ring the user's phone (operators: their own extension, the user name; supervisors:
    ``extension``) for this request; raises DialRefused with a ``rules`` id."""
    app = request.config_dict
    current = await in_thread(app, store.get, callback_id)
    ext = user.name if user.role == "operator" else (extension or "").strip()
    config = app[CONFIG]()
    tenant = config.tenant(user.tenant)
    extensions = {op.extension for op in tenant.operators.operators} if tenant else set()
    service = app.get(STASIS)
    busy: set[str] = set()
    dialling = False
    if service is not None:
        busy |= service.dialback.busy_extensions()
        dialling = current is not None and service.dialback.dialling(current.id)
    acd = app.get(ACD)
    if acd is not None and ext in extensions and current is not None \
            and current.tenant == user.tenant:
        try:
            agent = await acd.agent(user.tenant, ext)
        except (RedisError, OSError):
            raise DialRefused(rules.UNAVAILABLE) from None
        if agent is not None and agent.call_id is not None:
            busy.add(ext)
    why = rules.dial_refusal(
        role=user.role, user_tenant=user.tenant,
        callback_tenant=None if current is None else current.tenant,
        callback_status=None if current is None else current.status, extension=ext,
        tenant_extensions=extensions, busy_extensions=busy, dialling=dialling)
    if why is not None:
        raise DialRefused(why)
    assert current is not None
    if config.trunk.outbound is None:
        raise DialRefused(rules.NO_TRUNK)
    if service is None:
        raise DialRefused(rules.UNAVAILABLE)
    return await service.dialback.start(current, user=user.name, extension=ext,
                                        caller_id=config.trunk.outbound.caller_id,
                                        store=store)
