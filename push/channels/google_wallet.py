"""The Google Wallet REST client: loyalty classes and objects, and messages on objects.

One pooled `httpx.AsyncClient` (keep-alive, timeouts) talks to the Wallet REST root
(`WALLET_GOOGLE_API_URL`, `https://walletobjects.googleapis.com`; paths under `/walletobjects/v1`,
facts google-wallet.md §2). OAuth2 access tokens come from google-auth's service-account
credentials (scope `wallet_object.issuer`, JWT-bearer grant to the key's `token_uri`): cached,
refreshed before expiry, the refresh (blocking HTTP in google-auth) run in a thread, one at a time.
A `401` drops the token and the call is made once more with a fresh one.

Answers become a `GoogleWalletResult` here, so callers never read HTTP:
- `ok` (2xx, `body` the class or object; for addMessage the `resource` Google answers with)
- `not_found` (404), `conflict` (409)
- `quota_exceeded`: 403 with reason `quotaExceeded` (Google's 3 TEXT_AND_NOTIFY per 24 h; not a 429)
- `rate_limited`: 429, `retry_after` from Retry-After
- `server_error`: 5xx, timeouts, connection errors, the token endpoint unreachable or failing
- `auth_error`: 401 (after the retry), any other 403, the token grant refused
- `bad_request`: other 4xx, or an id that is not `[A-Za-z0-9._-]+` (no call made)

Access tokens, the assertion and the private key are never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import google.auth.transport.requests
import httpx
import requests
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.oauth2 import service_account

from push.channels.fcm import parse_retry_after

log = logging.getLogger(__name__)

WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GOOGLE_WALLET_API_URL = "https://walletobjects.googleapis.com"
API_PATH = "/walletobjects/v1"
NOTIFY_ON_UPDATE = "NOTIFY_ON_UPDATE"
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9._-]+$")

GoogleWalletStatus = Literal[
    "ok", "not_found", "conflict", "quota_exceeded", "rate_limited", "server_error", "auth_error", "bad_request"
]


@dataclass(frozen=True)
class GoogleWalletResult:
    """What one Wallet REST call came to (see the module docstring for the mapping)."""

    status: GoogleWalletStatus
    body: dict[str, Any] | None = None  # the resource, when ok
    http_status: int | None = None  # None: no answer (timeout, connection, token trouble, refused id)
    reason: str | None = None  # Google's error reason / message, or the exception's class name
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retryable(self) -> bool:
        """Worth the same call later (rate limited, Google or the network in trouble)."""
        return self.status in ("rate_limited", "server_error")


class GoogleWalletConfigError(ValueError):
    """The service-account info cannot be used (names the problem, never the key)."""


class _TimedRequest(google.auth.transport.requests.Request):
    """google-auth's requests transport with our timeout instead of its 120 s default."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session=session)
        self._timeout = timeout

    def __call__(  # same call, our default timeout
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            url, method=method, body=body, headers=headers, timeout=timeout or self._timeout, **kwargs
        )


def _error_reason(body: Any) -> tuple[str | None, str]:
    """(reason, message) of a Google API error body: `error.errors[].reason` (the Wallet API's,
    e.g. quotaExceeded) or `error.details[].reason` (google.rpc.ErrorInfo)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    reasons: list[str] = []
    for item in (error.get("errors") or []) + (error.get("details") or []):
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            reasons.append(item["reason"])
    reason = next((r for r in reasons if r.lower() == "quotaexceeded"), reasons[0] if reasons else None)
    return reason, str(error.get("message") or "")[:300]


def map_response(response: httpx.Response) -> GoogleWalletResult:
    """A Wallet REST answer as a result (pure: no token handling, no logging)."""
    status = response.status_code
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if 200 <= status < 300:
        return GoogleWalletResult("ok", body if isinstance(body, dict) else {}, status)
    reason, message = _error_reason(body)
    detail = reason or message or f"HTTP {status}"
    if status == 404:
        return GoogleWalletResult("not_found", http_status=status, reason=detail)
    if status == 409:
        return GoogleWalletResult("conflict", http_status=status, reason=detail)
    if status == 403 and reason is not None and reason.lower() == "quotaexceeded":
        return GoogleWalletResult("quota_exceeded", http_status=status, reason=reason)
    if status in (401, 403):
        return GoogleWalletResult("auth_error", http_status=status, reason=detail)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return GoogleWalletResult("rate_limited", http_status=status, reason=detail, retry_after=retry_after)
    if status >= 500:
        return GoogleWalletResult("server_error", http_status=status, reason=detail, retry_after=retry_after)
    return GoogleWalletResult("bad_request", http_status=status, reason=message or detail)


class GoogleWalletClient:
    """Loyalty classes and objects over the Wallet REST API, as one issuer's service account.

    `api_url` is the REST root (WALLET_GOOGLE_API_URL; a URL already ending in /walletobjects/v1
    is taken as is). `service_account_info` is the key JSON as a dict (`token_uri` in it says where
    tokens come from). A token is refreshed when less than `refresh_margin` seconds of it remain
    (at most half its lifetime, so a short-lived token is not fetched for every call).
    """

    def __init__(
        self,
        api_url: str,
        service_account_info: Mapping[str, Any],
        *,
        timeout: float = 10.0,
        token_timeout: float = 10.0,
        max_connections: int = 10,
        refresh_margin: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        root = api_url.rstrip("/")
        self.base_url = root if root.endswith(API_PATH) else root + API_PATH
        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
                dict(service_account_info), scopes=[WALLET_SCOPE]
            )
        except (ValueError, KeyError, TypeError) as exc:
            # google-auth names missing fields; cryptography's messages carry no key material
            raise GoogleWalletConfigError(f"Google service account unusable: {exc}") from None
        self.service_account_email: str = self._credentials.service_account_email
        self.refresh_margin = refresh_margin
        self._session = requests.Session()
        self._auth_request = _TimedRequest(self._session, token_timeout)
        self._token: str | None = None
        self._token_deadline = 0.0  # monotonic: the token's expiry
        self._token_margin = 0.0
        self._token_lock = asyncio.Lock()
        # a cancelled refresh's thread runs on after the asyncio lock is released: this one keeps
        # two refreshes from touching the credentials at once even then
        self._refresh_lock = threading.Lock()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )

    # -- classes -----------------------------------------------------------------------------
    async def insert_class(self, body: Mapping[str, Any]) -> GoogleWalletResult:
        return await self._call("POST", "/loyaltyClass", json=dict(body))

    async def get_class(self, class_id: str) -> GoogleWalletResult:
        return await self._call("GET", "/loyaltyClass/{}", class_id)

    async def patch_class(self, class_id: str, body: Mapping[str, Any], *, notify: bool = False) -> GoogleWalletResult:
        return await self._call("PATCH", "/loyaltyClass/{}", class_id, json=_patch_body(body, notify))

    async def ensure_class(self, body: Mapping[str, Any]) -> GoogleWalletResult:
        """Insert the class; when it exists (409), PATCH it with the same body (the template may
        have changed). Send `reviewStatus: UNDER_REVIEW` in `body` for an approved class (§1.2)."""
        result = await self.insert_class(body)
        if result.status != "conflict":
            return result
        class_id = body.get("id")
        if not isinstance(class_id, str):
            return GoogleWalletResult("bad_request", reason="NoClassId")
        return await self.patch_class(class_id, body)

    # -- objects -----------------------------------------------------------------------------
    async def insert_object(self, body: Mapping[str, Any]) -> GoogleWalletResult:
        return await self._call("POST", "/loyaltyObject", json=dict(body))

    async def get_object(self, object_id: str) -> GoogleWalletResult:
        return await self._call("GET", "/loyaltyObject/{}", object_id)

    async def patch_object(
        self, object_id: str, body: Mapping[str, Any], *, notify: bool = False
    ) -> GoogleWalletResult:
        """PATCH only the fields in `body` (arrays replace whole: read-modify-write them).
        `notify=True` sends `notifyPreference: NOTIFY_ON_UPDATE` (ephemeral: per PATCH, §2)."""
        return await self._call("PATCH", "/loyaltyObject/{}", object_id, json=_patch_body(body, notify))

    async def ensure_object(self, body: Mapping[str, Any]) -> GoogleWalletResult:
        """Insert the object; when it exists (409), PATCH it with the same body."""
        result = await self.insert_object(body)
        if result.status != "conflict":
            return result
        object_id = body.get("id")
        if not isinstance(object_id, str):
            return GoogleWalletResult("bad_request", reason="NoObjectId")
        return await self.patch_object(object_id, body)

    async def add_message(self, object_id: str, message: Mapping[str, Any]) -> GoogleWalletResult:
        """POST …/loyaltyObject/{id}/addMessage with `{"message": message}` (`messageType`
        TEXT or TEXT_AND_NOTIFY); ok's `body` is the object Google answers with (`resource`)."""
        result = await self._call("POST", "/loyaltyObject/{}/addMessage", object_id, json={"message": dict(message)})
        if result.ok and result.body is not None and isinstance(result.body.get("resource"), dict):
            return GoogleWalletResult("ok", result.body["resource"], result.http_status)
        return result

    async def aclose(self) -> None:
        await self._client.aclose()
        self._session.close()

    async def __aenter__(self) -> GoogleWalletClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- HTTP --------------------------------------------------------------------------------
    async def _call(
        self, method: str, template: str, resource_id: str | None = None, *, json: Any = None
    ) -> GoogleWalletResult:
        if resource_id is not None:
            if not _RESOURCE_ID.match(resource_id):
                return GoogleWalletResult("bad_request", reason="InvalidResourceId")
            path = template.format(resource_id)
        else:
            path = template
        url = self.base_url + path
        stale: str | None = None
        for _attempt in range(2):
            token = await self._access_token(stale)
            if isinstance(token, GoogleWalletResult):
                return token
            try:
                response = await self._client.request(
                    method, url, json=json, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TimeoutException:
                log.warning("google wallet %s %s timed out", method, path)
                return GoogleWalletResult("server_error", reason="Timeout")
            except httpx.HTTPError as exc:
                log.warning("google wallet %s %s failed: %s", method, path, type(exc).__name__)
                return GoogleWalletResult("server_error", reason=type(exc).__name__)
            if response.status_code == 401 and stale is None:
                stale = token  # expired or revoked early: once more with a fresh token
                continue
            break
        result = map_response(response)
        if result.status == "auth_error":
            log.error("google wallet %s %s refused our credentials (%s)", method, path, result.reason)
        elif not result.ok:
            log.warning("google wallet %s %s: %s (%s)", method, path, result.status, result.reason)
        return result

    # -- OAuth tokens ------------------------------------------------------------------------
    async def ready(self) -> None:
        """Have a fresh access token, so the call that follows goes out at once: a caller pacing
        its calls (the channel's rate limit) then spends no slot waiting for a token refresh.
        A failed refresh is left for that call to report."""
        await self._access_token()

    def _fresh(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_deadline - self._token_margin

    async def _access_token(self, stale: str | None = None) -> str | GoogleWalletResult:
        """The cached token, refreshed first when about to expire or when `stale` (refused by the
        API) is still the cached one. One refresh at a time; waiters take its token."""
        if stale is None and self._fresh():
            assert self._token is not None
            return self._token
        async with self._token_lock:
            if self._token is not None and self._token != stale and self._fresh():
                return self._token
            try:
                token, expiry = await asyncio.to_thread(self._refresh)
            except RefreshError as exc:
                retryable = bool(getattr(exc, "retryable", False))
                log.error("google wallet: token grant refused (%s)", _safe_message(exc))
                return GoogleWalletResult("server_error" if retryable else "auth_error", reason="TokenRefused")
            except TransportError as exc:
                log.warning("google wallet: token endpoint unreachable (%s)", type(exc).__name__)
                return GoogleWalletResult("server_error", reason="TokenEndpointUnreachable")
            except GoogleAuthError as exc:
                log.error("google wallet: token refresh failed (%s)", type(exc).__name__)
                return GoogleWalletResult("auth_error", reason=type(exc).__name__)
            now_wall = dt.datetime.now(dt.UTC)
            if expiry is None:
                lifetime = 3600.0  # google-auth sets expiry from expires_in; absent: Google's usual hour
            else:
                if expiry.tzinfo is None:  # google-auth's expiry is naive UTC
                    expiry = expiry.replace(tzinfo=dt.UTC)
                lifetime = max(0.0, (expiry - now_wall).total_seconds())
            self._token = token
            self._token_deadline = time.monotonic() + lifetime
            self._token_margin = min(self.refresh_margin, lifetime / 2)
            return token

    def _refresh(self) -> tuple[str, dt.datetime | None]:
        """In a worker thread, under the token locks: the only code touching the credentials."""
        with self._refresh_lock:
            self._credentials.refresh(self._auth_request)
            token = self._credentials.token
            expiry = self._credentials.expiry
        if not isinstance(token, str) or not token:
            raise RefreshError("token endpoint answered no access_token")  # type: ignore[no-untyped-call]
        return token, expiry if isinstance(expiry, dt.datetime) else None


def _patch_body(body: Mapping[str, Any], notify: bool) -> dict[str, Any]:
    out = dict(body)
    if notify:
        out["notifyPreference"] = NOTIFY_ON_UPDATE
    return out


def _safe_message(exc: Exception) -> str:
    """google-auth's refresh error text is `<error>: <error_description>` from the token
    endpoint; its second argument (the raw answer) is left out."""
    first = exc.args[0] if exc.args else type(exc).__name__
    return str(first)[:200]
