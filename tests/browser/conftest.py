"""Real-browser fixtures: Debian's chromium driven by Playwright, against the app served by a real
HTTP server (werkzeug, in a thread, on 127.0.0.1 and a port the system picks) on the test's own
fresh database.

No browser is ever downloaded: chromium is the system's (`apt-get install chromium`). Without it,
or without Playwright, the browser tests skip, except under CLAWBACK_REQUIRE_SERVICES=1 (CI), where
they fail. The page may reach only this server: any other request (App Bridge's script on a
Shopify shop's pages, say) is aborted and recorded. Each step's screenshot is saved under
test-artifacts/browser/<database>/<test>/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.config import Settings
from tests.conftest import PG_URL

REQUIRED = os.environ.get("CLAWBACK_REQUIRE_SERVICES") == "1"  # CI: a missing browser fails, never skips
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (CLAWBACK_REQUIRE_SERVICES=1: the browser tests may not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium per test process (each xdist worker has its own)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        playwright.stop()
        _unavailable(f"chromium at {executable} did not start: {exc}")
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the development login on (it signs in to the demo shop only)."""
    return settings.model_copy(update={"dev_login": True})


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The app served over real HTTP in a thread; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@dataclass
class Screens:
    """Numbered screenshots of one test's steps."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, page: Any, step: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    folder = ARTIFACTS / ("postgresql" if PG_URL else "sqlite") / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return Screens(folder)


@dataclass
class Tab:
    """A page in a fresh browser context, and what it tried to reach beyond the app."""

    page: Any
    blocked: list[str]
    errors: list[str]


def open_tab(browser: Any, live: str, *, javascript: bool = True) -> tuple[Any, Tab]:
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    ours = urlsplit(live).netloc
    blocked: list[str] = []

    def only_ours(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == ours or url.startswith(("data:", "about:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_ours)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, Tab(page, blocked, errors)


@pytest.fixture
def tab(browser: Any, live: str) -> Iterator[Tab]:
    context, opened = open_tab(browser, live)
    yield opened
    context.close()


@pytest.fixture
def tab_without_js(browser: Any, live: str) -> Iterator[Tab]:
    context, opened = open_tab(browser, live, javascript=False)
    yield opened
    context.close()
