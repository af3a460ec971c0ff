"""APNs sender: one long-lived, pooled aioapns client per pass type, outcomes as PushResult.

Pass updates are empty (`{}`) pushes with topic = pass type id, sent to production APNs with
the Pass Type ID certificate (Apple's documented way) or, optionally, a team .p8 key.

aioapns 4.0 derives host and port from `use_sandbox` alone (class attributes `APNS_SERVER` /
`APNS_PORT` of the protocol class its pool instantiates). To reach another endpoint (a loopback
fake in tests, a regional host), we hand the pool a protocol subclass with those two attributes
replaced. The same subclass fixes what aioapns leaves out and drives h2 more cheaply; see
`_protocol_class`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
import tempfile
from typing import Any
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.connection import APNsBaseClientProtocol, APNsProductionClientProtocol
from aioapns.exceptions import ConnectionClosed, ConnectionError, MaxAttemptsExceeded
from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack import Encoder, NeverIndexedHeaderTuple

from push.results import PushResult, token_hint

log = logging.getLogger(__name__)

PRODUCTION_ENDPOINT = "https://api.push.apple.com"
MAX_PAYLOAD = 4096
_HEX_TOKEN = re.compile(r"^[0-9a-fA-F]+$")
# Requests written per TLS write at most: fewer writes than one per request, yet the server
# gets to work on the first ones while later ones are still being built (~5 KiB).
WRITE_BATCH = 32


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


# Request header fields kept out of the HPACK dynamic table: values new on every request (the
# device token in :path, apns-id, apns-expiration) would only evict the constant ones (host,
# apns-topic) that are otherwise one byte each; authorization stays out as h2 itself keeps it.
# h2 hands the encoder names as bytes.
_NEVER_INDEXED = frozenset({b":path", b"apns-id", b"apns-expiration", b"authorization"})


class _ApnsHeaderEncoder(Encoder):
    """HPACK as h2 would do it, minus two costs that dominate a push in pure Python: Huffman
    coding (it saves ~25 bytes of hex per request and costs more CPU than the rest of the
    header block) and dynamic-table churn from request-unique fields (see _NEVER_INDEXED)."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(
            [NeverIndexedHeaderTuple(h[0], h[1]) if h[0] in _NEVER_INDEXED else h for h in headers],
            huffman=False,
        )


class _ApnsH2Connection(H2Connection):
    """h2's client connection with a cheaper count of open streams.

    Before every new stream h2 counts the open ones by walking all the streams it holds
    (dropping closed ones on the way); with a few hundred pushes in flight that walk is the
    largest single cost of a push. Between walks, the number of streams held (open ones plus
    closed ones not yet dropped) bounds the open ones from above, and is returned while it is
    safely under the peer's limit; the exact walk runs once the held streams have doubled
    since the last one, so each walk is paid for by as many new streams as it visits.
    """

    _walk_at = 0

    @property
    def open_outbound_streams(self) -> int:
        held = len(self.streams)
        if held < self._walk_at:
            return held
        count = super().open_outbound_streams
        self._walk_at = min(2 * len(self.streams) + 32, self.remote_settings.max_concurrent_streams - 1)
        return count


def _h2_connection() -> H2Connection:
    # aioapns builds every request header from fixed lower-case names, the hex token (checked
    # in ApnsSender._send), a uuid and the topic from validated settings: h2's per-request
    # normalizing and validating of outbound headers would find nothing to fix.
    conn = _ApnsH2Connection(H2Configuration(client_side=True, validate_outbound_headers=False,
                                             normalize_outbound_headers=False))
    conn.encoder = _ApnsHeaderEncoder()
    return conn


class _TlsFailures:
    """Remembers why connections last failed, so a refused certificate reads as auth_error
    instead of an endless 'retry' (aioapns swallows the cause into a bare ConnectionError)."""

    def __init__(self) -> None:
        self.last: BaseException | None = None

    def note(self, exc: BaseException | None) -> None:
        if isinstance(exc, ssl.SSLError):
            self.last = exc

    def clear(self) -> None:
        self.last = None


def _protocol_class(host: str, port: int, failures: _TlsFailures) -> type[APNsProductionClientProtocol]:
    class EndpointProtocol(APNsProductionClientProtocol):
        # aioapns connects to (APNS_SERVER, APNS_PORT) and sends APNS_SERVER as `host`.
        APNS_SERVER = host
        APNS_PORT = port

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.conn = _h2_connection()
            self._flush_pending = False
            self._unflushed = 0

        def flush(self) -> None:
            # aioapns writes after every request (and every received batch of frames). Here
            # the bytes wait for the end of the event loop's pass or for WRITE_BATCH requests,
            # whichever comes first: with hundreds of pushes in flight, requests share TLS
            # records and send() calls.
            self._unflushed += 1
            if self._unflushed >= WRITE_BATCH:
                self._write_out()
            elif not self._flush_pending:
                self._flush_pending = True
                self.loop.call_soon(self._flush_soon)

        def _flush_soon(self) -> None:
            self._flush_pending = False
            self._write_out()

        def _write_out(self) -> None:
            self._unflushed = 0
            if self.transport is not None and not self.transport.is_closing():
                super().flush()

        def on_response_received(self, headers: dict[bytes, bytes]) -> None:
            # aioapns's handler with one guard, in one lookup per answer: a 200 resolves its
            # future here, and for a push we stopped waiting for (timeout) that future is
            # cancelled; aioapns would call set_result on it, and the InvalidStateError would
            # make asyncio drop the connection with every push in flight on it.
            notification_id = headers.get(b"apns-id", b"").decode()
            status = headers.get(b":status", b"").decode()
            if status != "200":
                self.request_statuses[notification_id] = status  # the reason body follows
                return
            future = self.requests.pop(notification_id, None)
            if future is not None and not future.done():
                future.set_result(NotificationResult(notification_id, status))

        def on_data_received(self, raw_data: bytes, stream_id: int) -> None:
            # An error body resolves its future here; the same guard against abandoned ones.
            notification_id = self.request_streams.get(stream_id)
            if notification_id is not None and self._abandoned(notification_id):
                self.request_statuses.pop(notification_id, None)
            else:
                super().on_data_received(raw_data, stream_id)
            # aioapns never hands flow-control credit back, so after 64 KiB of error bodies
            # (~1,300 410s) on one connection the server may not send another byte and every
            # later push on it hangs. APNs does not pad DATA frames, so len() is the full size.
            self.conn.acknowledge_received_data(len(raw_data), stream_id)

        def on_stream_ended(self, stream_id: int) -> None:
            # aioapns forgets a stream's request id only when an error body arrives, so a
            # long-lived connection would keep one entry per successful push forever.
            notification_id = self.request_streams.pop(stream_id, None)
            if notification_id is not None:
                status = self.request_statuses.pop(notification_id, None)
                future = self.requests.pop(notification_id, None)
                if status is not None and future is not None and not future.done():
                    # An error status without the reason body Apple always sends: answer it
                    # instead of leaving the push to time out.
                    future.set_result(NotificationResult(notification_id, status))
            super().on_stream_ended(stream_id)

        def _abandoned(self, notification_id: str) -> bool:
            """True (and forgotten) when nobody waits for this request's answer any more."""
            future = self.requests.get(notification_id)
            if future is None or not future.done():
                return False
            del self.requests[notification_id]
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            failures.note(exc)  # with TLS 1.3 a refused client cert surfaces only here
            # A push we gave up on (timeout) leaves a cancelled future behind; aioapns would
            # call set_exception on it and raise InvalidStateError from the event loop.
            for notification_id, future in list(self.requests.items()):
                if future.done():
                    del self.requests[notification_id]
            super().connection_lost(exc)

    return EndpointProtocol


async def _ignore_error(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every non-200 at ERROR by default; we map and report results ourselves."""


class ApnsSender:
    """Sends pass-update pushes (and optional app alerts) for one pass type.

    Give either `client_cert_pem` (certificate + unencrypted key, PEM) or token auth
    (`key_p8` contents, `key_id`, `team_id`). `app_topic` (the companion app's bundle id)
    enables `send_alert`; with certificate auth the certificate must cover that topic.
    """

    def __init__(
        self,
        pass_type_id: str,
        *,
        endpoint: str = PRODUCTION_ENDPOINT,
        client_cert_pem: bytes | None = None,
        key_p8: str | None = None,
        key_id: str | None = None,
        team_id: str | None = None,
        ca_file: str | None = None,
        max_connections: int = 10,
        max_connection_attempts: int = 3,
        app_topic: str | None = None,
        timeout: float = 10.0,  # well under the worker's lease, so a hung push cannot outlive it
    ) -> None:
        if client_cert_pem is None and not (key_p8 and key_id and team_id):
            raise ValueError("ApnsSender needs client_cert_pem or key_p8 + key_id + team_id")
        if client_cert_pem is not None and key_p8 is not None:
            raise ValueError("ApnsSender takes either a certificate or a .p8 key, not both")
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.hostname:
            raise ValueError(f"bad APNs endpoint: {endpoint!r}")
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
        self._client: APNs | None = None
        self._lock = asyncio.Lock()
        self._tls_failures = _TlsFailures()

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
            err_func=_ignore_error,
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
        pool.protocol_class = _protocol_class(self.host, self.port, self._tls_failures)
        # Handshake failures (TLS 1.2 client-cert refusal, untrusted server) happen inside the
        # pool's connect and are reduced to a bare ConnectionError there: note them first.
        connect = pool.create_connection

        async def create_connection() -> APNsBaseClientProtocol:
            try:
                return await connect()
            except BaseException as exc:
                self._tls_failures.note(exc)
                raise

        pool.create_connection = create_connection  # type: ignore[method-assign]
        return client

    async def _get_client(self) -> APNs:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.pool.close()
            await asyncio.sleep(0)  # let transports run their close callbacks

    @property
    def connection_count(self) -> int:
        return len(self._client.pool.connections) if self._client is not None else 0

    # -- sending -------------------------------------------------------------------------------
    async def send_pass_update(self, push_token: str) -> PushResult:
        """The empty push that makes the device ask the web service for changed passes."""
        return await self._send(push_token, {}, self.pass_type_id, push_type=None)

    async def send_alert(
        self, token: str, title: str, body: str, data: dict[str, Any] | None = None
    ) -> PushResult:
        """A visible alert to the companion iOS app (topic = its bundle id)."""
        if not self.app_topic:
            return PushResult("failed", "NoAppTopic")
        message: dict[str, Any] = dict(data or {})
        message["aps"] = {"alert": {"title": title, "body": body}, "sound": "default"}
        if len(json.dumps(message, ensure_ascii=False).encode()) > MAX_PAYLOAD:
            return PushResult("failed", "PayloadTooLarge")
        return await self._send(token, message, self.app_topic, push_type=PushType.ALERT)

    async def _send(
        self, token: str, message: dict[str, Any], topic: str, push_type: PushType | None
    ) -> PushResult:
        if not _HEX_TOKEN.match(token):
            # Never put an arbitrary string into :path; APNs would answer the same.
            return PushResult("invalid_token", "BadDeviceToken")
        try:
            client = await self._get_client()
        except (ssl.SSLError, OSError, ValueError) as exc:
            # Unreadable certificate/key or CA file: nothing will work until config changes.
            log.error("APNs client for %s could not be built: %s", self.pass_type_id, type(exc).__name__)
            return PushResult("auth_error", f"ClientSetup:{type(exc).__name__}")
        request = NotificationRequest(
            device_token=token, message=message, push_type=push_type, apns_topic=topic
        )
        try:
            # asyncio.timeout, not wait_for: no extra task per push.
            async with asyncio.timeout(self.timeout):
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
