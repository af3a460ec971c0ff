"""ApnsChannel (real aioapns) against the fake APNs over HTTP/2 + TLS on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aioapns import NotificationRequest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived
from h2.exceptions import TooManyStreamsError
from h2.settings import SettingCodes, Settings
from hpack import Decoder

from push.channels.apns._aioapns import WRITE_BATCH, TlsFailures, _ApnsHeaderEncoder, _h2_connection, protocol_class
from push.channels.apns.sender import ApnsChannel, map_apns_response
from push.channels.base import PassPush
from push.results import PushResult
from tests.fakes.apns_server import ApnsReply, FakeApnsServer
from tests.pii_guard import sensitive
from tests.push.conftest import APP_TOPIC, PASS_TYPE_ID, TEAM_ID, Pki, make_cert_sender

TOKEN = sensitive("ab" * 32, "push token")
OTHER = "cd" * 32


async def test_pass_update_is_an_empty_push_to_the_pass_type_topic(
    apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    result = await apns_sender.send_pass_update(TOKEN)

    assert result == PushResult("ok")
    [req] = apns_fake.requests
    assert req.method == "POST"
    assert req.path == f"/3/device/{TOKEN}"
    assert req.headers["apns-topic"] == PASS_TYPE_ID
    assert req.body == b"{}"
    assert req.auth == "cert"
    assert "authorization" not in req.headers


async def test_client_certificate_from_another_ca_is_an_auth_error(pki: Pki, apns_fake: FakeApnsServer) -> None:
    sender = make_cert_sender(pki, apns_fake, cert=pki.foreign_cert.chain_pem, max_connection_attempts=1)
    try:
        result = await sender.send_pass_update(TOKEN)
    finally:
        await sender.aclose()

    assert result.status == "auth_error"
    assert result.reason and result.reason.startswith("TLS:")
    assert apns_fake.requests == []


async def test_token_auth_with_p8_key_is_accepted(pki: Pki, apns_fake: FakeApnsServer) -> None:
    key = pki.signing_key
    sender = ApnsChannel(
        PASS_TYPE_ID,
        endpoint=apns_fake.url,
        key_p8=key.p8_pem,
        key_id=key.key_id,
        team_id=key.team_id,
        ca_file=str(pki.files.ca),
    )
    try:
        assert (await sender.send_pass_update(TOKEN)).status == "ok"
    finally:
        await sender.aclose()

    [req] = apns_fake.requests
    assert req.auth == "token"
    assert req.headers["authorization"].startswith("bearer ")
    assert req.headers["apns-topic"] == PASS_TYPE_ID


async def test_token_auth_with_unknown_key_is_an_auth_error(pki: Pki, apns_fake: FakeApnsServer) -> None:
    key = pki.signing_key
    sender = ApnsChannel(
        PASS_TYPE_ID,
        endpoint=apns_fake.url,
        key_p8=key.p8_pem,
        key_id="OTHERKEY00",
        team_id=TEAM_ID,
        ca_file=str(pki.files.ca),
    )
    try:
        result = await sender.send_pass_update(TOKEN)
    finally:
        await sender.aclose()
    assert result == PushResult("auth_error", "InvalidProviderToken")


async def test_alert_goes_to_the_app_topic_with_alert_push_type(pki: Pki, apns_fake: FakeApnsServer) -> None:
    key = pki.signing_key
    sender = ApnsChannel(
        PASS_TYPE_ID,
        endpoint=apns_fake.url,
        key_p8=key.p8_pem,
        key_id=key.key_id,
        team_id=key.team_id,
        ca_file=str(pki.files.ca),
        app_topic=APP_TOPIC,
    )
    try:
        result = await sender.send_alert(TOKEN, "Coffee nearby", "Gold: 10% back", {"card": "42"})
    finally:
        await sender.aclose()

    assert result.ok
    [req] = apns_fake.requests
    assert req.headers["apns-topic"] == APP_TOPIC
    assert req.headers["apns-push-type"] == "alert"
    assert b'"title": "Coffee nearby"' in req.body and b'"card": "42"' in req.body


async def test_410_is_invalid_token_with_timestamp_in_seconds(
    apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    apns_fake.program(TOKEN, ApnsReply(410, "Unregistered", timestamp_ms=1_700_000_000_123))
    result = await apns_sender.send_pass_update(TOKEN)
    assert result == PushResult("invalid_token", "Unregistered", timestamp=1_700_000_000.123)


async def test_bad_device_token_is_invalid_token(apns_sender: ApnsChannel, apns_fake: FakeApnsServer) -> None:
    apns_fake.program(TOKEN, ApnsReply(400, "BadDeviceToken"))
    assert (await apns_sender.send_pass_update(TOKEN)).status == "invalid_token"


async def test_non_hex_token_is_rejected_without_a_request(apns_sender: ApnsChannel, apns_fake: FakeApnsServer) -> None:
    result = await apns_sender.send_pass_update("not a token/../x")
    assert result == PushResult("invalid_token", "BadDeviceToken")
    assert apns_fake.requests == []


@pytest.mark.parametrize(
    "reply",
    [ApnsReply(429, "TooManyRequests"), ApnsReply(503, "ServiceUnavailable"), ApnsReply(500, "InternalServerError")],
)
async def test_throttling_and_server_errors_are_retry(
    apns_sender: ApnsChannel, apns_fake: FakeApnsServer, reply: ApnsReply
) -> None:
    apns_fake.program(TOKEN, reply)
    assert await apns_sender.send_pass_update(TOKEN) == PushResult("retry", reply.reason)
    # the script is consumed: the next push goes through on the same client
    assert (await apns_sender.send_pass_update(TOKEN)).ok


async def test_403_is_auth_error(apns_sender: ApnsChannel, apns_fake: FakeApnsServer) -> None:
    apns_fake.program(TOKEN, ApnsReply(403, "BadCertificate"))
    assert await apns_sender.send_pass_update(TOKEN) == PushResult("auth_error", "BadCertificate")


async def test_topic_outside_the_certificate_is_failed(pki: Pki, apns_fake: FakeApnsServer) -> None:
    sender = make_cert_sender(pki, apns_fake, app_topic=APP_TOPIC)
    try:
        result = await sender.send_alert(TOKEN, "t", "b", {})
    finally:
        await sender.aclose()
    assert result == PushResult("failed", "TopicDisallowed")


async def test_unreachable_endpoint_is_retry(pki: Pki, apns_fake: FakeApnsServer) -> None:
    sender = make_cert_sender(pki, apns_fake, max_connection_attempts=1)
    await apns_fake.stop()
    try:
        result = await sender.send_pass_update(TOKEN)
    finally:
        await sender.aclose()
    assert result.status == "retry"


async def test_many_pushes_share_few_connections(apns_sender: ApnsChannel, apns_fake: FakeApnsServer) -> None:
    tokens = [f"{i:064x}" for i in range(500)]
    results = await asyncio.gather(*(apns_sender.send_pass_update(t) for t in tokens))

    assert all(r.ok for r in results)
    assert len(apns_fake.requests) == 500
    assert apns_fake.connections_opened <= 2
    assert apns_sender.connection_count <= 2

    # and the pool is reused afterwards rather than reconnecting per push
    await asyncio.gather(*(apns_sender.send_pass_update(t) for t in tokens[:50]))
    assert apns_fake.connections_opened <= 2


async def test_many_error_bodies_do_not_exhaust_the_flow_control_window(pki: Pki, apns_fake: FakeApnsServer) -> None:
    # ~50-byte bodies: 2,000 of them exceed the 64 KiB initial window of one connection.
    sender = make_cert_sender(pki, apns_fake, max_connections=1, timeout=5)
    tokens = [f"{i:064x}" for i in range(2000)]
    for t in tokens:
        apns_fake.program_always(t, ApnsReply(410, "Unregistered"))
    try:
        results = []
        for start in range(0, len(tokens), 250):
            batch = tokens[start : start + 250]
            results += await asyncio.gather(*(sender.send_pass_update(t) for t in batch))
    finally:
        await sender.aclose()
    assert {r.status for r in results} == {"invalid_token"}
    assert apns_fake.connections_opened == 1


async def test_status_mapping_table() -> None:
    assert map_apns_response(200, None, None).ok
    assert map_apns_response(410, "ExpiredToken", None) == PushResult("invalid_token", "ExpiredToken")
    assert map_apns_response(413, "PayloadTooLarge", None).status == "failed"
    assert map_apns_response(404, "BadPath", None).status == "failed"
    assert map_apns_response(429, "TooManyProviderTokenUpdates", None).status == "retry"


async def test_fake_runs_as_a_subprocess(pki: Pki, tmp_path: Path) -> None:
    ca, cert, key = pki.files.ca, pki.files.server_cert, pki.files.server_key
    script = tmp_path / "script.json"
    script.write_text(json.dumps({OTHER: [[410, "Unregistered"]]}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.apns_server",
            "--port",
            "0",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--ca",
            str(ca),
            "--script",
            str(script),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20))
        sender = ApnsChannel(
            PASS_TYPE_ID,
            endpoint=f"https://127.0.0.1:{port}",
            client_cert_pem=pki.pass_cert.chain_pem,
            ca_file=str(ca),
        )
        try:
            assert (await sender.send_pass_update(TOKEN)).ok
            assert (await sender.send_pass_update(OTHER)).status == "invalid_token"
        finally:
            await sender.aclose()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert '"requests": 2' in out


async def test_a_push_the_server_never_answers_times_out_as_retry(pki: Pki, apns_fake: FakeApnsServer) -> None:
    sender = make_cert_sender(pki, apns_fake, timeout=0.2)
    apns_fake.program(TOKEN, ApnsReply(200, delay=5))
    try:
        assert await sender.send_pass_update(TOKEN) == PushResult("retry", "Timeout")
        assert (await sender.send_pass_update(OTHER)).ok  # the connection is still usable
    finally:
        await sender.aclose()


async def test_a_long_lived_connection_keeps_nothing_per_finished_push(pki: Pki, apns_fake: FakeApnsServer) -> None:
    # aioapns itself keeps every successful push's stream id for as long as the connection lives.
    sender = make_cert_sender(pki, apns_fake, max_connections=1)
    tokens = [f"{i:064x}" for i in range(1500)]
    for t in tokens[::10]:
        apns_fake.program(t, ApnsReply(410, "Unregistered"))
    try:
        for start in range(0, len(tokens), 300):
            results = await asyncio.gather(*(sender.send_pass_update(t) for t in tokens[start : start + 300]))
            assert {r.status for r in results} == {"ok", "invalid_token"}
        [connection] = sender._client.pool.connections  # type: ignore[union-attr]  # built by the send above
        assert connection.requests == {}
        assert connection.request_streams == {}
        assert connection.request_statuses == {}
        assert len(connection.conn.streams) < 700  # closed h2 streams are still dropped
    finally:
        await sender.aclose()


async def test_answers_after_the_timeout_leave_the_connection_working(pki: Pki, apns_fake: FakeApnsServer) -> None:
    late_ok, late_error = "0a" * 32, "0b" * 32
    apns_fake.program(late_ok, ApnsReply(200, delay=0.4))
    apns_fake.program(late_error, ApnsReply(410, "Unregistered", delay=0.4))
    sender = make_cert_sender(pki, apns_fake, max_connections=1, timeout=0.2)
    try:
        # list(): typeshed types gather(a, b) as a tuple, but it returns a list
        assert list(await asyncio.gather(sender.send_pass_update(late_ok), sender.send_pass_update(late_error))) == [
            PushResult("retry", "Timeout"),
            PushResult("retry", "Timeout"),
        ]
        await asyncio.sleep(0.4)  # both answers arrive for requests nobody waits for any more
        assert (await sender.send_pass_update(TOKEN)).ok
    finally:
        await sender.aclose()
    assert apns_fake.connections_opened == 1


async def test_an_error_status_without_a_reason_body_is_answered_at_once(
    apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    apns_fake.program(TOKEN, ApnsReply(503, bodyless=True))
    started = asyncio.get_running_loop().time()
    assert await apns_sender.send_pass_update(TOKEN) == PushResult("retry", None)
    assert asyncio.get_running_loop().time() - started < apns_sender.timeout / 2


async def test_request_headers_keep_per_push_values_out_of_the_hpack_table() -> None:
    encoder, decoder = _ApnsHeaderEncoder(), Decoder()
    for i in range(50):
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", f"/3/device/{i:064x}".encode()),
            (b"host", b"api.push.apple.com"),
            (b"apns-id", str(uuid.uuid4()).encode()),
            (b"apns-topic", PASS_TYPE_ID.encode()),
            (b"authorization", b"bearer xyz"),
        ]
        block = encoder.encode(headers)
        assert decoder.decode(block, raw=True) == headers
    # Only the constant fields are indexed: after the first request each costs one byte.
    assert {name for name, _ in encoder.header_table.dynamic_entries} == {b"host", b"apns-topic"}
    assert len(block) < sum(len(v) for _, v in headers[2:5:2]) + len(b"bearer xyz") + 20


def test_open_stream_count_is_exact_at_the_peer_limit_and_closed_streams_are_dropped() -> None:
    limit = 50
    client = _h2_connection()
    server = H2Connection(H2Configuration(client_side=False))
    server.local_settings = Settings(client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: limit})
    client.initiate_connection()
    server.initiate_connection()

    def exchange() -> None:
        while True:
            to_server, to_client = client.data_to_send(), server.data_to_send()
            if not to_server and not to_client:
                return
            for event in server.receive_data(to_server):
                if isinstance(event, RequestReceived):
                    open_on_server.append(event.stream_id)
            client.receive_data(to_client)

    open_on_server: list[int] = []
    exchange()
    request = [(":method", "POST"), (":scheme", "https"), (":path", "/3/device/00"), (":authority", "x")]
    next_id = 1
    for round_ in range(200):
        while len(open_on_server) < limit:  # fill up to the peer's limit...
            client.send_headers(next_id, request, end_stream=True)
            next_id += 2
            exchange()
        with pytest.raises(TooManyStreamsError):  # ...and not one stream more
            client.send_headers(next_id, request, end_stream=True)
        for stream_id in open_on_server[: 1 + round_ % limit]:  # answer some of them
            server.send_headers(stream_id, [(":status", "200")], end_stream=True)
        del open_on_server[: 1 + round_ % limit]
        exchange()
        assert len(client.streams) <= 2 * limit + 32
    assert next_id > 20 * limit


async def test_requests_are_written_in_batches_not_one_write_each() -> None:
    protocol = protocol_class("127.0.0.1", 443, TlsFailures())(PASS_TYPE_ID, asyncio.get_running_loop())
    writes: list[bytes] = []

    class Transport:  # stands in for the TLS socket, to see how the bytes are handed over
        def write(self, data: bytes) -> None:
            writes.append(data)

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    protocol.connection_made(Transport())  # type: ignore[arg-type]  # a recording stand-in transport
    n = 2 * WRITE_BATCH + 6
    sends = [
        asyncio.ensure_future(protocol.send_notification(NotificationRequest(device_token=f"{i:064x}", message={})))
        for i in range(n)
    ]
    try:
        for _ in range(3):
            await asyncio.sleep(0)
        # the preamble, two full batches as they filled up, the rest at the end of the pass
        assert [len(w) > 0 for w in writes] == [True] * 4
        server = H2Connection(H2Configuration(client_side=False))
        received = [e for e in server.receive_data(b"".join(writes)) if isinstance(e, RequestReceived)]
        assert [dict(e.headers)[b":path"] for e in received] == [f"/3/device/{i:064x}".encode() for i in range(n)]
    finally:
        for send in sends:
            send.cancel()
        protocol.close()


async def test_a_connection_closed_for_inactivity_is_not_used_again(
    pki: Pki, apns_fake: FakeApnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioapns closes a connection idle for INACTIVITY_TIME but keeps handing it out until the TLS
    # close completes; a peer slow to finish it (the fake, and who knows which network path) made
    # the next push wait out its whole timeout instead of going out on a fresh connection.
    from aioapns.connection import APNsBaseClientProtocol

    monkeypatch.setattr(APNsBaseClientProtocol, "INACTIVITY_TIME", 0.2)
    sender = make_cert_sender(pki, apns_fake, timeout=2.0)
    try:
        assert (await sender.send_pass_update(TOKEN)).ok
        await asyncio.sleep(0.5)  # idle: aioapns closes the connection
        started = asyncio.get_running_loop().time()
        assert (await sender.send_pass_update(OTHER)).ok
        assert asyncio.get_running_loop().time() - started < 1.0
    finally:
        await sender.aclose()


async def test_closing_the_channel_closes_every_connection(pki: Pki, apns_fake: FakeApnsServer) -> None:
    sender = make_cert_sender(pki, apns_fake, max_connections=3)
    assert (await sender.send_pass_update(TOKEN)).ok
    pool = sender._client.pool  # type: ignore[union-attr]  # built by the send above
    for _ in range(2):  # as a burst would have opened them
        pool.connections.append(await pool.create_connection())
    connections = list(pool.connections)
    await sender.aclose()
    # each leaves the pool as it closes: closing from a copy of the list misses none
    assert pool.connections == []
    assert all(c.transport is None or c.transport.is_closing() for c in connections)


async def test_pushes_beyond_what_the_connections_carry_wait_outside_their_timeout(
    pki: Pki, apns_fake: FakeApnsServer
) -> None:
    # 50 streams on one connection, 0.05 s an answer: 1000 pushes take about a second, longer than
    # the 0.5 s timeout of each; waiting for a slot must not count against it.
    apns_fake.max_concurrent_streams = 50
    tokens = [f"{i:064x}" for i in range(1000)]
    for t in tokens:
        apns_fake.program(t, ApnsReply(200, delay=0.05))
    sender = make_cert_sender(pki, apns_fake, max_connections=1, timeout=0.5, max_in_flight=50)
    try:
        results = await sender.deliver([PassPush(t) for t in tokens])
    finally:
        await sender.aclose()
    assert {r.status for r in results} == {"ok"}
