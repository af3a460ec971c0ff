"""Worker against the real stores, real aioapns/pyfcm and the fakes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest

from cards.model import Card, Member
from ledger.decide import LedgerEvent
from push.channels.apns.sender import ApnsChannel
from push.channels.base import ANY, Channel, Channels, Push
from push.channels.dryrun import DryRunChannel
from push.channels.fcm import FcmChannel
from push.messages import AppAlert, PassUpdate, entry
from push.results import PushResult, token_hint
from push.worker import APPLE, Worker
from store.port import NewEntry, Store
from tests.fakes.apns_server import ApnsReply, FakeApnsServer
from tests.fakes.fcm_server import FakeFcmServer, FcmReply
from tests.pii_guard import sensitive, sensitive_card
from tests.push.conftest import PASS_TYPE_ID

NOW = time.time()
TOKENS = [sensitive(t, "push token") for t in ("a1" * 32, "b2" * 32, "c3" * 32)]


def make_worker(store: Store, channel: Channel, **kwargs: Any) -> Worker:
    channels = kwargs.pop("channels", None) or Channels({(APPLE, PASS_TYPE_ID): channel})
    options: dict[str, Any] = dict(
        channels=channels,
        consumer="test-worker",
        backoff_base=0.001,
        backoff_cap=0.01,
        rng=random.Random(0),
    )
    options.update(kwargs)
    return Worker(store, **options)


async def issue_card(store: Store, n: int = 1) -> Card:
    card = Card(
        number=f"{n:016d}",
        program="coffee",
        account=f"acc-{n}",
        serial=f"serial-{n}",
        auth_token="x" * 32,
        member=Member("Member"),
    )
    stored, _ = await store.create_card(sensitive_card(card))
    return stored


def fanout(card: Card) -> list[NewEntry]:
    return [entry(PassUpdate(PASS_TYPE_ID, card.serial))]


async def change(store: Store, card: Card, version: int, now: float = NOW) -> None:
    event = LedgerEvent(
        id=f"ev-{card.number}-{version}", version=version, balance=version * 10, card_number=card.number
    )
    await store.apply_ledger_events([event], now, fanout)


async def registered_card(store: Store, tokens: list[str] = TOKENS, n: int = 1, client: str = APPLE) -> Card:
    card = await issue_card(store, n)
    for i, token in enumerate(tokens):
        await store.register_device(f"device-{i}", PASS_TYPE_ID, card.serial, token, NOW, client=client)
    return card


class Scripted(Channel):
    """A channel answering from a script (for outcomes a fake server cannot easily give)."""

    def __init__(self, *results: PushResult) -> None:
        self.name = "scripted"
        self.results = list(results)
        self.calls: list[list[Push]] = []

    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        self.calls.append(list(pushes))
        return [self.results.pop(0) if len(self.results) > 1 else self.results[0] for _ in pushes]


async def test_one_push_per_registered_device_and_none_twice(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store)
    await change(store, card, 1)
    worker = make_worker(store, apns_sender)

    assert await worker.run_once(NOW) == 1  # one entry for the pass, whatever its devices
    assert sorted(r.token for r in apns_fake.requests) == sorted(TOKENS)
    assert all(r.body == b"{}" and r.headers["apns-topic"] == PASS_TYPE_ID for r in apns_fake.requests)
    assert await store.outbox_size() == 0
    assert worker.counters["delivered"] == 3
    journal = await store.list_pushes(10)
    assert {p["outcome"] for p in journal} == {"ok"} and len(journal) == 3
    assert sorted(p["token"] for p in journal) == sorted(token_hint(t) for t in TOKENS)  # never whole
    assert {(p["kind"], p["channel"], p["dry_run"]) for p in journal} == {
        ("pass_update", f"apns:{PASS_TYPE_ID}", False)
    }

    # the same change delivered again (a crashed worker's entry) is not pushed again
    await store.enqueue(fanout(card), NOW)
    assert await worker.run_once(NOW) == 1
    assert len(apns_fake.requests) == 3
    assert worker.counters["skipped"] == 3 and await store.outbox_size() == 0


async def test_a_device_registered_after_the_change_is_pushed_too(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    await store.register_device("late", PASS_TYPE_ID, card.serial, TOKENS[2], NOW + 1)
    await make_worker(store, apns_sender).run_once(NOW + 2)
    assert sorted(r.token for r in apns_fake.requests) == sorted([TOKENS[0], TOKENS[2]])


async def test_push_goes_to_the_current_token_and_skips_gone_devices(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:2])
    await change(store, card, 1)
    new_token = "d4" * 32
    await store.register_device("device-0", PASS_TYPE_ID, card.serial, new_token, NOW + 1)
    await store.unregister_device("device-1", PASS_TYPE_ID, card.serial)

    await make_worker(store, apns_sender).run_once(NOW + 2)

    assert [r.token for r in apns_fake.requests] == [new_token]
    assert await store.outbox_size() == 0


async def test_many_devices_of_one_pass_go_out_in_one_channel_call(store: Store) -> None:
    card = await registered_card(store, [f"{i:064x}" for i in range(300)])
    await change(store, card, 1)
    channel = Scripted(PushResult("ok"))
    worker = make_worker(store, channel)
    assert await worker.run_once(NOW) == 1
    [call] = channel.calls
    assert len(call) == 300 and worker.counters["delivered"] == 300
    assert await store.outbox_size() == 0


async def test_410_removes_the_registration_unless_the_device_registered_again_later(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:2])
    await change(store, card, 1)
    apns_fake.program(TOKENS[0], ApnsReply(410, "Unregistered", timestamp_ms=int((NOW + 5) * 1000)))
    apns_fake.program(TOKENS[1], ApnsReply(410, "Unregistered", timestamp_ms=int((NOW - 5) * 1000)))
    worker = make_worker(store, apns_sender)

    await worker.run_once(NOW + 10)

    assert await store.get_registration("device-0", PASS_TYPE_ID, card.serial) is None
    assert await store.get_registration("device-1", PASS_TYPE_ID, card.serial) is not None
    assert worker.counters["invalid"] == 2
    assert await store.outbox_size() == 0


async def test_throttled_and_unavailable_are_retried_and_only_the_undelivered_pushed_again(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS)
    await change(store, card, 1)
    apns_fake.program(TOKENS[0], ApnsReply(429, "TooManyRequests"), ApnsReply(429, "TooManyRequests"))
    apns_fake.program(TOKENS[1], ApnsReply(503, "ServiceUnavailable"))
    worker = make_worker(store, apns_sender)

    now = NOW
    for _ in range(5):
        await worker.run_once(now)
        now += 1  # past the (tiny) backoff
    assert [r.status for r in apns_fake.requests_for(TOKENS[0])] == [429, 429, 200]
    assert [r.status for r in apns_fake.requests_for(TOKENS[1])] == [503, 200]
    assert [r.status for r in apns_fake.requests_for(TOKENS[2])] == [200]  # delivered once, never again
    assert worker.counters["retried"] == 2 and worker.counters["delivered"] == 3
    assert await store.outbox_size() == 0
    assert await store.list_dead_letters(10) == []


async def test_retry_after_is_honoured_as_the_earliest_retry(store: Store) -> None:
    channel = Scripted(PushResult("retry", "QUOTA", retry_after=120.0))
    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    worker = make_worker(store, channel)
    await worker.run_once(NOW)
    assert await worker.run_once(NOW + 119) == 0
    assert await worker.run_once(NOW + 121) == 1
    assert len(channel.calls) == 2


async def test_auth_error_pauses_the_channel_and_keeps_entries_queued(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Real clock here: Redis measures lease expiry on its own clock (stream idle time).
    cards = [await registered_card(store, [token], n=i) for i, token in enumerate(TOKENS)]
    for card in cards:
        await change(store, card, 1)
    for token in TOKENS:
        apns_fake.program_always(token, ApnsReply(403, "BadCertificate"))
    worker = make_worker(store, apns_sender, batch=1, lease_seconds=0.3, auth_cooldown=1.0)
    t0 = time.time()

    await worker.run_once(t0)
    # the first 403 pauses the channel: the other passes' pushes are not even tried
    assert len(apns_fake.requests) == 1
    assert await worker.run_once(t0) == 1 and await worker.run_once(t0) == 1
    assert len(apns_fake.requests) == 1
    assert worker.counters["auth_errors"] == 1
    assert await store.outbox_size() == 3
    assert [r.message for r in caplog.records if "credentials refused" in r.message] != []
    assert all(t not in r.message for r in caplog.records for t in TOKENS)

    await asyncio.sleep(t0 + 0.5 - time.time())
    assert await worker.run_until_idle() == 3  # leases ran out: claimed again, still paused
    assert len(apns_fake.requests) == 1

    apns_fake.reset()  # the certificate gets fixed
    await asyncio.sleep(t0 + 1.1 - time.time())
    await worker.run_until_idle()  # cool-down over and leases out again: delivered
    assert len(apns_fake.requests) == 3
    assert worker.counters["delivered"] == 3
    assert await store.outbox_size() == 0
    assert await store.list_dead_letters(10) == []


async def test_dead_letter_after_max_attempts(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    apns_fake.program_always(TOKENS[0], ApnsReply(503, "ServiceUnavailable"))
    worker = make_worker(store, apns_sender, max_attempts=3)

    now = NOW
    for _ in range(6):
        await worker.run_once(now)
        now += 1
    assert len(apns_fake.requests) == 3
    [dead] = await store.list_dead_letters(10)
    assert "ServiceUnavailable" in dead.error and dead.entry.kind == "pass_update"
    assert dead.entry.fields == {"pass_type_id": PASS_TYPE_ID, "serial": card.serial}
    assert worker.counters["dead"] == 1 and await store.outbox_size() == 0


async def test_permanent_failure_is_dead_lettered_at_once(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    apns_fake.program(TOKENS[0], ApnsReply(400, "BadTopic"))
    worker = make_worker(store, apns_sender)
    await worker.run_once(NOW)
    [dead] = await store.list_dead_letters(10)
    assert "BadTopic" in dead.error
    assert worker.counters["failed"] == 1


async def test_unknown_kinds_bad_fields_and_missing_channels_are_dead_lettered(store: Store) -> None:
    await store.enqueue(
        [
            NewEntry("no_such_kind", {"x": "1"}),
            NewEntry("pass_update", {"serial": "s"}),  # no pass type
            entry(PassUpdate("pass.other.type", "s")),
        ],
        NOW,
    )
    card = await issue_card(store)
    await store.register_device("device-0", "pass.other.type", card.serial, TOKENS[0], NOW)
    await store.enqueue([entry(PassUpdate("pass.other.type", card.serial))], NOW)
    worker = make_worker(store, Scripted(PushResult("ok")))
    assert await worker.run_once(NOW) == 4
    errors = sorted(d.error for d in await store.list_dead_letters(10))
    assert errors == [
        "field 'pass_type_id' is missing",
        "no channel for apple pass.other.type",
        "unknown kind 'no_such_kind'",
    ]
    assert await store.outbox_size() == 0  # the other-type entry for a serial with no card: nothing to do


async def test_app_alerts_go_through_their_platform_channel_and_dead_tokens_are_deleted(
    store: Store, fcm_sender: FcmChannel, fcm_fake: FakeFcmServer, apns_sender: ApnsChannel
) -> None:
    await store.add_app_token("0000000000000001", "android", "good-token", NOW)
    await store.add_app_token("0000000000000001", "android", "dead-token", NOW)
    fcm_fake.program("dead-token", FcmReply.unregistered())
    await store.enqueue(
        [
            entry(AppAlert("android", token, "0000000000000001", "Coffee nearby", "Come in", {"store": "s1"}))
            for token in ("good-token", "dead-token")
        ],
        NOW,
    )
    channels = Channels({(APPLE, PASS_TYPE_ID): apns_sender, ("app:android", ANY): fcm_sender})
    worker = make_worker(store, apns_sender, channels=channels)

    assert await worker.run_once(NOW) == 2

    assert [t.token for t in await store.app_tokens("0000000000000001")] == ["good-token"]
    assert worker.counters["delivered"] == 1 and worker.counters["invalid"] == 1
    assert await store.outbox_size() == 0
    [ok] = fcm_fake.requests_for("good-token")
    assert ok.body["message"]["data"] == {"store": "s1"}
    journal = await store.list_pushes(10)
    assert sorted((p["channel"], p["outcome"], p["card"]) for p in journal) == [
        ("fcm", "invalid_token", "0001"),
        ("fcm", "ok", "0001"),
    ]


async def test_dry_run_journals_each_push_once_in_the_same_shape(store: Store) -> None:
    card = await registered_card(store)
    await change(store, card, 1)
    worker = make_worker(store, DryRunChannel())
    await worker.run_once(NOW)
    journal = await store.list_pushes(10)
    assert sorted(p["token"] for p in journal) == sorted(token_hint(t) for t in TOKENS)
    assert all(p["dry_run"] and p["kind"] == "pass_update" and p["outcome"] == "ok" for p in journal)
    assert {p["device_id"] for p in journal} == {"device-0", "device-1", "device-2"}


async def test_run_forever_wakes_up_on_new_work_and_stops(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:1])
    wakeup, stop = asyncio.Event(), asyncio.Event()
    worker = make_worker(store, apns_sender, wakeup=wakeup, idle_sleep=30)  # only wakeup can help
    task = asyncio.create_task(worker.run_forever(stop))
    await asyncio.sleep(0.05)
    await change(store, card, 1, now=time.time())
    wakeup.set()
    for _ in range(200):
        if worker.counters["delivered"]:
            break
        await asyncio.sleep(0.01)
    assert worker.counters["delivered"] == 1
    stop.set()
    await asyncio.wait_for(task, 2)


class CountingStore:
    """The real store, with every awaited method call counted (and complete_pushes' arguments kept)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: dict[str, int] = {}
        self.completed: list[tuple[list[Any], list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == "complete_pushes":
                self.completed.append((list(args[0]), list(args[1])))
            return await method(*args, **kwargs)

        return counted


async def test_a_batch_commits_its_successes_and_skips_in_one_store_call(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    ok_tokens, invalid, throttled, pushed_before = ["d4" * 32, "e5" * 32, "f6" * 32], "a7" * 32, "b8" * 32, "c9" * 32
    tokens = [*ok_tokens, invalid, throttled, pushed_before]
    cards = [await registered_card(store, [token], n=i) for i, token in enumerate(tokens)]
    for card in cards:
        await change(store, card, 1)
    by_token = {token: card for token, card in zip(tokens, cards, strict=True)}
    done_before = by_token[pushed_before]
    stored_before = await store.get_card(done_before.number)
    assert stored_before is not None
    await store.mark_pushed("device-0", PASS_TYPE_ID, done_before.serial, stored_before.tag)  # a redelivery: skipped
    apns_fake.program(invalid, ApnsReply(410, "Unregistered", timestamp_ms=int((NOW + 5) * 1000)))
    apns_fake.program(throttled, ApnsReply(429, "TooManyRequests"))
    counting = CountingStore(store)
    worker = make_worker(counting, apns_sender)  # type: ignore[arg-type]  # a stand-in store

    assert await worker.run_once(NOW + 10) == 6

    assert sorted(r.token for r in apns_fake.requests) == sorted([*ok_tokens, invalid, throttled])
    assert counting.calls["pass_targets"] == 1
    assert counting.calls["complete_pushes"] == 1
    [(marks, acks)] = counting.completed
    assert sorted(m.serial for m in marks) == sorted(by_token[t].serial for t in ok_tokens)
    assert len(acks) == 5  # all but the throttled entry
    # the rare outcomes keep their own writes; the common ones make no per-entry trips
    assert counting.calls["retry_outbox"] == 1
    assert counting.calls["remove_registration_if_stale"] == 1
    for per_entry in ("ack_outbox", "get_registration", "last_pushed_tag", "mark_pushed", "record_push"):
        assert per_entry not in counting.calls

    assert worker.counters["delivered"] == 3 and worker.counters["skipped"] == 1
    assert worker.counters["invalid"] == 1 and worker.counters["retried"] == 1
    assert await store.outbox_size() == 1  # the throttled one, due again later
    journal = await store.list_pushes(10)
    assert sorted(p["outcome"] for p in journal) == ["invalid_token", "ok", "ok", "ok", "retry"]


async def test_run_forever_keeps_claiming_while_one_push_is_slow(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    slow, delay = "0a" * 32, 1.5
    tokens = [slow] + [f"{i:02x}" * 32 for i in range(0x10, 0x1A)]
    for i, token in enumerate(tokens):  # enqueued in order: the slow push is in the first batch
        await change(store, await registered_card(store, [token], n=i), 1)
    apns_fake.program(slow, ApnsReply(200, delay=delay))
    stop = asyncio.Event()
    worker = make_worker(store, apns_sender, batch=2, concurrency=4, idle_sleep=0.05)
    started = time.monotonic()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        # Everything outside the slow push's batch (of 2) is delivered while it is still pending.
        while worker.counters["delivered"] < len(tokens) - 2 and time.monotonic() - started < delay:
            await asyncio.sleep(0.01)
        assert worker.counters["delivered"] == len(tokens) - 2
        assert time.monotonic() - started < delay
        assert {r.token for r in apns_fake.requests} == set(tokens)

        while worker.counters["delivered"] < len(tokens) and time.monotonic() - started < delay + 5:
            await asyncio.sleep(0.01)
        assert worker.counters["delivered"] == len(tokens)
        assert await store.outbox_size() == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_run_forever_claims_no_more_than_it_can_send(
    store: Store, apns_sender: ApnsChannel, apns_fake: FakeApnsServer
) -> None:
    tokens = [f"{i:02x}" * 32 for i in range(0x10, 0x24)]  # 20 passes, every push slow
    for i, token in enumerate(tokens):
        await change(store, await registered_card(store, [token], n=i), 1)
        apns_fake.program(token, ApnsReply(200, delay=0.6))
    stop = asyncio.Event()
    worker = make_worker(store, apns_sender, batch=3, concurrency=2, idle_sleep=0.05, lease_seconds=30)
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        await asyncio.sleep(0.3)
        assert len(apns_fake.requests) == 2  # two entries in flight, both waiting on a slow answer
        # Only what is being sent is leased: another worker sharing the outbox gets the rest
        # now rather than after this worker's slow pushes.
        peer = await store.claim_outbox("peer", 100, 30, time.time())
        assert len(peer) == len(tokens) - 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert worker.counters["delivered"] == 2
