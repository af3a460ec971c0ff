"""FcmChannel (real pyfcm, google-auth, requests) against the fake FCM + OAuth endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from push.channels.fcm import FcmChannel, map_fcm_response, parse_retry_after
from push.results import PushResult
from tests.fakes.fcm_server import FakeFcmServer, FcmReply
from tests.pii_guard import sensitive

TOKEN = sensitive("fcm-token-1", "push token")


async def test_success_sends_one_message_with_notification_and_string_data(
    fcm_sender: FcmChannel, fcm_fake: FakeFcmServer
) -> None:
    result = await fcm_sender.send(TOKEN, "Coffee nearby", "10% back", {"card": "42", "balance": 120})

    assert result == PushResult("ok")
    [req] = fcm_fake.requests
    assert req.project == "demo-project"
    message = req.body["message"]
    assert message["token"] == TOKEN
    assert message["notification"] == {"title": "Coffee nearby", "body": "10% back"}
    assert message["data"] == {"card": "42", "balance": "120"}
    assert req.headers["authorization"].startswith("Bearer ya29.fake-")


async def test_unregistered_is_invalid_token(fcm_sender: FcmChannel, fcm_fake: FakeFcmServer) -> None:
    fcm_fake.program(TOKEN, FcmReply.unregistered())
    assert await fcm_sender.send(TOKEN, "t", "b", {}) == PushResult("invalid_token", "UNREGISTERED")


async def test_quota_exceeded_is_retry_with_retry_after_and_no_library_retry(
    fcm_sender: FcmChannel, fcm_fake: FakeFcmServer
) -> None:
    fcm_fake.program(TOKEN, FcmReply.quota_exceeded(retry_after="17"))
    started = time.monotonic()
    result = await fcm_sender.send(TOKEN, "t", "b", {})

    assert result == PushResult("retry", "QUOTA_EXCEEDED", retry_after=17.0)
    assert time.monotonic() - started < 2  # pyfcm did not sleep the 17 s itself
    assert len(fcm_fake.requests) == 1


async def test_unavailable_is_retry_and_sent_exactly_once(fcm_sender: FcmChannel, fcm_fake: FakeFcmServer) -> None:
    fcm_fake.program(TOKEN, FcmReply.unavailable(retry_after="1"), FcmReply.internal())
    assert await fcm_sender.send(TOKEN, "t", "b", {}) == PushResult("retry", "UNAVAILABLE", retry_after=1.0)
    assert len(fcm_fake.requests) == 1  # no urllib3 retry on 503, no Retry-After recursion
    assert await fcm_sender.send(TOKEN, "t", "b", {}) == PushResult("retry", "INTERNAL")
    assert len(fcm_fake.requests) == 2
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).ok


async def test_invalid_argument_is_failed(fcm_sender: FcmChannel, fcm_fake: FakeFcmServer) -> None:
    fcm_fake.program(TOKEN, FcmReply.invalid_argument("Invalid android.ttl"))
    assert await fcm_sender.send(TOKEN, "t", "b", {}) == PushResult("failed", "INVALID_ARGUMENT")


async def test_invalid_registration_token_is_invalid_token(fcm_sender: FcmChannel, fcm_fake: FakeFcmServer) -> None:
    fcm_fake.program(TOKEN, FcmReply.invalid_argument("The registration token is not a valid FCM registration token"))
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).status == "invalid_token"


async def test_sender_id_mismatch_is_failed_and_third_party_auth_is_auth_error(
    fcm_sender: FcmChannel, fcm_fake: FakeFcmServer
) -> None:
    fcm_fake.program(TOKEN, FcmReply.sender_id_mismatch(), FcmReply.third_party_auth_error())
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).status == "failed"
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).status == "auth_error"


async def test_oauth_token_fetched_once_and_shared_by_concurrent_sends(
    fcm_sender: FcmChannel, fcm_fake: FakeFcmServer
) -> None:
    results = await asyncio.gather(*(fcm_sender.send(f"tok-{i}", "t", "b", {}) for i in range(40)))

    assert all(r.ok for r in results)
    assert len(fcm_fake.requests) == 40
    assert [t.status for t in fcm_fake.token_requests] == [200]
    assert "firebase.messaging" in (fcm_fake.token_requests[0].scope or "")


async def test_expired_access_token_is_refreshed_once(fcm_sender: FcmChannel, fcm_fake: FakeFcmServer) -> None:
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).ok
    fcm_fake.expire_access_tokens()
    assert (await fcm_sender.send(TOKEN, "t", "b", {})).ok
    assert [r.status for r in fcm_fake.requests] == [200, 401, 200]
    assert len(fcm_fake.token_requests) == 2


async def test_service_account_unknown_to_the_token_endpoint_is_auth_error(
    fcm_fake: FakeFcmServer, tmp_path: Path
) -> None:
    other = FakeFcmServer()  # never started: only used to mint an account fcm_fake does not know
    account = other.service_account("demo-project")
    other.stop()
    account["token_uri"] = fcm_fake.token_uri
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))
    sender = FcmChannel(str(path), fcm_endpoint_base=fcm_fake.endpoint_base, timeout=5)
    try:
        result = await sender.send(TOKEN, "t", "b", {})
    finally:
        await sender.aclose()
    assert result.status == "auth_error"
    assert fcm_fake.requests == []


async def test_unreachable_fcm_is_retry(fcm_fake: FakeFcmServer, service_account_file: Path) -> None:
    sender = FcmChannel(str(service_account_file), fcm_endpoint_base="http://127.0.0.1:9/v1/projects", timeout=2)
    try:
        result = await sender.send(TOKEN, "t", "b", {})
    finally:
        await sender.aclose()
    assert result.status == "retry"


def test_mapping_and_retry_after_parsing() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert map_fcm_response(404, None, None).status == "invalid_token"
    assert map_fcm_response(502, None, "3") == PushResult("retry", "HTTP 502", retry_after=3.0)
    assert map_fcm_response(403, {"error": {"status": "PERMISSION_DENIED"}}, None).status == "auth_error"
