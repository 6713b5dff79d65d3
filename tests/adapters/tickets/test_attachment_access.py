"""Issue 15, fault 8b: one level-2 unit asks for another unit's ticket attachment by id.

Two units of one tenant each hold a ticket with a file. The other unit gets 403
``ticket.forbidden`` from the download route (by id and by sha256, with a bearer token and with
the console session the ticket page's link uses), 422 ``ticket.unknown_attachment`` when it
names the foreign attachment under its own ticket's code, and the ticket page (the only page
listing the files; it links to the API route) answers 404 without the file's name. The owning
unit and a supervisor still download the bytes (200).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from callcenter.store.users import UserStore
from callcenter.tickets.rules import Actor
from callcenter.tickets.store import Attachment
from tests.support import api as api_support
from tests.support import lists as support
from tests.support.api import PDF
from tests.support.lists import T0, Lists

hotline_config = api_support.hotline_config
lists = support.lists

OWNER, OTHER, SUPERVISOR = "syt.dongnai", "ubnd.longthanh", "giamsat.binh"
PDF_HEALTH = PDF + b"%so-y-te\n"  # distinct bytes: distinct sha256 per ticket
PDF_ROADS = PDF + b"%long-thanh\n"
FILE_NAME = "bệnh án mật.pdf"


@dataclass
class Two:
    """A ticket with each unit, one file on each."""

    health: str  # with so_y_te
    health_file: Attachment
    roads: str  # with ubnd_long_thanh
    roads_file: Attachment


@pytest.fixture
def two(lists: Lists) -> Two:
    health = lists.ticket(at=T0 - dt.timedelta(hours=2))
    roads = lists.ticket(at=T0 - dt.timedelta(hours=1), field="transport",
                         unit="ubnd_long_thanh", content="Đèn giao thông hỏng.")
    hf = lists.service.attach(health.code, Actor(OWNER, "unit", "so_y_te"), FILE_NAME,
                              "application/pdf", PDF_HEALTH)
    rf = lists.service.attach(roads.code, Actor(OTHER, "unit", "ubnd_long_thanh"),
                              "đèn.pdf", "application/pdf", PDF_ROADS)
    return Two(health.code, hf, roads.code, rf)


@pytest.fixture
def tokens(database_url: str, lists: Lists) -> Iterator[dict[str, str]]:
    store = UserStore(database_url)
    try:
        yield {name: store.issue_token(name)[1] for name in (OWNER, OTHER, SUPERVISOR)}
    finally:
        store.close()


def link(code: str, ref: str | int) -> str:
    return f"/api/v1/tickets/{code}/attachments/{ref}"


async def get(client: TestClient[web.Request, web.Application], path: str,
              token: str | None = None) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.get(path, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_given_other_units_attachment_when_fetched_by_id_then_403_and_no_bytes(
        lists: Lists, two: Two, tokens: dict[str, str]) -> None:
    bearer = await lists.client(None)
    session = await lists.client(OTHER)  # logged in: the page link's way (session cookie)
    for ref in (two.health_file.id, two.health_file.sha256):
        for client, token in ((bearer, tokens[OTHER]), (session, None)):
            status, body, ctype = await get(client, link(two.health, ref), token)
            assert status == 403, (ref, token is not None, body[:200])
            assert ctype.startswith("application/json") and b"ticket.forbidden" in body
            assert PDF_HEALTH not in body
    # The list of the other unit's files is refused the same way.
    status, body, _ = await get(bearer, f"/api/v1/tickets/{two.health}/attachments",
                                tokens[OTHER])
    assert status == 403 and FILE_NAME.encode() not in body


async def test_given_other_units_attachment_id_under_own_ticket_when_fetched_then_422_no_bytes(
        lists: Lists, two: Two, tokens: dict[str, str]) -> None:
    """The id is looked up within the ticket of the path: no way around the ticket's check
    (``ticket.unknown_attachment`` is 422 throughout the API, as for a reply document)."""
    client = await lists.client(None)
    for ref in (two.health_file.id, two.health_file.sha256):
        status, body, _ = await get(client, link(two.roads, ref), tokens[OTHER])
        assert status == 422 and b"ticket.unknown_attachment" in body, body[:200]
        assert PDF_HEALTH not in body
    status, body, _ = await get(client, link(two.roads, two.roads_file.id), tokens[OTHER])
    assert status == 200 and body == PDF_ROADS  # its own file, under its own ticket


async def test_given_other_units_ticket_page_when_opened_then_404_without_file_name_or_link(
        lists: Lists, two: Two) -> None:
    client = await lists.client(OTHER)
    async with client.get(f"/console/tickets/{two.health}", allow_redirects=False) as resp:
        page = await resp.text()
    assert resp.status == 404 and 'data-error-id="ticket.not_found"' in page
    assert FILE_NAME not in page and link(two.health, two.health_file.id) not in page


@pytest.mark.parametrize("user", [OWNER, SUPERVISOR])
async def test_given_owning_unit_or_supervisor_when_attachment_fetched_then_200_with_bytes(
        lists: Lists, two: Two, tokens: dict[str, str], user: str) -> None:
    bearer = await lists.client(None)
    session = await lists.client(user)
    for client, token in ((bearer, tokens[user]), (session, None)):
        status, body, ctype = await get(client, link(two.health, two.health_file.id), token)
        assert (status, ctype) == (200, "application/pdf") and body == PDF_HEALTH
    async with session.get(f"/console/tickets/{two.health}") as resp:
        page = await resp.text()
    assert resp.status == 200 and link(two.health, two.health_file.id) in page
