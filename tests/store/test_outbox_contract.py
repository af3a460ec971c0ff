"""The outbox part of the storage port, against every adapter: enqueue with coalescing, leases,
ack, retry with delay, dead letters and size. Fields go in and come out exactly as given.

Lease expiry is exercised with the real clock and one lease length for all consumers, as
workers run: the Redis adapter measures a lease as the entry's idle time on the server against
the claiming call's `lease_seconds` (XAUTOCLAIM), so a made-up `now` would not move it.
"""

from __future__ import annotations

import asyncio
import time

from store.port import NewEntry, Store

from .conftest import note

NOW = 1_700_000_000.0  # in the past, so entries enqueued at NOW are due for real-clock claims


async def test_enqueue_and_claim(store: Store) -> None:
    assert await store.outbox_size() == 0
    fields = {"token": "t", "card_number": "c", "title": "Hi ☕", "body": 'quoted "b" \\ ü', "data": '{"k":"1"}'}
    [entry_id] = await store.enqueue([NewEntry("app_alert", fields)], NOW)
    assert isinstance(entry_id, str) and entry_id
    assert await store.outbox_size() == 1
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    assert entry.id == entry_id
    assert entry.kind == "app_alert"
    assert entry.fields == fields
    assert entry.attempts == 0 and entry.enqueued_at == NOW
    assert await store.outbox_size() == 1  # leased, not gone
    assert await store.enqueue([], NOW) == []


async def test_enqueue_coalesces_by_key_until_claimed(store: Store) -> None:
    first, same, other, unkeyed = await store.enqueue(
        [note(1, key="k1"), note(2, key="k1"), note(3, key="k2"), note(4)], NOW
    )
    assert first == same and len({first, other, unkeyed}) == 3
    assert [await store.enqueue([note(5, key="k1")], NOW)] == [[first]]
    assert await store.outbox_size() == 3
    claimed = await store.claim_outbox("w1", 10, 30, NOW)
    assert [e.fields["n"] for e in claimed] == ["1", "3", "4"]  # the first entry's fields stay
    # claimed: the next entry under k1 is a new one
    [fresh] = await store.enqueue([note(6, key="k1")], NOW)
    assert fresh not in {e.id for e in claimed}
    assert await store.outbox_size() == 4


async def test_claim_respects_limit_and_order(store: Store) -> None:
    ids = [(await store.enqueue([note(i)], NOW + i / 1000))[0] for i in range(5)]
    first = await store.claim_outbox("w1", 2, 30, NOW + 1)
    rest = await store.claim_outbox("w1", 10, 30, NOW + 1)
    assert [e.id for e in first + rest] == ids
    assert [e.fields["n"] for e in first] == ["0", "1"]
    assert await store.claim_outbox("w1", 0, 30, NOW + 1) == []


async def test_leased_entries_are_not_claimed_twice(store: Store) -> None:
    await store.enqueue([note(1)], NOW)
    assert len(await store.claim_outbox("w1", 10, 30, time.time())) == 1
    assert await store.claim_outbox("w2", 10, 30, time.time()) == []
    assert await store.claim_outbox("w1", 10, 30, time.time()) == []


async def test_an_expired_lease_is_claimed_again(store: Store) -> None:
    [entry_id] = await store.enqueue([note(1)], NOW)
    [first] = await store.claim_outbox("dead-worker", 10, 0.2, time.time())
    assert await store.claim_outbox("w2", 10, 0.2, time.time()) == []
    await asyncio.sleep(0.35)
    [again] = await store.claim_outbox("w2", 10, 0.2, time.time())
    assert again.id == first.id == entry_id and again.fields == {"n": "1"}
    assert await store.claim_outbox("w3", 10, 30, time.time()) == []  # leased to w2 now
    await store.ack_outbox([again.id])
    assert await store.outbox_size() == 0


async def test_ack_removes_for_good(store: Store) -> None:
    a, b = await store.enqueue([note(1), note(2)], NOW)
    claimed = await store.claim_outbox("w1", 10, 0.1, time.time())
    assert {e.id for e in claimed} == {a, b}
    await store.ack_outbox([a])
    await store.ack_outbox([])
    assert await store.outbox_size() == 1
    await asyncio.sleep(0.2)
    # Only the unacknowledged entry comes back after the lease; the acknowledged one never does.
    assert [e.id for e in await store.claim_outbox("w2", 10, 0.1, time.time())] == [b]
    await store.ack_outbox([b])
    await store.ack_outbox([b])  # acknowledging twice is harmless
    assert await store.outbox_size() == 0


async def test_retry_delays_and_counts_attempts(store: Store) -> None:
    await store.enqueue([note(1, kind="app_alert")], NOW)
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entry, 10, NOW)
    assert await store.outbox_size() == 1
    assert await store.claim_outbox("w1", 10, 30, NOW + 5) == []  # released, but not due yet
    [again] = await store.claim_outbox("w2", 10, 30, NOW + 10.5)
    assert again.attempts == 1 and again.fields == {"n": "1"} and again.kind == "app_alert"
    assert again.enqueued_at == NOW
    await store.retry_outbox(again, 0, NOW + 11)
    [third] = await store.claim_outbox("w2", 10, 30, NOW + 11)
    assert third.attempts == 2
    await store.ack_outbox([third.id])
    assert await store.outbox_size() == 0


async def test_a_retried_entry_no_longer_coalesces(store: Store) -> None:
    await store.enqueue([note(1, key="k")], NOW)
    [entry] = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entry, 1, NOW)
    [fresh] = await store.enqueue([note(2, key="k")], NOW)
    assert fresh != entry.id
    claimed = await store.claim_outbox("w1", 10, 30, NOW + 2)
    assert sorted(e.fields["n"] for e in claimed) == ["1", "2"]


async def test_dead_letters(store: Store) -> None:
    await store.enqueue([note(1, kind="app_alert"), note(2, kind="pass_update")], NOW)
    first, second = await store.claim_outbox("w1", 10, 30, NOW)
    await store.dead_letter(first, "BadDeviceToken", NOW + 1)
    await store.dead_letter(second, "timeout after 5 attempts", NOW + 2)
    await store.dead_letter(second, "again", NOW + 3)  # already moved: recorded once
    assert await store.outbox_size() == 0
    letters = await store.list_dead_letters(10)
    assert [(d.entry.id, d.entry.kind, d.entry.fields, d.error, d.failed_at) for d in letters] == [
        (second.id, "pass_update", {"n": "2"}, "timeout after 5 attempts", NOW + 2),
        (first.id, "app_alert", {"n": "1"}, "BadDeviceToken", NOW + 1),
    ]
    assert [d.entry.id for d in await store.list_dead_letters(1)] == [second.id]
    assert await store.claim_outbox("w1", 10, 30, NOW + 100) == []


async def test_outbox_size_counts_delayed_entries(store: Store) -> None:
    await store.enqueue([note(i) for i in range(3)], NOW)
    entries = await store.claim_outbox("w1", 10, 30, NOW)
    await store.retry_outbox(entries[0], 60, NOW)
    await store.ack_outbox([entries[1].id])
    assert await store.outbox_size() == 2
    await store.dead_letter(entries[2], "gone", NOW)
    assert await store.outbox_size() == 1


async def test_consumers_share_the_work_without_overlap(store: Store) -> None:
    await store.enqueue([note(i) for i in range(30)], NOW)
    batches = await asyncio.gather(*(store.claim_outbox(f"w{i}", 4, 30, time.time()) for i in range(10)))
    ids = [e.id for batch in batches for e in batch]
    assert len(ids) == len(set(ids)) == 30
