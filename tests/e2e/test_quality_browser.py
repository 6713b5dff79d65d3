"""Quality review in a real browser (Debian's headless Chromium via Playwright) against a whole
running hotline: a supervisor opens the week's sample, opens a call, the page's <audio> loads
the recording from the PBX's recordings folder (metadata, then a seek: Range requests), and
scores the call; the review is stored and the play audited once."""

from __future__ import annotations

import datetime as dt
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.quality.store import QualityStore
from callcenter.store.records import CallRecordStore
from tests.adapters.test_call_pages import record
from tests.e2e.browser import (
    add_user,
    base_url,
    chromium_missing,
    login,
    new_context,
    screenshot,
)
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.pbx,
              pytest.mark.skipif(chromium_missing() is not None,
                                 reason=chromium_missing() or "")]

PASSWORD = "Mật khẩu thử 2026"
EXPECT_TIMEOUT = 10_000  # ms
CALL = "pbx1:1763800000.1"
REC = "quality/pbx1-1763800000.1.wav"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("quality-browser")))
    with running(s):
        add_user(s, "giamsat", "supervisor", PASSWORD, full_name="Lê Văn Giám")
        yield s


nothing_left = nothing_left_after("stack")


def recorded_call(stack: Stack) -> None:
    """A call operator 101 answered ten minutes ago, and its recording (2 s, 8 kHz WAV) in the
    PBX's recordings folder, where Asterisk's MixMonitor writes."""
    path = stack.layout.recordings() / REC
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(((i * 97) % 65536).to_bytes(2, "little")
                               for i in range(16000)))
    arrived = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    records = CallRecordStore(stack.database_url)
    try:
        records.insert_once(record(1, arrived, recording=REC))
    finally:
        records.close()


def test_given_recorded_call_when_supervisor_listens_and_scores_then_stored_and_audited(
        stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    recorded_call(stack)
    ctx = new_context(browser, 1280, 900)
    try:
        page = ctx.new_page()
        login(page, stack, "giamsat", PASSWORD)
        page.goto(base_url(stack) + "/console/quality")
        row = page.locator(f'table[data-sample="101"] tr[data-call="{CALL}"]')
        expect(row).to_have_count(1)
        row.locator("a").click()
        expect(page.locator("h1")).to_have_text("Nghe và chấm điểm cuộc gọi")

        audio = page.locator("audio[data-recording]")
        expect(audio).to_have_count(1)
        # preload="none": opening the page fetches nothing (and audits no play); pressing
        # play does. A click gives the page the user activation play() needs.
        assert page.evaluate("() => document.querySelector('audio').readyState") == 0
        page.click("h1")
        page.evaluate("() => document.querySelector('audio').play()")
        page.wait_for_function(
            "() => { const a = document.querySelector('audio'); "
            "return a && a.readyState >= 1 && Math.abs(a.duration - 2) < 0.1; }",
            timeout=EXPECT_TIMEOUT)
        # Seeking: the player asks for a later range of the file.
        page.evaluate("() => new Promise((ok, fail) => { const a = document.querySelector("
                      "'audio'); a.pause(); "
                      "a.addEventListener('seeked', () => ok(null), {once: true}); "
                      "a.addEventListener('error', () => fail(a.error), {once: true}); "
                      "a.currentTime = 1.5; })")
        assert page.evaluate("() => document.querySelector('audio').error") is None

        page.check('input[name="greeting"][value="5"]')
        page.check('input[name="accuracy"][value="4"]')
        page.check('input[name="attitude"][value="4"]')
        page.check('input[name="no_buck_passing"][value="khong_dat"]')
        page.fill("#notes", "Hướng dẫn công dân tự gọi Sở Y tế thay vì chuyển cuộc gọi.")
        screenshot(page, "quality-call")
        page.click('form[data-review-form] button[type="submit"]')
        expect(page.locator('[data-message="saved"]')).to_have_text("Đã lưu phiếu chấm điểm.",
                                                                    timeout=EXPECT_TIMEOUT)
    finally:
        ctx.close()

    store = QualityStore(stack.database_url)
    try:
        review = store.review(CALL, "giamsat")
        assert review is not None
        assert (review.operator, review.scores.greeting, review.scores.no_buck_passing) == (
            "101", 5, False)
        actions = [(a.actor, a.action) for a in reversed(store.audit_log(call_id=CALL))]
    finally:
        store.close()
    assert actions.count(("giamsat", "play")) == 1, actions  # one play, not one per range
    assert ("giamsat", "review_create") in actions
