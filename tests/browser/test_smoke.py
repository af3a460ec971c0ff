"""The browser tooling itself: Chromium starts, pages load from the live service, axe runs."""

from __future__ import annotations

from tests.browser.conftest import axe


def test_chromium_loads_a_page_and_axe_runs(live_server, phone, shot) -> None:
    page = phone("desktop")
    page.goto(live_server.base + "/static/pages.css")
    assert "Mobile first" in page.content()
    page.set_content(
        "<!doctype html><html lang='en'><head><title>x</title></head><body><main><h1>ok</h1></main></body></html>"
    )
    assert axe(page) == []
    assert shot(page, "smoke").exists()
