"""GoogleWalletClient (real google-auth, requests and httpx) against the fake Wallet API and its
OAuth token endpoint (tests/fakes/google_wallet_server.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from push.channels.google_wallet import (
    WALLET_SCOPE,
    GoogleWalletClient,
    GoogleWalletConfigError,
    GoogleWalletResult,
)
from tests.fakes.google_wallet_server import FakeGoogleWalletServer, WalletReply, make_service_account

ISSUER = "3388000000022141777"
CLASS_ID = f"{ISSUER}.coffee"
OBJECT_ID = f"{ISSUER}.card-0001"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def class_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": CLASS_ID,
        "issuerName": "Coffee",
        "programName": "Coffee points",
        "programLogo": {"sourceUri": {"uri": "https://example.com/logo.png"}},
        "reviewStatus": "UNDER_REVIEW",
        **extra,
    }


def object_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": OBJECT_ID,
        "classId": CLASS_ID,
        "state": "ACTIVE",
        "accountId": "0001",
        "loyaltyPoints": {"label": "Points", "balance": {"int": 100}},
        **extra,
    }


@pytest.fixture
def wallet() -> Iterator[FakeGoogleWalletServer]:
    with FakeGoogleWalletServer() as server:
        yield server


@pytest.fixture
def account(wallet: FakeGoogleWalletServer) -> dict[str, str]:
    return wallet.service_account()


@pytest.fixture
async def client(wallet: FakeGoogleWalletServer, account: dict[str, str]) -> AsyncIterator[GoogleWalletClient]:
    async with GoogleWalletClient(wallet.url, account, timeout=5) as c:
        yield c


async def seeded(client: GoogleWalletClient) -> None:
    assert (await client.insert_class(class_body())).ok
    assert (await client.insert_object(object_body())).ok


# -- tokens ------------------------------------------------------------------------------------


async def test_token_fetched_once_and_reused(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    for _ in range(3):
        assert (await client.get_object(OBJECT_ID)).ok

    [grant] = wallet.token_requests
    assert grant.status == 200 and grant.client_email == client.service_account_email
    assert grant.scope == WALLET_SCOPE
    # google-auth sends Google's token URL as aud whatever token_uri says; the fake takes it
    assert grant.audience == GOOGLE_TOKEN_AUDIENCE
    assert len(wallet.requests) == 5
    assert {r.token for r in wallet.requests} == set(wallet.issued_tokens)
    assert all(r.status == 200 for r in wallet.requests)
    assert len({r.peer for r in wallet.requests}) == 1  # one pooled keep-alive connection


async def test_concurrent_calls_share_one_refresh(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    results = await asyncio.gather(*(client.get_class(f"{ISSUER}.missing-{i}") for i in range(10)))
    assert {r.status for r in results} == {"not_found"}
    assert len(wallet.token_requests) == 1


async def test_token_refreshed_before_it_expires() -> None:
    with FakeGoogleWalletServer(token_ttl=3) as wallet:
        account = wallet.service_account()
        async with GoogleWalletClient(wallet.url, account) as client:
            # 3 s tokens: the 300 s margin is capped at half the lifetime, so the token is reused
            # for 1.5 s and renewed while the fake would still take it
            assert (await client.insert_class(class_body())).ok
            assert (await client.get_class(CLASS_ID)).ok
            assert len(wallet.token_requests) == 1
            await asyncio.sleep(1.7)
            assert (await client.get_class(CLASS_ID)).ok

        assert len(wallet.token_requests) == 2
        first, second, third = wallet.requests
        assert first.token == second.token != third.token
        assert [r.status for r in wallet.requests] == [200, 200, 200]  # never a 401 on the way


async def test_token_refused_by_api_is_renewed_once(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    wallet.expire_access_tokens()  # e.g. revoked, or Google's clock ahead of ours

    assert (await client.get_object(OBJECT_ID)).ok
    assert len(wallet.token_requests) == 2
    assert [r.status for r in wallet.requests] == [200, 200, 401, 200]
    assert (await client.get_object(OBJECT_ID)).ok
    assert len(wallet.token_requests) == 2


async def test_401_twice_is_auth_error(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    wallet.script_always("GET", "*", WalletReply.unauthenticated())
    result = await client.get_object(OBJECT_ID)
    assert result.status == "auth_error" and result.http_status == 401
    assert len(wallet.requests) == 2  # the retry with a fresh token, no more
    assert len(wallet.token_requests) == 2


async def test_unknown_service_account_is_auth_error_without_api_call(wallet: FakeGoogleWalletServer) -> None:
    stranger = make_service_account(wallet.token_uri)  # never registered with the fake
    async with GoogleWalletClient(wallet.url, stranger) as client:
        result = await client.get_object(OBJECT_ID)
    assert result == GoogleWalletResult("auth_error", reason="TokenRefused")
    assert [g.status for g in wallet.token_requests] == [400]
    assert wallet.requests == []


async def test_token_endpoint_unreachable_is_server_error(wallet: FakeGoogleWalletServer) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_uri = f"http://127.0.0.1:{closed.getsockname()[1]}/token"
    info = make_service_account(dead_uri)
    async with GoogleWalletClient(wallet.url, info, token_timeout=2) as client:
        result = await client.get_class(CLASS_ID)
    assert result.status == "server_error" and result.retryable
    assert wallet.requests == []


def test_broken_service_account_is_refused_naming_the_problem(account: dict[str, str]) -> None:
    missing = {k: v for k, v in account.items() if k != "token_uri"}
    with pytest.raises(GoogleWalletConfigError, match="token_uri"):
        GoogleWalletClient("http://127.0.0.1:1", missing)
    broken = {**account, "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}
    with pytest.raises(GoogleWalletConfigError) as caught:
        GoogleWalletClient("http://127.0.0.1:1", broken)
    assert "not a key" not in str(caught.value)


# -- round trips -------------------------------------------------------------------------------


async def test_class_insert_get_patch(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    inserted = await client.insert_class(class_body(hexBackgroundColor="#112233"))
    assert inserted.ok and inserted.body is not None and inserted.body["id"] == CLASS_ID

    got = await client.get_class(CLASS_ID)
    assert got.ok and got.body is not None and got.body["programName"] == "Coffee points"

    patched = await client.patch_class(CLASS_ID, {"hexBackgroundColor": "#445566", "reviewStatus": "UNDER_REVIEW"})
    assert patched.ok and patched.body is not None
    assert patched.body["hexBackgroundColor"] == "#445566" and patched.body["issuerName"] == "Coffee"

    post, get, patch = wallet.requests
    assert (post.method, post.path) == ("POST", "/walletobjects/v1/loyaltyClass")
    assert post.body == class_body(hexBackgroundColor="#112233")
    assert (get.method, get.path) == ("GET", f"/walletobjects/v1/loyaltyClass/{CLASS_ID}")
    assert (patch.method, patch.path) == ("PATCH", f"/walletobjects/v1/loyaltyClass/{CLASS_ID}")
    assert patch.body == {"hexBackgroundColor": "#445566", "reviewStatus": "UNDER_REVIEW"}
    assert patch.headers["content-type"] == "application/json"


async def test_object_insert_get_patch_with_notify(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    patched = await client.patch_object(
        OBJECT_ID, {"loyaltyPoints": {"balance": {"int": 250}}, "accountName": "Ann"}, notify=True
    )
    assert patched.ok and patched.body is not None
    assert patched.body["loyaltyPoints"] == {"label": "Points", "balance": {"int": 250}}  # merged
    assert patched.body["accountName"] == "Ann" and "notifyPreference" not in patched.body

    [patch] = wallet.requests_to("PATCH")
    assert patch.path == f"/walletobjects/v1/loyaltyObject/{OBJECT_ID}"
    assert patch.body == {
        "loyaltyPoints": {"balance": {"int": 250}},
        "accountName": "Ann",
        "notifyPreference": "NOTIFY_ON_UPDATE",
    }
    got = await client.get_object(OBJECT_ID)
    assert got.ok and got.body is not None and got.body["loyaltyPoints"]["balance"] == {"int": 250}

    await client.patch_object(OBJECT_ID, {"state": "ACTIVE"})
    assert "notifyPreference" not in wallet.requests_to("PATCH")[-1].body


async def test_add_message_appends(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    first = {"id": "m1", "header": "Hi", "body": "Double points today", "messageType": "TEXT_AND_NOTIFY"}
    second = {"id": "m2", "header": "Also", "body": "Free refill", "messageType": "TEXT"}
    assert (await client.add_message(OBJECT_ID, first)).ok
    result = await client.add_message(OBJECT_ID, second)

    assert result.ok and result.body is not None  # the object, unwrapped from {"resource": ...}
    assert result.body["id"] == OBJECT_ID and [m["id"] for m in result.body["messages"]] == ["m1", "m2"]
    post = wallet.requests_to("POST", "*/addMessage")[0]
    assert post.path == f"/walletobjects/v1/loyaltyObject/{OBJECT_ID}/addMessage"
    assert post.body == {"message": first}
    assert wallet.objects[OBJECT_ID]["messages"] == [first, second]


async def test_ensure_class_inserts_then_patches_on_conflict(
    client: GoogleWalletClient, wallet: FakeGoogleWalletServer
) -> None:
    first = await client.ensure_class(class_body())
    assert first.ok
    assert [(r.method, r.status) for r in wallet.requests] == [("POST", 200)]

    changed = class_body(hexBackgroundColor="#aa0000")
    second = await client.ensure_class(changed)
    assert second.ok and second.body is not None and second.body["hexBackgroundColor"] == "#aa0000"
    assert [(r.method, r.status) for r in wallet.requests] == [("POST", 200), ("POST", 409), ("PATCH", 200)]
    assert wallet.requests[-1].body == changed
    assert wallet.classes[CLASS_ID]["hexBackgroundColor"] == "#aa0000"


async def test_ensure_object_reinserts_or_patches(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    result = await client.ensure_object(object_body(accountName="Bob"))
    assert result.ok and wallet.objects[OBJECT_ID]["accountName"] == "Bob"
    assert [r.method for r in wallet.requests[-2:]] == ["POST", "PATCH"]


async def test_api_url_may_name_the_version_path(wallet: FakeGoogleWalletServer, account: dict[str, str]) -> None:
    async with GoogleWalletClient(wallet.url + "/walletobjects/v1/", account) as client:
        assert (await client.insert_class(class_body())).ok
    assert wallet.requests[0].path == "/walletobjects/v1/loyaltyClass"


# -- error mapping -----------------------------------------------------------------------------


async def test_real_not_found_and_conflict(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    missing = await client.get_object(OBJECT_ID)
    assert (missing.status, missing.http_status) == ("not_found", 404)
    assert (await client.patch_object(OBJECT_ID, {"state": "ACTIVE"})).status == "not_found"
    assert (await client.add_message(OBJECT_ID, {"header": "h", "body": "b"})).status == "not_found"
    assert (await client.insert_object(object_body())).status == "not_found"  # its class is missing
    assert (await client.insert_class(class_body())).ok
    duplicate = await client.insert_class(class_body())
    assert (duplicate.status, duplicate.http_status) == ("conflict", 409)


async def test_fourth_notifying_message_in_a_day_is_quota_exceeded(
    client: GoogleWalletClient, wallet: FakeGoogleWalletServer
) -> None:
    await seeded(client)
    notify = {"header": "h", "body": "b", "messageType": "TEXT_AND_NOTIFY"}
    for _ in range(3):
        assert (await client.add_message(OBJECT_ID, notify)).ok
    refused = await client.add_message(OBJECT_ID, notify)
    assert refused == GoogleWalletResult("quota_exceeded", http_status=403, reason="quotaExceeded")
    assert (await client.add_message(OBJECT_ID, {**notify, "messageType": "TEXT"})).ok
    assert len(wallet.objects[OBJECT_ID]["messages"]) == 4


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (WalletReply.not_found(), GoogleWalletResult("not_found", http_status=404, reason="resourceNotFound")),
        (WalletReply.conflict(), GoogleWalletResult("conflict", http_status=409, reason="duplicate")),
        (WalletReply.quota_exceeded(), GoogleWalletResult("quota_exceeded", http_status=403, reason="quotaExceeded")),
        (WalletReply.permission_denied(), GoogleWalletResult("auth_error", http_status=403, reason="permissionDenied")),
        (
            WalletReply.rate_limited("7"),
            GoogleWalletResult("rate_limited", http_status=429, reason="rateLimitExceeded", retry_after=7.0),
        ),
        (
            WalletReply.rate_limited(None),
            GoogleWalletResult("rate_limited", http_status=429, reason="rateLimitExceeded"),
        ),
        (
            WalletReply.server_error(503, "3"),
            GoogleWalletResult("server_error", http_status=503, reason="backendError", retry_after=3.0),
        ),
        (WalletReply.server_error(500), GoogleWalletResult("server_error", http_status=500, reason="backendError")),
        (WalletReply(502, body={"oops": True}), GoogleWalletResult("server_error", http_status=502, reason="HTTP 502")),
        (WalletReply.bad_request(), GoogleWalletResult("bad_request", http_status=400, reason="Invalid resource ID")),
    ],
    ids=lambda v: v.status if isinstance(v, GoogleWalletResult) else str(getattr(v, "status", v)),
)
async def test_scripted_answers_map_at_the_boundary(
    client: GoogleWalletClient, wallet: FakeGoogleWalletServer, reply: WalletReply, expected: GoogleWalletResult
) -> None:
    await seeded(client)
    wallet.script("PATCH", f"*/loyaltyObject/{OBJECT_ID}", reply)
    assert await client.patch_object(OBJECT_ID, {"state": "ACTIVE"}) == expected
    assert len(wallet.requests_to("PATCH")) == 1  # no retry inside the client
    assert (await client.patch_object(OBJECT_ID, {"state": "ACTIVE"})).ok  # the script is used up


async def test_scripts_match_method_and_path(client: GoogleWalletClient, wallet: FakeGoogleWalletServer) -> None:
    await seeded(client)
    wallet.script("POST", "*/addMessage", WalletReply.server_error())
    assert (await client.get_object(OBJECT_ID)).ok
    assert (await client.add_message(OBJECT_ID, {"header": "h", "body": "b"})).status == "server_error"


async def test_timeout_and_connection_refused_are_server_errors(
    wallet: FakeGoogleWalletServer, account: dict[str, str]
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        async with GoogleWalletClient(f"http://127.0.0.1:{silent.getsockname()[1]}", account, timeout=0.3) as client:
            started = time.monotonic()
            assert await client.get_class(CLASS_ID) == GoogleWalletResult("server_error", reason="Timeout")
            assert time.monotonic() - started < 3
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with GoogleWalletClient(f"http://127.0.0.1:{port}", account, timeout=2) as client:
        assert await client.get_class(CLASS_ID) == GoogleWalletResult("server_error", reason="ConnectError")


async def test_mock_transport_errors_map_too(wallet: FakeGoogleWalletServer, account: dict[str, str]) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    async with GoogleWalletClient(wallet.url, account, transport=httpx.MockTransport(boom)) as client:
        assert await client.get_class(CLASS_ID) == GoogleWalletResult("server_error", reason="RemoteProtocolError")


async def test_bad_resource_id_is_refused_without_a_call(
    client: GoogleWalletClient, wallet: FakeGoogleWalletServer
) -> None:
    for bad in ("../loyaltyClass", "a/b", "a b", "x?y", ""):
        assert await client.get_object(bad) == GoogleWalletResult("bad_request", reason="InvalidResourceId")
    assert wallet.requests == [] and wallet.token_requests == []


# -- the fake itself -----------------------------------------------------------------------------


def test_fake_token_endpoint_checks_signature_issuer_and_scope(wallet: FakeGoogleWalletServer) -> None:
    account = wallet.service_account()
    other = make_service_account(wallet.token_uri)
    now = int(time.time())

    def grant(key_of: dict[str, str], **claims: Any) -> httpx.Response:
        payload = {
            "iss": account["client_email"],
            "aud": "https://somewhere-else.example/token",  # not the fake's URL: still fine
            "scope": WALLET_SCOPE,
            "iat": now,
            "exp": now + 3600,
            **claims,
        }
        assertion = jwt.encode(payload, key_of["private_key"], algorithm="RS256")
        return httpx.post(
            wallet.token_uri,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        )

    good = grant(account)
    assert good.status_code == 200 and good.json()["expires_in"] == 3600
    assert good.json()["access_token"] in wallet.issued_tokens
    assert grant(other).status_code == 400  # signed with another key
    assert grant(account, scope="https://www.googleapis.com/auth/cloud-platform").status_code == 400
    assert grant(other, iss=other["client_email"]).status_code == 400  # unknown account
    refused = httpx.post(wallet.token_uri, data={"grant_type": "client_credentials"})
    assert refused.status_code == 400
    no_bearer = httpx.get(f"{wallet.url}/walletobjects/v1/loyaltyClass/{CLASS_ID}")
    assert no_bearer.status_code == 401 and wallet.requests[-1].token is None


# -- logs ------------------------------------------------------------------------------------------


async def test_no_token_or_key_in_logs(
    wallet: FakeGoogleWalletServer, account: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, google.auth, urllib3, httpx, httpcore
    async with GoogleWalletClient(wallet.url, account) as client:
        await seeded(client)
        await client.patch_object(OBJECT_ID, {"state": "ACTIVE"}, notify=True)
        wallet.script("PATCH", "*", WalletReply.permission_denied(), WalletReply.rate_limited("1"))
        await client.patch_object(OBJECT_ID, {"state": "ACTIVE"})
        await client.patch_object(OBJECT_ID, {"state": "ACTIVE"})
        wallet.expire_access_tokens()
        assert (await client.get_object(OBJECT_ID)).ok
    stranger = make_service_account(wallet.token_uri)
    async with GoogleWalletClient(wallet.url, stranger) as client:
        assert (await client.get_object(OBJECT_ID)).status == "auth_error"

    text = caplog.text
    assert "google wallet" in text  # the errors were logged...
    tokens = wallet.issued_tokens
    assert len(tokens) == 2
    for secret in tokens:
        # ...without the tokens, whole or as their random tail (the last "-" part alone can be a
        # single character that any log line holds: that made this test fail by chance)
        assert secret not in text and secret[-16:] not in text
    for info in (account, stranger):
        key_lines = [line for line in info["private_key"].splitlines() if "PRIVATE KEY" not in line]
        assert not any(line in text for line in key_lines)
        assert info["private_key_id"] not in text
    assert "eyJ" not in text  # no JWT (the grant assertion) either
