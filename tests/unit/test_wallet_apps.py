"""The Android pass apps' buttons and platform detection (web/wallet_apps.py): pure."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from push.clients import CLIENTS
from web.wallet_apps import APP_CLIENTS, APPS, AppButton, app_buttons, app_link, platform_of

PKPASS = "https://cards.example.com/v1/passes/SER1.pkpass?exp=1999999999&sig=0123456789abcdef0123456789abcdef"

WALLETUNION_UA = "WalletUnion/1.0 Passbook/1.0 (Linux; U; Android 14; samsung SM-A556E)"
WALLETUNION_HMS_UA = "WalletUnionHMS/1.0 Passbook/1.0 (Linux; U; Android 12; HUAWEI MAO-LX9)"
ANDROID_CHROME_UA = (
    "Mozilla/5.0 (Linux; Android 14; SM-A556E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.135 Mobile Safari/537.36"
)
ANDROID_YANDEX_UA = (
    "Mozilla/5.0 (Linux; arm_64; Android 13; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 YaBrowser/24.4.5.83.00 SA/3 Mobile Safari/537.36"
)
IPHONE_SAFARI_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
IPAD_UA = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
IPHONE_CHROME_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/131.0.6778.103 Mobile/15E148 Safari/604.1"
)
DESKTOP_CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
MAC_SAFARI_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)


@pytest.mark.parametrize(
    "user_agent, platform",
    [
        (WALLETUNION_UA, "android"),  # says Passbook/1.0, still Android (facts §1)
        (WALLETUNION_HMS_UA, "android"),
        (ANDROID_CHROME_UA, "android"),
        (ANDROID_YANDEX_UA, "android"),
        (IPHONE_SAFARI_UA, "ios"),
        (IPHONE_CHROME_UA, "ios"),
        (IPAD_UA, "ios"),
        (DESKTOP_CHROME_UA, "other"),
        (MAC_SAFARI_UA, "other"),  # an iPad on "desktop site" looks the same: not detectable server-side
        ("", "other"),
        ("curl/8.5.0", "other"),
    ],
)
def test_platform_of(user_agent: str, platform: str):
    assert platform_of(user_agent) == platform


def test_app_clients_are_push_clients():
    assert set(APP_CLIENTS) <= set(CLIENTS)
    assert len(set(APP_CLIENTS)) == len(APPS)


def test_shipped_defaults():
    buttons = {b.client: b for b in app_buttons(PKPASS, {})}
    # PassHub has no public link: only when configured
    assert list(buttons) == ["walletunion_fcm", "walletpasses", "pass2u", "passwallet"]
    assert buttons["walletunion_fcm"].href == "https://walletunion.com/"
    assert buttons["pass2u"].href == "https://play.google.com/store/apps/details?id=com.passesalliance.wallet"
    wallet_passes = urlsplit(buttons["walletpasses"].href)
    assert (wallet_passes.scheme, wallet_passes.netloc) == ("https", "walletpass.io")
    assert parse_qs(wallet_passes.query) == {"u": [PKPASS]}
    passwallet = urlsplit(buttons["passwallet"].href)
    assert (passwallet.netloc, passwallet.path) == ("play.google.com", "/store/apps/details")
    assert parse_qs(passwallet.query) == {"id": ["com.attidomobile.passwallet"], "referrer": [PKPASS]}
    assert [b.name for b in buttons.values()] == ["WalletUnion", "Wallet Passes", "Pass2U Wallet", "PassWallet"]


def test_url_is_fully_encoded_in_the_template():
    href = app_link("https://walletpass.io?u={url}", PKPASS)
    encoded = href.removeprefix("https://walletpass.io?u=")
    # none of the URL's own separators survive: the pass URL's `&sig=` cannot become the app link's parameter
    for char in ":/?&=":
        assert char not in encoded
    assert unquote(encoded) == PKPASS
    assert parse_qs(urlsplit(href).query) == {"u": [PKPASS]}
    # unicode and spaces too
    assert app_link("x:{url}", "https://h/é b") == "x:https%3A%2F%2Fh%2F%C3%A9%20b"


def test_template_braces_other_than_the_placeholder_are_kept():
    assert app_link("https://a.example/{x}?u={url}&v={url}", "a b") == "https://a.example/{x}?u=a%20b&v=a%20b"


def test_overrides_replace_add_and_remove():
    overrides = {
        "walletunion_fcm": "intent://import?url={url}#Intent;scheme=walletunion;end",
        "passhub": "https://t.me/passhub_bot?start={url}",
        "pass2u": "",  # switched off
        "apple": "https://evil.example/{url}",  # not a pass app: ignored
        "unknown": "https://x.example/{url}",
    }
    buttons = {b.client: b for b in app_buttons(PKPASS, overrides)}
    assert list(buttons) == ["walletunion_fcm", "walletpasses", "passwallet", "passhub"]
    assert buttons["walletunion_fcm"].href.startswith("intent://import?url=https%3A%2F%2Fcards.example.com")
    assert buttons["passhub"] == AppButton("passhub", "PassHub for Telegram", app_link(overrides["passhub"], PKPASS))
    # the defaults of the apps not overridden are untouched
    assert buttons["walletpasses"].href == app_link("https://walletpass.io?u={url}", PKPASS)


def test_button_html_is_escaped():
    button = AppButton("passhub", 'Pass"<b>Hub</b>', 'https://x.example/?a=1&b="><script>alert(1)</script>')
    markup = button.html()
    assert "<script>" not in markup and "<b>" not in markup
    assert 'href="https://x.example/?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in markup
    assert ">Pass&quot;&lt;b&gt;Hub&lt;/b&gt;</a>" in markup
    assert 'rel="noreferrer noopener"' in markup


def test_default_button_html_escapes_the_query_separator():
    passwallet = next(b for b in app_buttons(PKPASS, {}) if b.client == "passwallet")
    assert "&amp;referrer=https%3A%2F%2F" in passwallet.html()
