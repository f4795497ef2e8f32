"""Browser-test harness: a demo served in-process, driven by Playwright in Debian chromium."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (make setup installs it as root)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def serve_demo(tmp_path, monkeypatch, browser) -> Iterator[Callable]:
    """``serve_demo(blocks)`` launches ``blocks`` on a free loopback port and returns a page."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from tessera.demos.hub import launch

    launched, pages = [], []

    def _serve(blocks):
        port = free_port()
        launch(blocks, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        launched.append(blocks)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{port}/")
        pages.append(page)
        return page

    yield _serve
    for page in pages:
        page.close()
    for blocks in launched:
        blocks.close()
