"""The console's quality review (SQLite and PostgreSQL) with a real recording file (a small WAV
made here): the recording plays with Range (200, 206 + Content-Range, seeking), each play is
audited once (not per range request), only admins download it (audited), a name leading out
of the recordings folder is refused, operators, units and another province's supervisor get
403; the weekly sample (N from the config, the same for two supervisors), the scoring form
(stored, edited, audited, Vietnamese errors) and the per-operator report with its xlsx."""

from __future__ import annotations

import datetime as dt
import html
import re
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.config.file import load_config
from callcenter.console.passwords import TEST_PARAMS, Passwords
from callcenter.console.sessions import PASSWORDS
from callcenter.console.setup import setup_console
from callcenter.quality.rules import parse_period
from callcenter.quality.store import QualityStore
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from tests.adapters.test_call_pages import record
from tests.support.api import CONFIG, UPLOAD_LIMITS, USERS
from tests.support.lists import PASSWORD, Clock, csrf_of, xlsx_rows

W49 = parse_period("2026-W49", "Asia/Ho_Chi_Minh")
T0 = W49.start + dt.timedelta(days=1, hours=3)  # Tuesday 01/12/2026 10:00 in Đồng Nai
NOW = W49.start + dt.timedelta(days=4)  # Friday of that week
CALL = "pbx1:1763800000.1"
REC = "2026/12/01/pbx1-1763800000.1.wav"
PAGE = "/console/quality"
CALL_PAGE = f"{PAGE}/calls/{quote(CALL, safe=':')}"
PLAY = f"{CALL_PAGE}/recording"
USERS_HERE = {**USERS, "giamsat.thanhhoa": ("supervisor", "thanhhoa", None)}
Client = TestClient[web.Request, web.Application]


def make_wav(path: Path, seconds: float = 1.0) -> bytes:
    """A mono 8 kHz 16-bit WAV (as Asterisk records) of a rising tone; its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(((i * 37) % 65536).to_bytes(2, "little")
                               for i in range(int(8000 * seconds))))
    return path.read_bytes()


@dataclass
class Quality:
    server: TestServer
    recordings: Path
    audio: bytes
    store: QualityStore
    records: CallRecordStore
    clients: list[Client]

    async def client(self, name: str) -> Client:
        client: Client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        page = await (await client.get("/console/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        resp = await client.post("/console/login", data={
            "username": name, "password": PASSWORD, "csrf": token[1]}, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return client

    def plays(self) -> list[tuple[str, str, str]]:
        return [(a.actor, a.action, a.call_id) for a in reversed(self.store.audit_log())
                if a.action in ("play", "download")]


@pytest.fixture
async def quality(database_url: str, tmp_path: Path) -> AsyncIterator[Quality]:
    """The console with quality pages on a migrated database, a recordings folder holding one
    call's WAV, Đồng Nai's sample set to 2 calls per operator, users of every role."""
    upgrade_head(database_url)
    path = tmp_path / "hotline.yaml"
    path.write_text(CONFIG.replace("    tickets:\n      code_prefix: DN",
                                   "    quality: {sample_per_operator: 2}\n"
                                   "    tickets:\n      code_prefix: DN"), encoding="utf-8")
    config = load_config(path)
    assert config.tenants[0].quality.sample_per_operator == 2
    recordings = tmp_path / "spool" / "recording"
    audio = make_wav(recordings / REC)
    app = web.Application()
    setup_console(app, database_url=database_url, config=lambda: config,
                  files_dir=tmp_path / "files", upload_limits=UPLOAD_LIMITS, clock=Clock(NOW),
                  recordings=lambda: recordings)
    app[PASSWORDS] = hasher = Passwords(TEST_PARAMS)
    users = UserStore(database_url)
    try:
        hashed = hasher.hash(PASSWORD)
        for name, (role, tenant, unit) in USERS_HERE.items():
            users.add_user(name, role, tenant, unit, now=NOW)
            users.set_password(name, hashed, now=NOW)
    finally:
        users.close()
    records = CallRecordStore(database_url)
    records.insert_once(record(1, T0, recording=REC))
    store = QualityStore(database_url)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    holder = Quality(server, recordings, audio, store, records, [])
    try:
        yield holder
    finally:
        for c in holder.clients:
            await c.close()
        await server.close()
        store.close()
        records.close()


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A WAV outside the recordings folder (what a traversal would reach)."""
    secret = tmp_path / "secret.wav"
    make_wav(secret, 0.1)
    yield secret


def error_id(page: str) -> str | None:
    m = re.search(r'data-error-id="([^"]+)"', page)
    return m[1] if m else None


# -- playing ----------------------------------------------------------------------------------


async def test_given_supervisor_when_recording_played_then_whole_file_and_one_play_audited(
        quality: Quality) -> None:
    client = await quality.client("giamsat.binh")
    resp = await client.get(PLAY)
    assert resp.status == 200
    assert await resp.read() == quality.audio
    assert resp.headers["Content-Type"] == "audio/wav"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert "attachment" not in resp.headers.get("Content-Disposition", "")
    assert quality.plays() == [("giamsat.binh", "play", CALL)]
    entry = quality.store.audit_log()[0]
    assert (entry.tenant, entry.role, entry.at) == ("dongnai", "supervisor", NOW)


async def test_given_range_requests_when_seeking_then_206_with_content_range_one_audit(
        quality: Quality) -> None:
    client = await quality.client("giamsat.binh")
    size = len(quality.audio)

    first = await client.get(PLAY, headers={"Range": "bytes=0-"})  # what <audio> asks first
    assert first.status == 206
    assert first.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    assert await first.read() == quality.audio
    seek = await client.get(PLAY, headers={"Range": "bytes=8000-8999"})
    assert seek.status == 206
    assert seek.headers["Content-Range"] == f"bytes 8000-8999/{size}"
    assert await seek.read() == quality.audio[8000:9000]
    tail = await client.get(PLAY, headers={"Range": "bytes=12000-"})
    assert tail.status == 206 and await tail.read() == quality.audio[12000:]
    assert quality.plays() == [("giamsat.binh", "play", CALL)]  # one play, three requests

    again = await client.get(PLAY, headers={"Range": "bytes=0-"})  # played from the start
    assert again.status == 206
    assert len(quality.plays()) == 2


@pytest.mark.parametrize("name", ["../secret.wav", "2026/../../secret.wav", "/etc/passwd",
                                  "link.wav"])
async def test_given_recording_name_leading_out_of_folder_when_played_then_404_not_audited(
        quality: Quality, outside: Path, name: str) -> None:
    (quality.recordings / "link.wav").symlink_to(outside)  # inside, but resolves outside
    quality.records.insert_once(record(2, T0, recording=name))
    client = await quality.client("quantri")
    for path in (f"{PAGE}/calls/{quote('pbx1:1763800000.2', safe=':')}/recording",
                 f"{PAGE}/calls/{quote('pbx1:1763800000.2', safe=':')}/recording/download"):
        resp = await client.get(path)
        body = await resp.read()
        assert resp.status == 404, path
        assert outside.read_bytes() not in body
    assert quality.plays() == []


@pytest.mark.parametrize("name", ["tdv.an", "syt.dongnai"])
async def test_given_operator_or_unit_when_recording_or_review_page_asked_then_403(
        quality: Quality, name: str) -> None:
    client = await quality.client(name)
    for path in (PLAY, f"{PLAY}/download", CALL_PAGE, PAGE, f"{PAGE}/report"):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert error_id(await resp.text()) == "auth.forbidden"
    assert quality.plays() == []


async def test_given_other_provinces_supervisor_when_call_asked_then_403_nothing_served(
        quality: Quality) -> None:
    client = await quality.client("giamsat.thanhhoa")
    for path in (PLAY, CALL_PAGE):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert quality.audio not in await resp.read()
    token = await csrf_of(client, PAGE)
    resp = await client.post(f"{CALL_PAGE}/review", data={
        "csrf": token, "greeting": "1", "accuracy": "1", "attitude": "1",
        "no_buck_passing": "dat"}, allow_redirects=False)
    assert resp.status == 403
    assert quality.plays() == [] and quality.store.reviews_of_call(CALL) == []
    # Nor does their own sample show another province's calls.
    assert CALL not in await (await client.get(f"{PAGE}?week=2026-W49")).text()


async def test_given_supervisor_and_admin_when_download_asked_then_only_admin_gets_attachment(
        quality: Quality) -> None:
    supervisor = await quality.client("giamsat.binh")
    refused = await supervisor.get(f"{PLAY}/download")
    assert refused.status == 403
    assert quality.plays() == []

    admin = await quality.client("quantri")
    resp = await admin.get(f"{PLAY}/download")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="pbx1-1763800000.1.wav"'
    assert await resp.read() == quality.audio
    assert quality.plays() == [("quantri", "download", CALL)]


async def test_given_recording_file_gone_when_played_then_404_page_and_no_audio_element(
        quality: Quality) -> None:
    (quality.recordings / REC).unlink()
    client = await quality.client("giamsat.binh")
    resp = await client.get(PLAY)
    assert resp.status == 404 and error_id(await resp.text()) == "call.not_found"
    page = await (await client.get(CALL_PAGE)).text()
    assert "<audio" not in page and "data-no-recording" in page
    assert quality.plays() == []


# -- the call page and the scoring form -------------------------------------------------------


async def test_given_call_page_then_audio_element_plays_route_and_download_link_admin_only(
        quality: Quality) -> None:
    supervisor = await quality.client("giamsat.binh")
    page = await (await supervisor.get(CALL_PAGE)).text()
    m = re.search(r'<audio controls preload="none" src="([^"]+)"', page)
    assert m is not None and html.unescape(m[1]) == PLAY
    assert "data-download" not in page
    for label in ("Chào hỏi", "Trả lời chính xác", "Thái độ", "Không đùn đẩy"):
        assert label in page
    assert quality.plays() == []  # opening the page is not a play; the player's request is

    admin = await quality.client("quantri")
    assert f'href="{PLAY}/download"' in await (await admin.get(CALL_PAGE)).text()


async def test_given_scores_when_submitted_then_stored_editable_and_audited(
        quality: Quality) -> None:
    client = await quality.client("giamsat.binh")
    token = await csrf_of(client, CALL_PAGE)
    form = {"csrf": token, "greeting": "5", "accuracy": "4", "attitude": "4",
            "no_buck_passing": "dat", "notes": "Chào hỏi đúng mẫu."}
    resp = await client.post(f"{CALL_PAGE}/review", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"{CALL_PAGE}?saved=new"
    page = await (await client.get(resp.headers["Location"])).text()
    assert "Đã lưu phiếu chấm điểm." in page
    assert 'name="greeting" value="5" checked' in page  # the form shows the stored review

    resp = await client.post(f"{CALL_PAGE}/review", allow_redirects=False, data={
        **form, "accuracy": "2", "no_buck_passing": "khong_dat",
        "notes": "Không hướng dẫn, bảo công dân tự gọi Sở Y tế."})
    assert resp.headers["Location"] == f"{CALL_PAGE}?saved=edit"
    reviews = quality.store.reviews_of_call(CALL)
    assert len(reviews) == 1
    assert (reviews[0].reviewer, reviews[0].operator, reviews[0].scores.accuracy,
            reviews[0].scores.no_buck_passing) == ("giamsat.binh", "101", 2, False)
    assert [a.action for a in reversed(quality.store.audit_log(call_id=CALL))] == [
        "review_create", "review_update"]

    other = await quality.client("quantri")  # a second reviewer: a review of their own
    page = await (await other.get(CALL_PAGE)).text()
    assert 'data-reviewer="giamsat.binh"' in page and "tự gọi Sở Y tế" in page


async def test_given_incomplete_form_when_submitted_then_422_vietnamese_nothing_stored(
        quality: Quality) -> None:
    client = await quality.client("giamsat.binh")
    token = await csrf_of(client, CALL_PAGE)
    resp = await client.post(f"{CALL_PAGE}/review", data={
        "csrf": token, "greeting": "9", "accuracy": "4", "attitude": "4",
        "no_buck_passing": "khong_dat", "notes": ""})
    page = await resp.text()
    assert resp.status == 422
    assert 'data-error-field="greeting"' in page and "chọn điểm từ 1 đến 5" in page
    assert "Có đùn đẩy: ghi rõ trường hợp" in page
    assert 'name="accuracy" value="4" checked' in page  # what was typed stays
    assert quality.store.reviews_of_call(CALL) == []


# -- the sample and the report ----------------------------------------------------------------


async def test_given_weeks_calls_when_two_supervisors_open_sample_then_same_n_per_operator(
        quality: Quality) -> None:
    for n in range(2, 7):  # operator 101: 6 recorded calls in all
        quality.records.insert_once(record(n, T0 + dt.timedelta(hours=n)))
    quality.records.insert_once(record(10, T0, operator="102"))
    quality.records.insert_once(record(11, T0, operator="102", outcome="abandoned"))
    quality.records.insert_once(record(12, T0, operator="102", recording=None))
    quality.records.insert_once(record(13, W49.start - dt.timedelta(minutes=1)))  # W48

    def sample(page: str) -> dict[str, list[str]]:
        out = {}
        for op in re.findall(r'data-sample="(\d+)"', page):
            table = page.split(f'data-sample="{op}"', 1)[1].split("</table>", 1)[0]
            out[op] = re.findall(r'<tr data-call="([^"]+)"', table)
        return out

    a = await quality.client("giamsat.binh")
    first = sample(await (await a.get(PAGE)).text())  # this week (the clock's: W49)
    b = await quality.client("quantri")
    second = sample(await (await b.get(f"{PAGE}?week=2026-W49")).text())
    assert first == second
    assert len(first["101"]) == 2 and first["102"] == ["pbx1:1763800000.10"]
    assert "pbx1:1763800000.13" not in first["101"]
    w48 = sample(await (await a.get(f"{PAGE}?week=2026-W48")).text())
    assert w48 == {"101": ["pbx1:1763800000.13"]}
    bad = await a.get(f"{PAGE}?week=2026-W99")
    assert bad.status == 422 and "không tồn tại" in await bad.text()


async def test_given_reviews_when_report_opened_then_averages_buck_passing_and_xlsx(
        quality: Quality) -> None:
    quality.records.insert_once(record(2, T0, operator="102"))
    client = await quality.client("giamsat.binh")
    token = await csrf_of(client, CALL_PAGE)
    for path, scores in ((CALL_PAGE, ("5", "4", "3", "dat")),
                         (f"{PAGE}/calls/{quote('pbx1:1763800000.2', safe=':')}",
                          ("2", "3", "2", "khong_dat"))):
        resp = await client.post(f"{path}/review", allow_redirects=False, data={
            "csrf": token, "greeting": scores[0], "accuracy": scores[1],
            "attitude": scores[2], "no_buck_passing": scores[3], "notes": "ghi chú"})
        assert resp.status == 303
    admin = await quality.client("quantri")
    resp = await admin.post(f"{CALL_PAGE}/review", allow_redirects=False, data={
        "csrf": await csrf_of(admin, CALL_PAGE), "greeting": "3", "accuracy": "4",
        "attitude": "5", "no_buck_passing": "dat"})
    assert resp.status == 303

    page = await (await client.get(f"{PAGE}/report?period=2026-W49")).text()
    row101 = page.split('<tr data-operator="101">', 1)[1].split("</tr>", 1)[0]
    assert "<td data-reviews>2</td>" in row101 and "<td data-greeting>4.00</td>" in row101
    assert "<td data-attitude>4.00</td>" in row101 and "<td data-pass-rate>100%</td>" in row101
    row102 = page.split('<tr data-operator="102">', 1)[1].split("</tr>", 1)[0]
    assert "<td data-buck-count>1</td>" in row102 and "pbx1:1763800000.2" in row102
    month = await (await client.get(f"{PAGE}/report?period=2026-12")).text()
    assert "tháng 12/2026" in month and '<tr data-operator="101">' in month
    assert '<tr data-operator="101">' not in await (
        await client.get(f"{PAGE}/report?period=2026-W48")).text()

    xlsx = await client.get(f"{PAGE}/report.xlsx?period=2026-W49")
    assert xlsx.status == 200
    assert 'filename="chat-luong-dongnai-2026-W49.xlsx"' in xlsx.headers["Content-Disposition"]
    rows = xlsx_rows(await xlsx.read())
    assert [(r[1], r[3], r[5], r[8], r[9]) for r in rows] == [
        ("101", 2, 4.0, 1.0, 0), ("102", 1, 2.0, 0.0, 1)]


async def test_given_call_list_when_call_has_recording_then_it_links_to_the_review_page(
        quality: Quality) -> None:
    quality.records.insert_once(record(2, T0, recording=None, outcome="abandoned"))
    client = await quality.client("giamsat.binh")
    page = await (await client.get("/console/calls?day=2026-12-01")).text()
    links = re.findall(r'<a\s+href="([^"]+)" data-listen>', page)
    assert links == [f"{PAGE}/calls/pbx1%3A1763800000.1"]
    resp = await client.get(links[0])
    assert resp.status == 200 and "<audio" in await resp.text()
