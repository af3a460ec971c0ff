"""Work on aioapns, h2 and hpack internals that the APNs channel runs on.

aioapns 4.0 derives host and port from `use_sandbox` alone (class attributes `APNS_SERVER` /
`APNS_PORT` of the protocol class its pool instantiates). To reach another endpoint (a loopback
fake in tests, a regional host), the pool gets a protocol subclass with those two attributes
replaced (`protocol_class`). The same subclass fixes what aioapns leaves out (flow-control
credit, late answers, body-less errors, per-push leftovers) and drives h2 more cheaply.
Every override here has a test in tests/push/test_apns.py that fails without it.
"""

from __future__ import annotations

import ssl
from typing import Any

from aioapns import NotificationRequest
from aioapns.common import NotificationResult
from aioapns.connection import APNsProductionClientProtocol
from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack import Encoder, NeverIndexedHeaderTuple

# Requests written per TLS write at most: fewer writes than one per request, yet the server
# gets to work on the first ones while later ones are still being built.
WRITE_BATCH = 32

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
    conn = _ApnsH2Connection(
        H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
    )
    conn.encoder = _ApnsHeaderEncoder()
    return conn


class TlsFailures:
    """Remembers why connections last failed, so a refused certificate reads as auth_error
    instead of an endless 'retry' (aioapns swallows the cause into a bare ConnectionError)."""

    def __init__(self) -> None:
        self.last: BaseException | None = None

    def note(self, exc: BaseException | None) -> None:
        if isinstance(exc, ssl.SSLError):
            self.last = exc

    def clear(self) -> None:
        self.last = None


def protocol_class(host: str, port: int, failures: TlsFailures) -> type[APNsProductionClientProtocol]:
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

        def close(self) -> None:
            # aioapns closes a connection idle for INACTIVITY_TIME, but its pool keeps handing it
            # out until the TLS close completes (connection_lost); a push given to it meanwhile is
            # never written (`_write_out`) and waits out its timeout. Leave the pool at once.
            super().close()
            leave, self.on_connection_lost = self.on_connection_lost, None
            if leave is not None:
                leave(self)  # the pool's discard_connection; connection_lost will not call it again

        def connection_lost(self, exc: Exception | None) -> None:
            failures.note(exc)  # with TLS 1.3 a refused client cert surfaces only here
            # A push we gave up on (timeout) leaves a cancelled future behind; aioapns would
            # call set_exception on it and raise InvalidStateError from the event loop.
            for notification_id, future in list(self.requests.items()):
                if future.done():
                    del self.requests[notification_id]
            super().connection_lost(exc)

    return EndpointProtocol


async def ignore_error(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every non-200 at ERROR by default; we map and report results ourselves."""
