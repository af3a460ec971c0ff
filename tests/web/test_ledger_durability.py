"""Ledger intake under concurrency and across a crash, over real HTTP, on both stores."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter, defaultdict

import httpx

from store.factory import open_store
from store.port import OutboxEntry
from tests.web.conftest import PASS_TYPE_ID, LiveServer
from tests.web.iphone import read_pass_json


def register_one_device_per_card(server: LiveServer, cards: list[dict]) -> dict[str, str]:
    """serial -> device id"""
    plain = server.client()
    devices = {}
    for issued in cards:
        token = read_pass_json(plain.get(issued["links"]["apple"]).content)["authenticationToken"]
        device = "dev" + uuid.uuid4().hex
        response = plain.post(
            f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}/{issued['serial']}",
            headers={"Authorization": f"ApplePass {token}"},
            json={"pushToken": uuid.uuid4().hex * 2},
        )
        assert response.status_code == 201
        devices[issued["serial"]] = device
    return devices


async def drain_outbox(url: str) -> list[OutboxEntry]:
    store = await open_store(url)
    try:
        entries: list[OutboxEntry] = []
        while True:
            batch = await store.claim_outbox("inspector", 500, 60.0, time.time())
            if not batch:
                return entries
            entries.extend(batch)
            await store.ack_outbox([e.id for e in batch])
    finally:
        await store.close()


def test_concurrent_shuffled_events_with_duplicates(server_factory) -> None:
    # the worker stays off so the outbox can be inspected as the intake left it
    server = server_factory(WALLET_RUN_WORKER="0")
    cards = [server.issue(f"conc-{i}-{uuid.uuid4().hex[:6]}") for i in range(200)]
    devices = register_one_device_per_card(server, cards)

    events = []
    for issued in cards:
        for version in range(1, 26):
            events.append(
                {
                    "id": f"{issued['card']}-v{version}",
                    "card": issued["card"],
                    "version": version,
                    "balance": version * 10,
                    "message": f"v{version}",
                }
            )
    assert len(events) == 5000
    rng = random.Random(7)
    posted = events + rng.sample(events, 500)  # duplicates mixed in
    rng.shuffle(posted)

    outcomes: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def client_thread(chunk: list[dict]) -> None:
        http = httpx.Client(base_url=server.base, timeout=60)
        try:
            for start in range(0, len(chunk), 50):
                response = server.post_ledger(chunk[start : start + 50], client=http)
                assert response.status_code == 202, response.text
                body = response.json()
                assert body["invalid"] == [] and body["unknown"] == []
                with lock:
                    for outcome in ("accepted", "duplicate", "stale"):
                        for ident in body[outcome]:
                            outcomes[ident].append(outcome)
        finally:
            http.close()

    threads = [threading.Thread(target=client_thread, args=(posted[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # every posted copy got exactly one answer, and no event was accepted twice
    assert sum(len(v) for v in outcomes.values()) == len(posted)
    assert all(v.count("accepted") <= 1 for v in outcomes.values())
    api = server.api()
    for issued in cards:
        state = api.get(f"/v1/cards/{issued['card']}").json()
        assert (state["version"], state["balance"]) == (25, 250), issued["card"]
        # the highest version's event was the one that set the state, so it was accepted
        assert outcomes[f"{issued['card']}-v25"].count("accepted") == 1

    server.stop()
    entries = asyncio.run(drain_outbox(server_factory.database_url))
    # coalesced: exactly one pending update per changed pass (the worker expands it to the
    # devices) and one Google Wallet object sync per card (dev runs with Google Wallet on), none
    # lost, none twice
    per_pass = Counter((e.kind, e.fields["serial"]) for e in entries)
    expected = {(kind, serial) for serial in devices for kind in ("pass_update", "google_object")}
    assert set(per_pass) == expected
    assert set(per_pass.values()) == {1}


def test_sigkill_mid_stream_loses_and_duplicates_nothing(server_factory) -> None:
    server = server_factory(WALLET_RUN_WORKER="0")
    cards = [server.issue(f"crash-{i}-{uuid.uuid4().hex[:6]}")["card"] for i in range(50)]
    acknowledged: list[dict] = []
    unanswered: list[dict] = []
    stop = threading.Event()

    def stream() -> None:
        http = httpx.Client(base_url=server.base, timeout=10)
        version = 0
        while not stop.is_set() and version < 10_000:
            version += 1
            batch = [
                {"id": f"{card}-{version}", "card": card, "version": version, "balance": version} for card in cards
            ]
            try:
                response = server.post_ledger(batch, client=http)
            except httpx.HTTPError:
                unanswered.extend(batch)
                break
            if response.status_code != 202:
                unanswered.extend(batch)
                break
            assert sorted(response.json()["accepted"]) == sorted(e["id"] for e in batch)
            acknowledged.extend(batch)
        http.close()

    thread = threading.Thread(target=stream)
    thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 50 * 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    stop.set()
    thread.join(30)
    assert len(acknowledged) >= 50 * 20

    server.start()
    # every acknowledged event is there: re-posting it is a duplicate, never accepted again
    for start in range(0, len(acknowledged), 1000):
        body = server.post_ledger(acknowledged[start : start + 1000]).json()
        assert body["accepted"] == [] and body["stale"] == [] and body["unknown"] == []
        assert len(body["duplicate"]) == len(acknowledged[start : start + 1000])
    top = max(e["version"] for e in acknowledged)
    api = server.api()
    for card in cards[:10]:
        assert api.get(f"/v1/cards/{card}").json()["version"] >= top
    # the batch cut off by the crash was either committed whole or not at all; posting it
    # again completes it without doubling anything
    if unanswered:
        body = server.post_ledger(unanswered).json()
        assert len(body["accepted"]) + len(body["duplicate"]) == len(unanswered)
        assert len(body["accepted"]) in (0, len(unanswered))
