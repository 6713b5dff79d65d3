"""Who is on the other end of a request, and did it come over HTTPS — the one place that says.

A reverse proxy (nginx, a load balancer) in front of the console makes every request come from
its own address over plain HTTP, and tells the truth in ``X-Forwarded-For`` (the client's
address, each proxy appending the address it got the request from) and ``X-Forwarded-Proto``.
Anybody can send those headers, so they count only when the direct peer is in
``console.trusted_proxies`` (empty by default: never):

* ``client_address(request)``: starting at the peer, step left through ``X-Forwarded-For``
  while the current address is a trusted proxy; the first address that is not one is the
  client (the right-most untrusted entry: what a client writes itself sits further left and is
  never reached). The login rate limit and the logs use it.
* ``is_https(request)``: the connection itself is TLS, or a trusted peer says
  ``X-Forwarded-Proto: https`` (its right-most value: the proxy next to us wrote it).
  Session cookies are ``Secure`` and responses carry ``Strict-Transport-Security`` then.

``ops_access.is_local`` (``/metrics``, ``/readyz`` without a token) stays stricter on purpose:
any proxy header there means "not local", trusted or not.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final

from aiohttp import web

from callcenter.console.context import CONFIG

HSTS: Final = "max-age=31536000"  # one year; the console has no subdomains of its own
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _trusted(request: web.Request) -> tuple[Network, ...]:
    config = request.config_dict.get(CONFIG)
    return _networks(config().console.trusted_proxies) if config is not None else ()


def _in(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a unix socket, or a forwarded value that is no address
        return False
    return any(ip in n for n in networks)


def _peer_trusted(request: web.Request) -> bool:
    trusted = _trusted(request)
    return bool(trusted) and _in(request.remote or "", trusted)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or behind trusted proxies the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy ("?" when unknown)."""
    current = request.remote or "?"
    trusted = _trusted(request)
    if not trusted or not _in(current, trusted):
        return current
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", ())
            for h in v.split(",")]
    for hop in reversed(hops):
        if not _in(current, trusted):
            break
        try:
            current = str(ipaddress.ip_address(hop))
        except ValueError:  # garbage from a proxy: keep the last address known good
            break
    return current


def is_https(request: web.Request) -> bool:
    """True over TLS to the app itself, or when a trusted proxy says the client used https."""
    if request.secure:
        return True
    if not _peer_trusted(request):
        return False
    values = [p.strip().lower() for v in request.headers.getall("X-Forwarded-Proto", ())
              for p in v.split(",")]
    return bool(values) and values[-1] == "https"


async def _hsts(request: web.Request, response: web.StreamResponse) -> None:
    if is_https(request):
        response.headers["Strict-Transport-Security"] = HSTS


def add_hsts(app: web.Application) -> None:
    """Every response of ``app`` (and its sub-apps) served over HTTPS tells the browser to
    come back over HTTPS only; over plain HTTP nothing is said (browsers ignore it there)."""
    app.on_response_prepare.append(_hsts)
