"""A thin ARI client over aiohttp: REST calls and the event websocket. No call logic here."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

log = logging.getLogger(__name__)


class AriError(RuntimeError):
    """ARI answered with an error status."""

    def __init__(self, method: str, path: str, status: int, text: str):
        super().__init__(f"ARI {method} {path} -> {status} {text[:200]}")
        self.status = status


class ChannelGone(AriError):
    """404/409 on a channel: the caller hung up while we acted (normal in telephony)."""


async def hangup_quietly(ari: AriClient, channel_id: str, reason: str = "normal") -> None:
    """Hang a channel up; one already gone (hung up on its own, never ours) is no error."""
    try:
        await ari.hangup(channel_id, reason)
    except AriError:
        pass


def _clean(params: dict[str, Any]) -> dict[str, str]:
    return {k: (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in params.items() if v is not None}


def _result(method: str, path: str, status: int, text: str) -> Any:
    """A REST answer's decoded JSON body (or None); an error status raised."""
    if status >= 400:
        if path.startswith("/channels/") and status in (404, 409, 412):
            raise ChannelGone(method, path, status, text)
        raise AriError(method, path, status, text)
    return json.loads(text) if text else None


class AriClient:
    """REST + events for one Stasis application.

    While the event websocket is up, REST requests travel over it too ("ARI REST over
    WebSocket", Asterisk 22): no HTTP request to build and parse on either side, which is most
    of what the app adds to the time a caller waits for the answer (bench/answer_latency.py).
    Without the websocket (before connecting, during a reconnect) they go over HTTP.
    """

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 session: aiohttp.ClientSession, rest_over_ws: bool = True):
        self.base = base_url.rstrip("/") + "/ari"
        self.app = app
        self._auth = aiohttp.BasicAuth(user, password)
        self._session = session
        self._rest_over_ws = rest_over_ws
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._ids = itertools.count(1)

    async def request(self, method: str, path: str, **params: Any) -> Any:
        """One REST call; returns the decoded JSON body (or None)."""
        clean = _clean(params)
        ws = self._ws
        if ws is not None and not ws.closed:
            request_id, future = await self._send_ws(ws, method, path, clean)
            status, text = await self._answer_ws(method, path, request_id, future)
        else:
            async with self._session.request(method, self.base + path, params=clean,
                                             auth=self._auth) as resp:
                status, text = resp.status, await resp.text()
        return _result(method, path, status, text)

    async def send(self, method: str, path: str, **params: Any) -> asyncio.Task[Any]:
        """Send a REST call now and read its answer later: the task returns (or raises) what
        ``request`` would. Over the websocket the request is written before this returns;
        without it (HTTP) the task sends it."""
        ws = self._ws
        if ws is None or ws.closed:
            return asyncio.create_task(self.request(method, path, **params))
        request_id, future = await self._send_ws(ws, method, path, _clean(params))

        async def answer() -> Any:
            return _result(method, path,
                           *await self._answer_ws(method, path, request_id, future))

        return asyncio.create_task(answer(), name=f"ari:{method} {path}")

    async def _send_ws(self, ws: aiohttp.ClientWebSocketResponse, method: str, path: str,
                       params: dict[str, str]) -> tuple[str, asyncio.Future[tuple[int, str]]]:
        request_id = str(next(self._ids))
        uri = path.lstrip("/") + (f"?{urlencode(params, quote_via=quote)}" if params else "")
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send_str(json.dumps({"type": "RESTRequest", "request_id": request_id,
                                          "method": method, "uri": uri}))
        except BaseException as e:
            self._pending.pop(request_id, None)
            if isinstance(e, ConnectionError):
                raise AriError(method, path, 0, f"not sent over the websocket: {e!r}") from e
            raise
        return request_id, future

    async def _answer_ws(self, method: str, path: str, request_id: str,
                         future: asyncio.Future[tuple[int, str]]) -> tuple[int, str]:
        try:
            # (Not asyncio.wait_for: its waiter wakes us one loop turn after the response.)
            async with asyncio.timeout(10):
                return await future
        except (TimeoutError, ConnectionError) as e:
            raise AriError(method, path, 0, f"no answer over the websocket: {e!r}") from e
        finally:
            self._pending.pop(request_id, None)

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(why))
        self._pending.clear()

    # -- channels -------------------------------------------------------------------------
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def progress(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/progress")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel_id}", reason=reason)

    async def play(self, channel_id: str, media: str, playback_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/play/{playback_id}", media=media)

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback (barge-in); False if it had already finished (404)."""
        try:
            await self.request("DELETE", f"/playbacks/{playback_id}")
        except AriError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        await self.request("POST", f"/channels/{channel_id}/moh", mohClass=moh_class)

    async def send_start_moh(self, channel_id: str,
                             moh_class: str = "default") -> asyncio.Task[None]:
        """``start_moh`` sent now, its answer read later (``send``)."""
        return await self.send("POST", f"/channels/{channel_id}/moh", mohClass=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{channel_id}/moh")

    async def originate(self, endpoint: str, channel_id: str, *, app_args: str, timeout_s: int,
                        caller_id: str | None = None,
                        originator: str | None = None) -> dict[str, Any]:
        """Ring ``endpoint`` as ``channel_id``; when answered it enters our app with
        ``app_args``. Events of the ringing channel reach the app from the start."""
        return dict(await self.request(
            "POST", f"/channels/{channel_id}", endpoint=endpoint, app=self.app,
            appArgs=app_args, timeout=timeout_s, callerId=caller_id,
            originator=originator) or {})

    async def snoop(self, channel_id: str, snoop_id: str, *, spy: str = "both",
                    whisper: str = "none", app_args: str = "") -> dict[str, Any]:
        """Snoop on a channel: a new channel ``snoop_id`` entering our app with ``app_args``
        hears the channel (``spy``: in | out | both | none) and speaks into it (``whisper``)."""
        return dict(await self.request(
            "POST", f"/channels/{channel_id}/snoop", spy=spy, whisper=whisper, app=self.app,
            appArgs=app_args, snoopId=snoop_id) or {})

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        await self.request("POST", f"/bridges/{bridge_id}", type=kind)

    async def add_to_bridge(self, bridge_id: str, channels: list[str]) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/addChannel", channel=",".join(channels))

    async def remove_from_bridge(self, bridge_id: str, channels: list[str]) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/removeChannel",
                           channel=",".join(channels))

    async def start_bridge_moh(self, bridge_id: str, moh_class: str = "default") -> None:
        await self.request("POST", f"/bridges/{bridge_id}/moh", mohClass=moh_class)

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}/moh")

    async def transfer_progress(self, channel_id: str, state: str) -> None:
        """Answer a phone's REFER handled by the app (PJSIP_TRANSFER_HANDLING()=ari-only):
        channel_progress | channel_answered | channel_declined | channel_unavailable."""
        await self.request("POST", f"/channels/{channel_id}/transfer_progress", states=state)

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """Destroy a bridge; False when it was already gone."""
        try:
            await self.request("DELETE", f"/bridges/{bridge_id}")
        except AriError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def record_bridge(self, bridge_id: str, name: str, fmt: str = "wav") -> None:
        """Record the bridge's mixed audio to <recordings>/<name>.<fmt> until it is destroyed."""
        await self.request("POST", f"/bridges/{bridge_id}/record", name=name, format=fmt,
                           ifExists="overwrite", beep=False, terminateOn="none")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/variable", variable=name, value=value)

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/continue")

    async def subscribe_channel(self, channel_id: str) -> None:
        """Keep this channel's events after it leaves Stasis (ChannelDestroyed has the cause)."""
        await self.request("POST", f"/applications/{self.app}/subscription",
                           eventSource=f"channel:{channel_id}")

    async def channel_exists(self, channel_id: str) -> bool:
        """Whether Asterisk still has this channel (False once it is destroyed: 404)."""
        try:
            await self.request("GET", f"/channels/{channel_id}")
        except ChannelGone as e:
            if e.status == 404:
                return False
            raise
        return True

    async def channels(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/channels") or [])

    async def application(self) -> dict[str, Any]:
        return dict(await self.request("GET", f"/applications/{self.app}") or {})

    async def application_named(self, name: str) -> dict[str, Any] | None:
        """Another Stasis application's state (its channels); None when Asterisk has none."""
        try:
            return dict(await self.request("GET", f"/applications/{name}"))
        except AriError as e:
            if e.status == 404:
                return None
            raise

    async def move(self, channel_id: str, app: str) -> None:
        """Move a channel from the Stasis application it is in to ``app``."""
        await self.request("POST", f"/channels/{channel_id}/move", app=app)

    async def startup_time(self) -> str | None:
        """When this Asterisk process started (``/asterisk/info``), to tell a restart."""
        info = await self.request("GET", "/asterisk/info", only="status")
        status = (info or {}).get("status") or {}
        started = status.get("startup_time")
        return str(started) if started else None

    async def reload_module(self, module: str) -> None:
        await self.request("PUT", f"/asterisk/modules/{module}")

    # -- events ---------------------------------------------------------------------------
    async def events(self, heartbeat: float = 5.0) -> AsyncGenerator[dict[str, Any], None]:
        """Yield events until the websocket closes; pings detect a half-open connection."""
        url = self.base.replace("http", "ws", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        async with self._session.ws_connect(url, params=params, auth=self._auth,
                                            heartbeat=heartbeat, autoping=True) as ws:
            log.info("ARI websocket connected (app %s)", self.app)
            # A reader task of its own: REST responses must be taken off the socket even
            # while the service is busy with an event (e.g. reconciling over REST).
            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            reader = asyncio.create_task(self._read(ws, queue), name="ari-ws-reader")
            if self._rest_over_ws:
                self._ws = ws
            try:
                yield {"type": "_Connected"}  # lets the service reconcile before call events
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                self._ws = None
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                self._fail_pending("ARI websocket closed")
        log.warning("ARI websocket closed (app %s)", self.app)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse,
                    queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "RESTResponse":
                    future = self._pending.get(str(data.get("request_id")))
                    if future is not None and not future.done():
                        future.set_result((int(data.get("status_code", 0)),
                                           data.get("message_body") or ""))
                else:
                    queue.put_nowait(data)
        finally:
            self._fail_pending("ARI websocket closed")
            queue.put_nowait(None)
