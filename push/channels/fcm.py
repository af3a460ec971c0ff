"""The FCM channel: pyfcm's HTTP v1 client with its own retries off, run off the event loop.

pyfcm builds the payload, holds the service-account credentials and the per-thread HTTP
session. Three of its behaviours do not fit a worker that owns retries (see _OneShotFCM):
urllib3 retries on 502/503 (and on any Retry-After), `send_request` sleeps Retry-After and
recurses without limit, and every thread fetches its own OAuth token.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import google.auth.transport.requests
import requests
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.oauth2 import service_account
from pyfcm import FCMNotification
from requests.adapters import HTTPAdapter

from push.channels.base import AlertPush, Channel, Push
from push.results import PushResult, token_hint

log = logging.getLogger(__name__)

GOOGLE_ENDPOINT_BASE = "https://fcm.googleapis.com/v1/projects"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_RETRY_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}


class _OneShotFCM(FCMNotification):  # type: ignore[misc]  # pyfcm ships no types: its class is Any to mypy
    """pyfcm with exactly one HTTP request per send (plus one after an expired access token)."""

    def __init__(self, credentials: service_account.Credentials, endpoint_base: str, project_id: str | None) -> None:
        # max_retries=0: no urllib3 retries on 502/503 or Retry-After; our worker backs off.
        super().__init__(credentials=credentials, project_id=project_id, adapter=HTTPAdapter(max_retries=0))
        self.FCM_END_POINT_BASE = endpoint_base  # pyfcm reads it through self
        self._token_lock = threading.Lock()

    def _get_access_token(self) -> str:
        # Shared by all threads; refreshed only when google-auth says it expired (pyfcm would
        # refresh per thread, and unconditionally every 30 minutes).
        with self._token_lock:
            if not self.credentials.valid:
                self.credentials.refresh(google.auth.transport.requests.Request())
            token = self.credentials.token
            # valid, or refreshed just now (a failed refresh raises): google-auth holds a token
            assert isinstance(token, str)
            return token

    def _forget_access_token(self) -> None:
        with self._token_lock:
            self.credentials.token = None

    def _post(self, payload: bytes, timeout: float | None) -> requests.Response:
        session: requests.Session = self.requests_session  # per-thread (requests.Session is not thread-safe)
        headers = {"Authorization": "Bearer " + self._get_access_token()}
        return session.post(self.fcm_end_point, data=payload, timeout=timeout, headers=headers)

    def send_request(self, payload: bytes | None = None, timeout: float | None = None) -> requests.Response:
        # Replaces pyfcm's sleep-Retry-After-and-recurse: the answer goes back to the caller.
        assert payload is not None
        response = self._post(payload, timeout)
        if self._is_access_token_expired(response):
            self._forget_access_token()
            response = self._post(payload, timeout)
        return response


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _error_fields(body: Any) -> tuple[str | None, str | None, str]:
    """(FcmError errorCode, canonical status, message) from a Google error body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, ""
    code = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            code = detail.get("errorCode")
    return code, error.get("status"), str(error.get("message") or "")


def map_fcm_response(status: int, body: Any, retry_after: str | None) -> PushResult:
    if status == 200:
        return PushResult("ok")
    code, canonical, message = _error_fields(body)
    reason = code or canonical or f"HTTP {status}"
    if code == "UNREGISTERED" or (code is None and status == 404):
        return PushResult("invalid_token", reason)
    if code in _RETRY_CODES or status == 429 or status >= 500:
        return PushResult("retry", reason, retry_after=parse_retry_after(retry_after))
    if code == "INVALID_ARGUMENT" and "registration token" in message:
        # Google: "The registration token is not a valid FCM registration token" → drop it.
        return PushResult("invalid_token", reason)
    if code == "SENDER_ID_MISMATCH":
        # The token belongs to another Firebase project: this one push is hopeless, but the
        # credentials work, so it is not an auth error that should pause all sending.
        return PushResult("failed", reason)
    if code == "THIRD_PARTY_AUTH_ERROR" or status in (401, 403):
        return PushResult("auth_error", reason)
    return PushResult("failed", reason)


class FcmChannel(Channel):
    """Alerts to the Android companion app through FCM HTTP v1.

    `service_account_file` is a Google service-account JSON; its `token_uri` decides where
    OAuth tokens come from. `fcm_endpoint_base` replaces https://fcm.googleapis.com/v1/projects.
    """

    def __init__(
        self,
        service_account_file: str,
        *,
        fcm_endpoint_base: str = GOOGLE_ENDPOINT_BASE,
        project_id: str | None = None,
        timeout: float = 10.0,
        max_threads: int = 16,
    ) -> None:
        credentials: service_account.Credentials
        credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            service_account_file, scopes=[FCM_SCOPE]
        )
        self.project_id = project_id or credentials.project_id
        self.name = "fcm"
        self.timeout = timeout
        self._fcm = _OneShotFCM(credentials, fcm_endpoint_base.rstrip("/"), self.project_id)
        # Own pool: blocking sends never starve the loop's default executor, and the number
        # of per-thread HTTP sessions (connections) stays bounded.
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fcm")

    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        # FCM HTTP v1 takes one message per request: the sends run side by side on the pool.
        return list(await asyncio.gather(*(self._one(push) for push in pushes)))

    async def _one(self, push: Push) -> PushResult:
        if not isinstance(push, AlertPush):
            return PushResult("failed", "FcmTakesAlertsOnly")
        return await self.send(push.token, push.title, push.body, push.data)

    async def send(self, token: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> PushResult:
        # FCM rejects non-string data values; stringify scalars rather than lose the push.
        payload_data = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (data or {}).items()}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._send_blocking, token, title, body, payload_data)

    def _send_blocking(self, token: str, title: str, body: str, data: dict[str, str]) -> PushResult:
        payload = self._fcm.parse_payload(
            fcm_token=token,
            notification_title=title,
            notification_body=body,
            data_payload=data or None,
        )
        try:
            response = self._fcm.send_request(payload, self.timeout)
        except RefreshError as exc:
            # Token endpoint refused the service account (or failed transiently).
            if exc.retryable:
                return PushResult("retry", "OAuthUnavailable")
            log.error("FCM OAuth token refused for project %s", self.project_id)
            return PushResult("auth_error", "OAuthRefused")
        except (TransportError, requests.RequestException) as exc:
            log.warning("FCM send to %s failed: %s", token_hint(token), type(exc).__name__)
            return PushResult("retry", type(exc).__name__)
        except GoogleAuthError as exc:
            return PushResult("auth_error", type(exc).__name__)
        try:
            response_body = response.json()
        except ValueError:
            response_body = None
        return map_fcm_response(response.status_code, response_body, response.headers.get("Retry-After"))

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
