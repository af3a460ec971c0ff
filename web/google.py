"""Google Wallet callbacks: `POST /google/callbacks`, where Google says a user saved (`save`) or
deleted (`del`) one of our passes. Each is verified (ECv2SigningOnly, passes/google/callbacks.py)
against Google's root signing keys before anything is recorded, and recorded once per nonce.

Answers: 200 once recorded, and again for a nonce seen before (Google retries and sends
duplicates; nothing new is recorded); 400 for a body that is not a callback, 401 for one that does
not verify for us now (nothing recorded either way); 503 with Retry-After while the root keys
cannot be fetched (nothing recorded; Google retries); 404 while Google Wallet is off.

The root keys come from WALLET_GOOGLE_KEYS_URL on one pooled httpx client and are kept in this
process until `root_keys_cache_until` (the earliest key expiry, sooner by the answer's
Cache-Control), then fetched again; concurrent callbacks wait for one fetch, never start their own.
Logs name the outcome only: never an object id, a nonce or a byte of the body.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from passes.google.callbacks import (
    MAX_BODY_BYTES,
    MAX_KEY_SIGNATURES,
    NO_ROOT_KEY,
    PROTOCOL_VERSION,
    CallbackRejected,
    RootKey,
    RootKeysError,
    parse_root_keys,
    root_keys_cache_until,
    verify_callback,
)
from web.body import read_body
from web.errors import ApiError
from web.ratelimit import check_rule, client_address
from web.schemas import Schema
from web.services import Services, services_of

log = logging.getLogger(__name__)

CALLBACKS_TOTAL = "wallet_google_callbacks_total"
_CALLBACKS_HELP = "Google Wallet save/delete callbacks by result (recorded, duplicate, a refusal reason, ...)"

# The error codes of this route (their meanings are in web/routing.py's ERROR_CODES).
INVALID_CALLBACK = "invalid_callback"
UNVERIFIED_CALLBACK = "unverified_callback"
GOOGLE_WALLET_OFF = "google_wallet_off"
KEYS_UNAVAILABLE = "keys_unavailable"

# The keys document Google serves is about 1 KiB; anything far bigger is not it.
MAX_KEYS_BYTES = 64 * 1024
FETCH_TIMEOUT = 5.0
# After a failed fetch, callbacks are answered 503 for this long before the next try: a down keys
# URL is not hit once per callback Google retries.
RETRY_SECONDS = 2.0


class RootKeysUnavailable(Exception):
    """The root keys could not be fetched (or none is usable); `retry_after` in whole seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _wall_ms() -> int:
    return int(time.time() * 1000)


class RootKeyCache:
    """Google's ECv2SigningOnly root keys for this process: fetched on first use, kept until
    root_keys_cache_until, fetched again after; one fetch at a time."""

    def __init__(
        self,
        keys_url: str,
        *,
        timeout: float = FETCH_TIMEOUT,
        retry_seconds: float = RETRY_SECONDS,
        clock_ms: Callable[[], int] = _wall_ms,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = keys_url
        self._retry_seconds = retry_seconds
        self._clock_ms = clock_ms
        self._keys: list[RootKey] = []
        self._until_ms = 0  # epoch ms: the keys are used until then
        self._retry_at_ms = 0  # epoch ms: no fetch before then (after a failed one)
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for tests and curiosity
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _cached(self, now_ms: int) -> list[RootKey] | None:
        if now_ms < self._until_ms:
            keys = [key for key in self._keys if key.valid_at(now_ms)]
            if keys:
                return keys
        return None

    async def keys(self) -> list[RootKey]:
        """The usable root keys now, or RootKeysUnavailable."""
        cached = self._cached(self._clock_ms())
        if cached is not None:
            return cached
        async with self._lock:
            now_ms = self._clock_ms()
            cached = self._cached(now_ms)  # another callback's fetch may have landed meanwhile
            if cached is not None:
                return cached
            if now_ms < self._retry_at_ms:
                raise RootKeysUnavailable("the last fetch failed", _seconds(self._retry_at_ms - now_ms))
            try:
                keys, until_ms = await self._fetch()
            except RootKeysUnavailable:
                self._keys, self._until_ms = [], 0
                self._retry_at_ms = self._clock_ms() + int(self._retry_seconds * 1000)
                raise
            self._keys, self._until_ms, self._retry_at_ms = keys, until_ms, 0
            return keys

    async def _fetch(self) -> tuple[list[RootKey], int]:
        self.fetches += 1
        retry = _seconds(self._retry_seconds * 1000)
        try:
            async with self._client.stream("GET", self._url) as response:
                if response.status_code != 200:
                    raise self._failed(f"the keys URL answered {response.status_code}", retry)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_KEYS_BYTES:
                        raise self._failed(f"the keys document is over {MAX_KEYS_BYTES} bytes", retry)
                    chunks.append(chunk)
                cache_control = response.headers.get("cache-control")
        except httpx.HTTPError as exc:
            raise self._failed(f"the keys URL cannot be reached ({type(exc).__name__})", retry) from None
        now_ms = self._clock_ms()
        try:
            keys = parse_root_keys(b"".join(chunks), now_ms)
        except RootKeysError as exc:
            raise self._failed(f"the keys document is unusable: {exc}", retry) from None
        if not keys:
            raise self._failed(f"the keys document has no {PROTOCOL_VERSION} key valid now", retry)
        until_ms = root_keys_cache_until(keys, now_ms, cache_control)
        log.info("Google root keys fetched: %d usable, kept for %d s", len(keys), (until_ms - now_ms) // 1000)
        return keys, until_ms

    @staticmethod
    def _failed(reason: str, retry_after: int) -> RootKeysUnavailable:
        log.warning("Google root keys unavailable: %s", reason)
        return RootKeysUnavailable(reason, retry_after)


def _seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


# -- the route -------------------------------------------------------------------------------------


def _count(request: Request, result: str) -> None:
    services_of(request).metrics.inc(CALLBACKS_TOTAL, help=_CALLBACKS_HELP, result=result)


def _refused(request: Request, exc: CallbackRejected) -> ApiError:
    _count(request, exc.reason)
    # the reason only: the detail can quote ids from the body
    log.info("Google callback refused: %s", exc.reason)
    status = exc.http_status
    code = INVALID_CALLBACK if status == 400 else UNVERIFIED_CALLBACK
    return ApiError(status, code, f"callback refused: {exc.reason}")


async def google_callback(request: Request) -> JSONResponse:
    services = services_of(request)
    google = services.settings.google
    cache = services.google_keys
    if not google.enabled or cache is None:
        _count(request, "off")
        raise ApiError(404, GOOGLE_WALLET_OFF, "Google Wallet is off on this service")
    # WALLET_RATE_GOOGLE_CALLBACKS per client address, before the body is read
    await check_rule(request, services.settings.google_callbacks_rate, "google-callbacks", client_address(request))
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except ApiError as exc:
        _count(request, "too_large" if exc.status == 413 else "malformed")
        raise
    verify: dict[str, Any] = {"sender_id": google.sender_id, "issuer_id": google.issuer_id}

    # The shape first, with no keys: a body that is not a callback costs no key fetch.
    try:
        verify_callback(body, [], now_ms=_wall_ms(), **verify)
    except CallbackRejected as exc:
        if exc.reason != NO_ROOT_KEY:
            raise _refused(request, exc) from None

    try:
        keys = await cache.keys()
    except RootKeysUnavailable as exc:
        _count(request, "keys_unavailable")
        raise ApiError(
            503,
            KEYS_UNAVAILABLE,
            "Google's root signing keys cannot be fetched now; retry later",
            {"Retry-After": str(exc.retry_after)},
        ) from None

    try:
        callback = verify_callback(body, keys, now_ms=_wall_ms(), **verify)
    except CallbackRejected as exc:
        raise _refused(request, exc) from None

    program, tier = await _install_of(services, google.issuer_id, callback.object_id)
    recorded = await services.store.record_google_callback(
        callback.nonce, callback.object_id, callback.event, time.time(), program=program, tier=tier
    )
    result = "recorded" if recorded else "duplicate"
    _count(request, result)
    log.info("Google callback %s: %s", callback.event, result)
    return JSONResponse({"result": result, "event": callback.event})


# -- what /openapi.json says of it ---------------------------------------------------------------

_B64 = {"type": "string", "contentEncoding": "base64"}

CALLBACK = Schema(
    "GoogleCallback",
    lambda _choices: {
        "type": "object",
        "description": "What Google POSTs to a class's callbackOptions.url (ECv2SigningOnly). `signedKey` and "
        "`signedMessage` are JSON documents inside strings, verified byte for byte as sent.",
        "properties": {
            "signature": _B64 | {"description": "DER ECDSA P-256 signature of signedMessage by the intermediate key"},
            "intermediateSigningKey": {
                "type": "object",
                "properties": {
                    "signedKey": {
                        "type": "string",
                        "description": "JSON: keyValue (base64 DER P-256 public key), keyExpiration (epoch ms)",
                    },
                    "signatures": {
                        "type": "array",
                        "items": _B64,
                        "minItems": 1,
                        "maxItems": MAX_KEY_SIGNATURES,
                        "description": "DER ECDSA signatures of signedKey by a Google root key",
                    },
                },
                "required": ["signedKey", "signatures"],
            },
            "protocolVersion": {"const": PROTOCOL_VERSION},
            "signedMessage": {
                "type": "string",
                "description": "JSON: classId, objectId, eventType (save or del), expTimeMillis, count, nonce",
            },
        },
        "required": ["signature", "intermediateSigningKey", "protocolVersion", "signedMessage"],
    },
)

CALLBACK_RESULT = Schema(
    "GoogleCallbackResult",
    lambda _choices: {
        "type": "object",
        "properties": {
            "result": {
                "enum": ["recorded", "duplicate"],
                "description": "duplicate: this nonce was recorded before; nothing new is",
            },
            "event": {"enum": ["save", "del"]},
        },
        "required": ["result", "event"],
    },
)


async def _install_of(services: Services, issuer_id: str, object_id: str) -> tuple[str, str]:
    """(program, tier) the install reports count a callback's object under: its card's, or its voucher's
    program and kind; ("", "") for an object this service does not know (still recorded)."""
    prefix = f"{issuer_id}."
    serial = object_id[len(prefix) :] if object_id.startswith(prefix) else ""
    if not serial:
        return "", ""
    card = await services.store.get_card_by_serial(serial)
    if card is not None:
        return card.program, card.tier
    voucher = await services.store.get_voucher_by_serial(serial)
    return (voucher.program, voucher.kind) if voucher is not None else ("", "")
