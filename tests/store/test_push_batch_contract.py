"""The batched push bookkeeping of the storage port (pass_targets, complete_pushes), against
every adapter: the same results as the per-item methods they stand in for."""

from __future__ import annotations

import asyncio
import time

from ledger.decide import LedgerEvent
from store.port import DeviceTarget, PassTargets, PushMark, Store

from .conftest import make_card, note

NOW = 1_700_000_000.0


async def test_pass_targets_reads_the_tag_devices_tokens_and_pushed_tags(store: Store) -> None:
    a, _ = await store.create_card(make_card(1))
    b, _ = await store.create_card(make_card(2))
    await store.register_device("dev-1", "pass.t", a.serial, "tok-1", NOW)
    await store.register_device("dev-2", "pass.t", a.serial, "tok-2", NOW)
    await store.register_device("dev-1", "pass.t", b.serial, "tok-1b", NOW)
    await store.register_device("dev-3", "other.t", a.serial, "tok-3", NOW)  # another pass type
    await store.mark_pushed("dev-1", "pass.t", a.serial, 7)
    await store.mark_pushed("gone", "pass.t", a.serial, 3)  # pushed once, unregistered since
    result = await store.apply_ledger_events([LedgerEvent(id="e1", version=1, balance=5, card_number=a.number)], NOW)
    tag_a = result.changed[0].tag

    keys = [("pass.t", a.serial), ("pass.t", b.serial), ("pass.t", "no-such-serial"), ("pass.t", a.serial)]
    assert await store.pass_targets(keys) == {
        ("pass.t", a.serial): PassTargets(
            tag_a, (DeviceTarget("dev-1", "tok-1", 7), DeviceTarget("dev-2", "tok-2", 0))
        ),
        ("pass.t", b.serial): PassTargets(b.tag, (DeviceTarget("dev-1", "tok-1b", 0),)),
        ("pass.t", "no-such-serial"): PassTargets(0, ()),
    }
    assert await store.pass_targets([]) == {}

    await store.register_device("dev-2", "pass.t", a.serial, "tok-2-new", NOW + 1)
    [target] = (await store.pass_targets([("pass.t", a.serial)])).values()
    assert DeviceTarget("dev-2", "tok-2-new", 0) in target.devices


async def test_pass_targets_keeps_odd_ids_apart(store: Store) -> None:
    odd = ('dev"[1]', "pass,t", "s ü ✓")
    await store.register_device(*odd, "tok", NOW)
    await store.register_device('dev"[1]', "pass", ",t", "other", NOW)
    assert (await store.pass_targets([odd[1:]]))[odd[1:]].devices == (DeviceTarget('dev"[1]', "tok", 0),)


async def test_complete_pushes_marks_acks_and_journals_in_one_call(store: Store) -> None:
    ids = await store.enqueue([note(i) for i in range(4)], NOW)
    claimed = await store.claim_outbox("w1", 10, 0.1, time.time())
    assert [e.id for e in claimed] == ids
    await store.mark_pushed("dev-1", "pass.t", "s1", 9)

    await store.complete_pushes(
        [
            PushMark("dev-1", "pass.t", "s1", 8),  # older than what was pushed: the tag stays 9
            PushMark("dev-2", "pass.t", "s1", 5),
            PushMark("dev-3", "pass.t", "s1", 0),  # no tag: marks nothing
        ],
        ids[:3],
        [{"kind": "pass_update", "n": 1}, {"kind": "pass_update", "n": 2, "at": NOW - 5}],
        NOW,
        keep=10,
    )

    assert await store.last_pushed_tag("dev-1", "pass.t", "s1") == 9
    assert await store.last_pushed_tag("dev-2", "pass.t", "s1") == 5
    assert await store.last_pushed_tag("dev-3", "pass.t", "s1") == 0
    assert await store.outbox_size() == 1
    assert await store.list_pushes(10) == [
        {"kind": "pass_update", "n": 2, "at": NOW - 5},
        {"kind": "pass_update", "n": 1, "at": NOW},
    ]
    # acknowledged entries never come back after the lease; the one left out does
    await asyncio.sleep(0.2)
    assert [e.id for e in await store.claim_outbox("w2", 10, 0.1, time.time())] == [ids[3]]

    # acknowledging again (a late duplicate) is harmless, and a higher tag moves the mark
    await store.complete_pushes([PushMark("dev-1", "pass.t", "s1", 12)], ids[:1], [], NOW, keep=10)
    assert await store.last_pushed_tag("dev-1", "pass.t", "s1") == 12
    assert await store.outbox_size() == 1
    await store.complete_pushes([], [], [], NOW, keep=10)
    assert len(await store.list_pushes(10)) == 2


async def test_complete_pushes_journals_any_json_value_as_given(store: Store) -> None:
    # Plain records take a fast encoder, others the general one; both read back the same.
    records = [
        {"kind": "pass_update", "device_id": 'dev "quoted" \\ ünïcödé ☕', "tag": 2**40},
        {"kind": "pass_update", "big": 2**70, "nested": {"a": [1, "é", None]}, "ratio": 0.5},
        {"kind": "pass_update", "at": 1.25},
    ]
    await store.complete_pushes([], [], records[:1], NOW, keep=10)
    await store.complete_pushes([], [], records[1:], NOW, keep=10)
    assert await store.list_pushes(10) == [
        {"at": 1.25, "kind": "pass_update"},
        {"at": NOW, **records[1]},
        {"at": NOW, **records[0]},
    ]


async def test_complete_pushes_bounds_the_journal_with_record_push(store: Store) -> None:
    for i in range(3):
        await store.record_push({"n": i}, NOW + i, keep=4)
    await store.complete_pushes([], [], [{"n": i} for i in range(3, 8)], NOW + 10, keep=4)
    assert [p["n"] for p in await store.list_pushes(10)] == [7, 6, 5, 4]
    await store.record_push({"n": 8}, NOW + 11, keep=4)
    assert [p["n"] for p in await store.list_pushes(10)] == [8, 7, 6, 5]
    await store.complete_pushes([], [], [{"n": 9}], NOW + 12, keep=0)
    assert await store.list_pushes(10) == []


async def test_complete_pushes_takes_a_large_batch(store: Store) -> None:
    n = 1200  # beyond what one Lua unpack() or one statement's host parameters may take
    for i in range(n):
        await store.register_device(f"dev-{i}", "pass.t", f"s{i}", f"tok-{i}", NOW)
    await store.enqueue([note(i) for i in range(n)], NOW)
    claimed = await store.claim_outbox("w1", n, 30, time.time())
    keys = [("pass.t", f"s{i}") for i in range(n)]
    targets = await store.pass_targets(keys)
    assert len(targets) == n and targets[keys[-1]].devices == (DeviceTarget(f"dev-{n - 1}", f"tok-{n - 1}", 0),)
    await store.complete_pushes(
        [PushMark(f"dev-{i}", "pass.t", f"s{i}", 3) for i in range(n)],
        [e.id for e in claimed],
        [{"n": i} for i in range(n)],
        NOW,
        keep=1000,
    )
    assert await store.outbox_size() == 0
    assert (await store.pass_targets(keys[:1]))[keys[0]].devices[0].pushed_tag == 3
    assert len(await store.list_pushes(2000)) == 1000
