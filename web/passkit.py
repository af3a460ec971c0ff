"""Apple's PassKit web service (`webServiceURL` + /v1/...): registrations, changed serials,
the latest pass, unregistration and device logs, exactly as Apple documents them; and the same
protocol as the Android pass apps speak it (push/clients.py): their own Authorization words,
PassWallet's `registrations_attido` paths with its `pushServiceUrl`, FCM/HMS push tokens.

Rate-limited (WALLET_RATE_PASSKIT, web/ratelimit.py): per pass once the caller is authorized for it
(a stranger cannot spend a member's pass budget; a refusal is the same two lookups either way), before
anything is read, rendered or stored; per device on serials-since, per client address on the log."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.bounds import decimal
from cards.model import Card, last_modified, unchanged_since
from push import clients
from store.port import Voucher
from web.body import read_json_object
from web.cards import http_date, pkpass_response, render_pass
from web.errors import ApiError
from web.ratelimit import check_rule, client_address
from web.services import Services
from web.vouchers import render_voucher_pass

# matched with fullmatch (`$` alone lets a trailing newline through); the `^...$` form is for the document
DEVICE_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PASS_TYPE_RE = re.compile(r"^[A-Za-z0-9.-]{1,128}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LOG_KEEP = 10_000
LOG_MESSAGE_MAX = 2_000
LOG_BATCH_MAX = 100
# Tokens are compared as HMAC-SHA256 digests under a key of this process's own: compare_digest then sees
# two 32-byte values whatever the tokens' lengths, and a timing difference could only tell an attacker
# about digests under a key they never learn. A serial that does not exist is compared against a random
# token of the same kind, so both failures do the same work here.
_DIGEST_KEY = secrets.token_bytes(32)
_NO_SUCH_TOKEN = secrets.token_urlsafe(24)
# passesUpdatedSince: our tags are SQLite/Redis integers, below 2**63; anything else was never issued
_TAG_DIGITS = 19
_TAG_MAX = 2**63 - 1


def _services(request: Request) -> Services:
    return request.app.state.services


def _path(request: Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.path_params[name]
    if not pattern.fullmatch(value):
        raise ApiError(400, "invalid_path", f"{name} is malformed")
    return value


def _digest(token: str) -> bytes:
    return hmac.new(_DIGEST_KEY, token.encode(), hashlib.sha256).digest()


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "not authorized for this pass")


class _Lookups:
    """Serials for the second lookup of a refusal. A store does more work for a serial it has (decode the
    card; on Redis a second round trip) than for one it has not, so the time of one lookup would tell
    which it was. A refusal therefore always costs one lookup that finds a card and one that finds none:
    a wrong token looks up a serial that never exists, an unknown serial looks up one seen to exist."""

    def __init__(self) -> None:
        self.present: str | None = None  # the last serial found; cards are never deleted
        self.absent = secrets.token_urlsafe(16)  # the shape of a serial, 128 random bits: never issued

    def seen(self, card: Card | None) -> None:
        if card is not None:
            self.present = card.serial

    def other_than(self, card: Card | Voucher | None) -> str:
        # until this process has found any card, both refusals look up absent serials alike
        return self.absent if card is not None or self.present is None else self.present


_LOOKUPS = _Lookups()


def _scheme(request: Request) -> tuple[str, str]:
    """The Authorization header's word and token (`<word> <token>`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme, token.strip()


async def _authorized_card(request: Request, pass_type_id: str, serial: str, *, word_ok: bool) -> Card | Voucher:
    """The pass (a card's, or a voucher's: a certificate or an offer) when the token matches and the
    caller's word is one this call takes (`word_ok`); 401 alike for a wrong word, a wrong or missing
    token, an unknown serial and a foreign pass type."""
    services = _services(request)
    _, token = _scheme(request)
    found = await services.store.get_card_by_serial(serial)
    _LOOKUPS.seen(found)
    # a voucher's serial is one no card has; its lookup is the same for every serial no card has
    card: Card | Voucher | None = found if found is not None else await services.store.get_voucher_by_serial(serial)
    expected = card.auth_token if card is not None else _NO_SUCH_TOKEN
    token_ok = hmac.compare_digest(_digest(expected), _digest(token))
    # `&`, not `and`: every condition is evaluated whichever fails
    authorized = word_ok & (card is not None) & token_ok & (pass_type_id == services.settings.pass_type_id)
    if not authorized or card is None:
        await services.store.get_card_by_serial(_LOOKUPS.other_than(card))  # the result is not used
        services.metrics.inc("wallet_passkit_unauthorized_total", help="PassKit requests refused with 401")
        raise _unauthorized()
    return card


def _known_word(request: Request) -> bool:
    # Fetch and unregister take any app's word: the client was told apart at registration.
    return clients.is_known_word(_scheme(request)[0])


async def _limited_card(request: Request, pass_type_id: str, serial: str, *, word_ok: bool) -> Card | Voucher:
    """The authorized pass (`_authorized_card`), once it is within WALLET_RATE_PASSKIT (429: nothing is done)."""
    card = await _authorized_card(request, pass_type_id, serial, word_ok=word_ok)
    await check_rule(request, _services(request).settings.passkit_rate, "passkit", card.serial)
    return card


def _registration_path(request: Request) -> tuple[str, str, str]:
    return (
        _path(request, "deviceLibraryIdentifier", DEVICE_RE),
        _path(request, "passTypeIdentifier", PASS_TYPE_RE),
        _path(request, "serialNumber", SERIAL_RE),
    )


def _push_service_url(services: Services, body: dict[str, Any]) -> str:
    """PassWallet's push service, checked before anything is stored: the phone chose it, and the
    worker will POST to it (facts §4; no SSRF into the operator's network)."""
    url = body.get("pushServiceUrl")
    if not isinstance(url, str) or not url:
        raise ApiError(400, "invalid_field", "pushServiceUrl: the app's push service URL is required")
    relays = services.settings.relays
    if not clients.service_url_allowed(url, relays.passwallet_hosts, relays.allow_http):
        raise ApiError(400, "invalid_field", "pushServiceUrl: not a push service this server sends to")
    return url


async def register(request: Request) -> Response:
    """Apple's registration, as every app but PassWallet makes it."""
    return await _register(request, attido=False)


async def register_attido(request: Request) -> Response:
    """PassWallet's registration, on its own path (`registrations_attido`) with `pushServiceUrl`."""
    return await _register(request, attido=True)


async def _register(request: Request, *, attido: bool) -> Response:
    device, pass_type, serial = _registration_path(request)
    client = clients.classify(_scheme(request)[0], request.headers.get("x-pass-client"), attido)
    card = await _limited_card(request, pass_type, serial, word_ok=client is not None)
    assert client is not None  # authorized implies a known word
    if isinstance(card, Card) and card.erased_at:
        # an erased member's pass is void: no push token of theirs is kept again
        raise ApiError(401, "unauthorized", "this pass is void")
    services = _services(request)
    body = await read_json_object(request)
    push_token = body.get("pushToken")
    if not isinstance(push_token, str) or not clients.push_token_ok(client, push_token):
        raise ApiError(400, "invalid_field", f"pushToken: {clients.push_token_rule(client)}")
    service_url = _push_service_url(services, body) if client == clients.PASSWALLET else None
    await services.limiter.check(services.limiter.passkit_register, "passkit-register", card.serial)
    created = await services.store.register_device(
        device,
        pass_type,
        card.serial,
        push_token,
        time.time(),
        client=client,
        push_service_url=service_url,
        max_devices=services.settings.max_devices_per_pass,
        # what the install reports count it under (GET /v1/reports/installs)
        program=card.program,
        tier=card.tier if isinstance(card, Card) else card.kind,
    )
    services.metrics.inc(
        "wallet_registrations_total",
        help="PassKit register calls, per app",
        result="new" if created else "existing",
        client=client,
    )
    return Response(status_code=201 if created else 200)


async def unregister(request: Request) -> Response:
    return await _unregister(request)


async def unregister_attido(request: Request) -> Response:
    """Unregistration on PassWallet's path: the same, any known word."""
    return await _unregister(request)


async def _unregister(request: Request) -> Response:
    device, pass_type, serial = _registration_path(request)
    card = await _limited_card(request, pass_type, serial, word_ok=_known_word(request))
    await _services(request).store.unregister_device(device, pass_type, card.serial, time.time())
    return Response(status_code=200)


def _parse_tag(value: str | None) -> int | None:
    # Tags are ours and opaque to the device; one we never issued means "send everything",
    # which costs a few extra fetches but never loses an update.
    tag = decimal(value, _TAG_DIGITS)
    return tag if tag is not None and tag <= _TAG_MAX else None


async def serials(request: Request) -> Response:
    device = _path(request, "deviceLibraryIdentifier", DEVICE_RE)
    pass_type = _path(request, "passTypeIdentifier", PASS_TYPE_RE)
    # per device: the call names no pass
    await check_rule(request, _services(request).settings.passkit_rate, "passkit-device", device)
    since = _parse_tag(request.query_params.get("passesUpdatedSince"))
    found, last = await _services(request).store.serials_updated_since(device, pass_type, since)
    if not found:
        return Response(status_code=204)
    # lastUpdated must be a JSON string: iOS ignores a number
    return JSONResponse({"serialNumbers": found, "lastUpdated": str(last)})


def _if_modified_since(request: Request) -> float | None:
    """The header as unix seconds; None when absent or not a date we can read (then it is ignored, as
    RFC 9110 says): absurd years and zones overflow or fall outside datetime's range."""
    header = request.headers.get("if-modified-since")
    if not header:
        return None
    try:
        since = parsedate_to_datetime(header)
        if since is None or since.tzinfo is None:
            return None
        return since.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def latest_pass(request: Request) -> Response:
    pass_type = _path(request, "passTypeIdentifier", PASS_TYPE_RE)
    serial = _path(request, "serialNumber", SERIAL_RE)
    card = await _limited_card(request, pass_type, serial, word_ok=_known_word(request))
    since = _if_modified_since(request)
    now = time.time()
    if since is not None and unchanged_since(card.modified_at, since, now):
        return Response(status_code=304, headers={"Last-Modified": http_date(last_modified(card.modified_at, now))})
    if isinstance(card, Voucher):
        return pkpass_response(await render_voucher_pass(_services(request), card), card.modified_at)
    return pkpass_response(await render_pass(_services(request), card), card.modified_at)


async def log(request: Request) -> Response:
    # per client address: the call names no pass and no device
    await check_rule(request, _services(request).settings.passkit_rate, "passkit-log", client_address(request))
    body = await read_json_object(request)
    logs: Any = body.get("logs")
    if not isinstance(logs, list) or not all(isinstance(m, str) for m in logs):
        raise ApiError(400, "invalid_field", "logs: a list of strings is required")
    if len(logs) > LOG_BATCH_MAX:
        raise ApiError(400, "invalid_field", f"logs: at most {LOG_BATCH_MAX} messages")
    messages = [m[:LOG_MESSAGE_MAX] for m in logs if m]
    if messages:
        await _services(request).store.append_device_logs(messages, time.time(), LOG_KEEP)
    return Response(status_code=200)
