"""A thin ARI client over aiohttp: REST calls and the event websocket. No call logic here."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class AriError(RuntimeError):
    """ARI answered with an error status."""

    def __init__(self, method: str, path: str, status: int, text: str):
        super().__init__(f"ARI {method} {path} -> {status} {text[:200]}")
        self.status = status


class ChannelGone(AriError):
    """404/409 on a channel: the caller hung up while we acted (normal in telephony)."""


class AriClient:
    """REST + events for one Stasis application."""

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 session: aiohttp.ClientSession):
        self.base = base_url.rstrip("/") + "/ari"
        self.app = app
        self._auth = aiohttp.BasicAuth(user, password)
        self._session = session

    async def request(self, method: str, path: str, **params: Any) -> Any:
        """One REST call; returns the decoded JSON body (or None)."""
        clean = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                 for k, v in params.items() if v is not None}
        async with self._session.request(method, self.base + path, params=clean,
                                         auth=self._auth) as resp:
            text = await resp.text()
            if resp.status >= 400:
                if path.startswith("/channels/") and resp.status in (404, 409, 412):
                    raise ChannelGone(method, path, resp.status, text)
                raise AriError(method, path, resp.status, text)
            return json.loads(text) if text else None

    # -- channels -------------------------------------------------------------------------
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def progress(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/progress")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel_id}", reason=reason)

    async def play(self, channel_id: str, media: str, playback_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/play/{playback_id}", media=media)

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        await self.request("POST", f"/channels/{channel_id}/moh", mohClass=moh_class)

    async def set_var(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/variable", variable=name, value=value)

    async def get_var(self, channel_id: str, name: str) -> str | None:
        try:
            body = await self.request("GET", f"/channels/{channel_id}/variable", variable=name)
        except ChannelGone:
            return None
        return body.get("value") if body else None

    async def subscribe_channel(self, channel_id: str) -> None:
        """Keep this channel's events after it leaves Stasis (ChannelDestroyed has the cause)."""
        await self.request("POST", f"/applications/{self.app}/subscription",
                           eventSource=f"channel:{channel_id}")

    async def channels(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/channels") or [])

    async def application(self) -> dict[str, Any]:
        return dict(await self.request("GET", f"/applications/{self.app}") or {})

    async def reload_module(self, module: str) -> None:
        await self.request("PUT", f"/asterisk/modules/{module}")

    # -- events ---------------------------------------------------------------------------
    async def events(self, heartbeat: float = 5.0) -> AsyncIterator[dict[str, Any]]:
        """Yield events until the websocket closes; pings detect a half-open connection."""
        url = self.base.replace("http", "ws", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        async with self._session.ws_connect(url, params=params, auth=self._auth,
                                            heartbeat=heartbeat, autoping=True) as ws:
            log.info("ARI websocket connected (app %s)", self.app)
            yield {"type": "_Connected"}  # lets the service reconcile before any call event
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield json.loads(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        log.warning("ARI websocket closed (app %s)", self.app)
