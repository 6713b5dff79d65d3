"""AriClient.send: a REST call over the ARI websocket written at once, its answer read later
(a small websocket server standing for Asterisk, answering when told)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from callcenter.ari_app.client import AriClient, ChannelGone


class Pbx:
    """Takes RESTRequests over the websocket; answers each when the test says so."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ws: web.WebSocketResponse | None = None

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = self.ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            self.requests.put_nowait(json.loads(msg.data))
        return ws

    async def answer(self, req: dict[str, Any], status: int, body: str = "") -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"type": "RESTResponse",
                                           "request_id": req["request_id"],
                                           "status_code": status, "message_body": body}))


@pytest.fixture
async def connected() -> Any:
    pbx = Pbx()
    app = web.Application()
    app.router.add_get("/ari/events", pbx.events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        ari = AriClient(f"http://127.0.0.1:{port}", "u", "p", "hotline", session)
        events = ari.events()
        assert (await anext(events))["type"] == "_Connected"
        yield ari, pbx
        await events.aclose()
    await runner.cleanup()


async def test_given_websocket_when_sent_then_written_before_its_answer_is_read(
        connected: tuple[AriClient, Pbx]) -> None:
    ari, pbx = connected
    moh = await ari.send_start_moh("c1")
    req = await asyncio.wait_for(pbx.requests.get(), 2)  # on the wire, nothing awaited yet
    assert (req["method"], req["uri"]) == ("POST", "channels/c1/moh?mohClass=default")
    # Other requests go on meanwhile; each answer finds its own request.
    other = asyncio.create_task(ari.request("GET", "/channels/c2"))
    req2 = await asyncio.wait_for(pbx.requests.get(), 2)
    await pbx.answer(req2, 200, '{"id": "c2"}')
    assert await asyncio.wait_for(other, 2) == {"id": "c2"}
    assert not moh.done()
    await pbx.answer(req, 204)
    assert await asyncio.wait_for(moh, 2) is None


async def test_given_channel_gone_when_answer_read_then_channel_gone_raised(
        connected: tuple[AriClient, Pbx]) -> None:
    ari, pbx = connected
    moh = await ari.send_start_moh("c1")
    await pbx.answer(await asyncio.wait_for(pbx.requests.get(), 2), 404,
                     '{"message": "Channel not found"}')
    with pytest.raises(ChannelGone):
        await asyncio.wait_for(moh, 2)
    assert not ari._pending  # nothing left waiting
