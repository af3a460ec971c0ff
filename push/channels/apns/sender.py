"""The APNs channel: one long-lived, pooled aioapns client per topic, outcomes as PushResult.

Pass updates are empty (`{}`) pushes with topic = pass type id, sent to production APNs with
the Pass Type ID certificate (Apple's documented way) or, optionally, a team .p8 key; alerts
to the companion iOS app use its bundle id as topic. The endpoint is configurable (a loopback
fake in tests); _aioapns.py holds the work on aioapns internals this relies on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsBaseClientProtocol
from aioapns.exceptions import ConnectionClosed, ConnectionError, MaxAttemptsExceeded

from push.channels.apns._aioapns import TlsFailures, ignore_error, protocol_class
from push.channels.base import AlertPush, Channel, PassPush, Push
from push.results import PushResult, token_hint

log = logging.getLogger(__name__)

MAX_PAYLOAD = 4096
_HEX_TOKEN = re.compile(r"[0-9a-fA-F]+")


def map_apns_response(status: int, reason: str | None, timestamp_ms: float | None) -> PushResult:
    """Apple's status/reason table reduced to what the worker acts on."""
    if status == 200:
        return PushResult("ok")
    if status == 410 or (status == 400 and reason == "BadDeviceToken"):
        ts = timestamp_ms / 1000.0 if timestamp_ms is not None else None
        return PushResult("invalid_token", reason, timestamp=ts)
    if status == 429 or status >= 500:
        return PushResult("retry", reason)
    if status == 403:
        return PushResult("auth_error", reason)
    return PushResult("failed", reason or f"HTTP {status}")


class ApnsChannel(Channel):
    """Sends pass-update pushes (and optional app alerts) for one pass type.

    Give either `client_cert_pem` (certificate + unencrypted key, PEM) or token auth
    (`key_p8` contents, `key_id`, `team_id`). `app_topic` (the companion app's bundle id)
    enables `send_alert`; with certificate auth the certificate must cover that topic.
    """

    def __init__(
        self,
        pass_type_id: str,
        *,
        endpoint: str,  # Apple's production host unless a fake (WALLET_APNS_ENDPOINT)
        client_cert_pem: bytes | None = None,
        key_p8: str | None = None,
        key_id: str | None = None,
        team_id: str | None = None,
        ca_file: str | None = None,
        max_connections: int = 10,
        max_connection_attempts: int = 3,
        app_topic: str | None = None,
        timeout: float = 10.0,  # well under the worker's lease, so a hung push cannot outlive it
        max_in_flight: int = 1000,
    ) -> None:
        if client_cert_pem is None and not (key_p8 and key_id and team_id):
            raise ValueError("ApnsChannel needs client_cert_pem or key_p8 + key_id + team_id")
        if client_cert_pem is not None and key_p8 is not None:
            raise ValueError("ApnsChannel takes either a certificate or a .p8 key, not both")
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.hostname:
            raise ValueError(f"bad APNs endpoint: {endpoint!r}")
        self.name = f"apns:{pass_type_id}"
        self.pass_type_id = pass_type_id
        self.app_topic = app_topic
        self.host = parts.hostname
        self.port = parts.port or 443
        self.timeout = timeout
        self._client_cert_pem = client_cert_pem
        self._key_p8 = key_p8
        self._key_id = key_id
        self._team_id = team_id
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._max_connection_attempts = max_connection_attempts
        # Pushes beyond this wait here, before their timeout starts: a deliver() of more pushes than
        # the connections' streams carry at once (a big batch of passes with many devices each)
        # would otherwise spend the timeout queued inside aioapns and come back as Timeout.
        self._slots = asyncio.Semaphore(max_in_flight)
        self._client: APNs | None = None
        self._lock = asyncio.Lock()
        self._tls_failures = TlsFailures()

    # -- client lifecycle ----------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self._ca_file:
            ctx.load_verify_locations(cafile=self._ca_file)  # in addition to the system roots
        ctx.set_alpn_protocols(["h2"])
        return ctx

    def _build_client(self) -> APNs:
        self._tls_failures.clear()
        common: dict[str, Any] = dict(
            topic=self.pass_type_id,
            max_connections=self._max_connections,
            max_connection_attempts=self._max_connection_attempts,
            use_sandbox=False,  # pass updates work only in production; host comes from endpoint
            ssl_context=self._ssl_context(),
            err_func=ignore_error,
        )
        if self._client_cert_pem is not None:
            # The cert pool only accepts a file path (ssl_context.load_cert_chain(cert_file)).
            # The PEM lives on disk just for that call, in a 0600 file from mkstemp; the topic
            # is passed explicitly so aioapns does not reopen the file to read the UID.
            fd, path = tempfile.mkstemp(prefix="apns-", suffix=".pem")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._client_cert_pem)
                client = APNs(client_cert=path, **common)
            finally:
                os.unlink(path)
        else:
            client = APNs(key=self._key_p8, key_id=self._key_id, team_id=self._team_id, **common)

        pool = client.pool
        pool.protocol_class = protocol_class(self.host, self.port, self._tls_failures)
        # Handshake failures (TLS 1.2 client-cert refusal, untrusted server) happen inside the
        # pool's connect and are reduced to a bare ConnectionError there: note them first.
        connect = pool.create_connection

        async def create_connection() -> APNsBaseClientProtocol:
            try:
                return await connect()
            except BaseException as exc:
                self._tls_failures.note(exc)
                raise

        pool.create_connection = create_connection  # type: ignore[method-assign]  # wraps aioapns's own
        return client

    async def _get_client(self) -> APNs:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # each connection leaves the pool as it closes (_aioapns.py): close a copy of the list
            for connection in list(client.pool.connections):
                connection.close()
            await asyncio.sleep(0)  # let transports run their close callbacks

    @property
    def connection_count(self) -> int:
        return len(self._client.pool.connections) if self._client is not None else 0

    # -- sending -------------------------------------------------------------------------------
    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        if len(pushes) == 1:  # the common case: no task for one push
            return [await self._one(pushes[0])]
        return list(await asyncio.gather(*(self._one(push) for push in pushes)))

    def _one(self, push: Push) -> Coroutine[Any, Any, PushResult]:
        if isinstance(push, PassPush):
            return self.send_pass_update(push.token)
        assert isinstance(push, AlertPush)
        return self.send_alert(push.token, push.title, push.body, push.data)

    async def send_pass_update(self, push_token: str) -> PushResult:
        """The empty push that makes the device ask the web service for changed passes."""
        return await self._send(push_token, {}, self.pass_type_id, push_type=None)

    async def send_alert(self, token: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> PushResult:
        """A visible alert to the companion iOS app (topic = its bundle id)."""
        if not self.app_topic:
            return PushResult("failed", "NoAppTopic")
        message: dict[str, Any] = dict(data or {})
        message["aps"] = {"alert": {"title": title, "body": body}, "sound": "default"}
        if len(json.dumps(message, ensure_ascii=False).encode()) > MAX_PAYLOAD:
            return PushResult("failed", "PayloadTooLarge")
        return await self._send(token, message, self.app_topic, push_type=PushType.ALERT)

    async def _send(self, token: str, message: dict[str, Any], topic: str, push_type: PushType | None) -> PushResult:
        if not _HEX_TOKEN.fullmatch(token):
            # Never put an arbitrary string into :path; APNs would answer the same.
            return PushResult("invalid_token", "BadDeviceToken")
        try:
            client = await self._get_client()
        except (ssl.SSLError, OSError, ValueError) as exc:
            # Unreadable certificate/key or CA file: nothing will work until config changes.
            log.error("APNs client for %s could not be built: %s", self.pass_type_id, type(exc).__name__)
            return PushResult("auth_error", f"ClientSetup:{type(exc).__name__}")
        request = NotificationRequest(device_token=token, message=message, push_type=push_type, apns_topic=topic)
        try:
            # asyncio.timeout, not wait_for: no extra task per push.
            async with self._slots, asyncio.timeout(self.timeout):
                result = await client.send_notification(request)
        except TimeoutError:  # first: on 3.11 it is an OSError
            log.warning("APNs push to %s timed out after %.0fs", token_hint(token), self.timeout)
            return PushResult("retry", "Timeout")
        except (MaxAttemptsExceeded, ConnectionError, ConnectionClosed, OSError) as exc:
            tls = self._tls_failures.last
            if tls is not None:
                log.warning("APNs TLS failure for %s: %s", self.pass_type_id, _short(tls))
                return PushResult("auth_error", f"TLS:{_short(tls)}")
            return PushResult("retry", type(exc).__name__)
        status = int(result.status) if str(result.status).isdigit() else 0
        if status:
            # An answer came back over TLS, so any earlier handshake trouble is over.
            self._tls_failures.clear()
        return map_apns_response(status, result.description, result.timestamp)


def _short(exc: BaseException) -> str:
    """An SSL error's reason code (e.g. TLSV1_ALERT_UNKNOWN_CA): informative and secret-free."""
    return str(getattr(exc, "reason", None) or type(exc).__name__)
