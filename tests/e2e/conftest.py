"""Session-wide real hotline for the end-to-end tests (marked pbx)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium_missing, launch
from tests.e2e.scenarios import assert_nothing_left
from tests.e2e.stack import Stack, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.pbx)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("hotline"))
    try:
        s.start()
        yield s
    finally:
        s.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        if s.app_log.exists():
            worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # one log per xdist worker
            shutil.copyfile(s.app_log, ARTIFACTS / f"e2e-app{'-' + worker if worker else ''}.log")


@pytest.fixture
def hotline(stack: Stack) -> Iterator[Stack]:
    """The stack with 3 lines per shift, the app running; afterwards it must still run and
    nothing may be left in Asterisk, Redis or the journal."""
    stack.set_lines(3)
    if stack.app is None or stack.app.poll() is not None:
        stack.start_app()
    assert wait_until(lambda: stack.app_lines() == 3, 5), stack.app_log_tail()
    yield stack
    # A dead app fails the test (assert_nothing_left); the next test's setup starts it again.
    assert_nothing_left(stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright, for one test module."""
    missing = chromium_missing()
    if missing is not None:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()
