"""Browser tests: Playwright (sync API) driving Debian's Chromium against the real service.

- `browser`: one headless Chromium for the session (`/usr/bin/chromium`, `--no-sandbox`; `.ci/run`
  installs it when missing, and its absence fails these tests rather than skipping them).
- `phone(kind)`: a page in a context shaped like an iPhone, an Android phone or a desktop (viewport,
  touch, user agent), so the service sees what a real visitor's browser sends.
- `shot(page, name)`: a full-page screenshot saved as a test artifact under var/screenshots/.
- `axe(page)`: axe-core (tests/browser/node_modules, from npm) run in the page; the serious and
  critical violations it reports, as (rule id, help, targets) for the assertion message. Contexts
  that run axe bypass the page's CSP, which forbids the injected script (as it should).

The servers come from tests/web/conftest.py (`live_server`, `server_factory`, `shared_server`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.web.conftest import (  # noqa: F401  (fixtures re-exported for this package)
    apns,
    certs_dir,
    live_server,
    server_factory,
    shared_server,
    store_kind,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"

IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
DEVICES: dict[str, dict[str, Any]] = {
    "iphone": {
        "user_agent": IPHONE_UA,
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
    "android": {
        "user_agent": ANDROID_UA,
        "viewport": {"width": 412, "height": 915},
        "device_scale_factor": 2.625,
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop": {"user_agent": DESKTOP_UA, "viewport": {"width": 1280, "height": 900}},
}


# Package scope, not session: the sync API runs an event loop in this thread while it is started,
# and the async tests after this package need the thread's loop free again.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox"])
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Callable[..., Page]]:
    """`phone("iphone" | "android" | "desktop", locale="ru-RU")` -> a fresh page in its own context."""
    contexts: list[BrowserContext] = []

    def make(kind: str = "iphone", *, locale: str = "ru-RU", **options: Any) -> Page:
        context = browser.new_context(**DEVICES[kind], locale=locale, bypass_csp=True, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as var/screenshots/<test>--<name>.png (kept after the run)."""

    def take(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{_safe(request.node.name)}--{_safe(name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def axe(page: Page) -> list[tuple[str, str, list[str]]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            found.append((violation["id"], violation["help"], targets))
    return found
