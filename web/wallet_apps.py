"""The Android pass apps offered on the card page, and which platform a browser is on. Pure.

Each app gets a button whose link is its maker's install-and-import link, built from a template
with a `{url}` placeholder for the absolute `.pkpass` URL (url-encoded before it goes in).
Facts: ../shared/facts/android-wallet-apps.md §1-§5 (links) and §8 (what is still to confirm).
An operator may replace a default or add an app (client -> template; settings `relays.app_links`,
from WALLET_APP_LINK_<APP>, checked by config/relays.py at start-up).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from push.clients import PASS2U, PASSHUB, PASSWALLET, WALLETPASSES, WALLETUNION_FCM

Platform = Literal["ios", "android", "other"]

URL_PLACEHOLDER: Final = "{url}"


@dataclass(frozen=True)
class WalletApp:
    client: str  # as in push/clients.py, so a configured link and a relay share one name
    name: str
    template: str | None  # None: not offered unless a link is configured


@dataclass(frozen=True)
class AppButton:
    client: str
    name: str
    href: str

    def html(self) -> str:
        """The button as an escaped anchor. `noreferrer`: the page's own link is signed and must not
        reach the app maker in a Referer (the .pkpass URL in `href` is given to it on purpose)."""
        return (
            f'<a class="button app" id="app-{html.escape(self.client)}" rel="noreferrer noopener"'
            f' href="{html.escape(self.href)}">{html.escape(self.name)}</a>'
        )


# In the order of push/clients.py (facts §7); that is also the order on the page.
APPS: Final[tuple[WalletApp, ...]] = (
    # WalletUnion (one button for its FCM and HMS builds): the import URI of its "Add to Wallet"
    # script (`importInstallWallet`) is cut off in the stored copy of the maker's page and its package
    # id is unknown (facts §1, §8.1), so no install-and-import link (nor a store link) can be built.
    # It is kept, with the maker's home page, rather than left out: its maker documents it in Russian
    # and it alone has a Huawei (HMS) build, so it is the likeliest app of this service's Android
    # card holders. The button leads to the maker's site (that it links to the stores is UNCONFIRMED);
    # once installed, the app imports the pass from the .pkpass link shown beside the buttons (as
    # with Pass2U). Set WALLET_APP_LINK_WALLETUNION to the real import link once §8.1 is confirmed.
    WalletApp(WALLETUNION_FCM, "WalletUnion", "https://walletunion.com/"),
    # UNCONFIRMED on the maker's page; peers agree (facts §2, §8.2)
    WalletApp(WALLETPASSES, "Wallet Passes", "https://walletpass.io?u={url}"),
    # Play store page only: the app opens the .pkpass link itself once installed (facts §3)
    WalletApp(PASS2U, "Pass2U Wallet", "https://play.google.com/store/apps/details?id=com.passesalliance.wallet"),
    # the Play-store referrer form of the maker's README; the app imports the referrer URL on first run.
    # The passwallet.page.link form is a Firebase Dynamic Link, probably dead since 2025-08-25 (facts §4, §8.4)
    WalletApp(
        PASSWALLET,
        "PassWallet",
        "https://play.google.com/store/apps/details?id=com.attidomobile.passwallet&referrer={url}",
    ),
    # no public install link (facts §5): only when configured
    WalletApp(PASSHUB, "PassHub for Telegram", None),
)
APP_CLIENTS: Final = tuple(app.client for app in APPS)

_ANDROID = re.compile(r"android", re.IGNORECASE)
_IOS = re.compile(r"iphone|ipad|ipod", re.IGNORECASE)


def platform_of(user_agent: str) -> Platform:
    """Android first: WalletUnion sends `Passbook/1.0` (facts §1) and some Android browsers mention
    other systems. An iPad asking for the desktop site says `Macintosh`; that cannot be told from a
    Mac server-side, so it is `other` (and gets the Apple button among the rest)."""
    if _ANDROID.search(user_agent):
        return "android"
    if _IOS.search(user_agent):
        return "ios"
    return "other"


def app_link(template: str, pkpass_url: str) -> str:
    """The template with the absolute .pkpass URL, fully url-encoded, in place of `{url}`.
    Plain replacement, not str.format: other braces in a template are kept as they are."""
    return template.replace(URL_PLACEHOLDER, quote(pkpass_url, safe=""))


def app_buttons(pkpass_url: str, overrides: Mapping[str, str]) -> list[AppButton]:
    """A button per app that has a link template: the configured one, else the default.
    Overrides for a client that is not a pass app are ignored."""
    buttons = []
    for app in APPS:
        template = overrides.get(app.client, app.template)
        if not template:
            continue
        buttons.append(AppButton(app.client, app.name, app_link(template, pkpass_url)))
    return buttons


# "Save to Google Wallet": Google's brand guidelines want the official badge artwork, which this
# service does not ship (an operator puts it in an assets folder, README "Google Wallet settings").
# Until then the button is a plain styled link with the badge's words. The English words are
# Google's; the Russian ones are the wording asked for in the brief (the facts hold no Russian
# badge text: UNCONFIRMED that Google's ru badge says exactly this).
GOOGLE_BUTTON_TEXT: Final[Mapping[str, str]] = {
    "en": "Save to Google Wallet",
    "ru": "Сохранить в Google Кошелёк",
}


def google_button_text(locale: str) -> str:
    """The button's words in the page's language (English for any other)."""
    return GOOGLE_BUTTON_TEXT.get(locale.split("-")[0].lower(), GOOGLE_BUTTON_TEXT["en"])


def google_button(save_url: str, locale: str) -> str:
    """The "Save to Google Wallet" button as an escaped anchor (`noreferrer`: the page's signed link
    stays out of Google's Referer, as with the app buttons)."""
    return (
        f'<a class="button google" id="google" rel="noreferrer noopener"'
        f' href="{html.escape(save_url)}">{html.escape(google_button_text(locale))}</a>'
    )
