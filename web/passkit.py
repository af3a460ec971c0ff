"""Apple's PassKit web service (`webServiceURL` + /v1/...): registrations, changed serials,
the latest pass, unregistration and device logs, exactly as Apple documents them."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.model import Card
from web.auth import constant_time_equal
from web.body import read_json_object
from web.cards import http_date, pkpass_response, render_pass
from web.errors import ApiError
from web.services import Services

DEVICE_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PASS_TYPE_RE = re.compile(r"^[A-Za-z0-9.-]{1,128}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PUSH_TOKEN_RE = re.compile(r"^[0-9A-Fa-f]{16,512}$")
LOG_KEEP = 10_000
LOG_MESSAGE_MAX = 2_000
LOG_BATCH_MAX = 100
# compared against when the serial is unknown, so both failures take the same path and time
_DUMMY_TOKEN = "x" * 43


def _services(request: Request) -> Services:
    return request.app.state.services


def _path(request: Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.path_params[name]
    if not pattern.match(value):
        raise ApiError(400, "invalid_path", f"{name} is malformed")
    return value


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "not authorized for this pass")


async def _authorized_card(request: Request, pass_type_id: str, serial: str) -> Card:
    """The pass when the `ApplePass` token matches; 401 alike for a wrong or missing token,
    an unknown serial and a foreign pass type."""
    services = _services(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    card = await services.store.get_card_by_serial(serial)
    expected = card.auth_token if card is not None else _DUMMY_TOKEN
    token_ok = constant_time_equal(expected, token.strip())
    if scheme != "ApplePass" or card is None or not token_ok or pass_type_id != services.settings.pass_type_id:
        services.metrics.inc("wallet_passkit_unauthorized_total", help="PassKit requests refused with 401")
        raise _unauthorized()
    return card


def _registration_path(request: Request) -> tuple[str, str, str]:
    return (
        _path(request, "deviceLibraryIdentifier", DEVICE_RE),
        _path(request, "passTypeIdentifier", PASS_TYPE_RE),
        _path(request, "serialNumber", SERIAL_RE),
    )


async def register(request: Request) -> Response:
    device, pass_type, serial = _registration_path(request)
    card = await _authorized_card(request, pass_type, serial)
    body = await read_json_object(request)
    push_token = body.get("pushToken")
    if not isinstance(push_token, str) or not PUSH_TOKEN_RE.match(push_token):
        raise ApiError(400, "invalid_field", "pushToken: a hex APNs device token is required")
    services = _services(request)
    created = await services.store.register_device(device, pass_type, card.serial, push_token, time.time())
    services.metrics.inc(
        "wallet_registrations_total", help="PassKit register calls", result="new" if created else "existing"
    )
    return Response(status_code=201 if created else 200)


async def unregister(request: Request) -> Response:
    device, pass_type, serial = _registration_path(request)
    card = await _authorized_card(request, pass_type, serial)
    await _services(request).store.unregister_device(device, pass_type, card.serial)
    return Response(status_code=200)


def _parse_tag(value: str | None) -> int | None:
    # Tags are ours and opaque to the device; one we never issued means "send everything",
    # which costs a few extra fetches but never loses an update.
    if value is None or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


async def serials(request: Request) -> Response:
    device = _path(request, "deviceLibraryIdentifier", DEVICE_RE)
    pass_type = _path(request, "passTypeIdentifier", PASS_TYPE_RE)
    since = _parse_tag(request.query_params.get("passesUpdatedSince"))
    found, last = await _services(request).store.serials_updated_since(device, pass_type, since)
    if not found:
        return Response(status_code=204)
    # lastUpdated must be a JSON string: iOS ignores a number
    return JSONResponse({"serialNumbers": found, "lastUpdated": str(last)})


def _not_modified(request: Request, card: Card) -> bool:
    header = request.headers.get("if-modified-since")
    if not header:
        return False
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since is None or since.tzinfo is None:
        return False
    return since.timestamp() >= card.modified_at


async def latest_pass(request: Request) -> Response:
    pass_type = _path(request, "passTypeIdentifier", PASS_TYPE_RE)
    serial = _path(request, "serialNumber", SERIAL_RE)
    card = await _authorized_card(request, pass_type, serial)
    if _not_modified(request, card):
        return Response(status_code=304, headers={"Last-Modified": http_date(card.modified_at)})
    rendered = await render_pass(_services(request), card)
    return pkpass_response(rendered, card)


async def log(request: Request) -> Response:
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
