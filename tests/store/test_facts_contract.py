"""Report facts, against every adapter: counters per UTC day, family and dims (add_facts,
fact_counts, forget_facts), and the facts the store counts itself in the commit of what they
count: installs and removals of registrations and Google Wallet saves, and push journal records."""

from __future__ import annotations

import time

from store.port import FACT_ALERTS, FACT_INSTALLS, FACT_PUSHES, FactCount, PushMark, Store, fact_day

from .conftest import note

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY = 86_400.0
D0, D1, D2, D3 = (fact_day(NOW + i * DAY) for i in range(4))


async def counts(store: Store, family: str = FACT_INSTALLS, from_day: str = "2000-01-01", to_day: str = "2999-12-31"):
    return [(fact.day, fact.dims, fact.count) for fact in await store.fact_counts(family, from_day, to_day)]


def today() -> str:
    return fact_day(time.time())


def test_fact_day_is_the_utc_day() -> None:
    assert fact_day(NOW) == "2023-11-14"
    assert fact_day(1_700_006_399.0) == "2023-11-14"  # 23:59:59 UTC
    assert fact_day(1_700_006_400.0) == "2023-11-15"


# -- add_facts, fact_counts, forget_facts ----------------------------------------------------------


async def test_facts_are_counted_per_day_and_dims(store: Store) -> None:
    assert await store.fact_counts(FACT_ALERTS, "2000-01-01", "2999-12-31") == []
    await store.add_facts(
        FACT_ALERTS, [("coffee", "c1", "sent"), ("coffee", "c1", "sent"), ("coffee", "c1", "capped")], NOW
    )
    await store.add_facts(FACT_ALERTS, [("coffee", "c1", "sent")], NOW + 60)  # the same day
    await store.add_facts(FACT_ALERTS, [("coffee", "c2", "quiet")], NOW + DAY)
    await store.add_facts(FACT_ALERTS, [], NOW)  # nothing to count
    await store.add_facts("other", [("x",)], NOW)
    facts = await store.fact_counts(FACT_ALERTS, D0, D1)
    assert facts == [
        FactCount(D0, ("coffee", "c1", "capped"), 1),
        FactCount(D0, ("coffee", "c1", "sent"), 3),
        FactCount(D1, ("coffee", "c2", "quiet"), 1),
    ]
    assert all(isinstance(fact.dims, tuple) for fact in facts)
    assert await counts(store, "other") == [(D0, ("x",), 1)]


async def test_fact_counts_ranges_are_inclusive_and_sorted_by_day_then_dims(store: Store) -> None:
    # added out of order, with dims whose JSON text would sort otherwise ("a b" < "a" as text after a quote)
    await store.add_facts(FACT_ALERTS, [("b", "z", "sent")], NOW + 3 * DAY)
    await store.add_facts(FACT_ALERTS, [("b", "a", "sent"), ("a b", "x", "sent"), ("a", "x", "sent")], NOW + DAY)
    await store.add_facts(FACT_ALERTS, [("a", "a", "sent")], NOW + 2 * DAY)
    await store.add_facts(FACT_ALERTS, [("a", "a", "sent")], NOW)
    everything = await counts(store, FACT_ALERTS)
    assert everything == [
        (D0, ("a", "a", "sent"), 1),
        (D1, ("a", "x", "sent"), 1),
        (D1, ("a b", "x", "sent"), 1),
        (D1, ("b", "a", "sent"), 1),
        (D2, ("a", "a", "sent"), 1),
        (D3, ("b", "z", "sent"), 1),
    ]
    assert await counts(store, FACT_ALERTS, D1, D2) == everything[1:5]
    assert await counts(store, FACT_ALERTS, D2, D2) == [everything[4]]
    assert await counts(store, FACT_ALERTS, D3, "2999-12-31") == [everything[5]]
    assert await counts(store, FACT_ALERTS, D2, D1) == []  # an empty range
    assert await counts(store, FACT_ALERTS, "2000-01-01", "2001-01-01") == []
    assert await counts(store, FACT_PUSHES) == []  # another family


async def test_forget_facts_drops_whole_days_before_the_day(store: Store) -> None:
    for i in range(4):
        await store.add_facts(FACT_ALERTS, [("coffee", "c", "sent"), ("tea", "c", "capped")], NOW + i * DAY)
        await store.add_facts(FACT_PUSHES, [("apns", "ok")], NOW + i * DAY)
    assert await store.forget_facts(D0, 100) == 0  # nothing before the first day
    # (family, day) groups: D0 and D1 of both families, at most 3 of the 4 now
    assert await store.forget_facts(D2, 3) == 3
    assert await store.forget_facts(D2, 3) == 1
    assert await store.forget_facts(D2, 3) == 0
    assert {day for day, _, _ in await counts(store, FACT_ALERTS)} == {D2, D3}
    assert await counts(store, FACT_PUSHES) == [(D2, ("apns", "ok"), 1), (D3, ("apns", "ok"), 1)]
    assert await store.forget_facts(D3, 0) == 0
    assert len(await counts(store, FACT_ALERTS)) == 4  # two dims on each of D2, D3
    assert await store.forget_facts("2999-01-01", 100) == 4
    assert await counts(store, FACT_ALERTS) == [] and await counts(store, FACT_PUSHES) == []


# -- installs: registrations -------------------------------------------------------------------------


async def test_a_new_registration_counts_an_install_and_an_update_does_not(store: Store) -> None:
    assert await store.register_device("dev", "pass.t", "s1", "tok", NOW, program="coffee", tier="gold")
    assert await store.register_device("dev2", "pass.t", "s1", "fcm:t", NOW + DAY, client="walletunion_fcm")
    # an update, even naming another program and tier, counts nothing
    assert not await store.register_device("dev", "pass.t", "s1", "tok-2", NOW + DAY, program="tea", tier="base")
    assert await counts(store) == [
        (D0, ("coffee", "apple", "gold", "install"), 1),
        (D1, ("", "walletunion_fcm", "", "install"), 1),
    ]


async def test_unregister_counts_a_remove_with_the_registrations_own_program_and_tier(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW, client="passwallet", program="coffee", tier="gold")
    # moved to another client, re-registered naming other values: the stored program and tier stay
    await store.register_device("dev", "pass.t", "s1", "tok", NOW + 1, client="walletpasses", program="tea", tier="x")
    assert await store.unregister_device("dev", "pass.t", "s1", NOW + 2 * DAY) is True
    assert (
        await store.unregister_device("dev", "pass.t", "s1", NOW + 2 * DAY) is False
    )  # nothing removed, nothing counted
    assert await counts(store) == [
        (D0, ("coffee", "passwallet", "gold", "install"), 1),
        (D2, ("coffee", "walletpasses", "gold", "remove"), 1),
    ]


async def test_unregister_without_now_counts_on_todays_day(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW, program="coffee", tier="base")
    before = today()
    assert await store.unregister_device("dev", "pass.t", "s1") is True
    removes = [(day, dims) for day, dims, _ in await counts(store) if dims[-1] == "remove"]
    assert removes in (
        [(before, ("coffee", "apple", "base", "remove"))],
        [(today(), ("coffee", "apple", "base", "remove"))],
    )


async def test_unregister_removes_the_devices_pushed_tag_for_the_pass(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW)
    await store.register_device("dev", "pass.t", "s2", "tok", NOW)
    await store.mark_pushed("dev", "pass.t", "s1", 7)
    await store.mark_pushed("dev", "pass.t", "s2", 8)
    assert await store.unregister_device("dev", "pass.t", "s1", NOW) is True
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 0
    assert await store.last_pushed_tag("dev", "pass.t", "s2") == 8  # another pass: kept
    # registered again: nothing was pushed to it yet
    await store.register_device("dev", "pass.t", "s1", "tok", NOW + 1)
    targets = await store.pass_targets([("pass.t", "s1")])
    assert [(d.device_id, d.pushed_tag) for d in targets[("pass.t", "s1")].devices] == [("dev", 0)]


async def test_a_stale_registration_removed_counts_a_remove(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW, program="coffee", tier="silver")
    before = today()
    assert not await store.remove_registration_if_stale("dev", "pass.t", "s1", "other", NOW + 1)
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok", NOW + 1)
    assert not await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok", NOW + 1)
    facts = await counts(store)
    assert facts[0] == (D0, ("coffee", "apple", "silver", "install"), 1)
    # counted on the day it is removed (the port gives no clock here: this one's)
    assert facts[1:] in (
        [(before, ("coffee", "apple", "silver", "remove"), 1)],
        [(today(), ("coffee", "apple", "silver", "remove"), 1)],
    )


async def test_an_eviction_counts_a_remove_for_each_evicted_registration(store: Store) -> None:
    await store.register_device("old", "pass.t", "s1", "t0", NOW, program="coffee", tier="gold", max_devices=2)
    await store.register_device(
        "mid", "pass.t", "s1", "t1", NOW + 1, client="passwallet", program="coffee", max_devices=2
    )
    await store.register_device("new", "pass.t", "s1", "t2", NOW + DAY, program="coffee", tier="base", max_devices=2)
    assert sorted(r.device_id for r in await store.get_registrations("s1")) == ["mid", "new"]
    assert await counts(store) == [
        (D0, ("coffee", "apple", "gold", "install"), 1),
        (D0, ("coffee", "passwallet", "", "install"), 1),
        (D1, ("coffee", "apple", "base", "install"), 1),
        (D1, ("coffee", "apple", "gold", "remove"), 1),
    ]


# -- installs: Google Wallet ------------------------------------------------------------------------


async def test_google_saves_and_deletes_count_installs_and_removes_once_per_nonce(store: Store) -> None:
    assert await store.record_google_callback("n1", "obj-1", "save", NOW, program="coffee", tier="gold")
    assert not await store.record_google_callback("n1", "obj-1", "save", NOW + 1, program="coffee", tier="gold")
    assert await store.record_google_callback("n2", "obj-2", "save", NOW + 2, program="coffee", tier="gold")
    assert await store.record_google_callback("n3", "obj-1", "del", NOW + DAY, program="coffee", tier="gold")
    assert not await store.record_google_callback("n3", "obj-1", "del", NOW + DAY, program="coffee", tier="gold")
    assert await store.record_google_callback("n4", "obj-3", "save", NOW)  # program and tier unknown
    assert await counts(store) == [
        (D0, ("", "google", "", "install"), 1),
        (D0, ("coffee", "google", "gold", "install"), 2),
        (D1, ("coffee", "google", "gold", "remove"), 1),
    ]


# -- pushes ----------------------------------------------------------------------------------------


async def test_every_push_journal_record_counts_its_channel_and_outcome(store: Store) -> None:
    [entry_id] = await store.enqueue([note(1)], NOW)
    journal = [
        {"channel": "apns", "outcome": "ok", "serial": "s1"},
        {"channel": "apns", "outcome": "ok", "serial": "s2"},
        {"channel": "fcm", "outcome": "invalid_token"},
    ]
    await store.complete_pushes([PushMark("dev", "pass.t", "s1", 3)], [], journal, NOW, keep=100)
    await store.complete_pushes([], [entry_id], [{"channel": "apns", "outcome": "ok"}], NOW + DAY, keep=100)
    await store.record_push({"channel": "google", "outcome": "error"}, NOW + DAY, keep=100)
    await store.complete_pushes([PushMark("dev", "pass.t", "s1", 4)], [], [], NOW + DAY, keep=100)  # no record
    assert await counts(store, FACT_PUSHES) == [
        (D0, ("apns", "ok"), 2),
        (D0, ("fcm", "invalid_token"), 1),
        (D1, ("apns", "ok"), 1),
        (D1, ("google", "error"), 1),
    ]
    assert len(await store.list_pushes(10)) == 5
    assert await store.outbox_size() == 0
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 4


async def test_push_facts_are_counted_even_beyond_the_journals_bound(store: Store) -> None:
    for i in range(5):
        await store.record_push({"channel": "apns", "outcome": "ok", "n": i}, NOW + i, keep=2)
    await store.complete_pushes([], [], [{"channel": "apns", "outcome": "ok"}] * 4, NOW + 10, keep=2)
    assert len(await store.list_pushes(10)) == 2
    assert await counts(store, FACT_PUSHES) == [(D0, ("apns", "ok"), 9)]
