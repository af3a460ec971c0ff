"""The batched push bookkeeping of the storage port (push_targets, complete_pushes), against
every adapter: the same results as the per-item methods they stand in for."""

from __future__ import annotations

import asyncio
import time

from store.port import Store

NOW = 1_700_000_000.0


async def test_push_targets_reads_tokens_and_tags_for_a_batch(store: Store) -> None:
    await store.register_device("dev-1", "pass.t", "s1", "tok-1", NOW)
    await store.register_device("dev-2", "pass.t", "s1", "tok-2", NOW)
    await store.register_device("dev-1", "pass.t", "s2", "tok-1b", NOW)
    await store.mark_pushed("dev-1", "pass.t", "s1", 7)
    await store.mark_pushed("gone", "pass.t", "s1", 3)  # pushed once, unregistered since

    keys = [("dev-1", "pass.t", "s1"), ("dev-2", "pass.t", "s1"), ("dev-1", "pass.t", "s2"),
            ("gone", "pass.t", "s1"), ("dev-1", "other.t", "s1"), ("dev-1", "pass.t", "s1")]
    assert await store.push_targets(keys) == {
        ("dev-1", "pass.t", "s1"): ("tok-1", 7),
        ("dev-2", "pass.t", "s1"): ("tok-2", 0),
        ("dev-1", "pass.t", "s2"): ("tok-1b", 0),
        ("gone", "pass.t", "s1"): (None, 3),
        ("dev-1", "other.t", "s1"): (None, 0),
    }
    assert await store.push_targets([]) == {}

    await store.register_device("dev-2", "pass.t", "s1", "tok-2-new", NOW + 1)
    assert await store.push_targets([("dev-2", "pass.t", "s1")]) == {("dev-2", "pass.t", "s1"): ("tok-2-new", 0)}


async def test_push_targets_keeps_odd_ids_apart(store: Store) -> None:
    odd = ('dev"[1]', "pass,t", "s ü ✓")
    await store.register_device(*odd, "tok", NOW)
    assert await store.push_targets([odd, ('dev"[1]', "pass", ",t")]) == {
        odd: ("tok", 0), ('dev"[1]', "pass", ",t"): (None, 0),
    }


async def test_complete_pushes_marks_acks_and_journals_in_one_call(store: Store) -> None:
    ids = [await store.enqueue("apns_pass", {"n": i}, NOW) for i in range(4)]
    claimed = await store.claim_outbox("w1", 10, 0.1, time.time())
    assert [e.id for e in claimed] == ids
    await store.mark_pushed("dev-1", "pass.t", "s1", 9)

    await store.complete_pushes(
        "w1",
        [
            (ids[0], "dev-1", "pass.t", "s1", 8),  # older than what was pushed: the tag stays 9
            (ids[1], "dev-2", "pass.t", "s1", 5),
            (ids[2], "dev-3", "pass.t", "s1", 0),  # no tag: acknowledged only
        ],
        [{"kind": "apns_pass", "n": 1}, {"kind": "apns_pass", "n": 2, "at": NOW - 5}],
        NOW,
        keep=10,
    )

    assert await store.last_pushed_tag("dev-1", "pass.t", "s1") == 9
    assert await store.last_pushed_tag("dev-2", "pass.t", "s1") == 5
    assert await store.last_pushed_tag("dev-3", "pass.t", "s1") == 0
    assert await store.outbox_size() == 1
    assert await store.list_pushes(10) == [
        {"kind": "apns_pass", "n": 2, "at": NOW - 5},
        {"kind": "apns_pass", "n": 1, "at": NOW},
    ]
    # acknowledged entries never come back after the lease; the one left out does
    await asyncio.sleep(0.2)
    assert [e.id for e in await store.claim_outbox("w2", 10, 0.1, time.time())] == [ids[3]]

    # acknowledging again (a late duplicate) is harmless, and a higher tag moves the mark
    await store.complete_pushes("w2", [(ids[0], "dev-1", "pass.t", "s1", 12)], [], NOW, keep=10)
    assert await store.last_pushed_tag("dev-1", "pass.t", "s1") == 12
    assert await store.outbox_size() == 1
    await store.complete_pushes("w2", [], [], NOW, keep=10)
    assert len(await store.list_pushes(10)) == 2


async def test_complete_pushes_journals_any_json_value_as_given(store: Store) -> None:
    # Plain records take a fast encoder, others the general one; both read back the same.
    records = [
        {"kind": "apns_pass", "device_id": 'dev "quoted" \\ ünïcödé ☕', "tag": 2**40},
        {"kind": "apns_pass", "big": 2**70, "nested": {"a": [1, "é", None]}, "ratio": 0.5},
        {"kind": "apns_pass", "at": 1.25},
    ]
    await store.complete_pushes("w1", [], records[:1], NOW, keep=10)
    await store.complete_pushes("w1", [], records[1:], NOW, keep=10)
    assert await store.list_pushes(10) == [
        {"at": 1.25, "kind": "apns_pass"},
        {"at": NOW, **records[1]},
        {"at": NOW, **records[0]},
    ]


async def test_complete_pushes_bounds_the_journal_with_record_push(store: Store) -> None:
    for i in range(3):
        await store.record_push({"n": i}, NOW + i, keep=4)
    await store.complete_pushes("w1", [], [{"n": i} for i in range(3, 8)], NOW + 10, keep=4)
    assert [p["n"] for p in await store.list_pushes(10)] == [7, 6, 5, 4]
    await store.record_push({"n": 8}, NOW + 11, keep=4)
    assert [p["n"] for p in await store.list_pushes(10)] == [8, 7, 6, 5]
    await store.complete_pushes("w1", [], [{"n": 9}], NOW + 12, keep=0)
    assert await store.list_pushes(10) == []


async def test_complete_pushes_takes_a_large_batch(store: Store) -> None:
    n = 1200  # beyond what one Lua unpack() or one statement's host parameters may take
    for i in range(n):
        await store.register_device(f"dev-{i}", "pass.t", "s1", f"tok-{i}", NOW)
        await store.enqueue("apns_pass", {"n": i}, NOW)
    claimed = await store.claim_outbox("w1", n, 30, time.time())
    keys = [(f"dev-{i}", "pass.t", "s1") for i in range(n)]
    targets = await store.push_targets(keys)
    assert len(targets) == n and targets[keys[-1]] == (f"tok-{n - 1}", 0)
    await store.complete_pushes(
        "w1", [(e.id, *key, 3) for e, key in zip(claimed, keys)], [{"n": i} for i in range(n)], NOW, keep=1000
    )
    assert await store.outbox_size() == 0
    assert (await store.push_targets(keys))[keys[0]] == ("tok-0", 3)
    assert len(await store.list_pushes(2000)) == 1000
