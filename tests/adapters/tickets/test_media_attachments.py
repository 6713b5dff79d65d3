"""Orders' item 12: citizens' photos and videos ("kèm theo hình ảnh, đoạn phim") attached to a
ticket through the real HTTP API: MP4, MOV and HEIC accepted by their ``ftyp`` brand and
served back with their type as a download; a JPEG renamed .mp4 refused; a video over the video
limit and a PDF over the document limit refused with the limit of their kind (in Vietnamese).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData

from tests.support import api as support
from tests.support.api import MAX_UPLOAD, MAX_VIDEO_UPLOAD, PDF, Api

api = support.api
hotline_config = support.hotline_config
V1 = "/api/v1"
UNIT = "syt.dongnai"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 64


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF file's first box (size, ``ftyp``, major brand, version, compatible brands)
    followed by an empty ``mdat`` box: what a phone's camera writes first."""
    body = brand + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08mdat"


async def _forwarded(api: Api) -> str:
    code: str = (await api.open_ticket())["code"]
    await api.act(code, "tdv.an", "forward", 0, unit="so_y_te")
    return code


async def _upload(api: Api, code: str, data: bytes, name: str, ctype: str,
                  expect: int) -> Any:
    form = FormData()
    form.add_field("file", data, filename=name, content_type=ctype)
    return await api.call("POST", f"{V1}/tickets/{code}/attachments", UNIT, expect, data=form)


@pytest.mark.parametrize(("data", "name", "ctype"), [
    (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "clip.mp4", "video/mp4"),
    (ftyp(b"qt  ", b"qt  "), "IMG_0001.MOV", "video/quicktime"),
    (ftyp(b"heic", b"mif1", b"heic"), "IMG_0002.HEIC", "image/heic"),
])
async def test_given_phone_photo_or_video_when_attached_then_accepted_and_served_as_download(
        api: Api, data: bytes, name: str, ctype: str) -> None:
    code = await _forwarded(api)
    att = await _upload(api, code, data + b"\x00" * 4096, name, ctype, 201)
    assert att["content_type"] == ctype
    resp = await api.client.get(f"{V1}/tickets/{code}/attachments/{att['id']}",
                                headers=api.auth(UNIT))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == ctype
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert await resp.read() == data + b"\x00" * 4096


async def test_given_jpeg_renamed_mp4_when_attached_then_415_and_nothing_stored(
        api: Api) -> None:
    code = await _forwarded(api)
    body = await _upload(api, code, JPEG, "clip.mp4", "video/mp4", 415)
    assert body["error"]["id"] == "ticket.upload_type"
    files = await api.call("GET", f"{V1}/tickets/{code}/attachments", UNIT, 200)
    assert files["items"] == []


async def test_given_video_over_the_video_limit_when_attached_then_413_naming_the_limit(
        api: Api) -> None:
    code = await _forwarded(api)
    video = ftyp(b"mp42", b"isom", b"mp42")
    # Larger than a document may be, within the video limit: accepted.
    await _upload(api, code, video + b"\x00" * (MAX_UPLOAD * 2), "clip.mp4", "video/mp4", 201)
    body = await _upload(api, code, video + b"\x00" * MAX_VIDEO_UPLOAD, "big.mp4", "video/mp4",
                         413)
    error = body["error"]
    assert error["id"] == "ticket.upload_too_large"
    assert error["details"]["category"] == "video"
    assert error["details"]["max_bytes"] == MAX_VIDEO_UPLOAD
    assert error["details"]["message_vi"] == \
        "Tệp đính kèm quá lớn: đoạn phim tối đa 2 MB."


async def test_given_pdf_over_the_document_limit_but_under_the_video_one_then_413(
        api: Api) -> None:
    code = await _forwarded(api)
    body = await _upload(api, code, PDF + b"%" * (MAX_UPLOAD * 2), "cong-van.pdf",
                         "application/pdf", 413)
    error = body["error"]
    assert error["details"]["category"] == "document"
    assert error["details"]["max_bytes"] == MAX_UPLOAD
    assert error["details"]["message_vi"] == \
        "Tệp đính kèm quá lớn: văn bản tối đa 256 KB."
    files = await api.call("GET", f"{V1}/tickets/{code}/attachments", UNIT, 200)
    assert files["items"] == []
