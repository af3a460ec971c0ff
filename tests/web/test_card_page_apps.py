"""The card page (/c/{serial}) offers the wallet that fits the browser: the Android pass apps on
Android, Apple Wallet on iOS, both elsewhere. Through the real service, on both stores."""

from __future__ import annotations

import re
import uuid
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.test_wallet_apps import DESKTOP_CHROME_UA, IPHONE_SAFARI_UA, WALLETUNION_UA
from tests.web.conftest import LiveServer

ANDROID_CHROME_UA = (
    "Mozilla/5.0 (Linux; Android 14; SM-A556E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.135 Mobile Safari/537.36"
)
ANDROID_APPS = ("walletunion_fcm", "walletpasses", "pass2u", "passwallet")
_ANCHOR = re.compile(r'<a class="[^"]*" id="([^"]+)"[^>]*? href="([^"]*)">(.*?)</a>', re.DOTALL)
_ALT = re.compile(r'<img [^>]*alt="([^"]*)"')


def anchors(page: str) -> dict[str, tuple[str, str]]:
    """id -> (href, words) of every button on the page, unescaped; a badge's words are its image's alt."""
    found = {}
    for ident, href, inner in _ANCHOR.findall(page):
        alt = _ALT.search(inner)
        found[ident] = (unescape(href), unescape(alt.group(1) if alt else inner.strip()))
    return found


@pytest.fixture(scope="module")
def issued(shared_server: LiveServer) -> dict:
    return shared_server.issue("acc-" + uuid.uuid4().hex[:12])


def page_for(server: LiveServer, issued: dict, user_agent: str) -> str:
    response = server.client(**{"User-Agent": user_agent}).get(issued["links"]["page"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "user-agent" in response.headers.get("vary", "").lower()
    return response.text


def assert_pass_link(server: LiveServer, issued: dict, href: str) -> None:
    """The page signs a fresh .pkpass link when rendered (its `exp` may differ from the issued one):
    the same absolute download path, and it works."""
    assert href.split("?")[0] == issued["links"]["apple"].split("?")[0]
    assert href.startswith(server.base + "/v1/passes/")
    download = server.client().get(href)
    assert download.status_code == 200 and download.headers["content-type"] == "application/vnd.apple.pkpass"


def no_scripts(page: str) -> None:
    assert "<script" not in page.lower()
    assert "javascript:" not in page.lower()
    assert re.search(r"\son\w+=", page) is None  # no inline event handlers either


@pytest.mark.parametrize("user_agent", [ANDROID_CHROME_UA, WALLETUNION_UA])
def test_android_gets_the_pass_apps_and_the_pkpass_link(shared_server: LiveServer, issued: dict, user_agent: str):
    page = page_for(shared_server, issued, user_agent)
    buttons = anchors(page)
    pkpass, text = buttons["pkpass"]
    assert text == "Скачать карту (.pkpass)"  # the card's locale is ru
    assert_pass_link(shared_server, issued, pkpass)
    assert "apple" not in buttons and "Apple Wallet" not in page
    assert [ident for ident in buttons if ident.startswith("app-")] == [f"app-{c}" for c in ANDROID_APPS]
    # the apps get the absolute, signed .pkpass URL, url-encoded inside their links
    walletpasses = urlsplit(buttons["app-walletpasses"][0])
    assert walletpasses.netloc == "walletpass.io" and parse_qs(walletpasses.query)["u"] == [pkpass]
    passwallet = urlsplit(buttons["app-passwallet"][0])
    assert parse_qs(passwallet.query) == {"id": ["com.attidomobile.passwallet"], "referrer": [pkpass]}
    assert buttons["app-pass2u"][1] == "Pass2U Wallet"
    no_scripts(page)


def test_iphone_keeps_only_the_apple_button(shared_server: LiveServer, issued: dict):
    page = page_for(shared_server, issued, IPHONE_SAFARI_UA)
    buttons = anchors(page)
    assert list(buttons) == ["apple"]
    assert buttons["apple"][1] == "Добавить в Apple Wallet"
    assert_pass_link(shared_server, issued, buttons["apple"][0])
    for absent in ("walletpass.io", "play.google.com", "walletunion.com", 'id="pkpass"'):
        assert absent not in page
    no_scripts(page)


@pytest.mark.parametrize("user_agent", [DESKTOP_CHROME_UA, ""])
def test_desktop_gets_apple_and_the_android_apps(shared_server: LiveServer, issued: dict, user_agent: str):
    page = page_for(shared_server, issued, user_agent)
    buttons = anchors(page)
    assert buttons["apple"][1] == "Добавить в Apple Wallet"
    assert_pass_link(shared_server, issued, buttons["apple"][0])
    assert [ident for ident in buttons if ident.startswith("app-")] == [f"app-{c}" for c in ANDROID_APPS]
    no_scripts(page)


def test_page_does_not_leak_its_signed_link_to_the_app_makers(shared_server: LiveServer, issued: dict):
    page = page_for(shared_server, issued, ANDROID_CHROME_UA)
    assert '<meta name="referrer" content="no-referrer">' in page
    assert all('rel="noreferrer noopener"' in a for a in re.findall(r'<a class="button app"[^>]*>', page))
    # the page's own signature is nowhere in the page
    page_sig = parse_qs(urlsplit(issued["links"]["page"]).query)["sig"][0]
    assert page_sig not in page


def test_configured_links_replace_and_add_apps(server_factory):
    server = server_factory(
        WALLET_APP_LINK_WALLETUNION="https://walletunion.example/import?url={url}&src=card",
        WALLET_APP_LINK_PASSHUB="https://t.me/passhub_bot?start={url}",
    )
    issued = server.issue("acc-" + uuid.uuid4().hex[:12])
    page = page_for(server, issued, ANDROID_CHROME_UA)
    buttons = anchors(page)
    assert [ident for ident in buttons if ident.startswith("app-")] == [f"app-{c}" for c in (*ANDROID_APPS, "passhub")]
    pkpass = buttons["pkpass"][0]
    walletunion = urlsplit(buttons["app-walletunion_fcm"][0])
    assert walletunion.netloc == "walletunion.example"
    assert parse_qs(walletunion.query) == {"url": [pkpass], "src": ["card"]}
    assert parse_qs(urlsplit(buttons["app-passhub"][0]).query) == {"start": [pkpass]}
    assert buttons["app-passhub"][1] == "PassHub for Telegram"
    assert "&amp;src=card" in page  # the configured template is escaped in the attribute too
    no_scripts(page)
