"""The outbox part of the storage port, against every adapter: enqueue, leases, ack, retry with
delay, dead letters and size.

Lease expiry is exercised with the real clock and one lease length for all consumers, as
workers run: the Redis adapter measures a lease as the entry's idle time on the server against
the claiming call's `lease_seconds` (XAUTOCLAIM), so a made-up `now` would not move it.
"""

from __future__ import annotations

import asyncio
import time

from ledger.decide import LedgerEvent
from store.port import Store

from .conftest import make_card

NOW = 1_700_000_000.0  # in the past, so entries enqueued at NOW are due for real-clock claims


async def test_enqueue_and_claim(store: Store) -> None:
    assert await store.outbox_size() == 0
    entry_id = await store.enqueue("fcm_alert", {"token": "t", "card": "c", "title": "Hi", "body": "b",
                                                 "data": {"k": 1}}, NOW)
    assert isinstance(entry_id, str) and entry_id
    assert await store.outbox_size() == 1
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    assert entry.id == entry_id
    assert entry.kind == "fcm_alert"
    assert entry.payload == {"token": "t", "card": "c", "title": "Hi", "body": "b", "data": {"k": 1}}
    assert entry.attempts == 0 and entry.enqueued_at == NOW
    assert await store.outbox_size() == 1  # leased, not gone


async def test_claim_respects_limit_and_order(store: Store) -> None:
    ids = [await store.enqueue("apns_alert", {"n": i}, NOW + i / 1000) for i in range(5)]
    first = await store.claim_outbox("w1", 2, 30, NOW + 1)
    rest = await store.claim_outbox("w1", 10, 30, NOW + 1)
    assert [e.id for e in first + rest] == ids
    assert [e.payload["n"] for e in first] == [0, 1]
    assert await store.claim_outbox("w1", 0, 30, NOW + 1) == []


async def test_leased_entries_are_not_claimed_twice(store: Store) -> None:
    await store.enqueue("apns_alert", {"n": 1}, NOW)
    assert len(await store.claim_outbox("w1", 10, 30, time.time())) == 1
    assert await store.claim_outbox("w2", 10, 30, time.time()) == []
    assert await store.claim_outbox("w1", 10, 30, time.time()) == []


async def test_an_expired_lease_is_claimed_again(store: Store) -> None:
    entry_id = await store.enqueue("apns_alert", {"n": 1}, NOW)
    [first] = await store.claim_outbox("dead-worker", 10, 0.2, time.time())
    assert await store.claim_outbox("w2", 10, 0.2, time.time()) == []
    await asyncio.sleep(0.35)
    [again] = await store.claim_outbox("w2", 10, 0.2, time.time())
    assert again.id == first.id == entry_id and again.payload == {"n": 1}
    assert await store.claim_outbox("w3", 10, 30, time.time()) == []  # leased to w2 now
    await store.ack_outbox("w2", [again.id])
    assert await store.outbox_size() == 0


async def test_ack_removes_for_good(store: Store) -> None:
    a = await store.enqueue("apns_alert", {"n": 1}, NOW)
    b = await store.enqueue("apns_alert", {"n": 2}, NOW)
    claimed = await store.claim_outbox("w1", 10, 0.1, time.time())
    assert {e.id for e in claimed} == {a, b}
    await store.ack_outbox("w1", [a])
    await store.ack_outbox("w1", [])
    assert await store.outbox_size() == 1
    await asyncio.sleep(0.2)
    # Only the unacknowledged entry comes back after the lease; the acknowledged one never does.
    assert [e.id for e in await store.claim_outbox("w2", 10, 0.1, time.time())] == [b]
    await store.ack_outbox("w2", [b])
    await store.ack_outbox("w2", [b])  # acknowledging twice is harmless
    assert await store.outbox_size() == 0


async def test_retry_delays_and_counts_attempts(store: Store) -> None:
    await store.enqueue("apns_alert", {"n": 1}, NOW)
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entry, 10, NOW)
    assert await store.outbox_size() == 1
    assert await store.claim_outbox("w1", 10, 30, NOW + 5) == []  # released, but not due yet
    [again] = await store.claim_outbox("w2", 10, 30, NOW + 10.5)
    assert again.attempts == 1 and again.payload == {"n": 1} and again.kind == "apns_alert"
    assert again.enqueued_at == NOW
    await store.retry_outbox(again, 0, NOW + 11)
    [third] = await store.claim_outbox("w2", 10, 30, NOW + 11)
    assert third.attempts == 2
    await store.ack_outbox("w2", [third.id])
    assert await store.outbox_size() == 0


async def test_retry_keeps_the_latest_coalesced_tag(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    await store.apply_ledger_events([LedgerEvent(id="e1", version=1, balance=1, card=card.number)], NOW)
    result = await store.apply_ledger_events([LedgerEvent(id="e2", version=2, balance=2, card=card.number)], NOW)
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entry, 1, NOW)
    [again] = await store.claim_outbox("w1", 10, 30, NOW + 2)
    assert again.payload["tag"] == result.changed[0].tag
    assert again.attempts == 1


async def test_dead_letters(store: Store) -> None:
    await store.enqueue("apns_alert", {"n": 1}, NOW)
    await store.enqueue("fcm_alert", {"n": 2}, NOW)
    first, second = await store.claim_outbox("w1", 10, 30, NOW)
    await store.dead_letter(first, "BadDeviceToken", NOW + 1)
    await store.dead_letter(second, "timeout after 5 attempts", NOW + 2)
    await store.dead_letter(second, "again", NOW + 3)  # already moved: recorded once
    assert await store.outbox_size() == 0
    letters = await store.list_dead_letters(10)
    assert [(d.entry.id, d.entry.kind, d.entry.payload, d.error, d.failed_at) for d in letters] == [
        (second.id, "fcm_alert", {"n": 2}, "timeout after 5 attempts", NOW + 2),
        (first.id, "apns_alert", {"n": 1}, "BadDeviceToken", NOW + 1),
    ]
    assert [d.entry.id for d in await store.list_dead_letters(1)] == [second.id]
    assert await store.claim_outbox("w1", 10, 30, NOW + 100) == []


async def test_outbox_size_counts_delayed_entries(store: Store) -> None:
    for i in range(3):
        await store.enqueue("apns_alert", {"n": i}, NOW)
    entries = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entries[0], 60, NOW)
    await store.ack_outbox("w1", [entries[1].id])
    assert await store.outbox_size() == 2
    await store.dead_letter(entries[2], "gone", NOW)
    assert await store.outbox_size() == 1


async def test_consumers_share_the_work_without_overlap(store: Store) -> None:
    for i in range(30):
        await store.enqueue("apns_alert", {"n": i}, NOW)
    batches = await asyncio.gather(*(store.claim_outbox(f"w{i}", 4, 30, time.time()) for i in range(10)))
    ids = [e.id for batch in batches for e in batch]
    assert len(ids) == len(set(ids)) == 30
