"""Companion app (`Authorization: Card <card>:<app_token>`): register the app's push token, and geo
pings that may send a "shop nearby" alert."""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.model import Card
from cards.numbers import last4, luhn_valid
from geo.alerts import KEEP_SECONDS, NearStore, PingResult, alert_decider, nearest_alert, quiet_hours
from geo.area import coarsen
from geo.campaigns import render
from push.clients import APNS_TOKEN_PATTERN, RELAY_TOKEN_PATTERN
from push.messages import AppAlert, entry
from service.geo import utc_today
from service.reports import ALERT_DECISIONS
from store.port import FACT_ALERTS, AlertRecord, AppToken
from web.auth import constant_time_equal
from web.body import read_json_object
from web.errors import ApiError
from web.routing import Security
from web.services import Services
from web.stores import Number
from web.validation import Body, Text, invalid

log = logging.getLogger(__name__)

CARD_APP = Security("cardApp", (), {401: ("unauthorized",)})
# More installs than a member has phones is someone with the app token making work: every ping
# alerts each of them. The least recently registered go first.
APP_TOKENS_MAX = 10
_CARD_NUMBER = re.compile(r"[0-9]{16}")
_APNS_TOKEN = re.compile(APNS_TOKEN_PATTERN.strip("^$"))
# compared when no card (or no app token) is found, so the answer takes as long as a wrong token
_ABSENT_TOKEN = "-" * 32

APP_DEVICE = Body(
    "AppDevice",
    {
        "platform": Text(
            max_len=7, pattern=re.compile("^(android|ios)$"), description="`android` (FCM) or `ios` (APNs)"
        ),
        "token": Text(
            max_len=4096,
            pattern=re.compile(RELAY_TOKEN_PATTERN),
            description="the app's FCM registration token, or on `ios` its APNs device token (hex)",
        ),
    },
)

GEO_PING = Body(
    "GeoPing",
    {
        "lat": Number(-90.0, 90.0, description="latitude, degrees (used for this ping, then only ~1 km of it kept)"),
        "lon": Number(-180.0, 180.0, description="longitude, degrees"),
    },
)


def _services(request: Request) -> Services:
    return request.app.state.services


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Card"})


async def card_of_app(request: Request) -> Card:
    """The card the request's `Card <number>:<app_token>` names; 401 for anything else, before
    anything of the request is read or stored."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    number, _, token = credential.strip().partition(":")
    if scheme.lower() != "card" or not token:
        raise _unauthorized("the app's credentials are required: Authorization: Card <card>:<app_token>")
    card = None
    if _CARD_NUMBER.fullmatch(number) and luhn_valid(number):
        card = await _services(request).store.get_card(number)
    # a card without an app token ("": issued before there were any) has no app access
    expected = card.app_token if card is not None and card.app_token else _ABSENT_TOKEN
    if not constant_time_equal(expected, token) or card is None or not card.app_token:
        raise _unauthorized("unknown card or wrong app token")
    return card


@lru_cache(maxsize=8)
def _rule(text: str) -> RateLimitItem:
    return parse(text)


async def register_device(request: Request) -> Response:
    services = _services(request)
    card = await card_of_app(request)
    # per card, and only once the caller proved to hold its app token: a stranger's wrong guesses
    # must not use up the member's own limit
    await services.limiter.check(services.limiter.passkit_register, "app_device", card.number)
    data = APP_DEVICE.read(await read_json_object(request))
    platform, token = data["platform"], data["token"]
    if platform == "ios" and not _APNS_TOKEN.fullmatch(token):
        raise invalid("token", "an APNs device token (hex) on ios")
    now = time.time()
    store = services.store
    await store.add_app_token(card.number, platform, token, now)
    tokens = await store.app_tokens(card.number)
    for old in sorted(tokens, key=lambda t: (t.updated_at, t.token))[: max(0, len(tokens) - APP_TOKENS_MAX)]:
        if old.token != token:
            await store.delete_app_token(old.token)
    log.info("app device (%s) registered for card *%s", platform, last4(card.number))
    return JSONResponse({"platform": platform, "registered": True})


def _answer(result: PingResult, near: NearStore | None) -> JSONResponse:
    return JSONResponse({"result": result, "store": near.store.id if near is not None else None})


async def geo_ping(request: Request) -> Response:
    services = _services(request)
    card = await card_of_app(request)
    await services.limiter.check(_rule(services.settings.geo.ping_rate), "geo_ping", card.number)
    data = GEO_PING.read(await read_json_object(request))
    lat, lon = data["lat"], data["lon"]
    store = services.store
    tokens = await store.app_tokens(card.number)
    if not tokens:
        raise ApiError(409, "no_app_device", "register the app's push token first: POST /v1/apps/devices")

    geo = services.core.geo
    area = coarsen(lat, lon)
    if area != card.area:
        # only the ~1 km cell is stored; the exact position lives in this request alone
        await geo.set_area(card, area)
    now = time.time()
    snapshot = await geo.snapshot()
    campaigns, stores = snapshot.campaigns(card.program), snapshot.stores(card.program)
    near = nearest_alert(card, lat, lon, campaigns, stores, now, utc_today(now))
    result = await _decide(services, card, near, now)
    if result == "sent":
        assert near is not None
        await store.enqueue([entry(alert) for alert in _alerts(services, card, near, tokens)], now)
        services.outbox_wakeup.set()
    if near is not None:
        # the campaign report's alert columns (service/reports.py); after the alert is queued, so a
        # failure here costs a count, never the alert
        await store.add_facts(FACT_ALERTS, [(card.program, near.campaign.id, ALERT_DECISIONS[result])], now)
    log.info("geo ping of card *%s: %s", last4(card.number), result)
    return _answer(result, near)


async def _decide(services: Services, card: Card, near: NearStore | None, now: float) -> PingResult:
    if near is None:
        return "none_near"
    if quiet_hours(near.store, now):
        return "quiet_hours"
    record = AlertRecord(at=now, campaign=near.campaign.id, store=near.store.id)
    # Recorded before it is enqueued: a crash in between loses this one alert rather than sending
    # it twice (at most once is the member's side of the cap).
    refused = await services.store.reserve_alert(card.number, record, alert_decider(near, now), now - KEEP_SECONDS)
    if refused is None:
        return "sent"
    if refused == "capped":
        return "capped"
    return "cooldown"


def _alerts(services: Services, card: Card, near: NearStore, tokens: list[AppToken]) -> list[AppAlert]:
    program = services.programs.get(card.program)
    tier = program.tier(card.tier) if program is not None else None
    title = program.name(card.locale) if program is not None else card.program
    body = render(near.campaign.text, card, near.store.name, tier.name(card.locale) if tier is not None else None)
    data = {"store": near.store.id, "campaign": near.campaign.id}
    return [
        AppAlert(
            platform="android" if t.platform == "android" else "ios",
            token=t.token,
            card_number=card.number,
            title=title,
            body=body,
            data=data,
        )
        for t in tokens
    ]
