"""Google Wallet end to end: the real service and a `python -m cli worker` process, on both stores,
against the fake Wallet API and its OAuth token endpoint (tests/fakes/google_wallet_server.py),
with google-auth and httpx doing the real work: an issued card's object is inserted (its classes
ensured at the worker's start), a ledger event patches its balance and tier and adds its message."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.google_wallet_server import FakeGoogleWalletServer
from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import LiveServer
from tests.web.test_push_e2e import WorkerProcess, push_env, wait_for

ISSUER = "3388000000000012345"


@pytest.fixture
def google() -> Iterator[FakeGoogleWalletServer]:
    fake = FakeGoogleWalletServer()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def google_env(google: FakeGoogleWalletServer, tmp_path: Path) -> dict[str, str]:
    key_file = tmp_path / "google-service-account.json"
    key_file.write_text(json.dumps(google.service_account()))
    os.chmod(key_file, 0o600)
    return {
        "WALLET_GOOGLE_ISSUER_ID": ISSUER,
        "WALLET_GOOGLE_SERVICE_ACCOUNT": str(key_file),
        "WALLET_GOOGLE_API_URL": google.url,
    }


def test_issued_card_gets_its_object_and_a_ledger_event_patches_it(
    server_factory, apns: ThreadedApns, google: FakeGoogleWalletServer, tmp_path: Path
) -> None:
    server: LiveServer = server_factory(**push_env(apns, WALLET_RUN_WORKER="0"), **google_env(google, tmp_path))
    worker = WorkerProcess(server.env, tmp_path / "worker.log")
    try:
        # the worker ensures every tier class of every program at start
        wait_for(lambda: any(cid.startswith(f"{ISSUER}.coffee.") for cid in google.classes), timeout=30)
        issued = server.issue("google-" + uuid.uuid4().hex[:8], balance=100)
        object_id = f"{ISSUER}.{issued['serial']}"
        assert "google" in issued["links"]
        wait_for(lambda: object_id in google.objects, timeout=30)
        assert google.objects[object_id]["loyaltyPoints"]["balance"]["int"] == 100

        answer = server.post_ledger(
            [
                {
                    "id": uuid.uuid4().hex,
                    "card": issued["card"],
                    "version": 1,
                    "balance": 250,
                    "message": "Начислено 150 баллов",
                }
            ]
        )
        assert answer.json()["accepted"]
        wait_for(lambda: google.objects[object_id]["loyaltyPoints"]["balance"]["int"] == 250, timeout=30)
        wait_for(lambda: bool(google.requests_to("POST", f"*/loyaltyObject/{object_id}/addMessage")), timeout=30)
        patches = google.requests_to("PATCH", f"*/loyaltyObject/{object_id}")
        assert patches and all(p.token for p in patches)  # every call carried a token the fake issued
        assert any((p.body or {}).get("notifyPreference") == "NOTIFY_ON_UPDATE" for p in patches)
        [message_call] = google.requests_to("POST", f"*/loyaltyObject/{object_id}/addMessage")
        assert "Начислено 150 баллов" in json.dumps(message_call.body, ensure_ascii=False)
        # the token grant is google-auth's own: one grant reused across the calls
        assert 1 <= len(google.token_requests) <= 2
    finally:
        worker.stop()
