"""Issuer API: issue a card (idempotent per ledger account), read its state, and the signed
links a member follows (the .pkpass download and the card page)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from functools import lru_cache
from typing import Any

import anyio
from google.auth.crypt import Signer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.links import link_valid, sign_link
from cards.model import Card, Member, last_modified
from cards.numbers import luhn_valid
from config.google import GoogleSettings
from passes.apple.pkpass import RenderedPass
from passes.google.model import object_class_id, object_id
from passes.google.save_link import save_jwt, save_url, skinny_payload
from passes.programs import Program
from service.cards import IssueError, NewCard
from web.auth import require_role
from web.body import read_json_object
from web.errors import ApiError
from web.models import NEW_CARD
from web.ratelimit import check_rule
from web.services import Services
from web.validation import invalid

log = logging.getLogger(__name__)

PKPASS_TYPE = "application/vnd.apple.pkpass"


def _services(request: Request) -> Services:
    return request.app.state.services


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=4096)
def _signed_save_jwt(
    signer: Signer, email: str, origins: tuple[str, ...], object_ref: str, class_ref: str, iat: int
) -> str:
    # same claims, same JWT (RS256 is deterministic): a card's link is signed once per process, not
    # on every GET (keyed by the signer object, so a reloaded key signs afresh)
    return save_jwt(signer, email, origins, skinny_payload(object_ref, class_ref), iat)


def google_link(google: GoogleSettings, program: Program | None, card: Card) -> str | None:
    """The card's "Save to Google Wallet" URL, or None when Google Wallet is off (or the card's
    program is no longer loaded).

    Always the skinny form (facts/google-wallet.md §1.1): with the class and object inline, the
    shipped coffee template gives a JWT of about 16 000 characters, far over the 1 800 a link may
    safely have (passes/google/save_link.py choose_form picks the skinny one; tests check that it
    still does), so signing the full one on every answer only to drop it would be waste. The object
    (and its class) are inserted over REST by the outbox when the card is issued, before anyone can
    follow the link. The class is the one of the card's tier (passes/google/model.py).

    Deterministic per card: `iat` is the card's `created_at`, not the time of the answer, and the
    other claims (issuer e-mail, origins, object and class ids) are fixed for the card's tier, so
    the link does not change from one GET to the next and answers stay cacheable. Google's Jwt
    reference marks `iat` required; the facts record no maximum age for it (UNCONFIRMED either
    way). A re-issued JWT changes nothing for an existing object anyway (facts §1.1), so nothing is
    gained by a fresh one.
    """
    account = google.service_account
    if not google.enabled or account is None or program is None:
        return None
    signed = _signed_save_jwt(
        account.signer,
        account.client_email,
        tuple(google.origins),
        object_id(google.issuer_id, card),
        object_class_id(program, card, google.issuer_id),
        int(card.created_at),
    )
    return save_url(signed)


def links_for(services: Services, card: Card, now: float) -> dict[str, str]:
    """`apple` and `page` (signed, expiring), and `google` while Google Wallet is on."""
    settings = services.settings
    expires = int(now) + settings.link_ttl_seconds
    base = settings.public_url
    apple = sign_link(settings.link_secret, "pkpass", card.serial, expires)
    page = sign_link(settings.link_secret, "page", card.serial, expires)
    links = {
        "apple": f"{base}/v1/passes/{card.serial}.pkpass?{apple}",
        "page": f"{base}/c/{card.serial}?{page}",
    }
    google = google_link(settings.google, services.programs.get(card.program), card)
    if google is not None:
        links["google"] = google
    return links


def card_state(
    services: Services, card: Card, devices: Mapping[str, int], now: float, current: int = 0
) -> dict[str, Any]:
    """The card as GET /v1/cards answers it; `devices`: registered devices per app (push/clients.py);
    `current`: how many of them were pushed the card's latest change."""
    expiring = None
    if card.expiring_points:
        expiring = {"points": card.expiring_points, "date": card.expiring_date}
    return {
        "card": card.number,
        "program": card.program,
        "account": card.account,
        "serial": card.serial,
        "member": card.member.to_dict(),
        "locale": card.locale,
        "balance": card.balance,
        "tier": card.tier,
        "pending": card.pending,
        "expiring": expiring,
        "last_message": card.last_message,
        "version": card.version,
        "devices": sum(devices.values()),
        "devices_by_client": dict(sorted(devices.items())),
        "devices_current": current,
        "created_at": iso(card.created_at),
        "updated_at": iso(card.modified_at),
        "links": links_for(services, card, now),
    }


def parse_new_card(data: dict[str, Any], templates: Mapping[str, Program]) -> tuple[Program, dict[str, Any]]:
    # NEW_CARD holds the field rules (and is what /openapi.json shows); the checks that need the chosen
    # program are here. Fields are read one by one so an unknown program is a 404 before the other fields.
    NEW_CARD.refuse_unknown(data)
    program = NEW_CARD.value(data, "program")
    template = templates.get(program or "")
    if template is None:
        raise ApiError(404, "unknown_program", f"program {program!r} does not exist")
    account = NEW_CARD.value(data, "account")
    member = NEW_CARD.value(data, "member")
    balance = NEW_CARD.value(data, "balance")
    tier = NEW_CARD.value(data, "tier")
    if tier is not None and template.tier(tier) is None:
        raise invalid("tier", f"not a tier of {template.program}: {', '.join(template.tier_keys)}")
    locale = NEW_CARD.value(data, "locale")
    if locale is not None and locale not in template.locales:
        raise invalid("locale", f"one of {', '.join(template.locales)}")
    store = NEW_CARD.value(data, "store")
    return template, {
        "home_store": store,
        "account": account,
        "member": Member(name=member["name"], phone=member["phone"], email=member["email"]),
        "balance": balance,
        "tier": tier or template.tier_for_balance(balance).key,
        "locale": locale or template.default_locale,
    }


_ISSUE_STATUS = {"unknown_program": 404, "account_in_other_program": 409, "unavailable": 503}


async def create_card(request: Request) -> Response:
    services = _services(request)
    require_role(request, "issuer")
    program, fields = parse_new_card(await read_json_object(request), services.programs)
    now = time.time()
    home = fields.get("home_store")
    if home is not None:
        found = await services.store.get_store_location(home)
        if found is None or found.program != program.program:
            raise invalid("store", f"no store {home!r} in {program.program} (PUT /v1/stores/{{id}} first)")
    try:
        issued = await services.cards.issue(NewCard(program=program.program, **fields), now)
    except IssueError as exc:
        status = _ISSUE_STATUS.get(exc.code, 400)
        raise ApiError(status, exc.code if status != 400 else "invalid_field", exc.message) from None
    if issued.created:
        services.metrics.inc("wallet_cards_issued_total", help="Cards issued", program=program.program)
    card = issued.card
    body = {
        "card": card.number,
        "serial": card.serial,
        "links": links_for(services, card, now),
        # only here, to the issuer, never on GET: whoever holds it is the member to the companion app.
        # A card issued before app tokens existed has none (null) and no app access.
        "app_token": card.app_token or None,
    }
    return JSONResponse(body, status_code=201 if issued.created else 200)


async def get_card(request: Request) -> Response:
    services = _services(request)
    require_role(request, "issuer")
    number = request.path_params["card_number"]
    card = None
    if len(number) == 16 and number.isdigit() and luhn_valid(number):
        card = await services.store.get_card(number)
    if card is None:
        raise ApiError(404, "unknown_card", "no such card")
    devices = await services.store.count_registrations_by_client(card.serial)
    # "did this card's update reach its phones?": devices told of its current tag (or a newer one)
    targets = (await services.store.pass_targets([(services.settings.pass_type_id, card.serial)])).values()
    current = sum(1 for target in targets for d in target.devices if d.pushed_tag >= card.tag)
    return JSONResponse(card_state(services, card, devices, time.time(), current))


async def render_pass(services: Services, card: Card) -> RenderedPass:
    # an unchanged pass comes from the cache in microseconds; signing (a few hundred
    # microseconds of RSA) goes to a worker thread so the event loop keeps serving
    cached = services.factory.cached(card)
    if cached is not None:
        return cached
    return await anyio.to_thread.run_sync(services.factory.render, card)


def pkpass_response(rendered: RenderedPass, modified_at: int, filename: str | None = None) -> Response:
    """A signed pass (a card's or a voucher's) as served, with its validators."""
    headers = {
        # never a date a newer version of the pass could get too (cards/model.py, last_modified)
        "Last-Modified": http_date(last_modified(modified_at, time.time())),
        "ETag": f'"{rendered.digest}"',
        "Cache-Control": "no-cache",
    }
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(rendered.data, media_type=PKPASS_TYPE, headers=headers)


def http_date(ts: int) -> str:
    return formatdate(ts, usegmt=True)


async def _card_from_link(request: Request, purpose: str, serial: str) -> Card:
    services = _services(request)
    ok = link_valid(
        services.settings.link_secret,
        purpose,
        serial,
        request.query_params.get("exp"),
        request.query_params.get("sig"),
        time.time(),
    )
    card = await services.store.get_card_by_serial(serial) if ok and len(serial) <= 64 else None
    if card is None:
        # expired, forged and unknown links look the same
        raise ApiError(404, "invalid_link", "this link is invalid or has expired")
    return card


async def download_pkpass(request: Request) -> Response:
    serial = request.path_params["serial"]
    card = await _card_from_link(request, "pkpass", serial)
    # WALLET_RATE_PASSKIT per pass, one count with PassKit's fetch of it, before the pass is rendered:
    # only a valid signed link gets this far, so a stranger cannot spend the pass's budget
    await check_rule(request, _services(request).settings.passkit_rate, "passkit", card.serial)
    rendered = await render_pass(_services(request), card)
    return pkpass_response(rendered, card.modified_at, filename=f"{card.program}.pkpass")


# The card page (GET /c/{serial}) is a template: web/pages/card.py.
