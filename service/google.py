"""Google Wallet wiring: how a card looks there (from settings and the programs), the channel
the worker delivers `google_object` entries through, and the classes ensured at start."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from cards.links import sign_link
from cards.model import Card
from config.settings import Settings
from passes.apple.pass_json import Location
from passes.assets import program_hero_url, program_logo_url
from passes.google.model import loyalty_class, loyalty_classes, loyalty_object
from passes.programs import Program
from push.channels.google import GoogleWalletChannel, Render
from push.channels.google_wallet import GoogleWalletClient
from store.port import Store

log = logging.getLogger(__name__)


def _class_urls(settings: Settings, program: Program) -> dict[str, str]:
    base = settings.public_url
    return {
        "logo_url": program_logo_url(base, program),
        "hero_url": program_hero_url(base, program),
        "callback_url": f"{base}/google/callbacks",  # Google tells us of saves and deletions there
    }


def render_for(settings: Settings, programs: Mapping[str, Program]) -> Render:
    """`render(card)` -> (the card's LoyaltyObject, its tier's LoyaltyClass), as the channel needs."""
    issuer = settings.google.issuer_id

    def render(card: Card) -> tuple[dict[str, Any], dict[str, Any]]:
        program = programs[card.program]
        # The object links to the card page with a signed link like any other; it is renewed
        # whenever the card changes (and so the object is patched).
        expires = int(time.time()) + settings.link_ttl_seconds
        page = f"{settings.public_url}/c/{card.serial}?{sign_link(settings.link_secret, 'page', card.serial, expires)}"
        # the same stores as the Apple pass (geo/evaluate.py); Google has no per-point text or radius
        points = [Location(lat, lon) for lat, lon, _, _ in card.locations]
        state = "INACTIVE" if card.erased_at else "ACTIVE"  # an erased member's object is void
        body = loyalty_object(program, card, issuer, page_url=page, locations=points, state=state)
        return body, loyalty_class(program, issuer, card.tier, **_class_urls(settings, program))

    return render


def google_channel(settings: Settings, programs: Mapping[str, Program], store: Store) -> GoogleWalletChannel | None:
    """The Google Wallet channel, or None when Google Wallet is off."""
    google = settings.google
    if not google.enabled or google.service_account is None:
        return None
    client = GoogleWalletClient(google.api_url, dict(google.service_account.info))
    return GoogleWalletChannel(client, render_for(settings, programs), rate=google.rate, state=store)


async def ensure_classes(channel: GoogleWalletChannel, settings: Settings, programs: Mapping[str, Program]) -> int:
    """Insert every program's tier classes, or patch them when the template changed (409);
    returns how many failed. A failure is logged and left to the objects' own repair (an object
    whose class is missing re-inserts it), so the worker starts whatever Google answers."""
    failed = 0
    for program in programs.values():
        for body in loyalty_classes(program, settings.google.issuer_id, **_class_urls(settings, program)):
            status: str
            try:
                result = await channel.ensure_class(body)
                status = "ok" if result.ok else result.status
            except Exception as exc:  # a bug here must not stop the worker it runs beside
                status = type(exc).__name__
            if status != "ok":
                failed += 1
                log.warning("google wallet: class %s not ensured (%s)", body["id"], status)
    return failed
