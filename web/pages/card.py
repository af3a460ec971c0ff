"""The member's card page `GET /c/{serial}?<signed link>` and what it needs: the tiers' colours as a
stylesheet and the wallet badge artwork.

The page offers the wallet that fits the visitor's phone (web/wallet_apps.py platform_of): iOS gets
"Add to Apple Wallet" alone; Android gets "Save to Google Wallet" (while it is on), the .pkpass
download and the Android pass apps; a desktop gets all of them plus a QR code of this page, so the
member can open it on the phone. No script, no inline style (the CSP forbids both): the tier's
colours come from /pages/{program}/tiers.css, the QR code is an SVG in a data: image.

Badges: the files named in BADGES, from WALLET_BADGES_DIR when set, else the stand-ins shipped in
static/badges/ (README "Pages": an operator drops Apple's and Google's official artwork there under
the same names).
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urljoin

import segno
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from cards.links import link_valid
from cards.model import Card
from cards.numbers import format_card_number, last4
from passes.programs import Program, Tier
from web.cards import links_for
from web.pages.join import over_limit
from web.pages.templating import STATIC_DIR, choose_language, render, strings_for
from web.services import Services
from web.vouchers import voucher_links
from web.wallet_apps import AppButton, app_buttons, platform_of

SHIPPED_BADGES: Final = STATIC_DIR / "badges"
# (wallet, language) -> file name; an operator's official artwork replaces a file of the same name
BADGES: Final = {
    ("apple", "ru"): "apple-wallet-ru.svg",
    ("apple", "en"): "apple-wallet-en.svg",
    ("google", "ru"): "google-wallet-ru.svg",
    ("google", "en"): "google-wallet-en.svg",
}
_BADGE_NAMES: Final = frozenset(BADGES.values())
_SERIAL_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _services(request: Request) -> Services:
    return request.app.state.services


@dataclass(frozen=True)
class Button:
    """A wallet button: a badge image (its alt text is the button's words) or a plain text button."""

    ident: str
    href: str
    text: str
    badge: str | None = None  # the badge's file name under /static/badges/
    external: bool = True  # rel="noreferrer noopener": the page's signed link stays out of Referer


def badge_dir(services: Services) -> Path:
    return services.settings.badges_dir or SHIPPED_BADGES


def _badge_language(language: str) -> str:
    return language if language in ("ru", "en") else "en"


def buttons_for(
    platform: str, pkpass_url: str, google_url: str | None, app_links: Mapping[str, str], language: str
) -> tuple[list[Button], list[AppButton]]:
    """(wallet buttons in page order, Android pass app buttons) for a visitor on `platform`."""
    t = strings_for(language)
    badge = _badge_language(language)
    apple = Button("apple", pkpass_url, t["card.apple"], BADGES[("apple", badge)], external=False)
    google = Button("google", google_url, t["card.google"], BADGES[("google", badge)]) if google_url else None
    if platform == "ios":
        return [apple], []
    apps = app_buttons(pkpass_url, app_links)
    if platform == "android":
        # Google's wallet first on its own system; the .pkpass link is what the pass apps import
        wallet = [google] if google else []
        wallet.append(Button("pkpass", pkpass_url, t["card.pkpass"], external=False))
        return wallet, apps
    return [apple, *([google] if google else [])], apps


def qr_data_uri(url: str) -> str:
    """The QR code of `url` as an SVG data: URI (base64), for an <img> under a CSP without inline code."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", scale=4, border=2, xmldecl=False, svgclass=None, lineclass=None, dark="#000", light="#fff"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def next_tier(template: Program, tier: Tier) -> Tier | None:
    keys = template.tier_keys
    position = keys.index(tier.key)
    return template.tiers[position + 1] if position + 1 < len(keys) else None


def _format_points(points: int, language: str) -> str:
    text = f"{points:,}"
    return text.replace(",", "\u00a0") if language == "ru" else text


async def card_from_page_link(request: Request, serial: str) -> Card | None:
    """The card of a valid, unexpired page link; None for an expired, forged or unknown one alike."""
    services = _services(request)
    ok = link_valid(
        services.settings.link_secret,
        "page",
        serial,
        request.query_params.get("exp"),
        request.query_params.get("sig"),
        time.time(),
    )
    if not ok or not _SERIAL_RE.fullmatch(serial):
        return None
    return await services.store.get_card_by_serial(serial)


def not_found_page(request: Request, language: str) -> Response:
    t = strings_for(language)
    context = {"title": t["error.not_found_title"], "message": t["error.not_found_text"], "back": None}
    return render(request, "error.html", context, language=language, status_code=404)


async def card_page(request: Request) -> Response:
    services = _services(request)
    # WALLET_RATE_PAGES per client address, before the link is looked at: the 429 page
    limited = await over_limit(request, choose_language(request, ("ru", "en"), "ru"), None)
    if limited is not None:
        return limited
    card = await card_from_page_link(request, request.path_params["serial"])
    template = services.programs.get(card.program) if card is not None else None
    if card is None or template is None or card.erased_at:
        # an erased member's card has no page: its passes are void (DELETE /v1/members)
        return not_found_page(request, choose_language(request, ("ru", "en"), "ru"))
    language = choose_language(request, template.locales, card.locale)
    t = strings_for(language)
    now = time.time()
    links = links_for(services, card, now)
    tier = template.tier(card.tier) or template.tier_for_balance(card.balance)
    upcoming = next_tier(template, tier)
    to_next = tier.points_to_next(card.balance)
    platform = platform_of(request.headers.get("user-agent", ""))
    # the apps fetch the pass themselves: they need an absolute URL (urljoin keeps one that is already)
    pkpass_url = urljoin(services.settings.public_url.rstrip("/") + "/", links["apple"])
    wallet, apps = buttons_for(platform, pkpass_url, links.get("google"), services.settings.relays.app_links, language)
    qr = None
    if platform == "other":
        # this very page, as the phone should open it (the public URL, not whatever host we were reached by)
        own = services.settings.public_url.rstrip("/") + request.url.path + "?" + request.url.query
        qr = qr_data_uri(own)
    expiring = None
    if card.expiring_points:
        expiring = t["card.expiring"].format(
            points=_format_points(card.expiring_points, language), date=card.expiring_date or ""
        )
    context = {
        "program": template,
        "program_name": template.name(language),
        "card": card,
        "number": format_card_number(card.number),
        "last4": last4(card.number),
        "balance": _format_points(card.balance, language),
        "tier": tier,
        "tier_name": tier.name(language),
        "to_next": (
            t["card.to_next"].format(tier=upcoming.name(language), points=_format_points(to_next, language))
            if upcoming is not None and to_next is not None
            else None
        ),
        "expiring": expiring,
        "last_operation": card.last_message,
        "notice": card.notice,
        "wallet": wallet,
        "apps": apps,
        "qr": qr,
        "platform": platform,
        # gift certificates and offers: what each is and its own wallet link, never a code or PIN
        "vouchers": await voucher_links(services, card, now),
    }
    # the buttons depend on the browser and the words on its languages: a shared cache must not mix them
    return render(request, "card.html", context, language=language, headers={"Vary": "User-Agent, Accept-Language"})


async def tiers_css(request: Request) -> Response:
    """`.tier-<key>` classes with each tier's background and foreground: the page's card takes its
    tier's colours from here, since the CSP allows no inline style. The colours are the loader's
    checked rgb() values. Labels keep the foreground: the passes' label colours are chosen for
    Wallet's large type and can miss WCAG AA contrast as small text (coffee's gold: 3.9:1)."""
    template = _services(request).programs.get(request.path_params["program"])
    if template is None:
        return Response("/* no such program */\n", status_code=404, media_type="text/css")
    rules = []
    for tier in template.tiers:
        selector = f".tier-{tier.key}"
        rules.append(f"{selector} {{ background: {tier.background_color}; color: {tier.foreground_color}; }}")
    return Response("\n".join(rules) + "\n", media_type="text/css", headers={"Cache-Control": "public, max-age=300"})


async def badge(request: Request) -> Response:
    """A wallet badge's artwork: only the names of BADGES, from the configured folder."""
    name = request.path_params["name"]
    if name not in _BADGE_NAMES:
        return Response(status_code=404)
    path = badge_dir(_services(request)) / name
    if not path.is_file():
        path = SHIPPED_BADGES / name
    return FileResponse(path, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
