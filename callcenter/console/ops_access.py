"""Who may read the operations endpoints' details (``/metrics``, ``/readyz``): one rule for both.

The service binds HTTP to loopback by default, and Prometheus (or a load balancer's probe)
usually runs on the same host. A request is let in without credentials only when its peer is a
loopback address **and** it carries no proxy header (``Forwarded``, ``X-Forwarded-For``,
``X-Real-IP``): a reverse proxy on the same host would otherwise make every outside request
look local. Any other request needs ``Authorization: Bearer <token>`` of an active user whose
role is supervisor or admin (the console's API tokens, ``callcenter.console.auth``); such a
request is scoped to the token's tenant (``OpsAccess.tenant``). Refusals are JSON with stable
ids: 401 ``auth.required`` (no, unknown, expired or revoked token, or the console's user store
is not wired), 403 ``auth.forbidden`` (another role). Each endpoint decides what a refusal
means for it: ``/metrics`` answers with it, ``/readyz`` only hides its details.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from aiohttp import web

from callcenter.console.auth import CHALLENGE, USERS, bearer_token, in_thread
from callcenter.console.errors import error_response

OPS_ROLES = frozenset({"supervisor", "admin"})
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


@dataclass(frozen=True)
class OpsAccess:
    """The outcome of the rule: granted (to all tenants or one), or the refusal to send."""

    tenant: str | None = None  # None with no refusal: every tenant (a local request)
    refusal: web.Response | None = None

    @property
    def granted(self) -> bool:
        """True when the request may read the details."""
        return self.refusal is None


def is_local(request: web.Request) -> bool:
    """True when the peer is a loopback address and no proxy forwarded the request."""
    if any(h in request.headers for h in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:  # a unix socket or an unknown peer: not trusted
        return False


def _refuse_401(message: str) -> OpsAccess:
    return OpsAccess(refusal=error_response("auth.required", message, 401, headers=CHALLENGE))


async def ops_access(request: web.Request, what: str) -> OpsAccess:
    """Apply the rule to ``request``; ``what`` names the endpoint's data in refusals."""
    if is_local(request):
        return OpsAccess()
    app = request.config_dict
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or USERS not in app:
        return _refuse_401(f"{what} from outside loopback need "
                           "Authorization: Bearer <token> of a supervisor or admin")
    user = await in_thread(app, app[USERS].authenticate, token, now=dt.datetime.now(dt.UTC))
    if user is None:
        return _refuse_401("the token is not valid (unknown, expired or revoked)")
    if user.role not in OPS_ROLES:
        return OpsAccess(refusal=error_response(
            "auth.forbidden", f"{what} need the role admin or supervisor; "
            f"{user.name} is {user.role}", 403))
    return OpsAccess(tenant=user.tenant)
