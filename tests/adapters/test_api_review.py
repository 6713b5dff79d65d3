"""The disclosure review over the HTTP API (SQLite and PostgreSQL): the publish action with
edited texts, decline with a reason, roles; the public feed follows."""

from __future__ import annotations

from typing import Any

from tests.support import api as support
from tests.support.api import Api

api = support.api
hotline_config = support.hotline_config

FEED = "/public/dongnai/tickets.json"


async def _resolved(api: Api) -> dict[str, Any]:
    t = await api.open_ticket(content="Tôi là Nguyễn Thị Hoa, 0912345678: trạm y tế đóng cửa.")
    code = t["code"]
    await api.act(code, "tdv.an", "forward", 0, unit="so_y_te")
    await api.act(code, "syt.dongnai", "accept", 1)
    return await api.act(code, "syt.dongnai", "resolve", 2,
                         result="Đã gọi bà Hoa: trạm y tế mở cửa lại.")


async def test_given_resolved_ticket_when_published_with_texts_then_feed_reads_them(
        api: Api) -> None:
    t = await _resolved(api)
    assert t["review"] == "pending" and t["publishable"] is False
    assert (await api.call("GET", FEED, None, 200))["items"] == []
    done = await api.act(t["code"], "giamsat.binh", "publish", 3,
                         question="Trạm y tế xã đóng cửa giờ hành chính.",
                         answer="Trạm y tế đã mở cửa lại.")
    assert (done["review"], done["public_answer"]) == ("published", "Trạm y tế đã mở cửa lại.")
    (item,) = (await api.call("GET", FEED, None, 200))["items"]
    assert (item["question"], item["answer"]) == ("Trạm y tế xã đóng cửa giờ hành chính.",
                                                  "Trạm y tế đã mở cửa lại.")
    audit = await api.call("GET", f"/api/v1/tickets/{t['code']}/audit", "giamsat.binh", 200)
    entries = audit["entries"]
    assert any(e["event"] == "publish" and e["actor"]["user"] == "giamsat.binh"
               for e in entries), audit


async def test_given_resolved_ticket_when_declined_then_reason_and_not_public(
        api: Api) -> None:
    t = await _resolved(api)
    bad = await api.act(t["code"], "giamsat.binh", "decline", 3, expect=422)
    assert bad["error"]["id"] == "request.invalid"  # a reason is required
    done = await api.act(t["code"], "quantri", "decline", 3, reason="Thông tin riêng tư")
    assert (done["review"], done["decline_reason"]) == ("declined", "Thông tin riêng tư")
    assert (await api.call("GET", FEED, None, 200))["items"] == []


async def test_given_operator_or_unit_when_publish_or_decline_then_403(api: Api) -> None:
    t = await _resolved(api)
    for user in ("tdv.an", "syt.dongnai"):
        body = await api.act(t["code"], user, "publish", 3, expect=403, answer="x")
        assert body["error"]["id"] == "ticket.forbidden"
        body = await api.act(t["code"], user, "decline", 3, expect=403, reason="x")
        assert body["error"]["id"] == "ticket.forbidden"
    body = await api.act(t["code"], "giamsat.binh", "publish", 3, expect=422,
                         answer="Gọi 0912 345 678.")
    assert body["error"]["id"] == "ticket.personal_data"
