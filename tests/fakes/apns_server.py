"""A fake APNs: HTTP/2 over TLS on loopback, checking what Apple checks, answering as Apple does.

Clients under test (aioapns) talk real HTTP/2 + TLS to it. It authenticates either by client
certificate (chained to a given CA; the `apns-topic` must equal the certificate subject's UID,
as with a Pass Type ID certificate) or by an ES256 provider JWT (`authorization: bearer`).
Replies are scriptable per device token and every request is recorded.

In-process::

    server = FakeApnsServer(cert_file, key_file, client_ca_file=ca)
    await server.start(); ...; await server.stop()

As a subprocess (prints the port on the first stdout line)::

    python -m tests.fakes.apns_server --port 0 --cert server.pem --key server.key --ca ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

MAX_PAYLOAD = 4096
_PATH = re.compile(r"^/3/device/(?P<token>[^/]*)$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Apple: "Refresh your token no more than once every 20 minutes and no less than once every 60".
_JWT_MAX_AGE = 3600


@dataclass(frozen=True)
class ApnsReply:
    """A programmed answer. ``timestamp_ms`` is sent with 410 (default: now). ``bodyless``
    leaves out the JSON reason body Apple sends with every error (a misbehaving server)."""

    status: int = 200
    reason: str | None = None
    timestamp_ms: int | None = None
    delay: float = 0.0
    bodyless: bool = False


@dataclass(frozen=True)
class ReceivedRequest:
    token: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    connection: int
    status: int
    reason: str | None
    auth: str  # "cert", "token" or "none"


@dataclass
class _Stream:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class _JwtKey:
    team_id: str
    public_pem: bytes


class FakeApnsServer:
    """APNs look-alike. Create, `await start()`, use `url`, `await stop()`."""

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        *,
        client_ca_file: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent_streams: int = 1000,
        token_topics: set[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_concurrent_streams = max_concurrent_streams
        # Topics a provider JWT may push to (None: any); certificates carry their own topic.
        self.token_topics = token_topics
        self.requests: list[ReceivedRequest] = []
        self.connections_opened = 0
        self.handshake_failures = 0
        self._jwt_keys: dict[str, _JwtKey] = {}
        self._scripts: dict[str, deque[ApnsReply]] = {}
        self._always: dict[str, ApnsReply] = {}
        self._server: asyncio.base_events.Server | None = None
        self._protocols: set[_ApnsProtocol] = set()
        self.ssl_context = self._ssl_context(cert_file, key_file, client_ca_file)

    # -- configuration -----------------------------------------------------------------------
    @staticmethod
    def _ssl_context(cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert_file), str(key_file))
        ctx.set_alpn_protocols(["h2"])
        if client_ca_file is not None:
            ctx.load_verify_locations(cafile=str(client_ca_file))
            # Optional: token-auth clients come without a certificate; a certificate that is
            # presented must chain to the CA or the handshake fails, as with Apple.
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def add_jwt_key(self, key_id: str, team_id: str, public_pem: bytes) -> None:
        """Accept provider tokens signed by this key (kid) for this team (iss)."""
        self._jwt_keys[key_id] = _JwtKey(team_id, public_pem)

    def program(self, token: str, *replies: ApnsReply) -> None:
        """Queue replies for `token`, one per request; after them the token gets 200 again."""
        self._scripts.setdefault(token.lower(), deque()).extend(replies)

    def program_always(self, token: str, reply: ApnsReply) -> None:
        self._always[token.lower()] = reply

    def reset(self) -> None:
        self.requests.clear()
        self._scripts.clear()
        self._always.clear()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TlsServerProtocol(self.ssl_context, self, lambda: _ApnsProtocol(self)),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for proto in list(self._protocols):
            proto.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeApnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- assertions helpers ------------------------------------------------------------------
    def requests_for(self, token: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.token == token.lower()]

    # -- request handling --------------------------------------------------------------------
    def _next_reply(self, token: str) -> ApnsReply:
        queue = self._scripts.get(token)
        if queue:
            return queue.popleft()
        return self._always.get(token, ApnsReply())

    def _check_jwt(self, header: str | None) -> tuple[str | None, str | None]:
        """(team_id, None) when valid, else (None, reason)."""
        if not header or not header.lower().startswith("bearer "):
            return None, "MissingProviderToken"
        raw = header[7:].strip()
        try:
            kid = jwt.get_unverified_header(raw).get("kid")
        except jwt.PyJWTError:
            return None, "InvalidProviderToken"
        key = self._jwt_keys.get(kid or "")
        if key is None:
            return None, "InvalidProviderToken"
        try:
            claims = jwt.decode(raw, key.public_pem, algorithms=["ES256"], options={"require": ["iss", "iat"]})
        except jwt.PyJWTError:
            return None, "InvalidProviderToken"
        if claims.get("iss") != key.team_id:
            return None, "InvalidProviderToken"
        if claims["iat"] < time.time() - _JWT_MAX_AGE:
            return None, "ExpiredProviderToken"
        return key.team_id, None

    def handle(self, stream: _Stream, cert_topic: str | None, connection: int) -> tuple[ApnsReply, str, str]:
        """Decide the reply for one complete request. Returns (reply, token, auth mode)."""
        headers = stream.headers
        method, path = headers.get(":method", ""), headers.get(":path", "")
        match = _PATH.match(path)
        token = (match.group("token") if match else "").lower()
        auth = "cert" if cert_topic is not None else ("token" if "authorization" in headers else "none")
        topic = headers.get("apns-topic")

        def fail(status: int, reason: str) -> tuple[ApnsReply, str, str]:
            return ApnsReply(status, reason), token, auth

        if method != "POST":
            return fail(405, "MethodNotAllowed")
        if match is None:
            return fail(404, "BadPath")
        if not token:
            return fail(400, "MissingDeviceToken")
        if not _HEX.match(token):
            return fail(400, "BadDeviceToken")
        if cert_topic is not None:
            if topic is not None and topic != cert_topic:
                return fail(400, "TopicDisallowed")
        else:
            _, reason = self._check_jwt(headers.get("authorization"))
            if reason:
                return fail(403, reason)
            if not topic:
                return fail(400, "MissingTopic")
            if self.token_topics is not None and topic not in self.token_topics:
                return fail(400, "TopicDisallowed")
        body = bytes(stream.body)
        if not body:
            return fail(400, "PayloadEmpty")
        if len(body) > MAX_PAYLOAD:
            return fail(413, "PayloadTooLarge")
        try:
            if not isinstance(json.loads(body), dict):
                raise ValueError
        except ValueError:
            return fail(400, "BadPayload")
        return self._next_reply(token), token, auth


def _cert_uid(der: bytes | None) -> str | None:
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(uids[0].value) if uids else ""


class _TlsServerProtocol(asyncio.Protocol):
    """TLS termination over memory BIOs instead of asyncio's `ssl=`: asyncio drops the alert
    of a failed server handshake, so a refused client certificate would look like a plain EOF
    to the client. Apple sends the alert; so does this."""

    def __init__(
        self,
        context: ssl.SSLContext,
        server: FakeApnsServer,
        app_factory: Callable[[], _ApnsProtocol],
    ) -> None:
        self.server = server
        self.app_factory = app_factory
        self.app: _ApnsProtocol | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.transport: asyncio.Transport | None = None
        self._closing = False

    # transport side, as seen by the h2 protocol
    def write(self, data: bytes) -> None:
        if data and not self._closing:
            self.sslobj.write(data)
            self._flush()

    def is_closing(self) -> bool:
        return self._closing or self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self._closing or self.transport is None:
            return
        self._closing = True
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, OSError):
            pass
        self._flush()
        self.transport.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "ssl_object":
            return self.sslobj
        return self.transport.get_extra_info(name, default) if self.transport else default

    # socket side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP Transport; Protocol says BaseTransport

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(pending)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if self.app is None:
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except ssl.SSLError:
                self.server.handshake_failures += 1
                self._flush()  # the alert, e.g. unknown_ca
                self._closing = True
                if self.transport is not None:
                    self.transport.close()
                return
            self._flush()
            self.app = self.app_factory()
            self.app.connection_made(self)  # type: ignore[arg-type]  # we stand in as its transport (duck-typed)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                self.close()
                break
            if not chunk:
                break
            chunks.append(chunk)
        self._flush()
        if chunks and self.app is not None:
            self.app.data_received(b"".join(chunks))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self.app is not None:
            self.app.connection_lost(exc)


class _ApnsProtocol(asyncio.Protocol):
    """One TLS connection: an h2 server state machine plus per-stream request buffers."""

    def __init__(self, server: FakeApnsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        # Inbound headers are validated (what the client under test sends must be valid
        # HTTP/2); our own fixed response headers need no normalizing or validating.
        self.conn = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.conn.local_settings = Settings(
            client=False,
            initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams},
        )
        self.streams: dict[int, _Stream] = {}
        # Response bodies waiting for flow-control window (a client that never acknowledges
        # received data stalls here, exactly as it would against Apple).
        self.pending: deque[tuple[int, bytes]] = deque()
        self.cert_topic: str | None = None
        self.number = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # the _TlsServerProtocol, a duck-typed Transport
        ssl_object = transport.get_extra_info("ssl_object")
        self.cert_topic = _cert_uid(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
        self.server.connections_opened += 1
        self.number = self.server.connections_opened
        self.server._protocols.add(self)
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._protocols.discard(self)
        for task in self.tasks:
            task.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                # header_encoding="utf-8" above makes h2 hand out str pairs; its types say bytes
                self.streams[event.stream_id] = _Stream(dict(event.headers))  # type: ignore[arg-type]  # str pairs
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body.extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._request_complete(event.stream_id)
            elif isinstance(event, StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, WindowUpdated):
                self._send_pending()
            elif isinstance(event, ConnectionTerminated):
                self._flush()
                self.close()
                return
        self._flush()

    def _request_complete(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        reply, token, auth = self.server.handle(stream, self.cert_topic, self.number)
        self.server.requests.append(
            ReceivedRequest(
                token=token,
                method=stream.headers.get(":method", ""),
                path=stream.headers.get(":path", ""),
                headers={k: v for k, v in stream.headers.items() if not k.startswith(":")},
                body=bytes(stream.body),
                at=time.time(),
                connection=self.number,
                status=reply.status,
                reason=reply.reason,
                auth=auth,
            )
        )
        apns_id = stream.headers.get("apns-id") or str(uuid.uuid4())
        if reply.delay > 0:
            task = asyncio.get_running_loop().create_task(self._respond_later(stream_id, apns_id, reply))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self._respond(stream_id, apns_id, reply)

    async def _respond_later(self, stream_id: int, apns_id: str, reply: ApnsReply) -> None:
        await asyncio.sleep(reply.delay)
        self._respond(stream_id, apns_id, reply)
        self._flush()

    def _respond(self, stream_id: int, apns_id: str, reply: ApnsReply) -> None:
        headers = [(":status", str(reply.status)), ("apns-id", apns_id)]
        if reply.status == 200 or reply.bodyless:
            try:
                self.conn.send_headers(stream_id, headers, end_stream=True)
            except (StreamClosedError, ProtocolError):
                pass
            return
        error: dict[str, object] = {"reason": reply.reason or "InternalServerError"}
        if reply.status == 410:
            error["timestamp"] = reply.timestamp_ms if reply.timestamp_ms is not None else int(time.time() * 1000)
        body = json.dumps(error, separators=(",", ":")).encode()
        headers.append(("content-type", "application/json; charset=utf-8"))
        headers.append(("content-length", str(len(body))))
        try:
            self.conn.send_headers(stream_id, headers)
        except (StreamClosedError, ProtocolError):
            return
        self.pending.append((stream_id, body))
        self._send_pending()

    def _send_pending(self) -> None:
        while self.pending:
            stream_id, body = self.pending[0]
            try:
                window = min(
                    self.conn.local_flow_control_window(stream_id),
                    self.conn.max_outbound_frame_size,
                )
            except (StreamClosedError, ProtocolError):
                self.pending.popleft()
                continue
            if window < len(body):
                return  # wait for a WINDOW_UPDATE
            self.pending.popleft()
            self.conn.send_data(stream_id, body, end_stream=True)


# -- subprocess entry point ------------------------------------------------------------------


def _load_script(path: str, server: FakeApnsServer) -> None:
    """JSON: {"<token>": [[status, reason], ...], "*<token>": [status, reason] (always)}."""
    data = json.loads(Path(path).read_text())
    for token, spec in data.items():
        if token.startswith("*"):
            server.program_always(token[1:], ApnsReply(int(spec[0]), spec[1]))
        else:
            server.program(token, *(ApnsReply(int(s), r) for s, r in spec))


async def _main(args: argparse.Namespace) -> None:
    server = FakeApnsServer(
        args.cert,
        args.key,
        client_ca_file=args.ca,
        host=args.host,
        port=args.port,
        max_concurrent_streams=args.max_streams,
    )
    for spec in args.jwt_key or []:
        kid, team, pem_path = spec.split(":", 2)
        server.add_jwt_key(kid, team, Path(pem_path).read_bytes())
    if args.script:
        _load_script(args.script, server)
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    print(
        json.dumps({"requests": len(server.requests), "connections": server.connections_opened}),
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake APNs (HTTP/2 over TLS) for tests and benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True, help="server certificate PEM")
    parser.add_argument("--key", required=True, help="server private key PEM")
    parser.add_argument("--ca", help="CA PEM that client certificates must chain to")
    parser.add_argument("--jwt-key", action="append", help="KID:TEAM:public-key.pem (repeatable)")
    parser.add_argument("--script", help="JSON file of programmed replies per token")
    parser.add_argument("--max-streams", type=int, default=1000)
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
