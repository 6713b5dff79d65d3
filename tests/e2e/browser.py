"""Browser helpers for the console's end-to-end tests: Debian's Chromium driven by Python
Playwright (no browser download: ``playwright install`` is never run), console users made
with the CLI, login through the form, screenshots as test artefacts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.stack import ROOT, Stack

CHROMIUM: Path = Path(os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium"))
# As root the sandbox must be off; the rest keeps Chromium off the network and quiet.
LAUNCH_ARGS: list[str] = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run"]
SCREENSHOTS: Path = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS: Path = ROOT / "docs" / "screenshots"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not installed (apt-get install chromium fonts-liberation2)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Python playwright not installed (pip install -e '.[dev]')"
    return None


def launch(playwright: Any) -> Any:
    """A headless Debian Chromium (a playwright Browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS,
                                      headless=True)


def new_context(browser: Any, width: int = 1280, height: int = 900, **options: Any) -> Any:
    """A browser context as a Vietnamese user sees the console: vi-VN, Asia/Ho_Chi_Minh."""
    return browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh",
                               viewport={"width": width, "height": height}, **options)


def no_sideways_scroll(page: Any) -> bool:
    """Whether the page fits its viewport's width (no horizontal scrolling)."""
    return bool(page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def add_user(stack: Stack, name: str, role: str, password: str, *,
             unit: str | None = None, full_name: str | None = None) -> None:
    """Create a console user of the test tenant with ``callcenter user add``."""
    cmd = [sys.executable, "-m", "callcenter", "user", "add", name, "--role", role,
           "--tenant", "dongnai", "--password-stdin"]
    if unit:
        cmd += ["--unit", unit]
    if full_name:
        cmd += ["--full-name", full_name]
    done = subprocess.run(cmd, input=password + "\n", env=stack.env(), capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"user add {name} failed: {done.stdout}{done.stderr}")


def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.http_port}"


def login(page: Any, stack: Stack, name: str, password: str) -> None:
    """Log in through the form; waits until the browser left the login page."""
    page.goto(base_url(stack) + "/console/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/(?!login).*"), timeout=10_000)


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG under test-artifacts/screenshots/; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def to_docs(shot: Path, name: str) -> None:
    """Copy a screenshot to docs/screenshots/<name> when HOTLINE_DOCS_SCREENSHOTS=1 (a
    deliberate refresh: an ordinary test run leaves the tracked files alone)."""
    if os.environ.get("HOTLINE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / name)
