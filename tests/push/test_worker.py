"""Worker against the real SQLite store, real aioapns/pyfcm and the fakes."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.decide import LedgerEvent
from cards.model import Card, Member
from push.apns import ApnsSender
from push.dryrun import DryRunSender
from push.fcm import FcmSender
from push.worker import Worker
from store.port import Store
from store.redis import RedisStore
from store.sqlite import SqliteStore
from tests.fakes.apns_server import ApnsReply, FakeApnsServer
from tests.fakes.fcm_server import FakeFcmServer, FcmReply
from tests.push.conftest import PASS_TYPE_ID

NOW = time.time()
REDIS_URL = os.environ.get("WALLET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TOKENS = ["a1" * 32, "b2" * 32, "c3" * 32]


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The real adapters: SQLite in tmp_path; Redis (db 15, private key prefix) when reachable."""
    prefix = f"test-push:{uuid.uuid4().hex}:"
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "wallet.db")
    else:
        s = RedisStore(REDIS_URL, prefix=prefix)
    try:
        await s.open()
    except Exception as exc:  # no Redis server here: the SQLite run still covers the worker
        pytest.skip(f"Redis not reachable: {type(exc).__name__}")
    yield s
    await s.close()
    if request.param == "redis":
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def make_worker(store: Store, sender: Any, **kwargs: Any) -> Worker:
    options: dict[str, Any] = dict(
        apns={PASS_TYPE_ID: sender}, fcm=None, consumer="test-worker", backoff_base=0.001,
        backoff_cap=0.01, rng=random.Random(0),
    )
    options.update(kwargs)
    return Worker(store, **options)


async def issue_card(store: Store, n: int = 1) -> Card:
    card = Card(
        number=f"{n:016d}", program="coffee", account=f"acc-{n}", serial=f"serial-{n}",
        auth_token="x" * 32, member=Member("Member"),
    )
    stored, _ = await store.create_card(card)
    return stored


async def change(store: Store, card: Card, version: int, now: float = NOW) -> None:
    event = LedgerEvent(id=f"ev-{card.number}-{version}", version=version, balance=version * 10, card=card.number)
    await store.apply_ledger_events([event], now)


async def registered_card(store: Store, tokens: list[str] = TOKENS) -> Card:
    card = await issue_card(store)
    for i, token in enumerate(tokens):
        await store.register_device(f"device-{i}", PASS_TYPE_ID, card.serial, token, NOW)
    return card


async def test_one_push_per_registered_device_and_none_twice(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store)
    await change(store, card, 1)
    worker = make_worker(store, apns_sender)

    assert await worker.run_once(NOW) == 3
    assert sorted(r.token for r in apns_fake.requests) == sorted(TOKENS)
    assert all(r.body == b"{}" and r.headers["apns-topic"] == PASS_TYPE_ID for r in apns_fake.requests)
    assert await store.outbox_size() == 0
    assert worker.counters["delivered"] == 3
    journal = await store.list_pushes(10)
    assert {p["outcome"] for p in journal} == {"ok"} and len(journal) == 3
    assert all("token" not in p for p in journal)  # real deliveries journal no tokens

    # the same change delivered again (a crashed worker's entry) is not pushed again
    tag = (await store.get_card(card.number)).tag
    await store.enqueue("apns_pass", {"device_id": "device-0", "pass_type_id": PASS_TYPE_ID,
                                      "serial": card.serial, "tag": tag}, NOW)
    assert await worker.run_once(NOW) == 1
    assert len(apns_fake.requests) == 3
    assert worker.counters["skipped"] == 1 and await store.outbox_size() == 0


async def test_push_goes_to_the_current_token_and_skips_gone_devices(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:2])
    await change(store, card, 1)
    new_token = "d4" * 32
    await store.register_device("device-0", PASS_TYPE_ID, card.serial, new_token, NOW + 1)
    await store.unregister_device("device-1", PASS_TYPE_ID, card.serial)

    await make_worker(store, apns_sender).run_once(NOW + 2)

    assert [r.token for r in apns_fake.requests] == [new_token]
    assert await store.outbox_size() == 0


async def test_410_removes_the_registration_unless_the_device_registered_again_later(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
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


async def test_throttled_and_unavailable_are_retried_then_delivered(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:2])
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
    assert worker.counters["retried"] == 3 and worker.counters["delivered"] == 2
    assert await store.outbox_size() == 0
    assert await store.list_dead_letters(10) == []


async def test_retry_after_is_honoured_as_the_earliest_retry(store: Store) -> None:
    class Throttled:
        calls = 0

        async def send_pass_update(self, push_token: str):
            from push.results import PushResult
            Throttled.calls += 1
            return PushResult("retry", "QUOTA", retry_after=120.0)

        async def close(self) -> None: ...

    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    worker = make_worker(store, Throttled())
    await worker.run_once(NOW)
    assert await worker.run_once(NOW + 119) == 0
    assert await worker.run_once(NOW + 121) == 1
    assert Throttled.calls == 2


async def test_auth_error_pauses_the_pass_type_and_keeps_entries_queued(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Real clock here: Redis measures lease expiry on its own clock (stream idle time).
    card = await registered_card(store)
    await change(store, card, 1)
    for token in TOKENS:
        apns_fake.program_always(token, ApnsReply(403, "BadCertificate"))
    worker = make_worker(store, apns_sender, concurrency=1, lease_seconds=0.3, auth_cooldown=0.7)
    t0 = time.time()

    await worker.run_once(t0)
    # the first 403 pauses the channel: the other two entries are not even tried
    assert len(apns_fake.requests) == 1
    assert worker.counters["auth_errors"] == 1
    assert await store.outbox_size() == 3
    assert [r.message for r in caplog.records if "credentials refused" in r.message] != []
    assert all(t not in r.message for r in caplog.records for t in TOKENS)

    await asyncio.sleep(t0 + 0.35 - time.time())
    assert await worker.run_once() == 3  # leases ran out: claimed again, still paused
    assert len(apns_fake.requests) == 1

    apns_fake.reset()  # the certificate gets fixed
    await asyncio.sleep(t0 + 0.8 - time.time())
    await worker.run_once()  # cool-down over and leases out again: delivered
    assert len(apns_fake.requests) == 3
    assert worker.counters["delivered"] == 3
    assert await store.outbox_size() == 0
    assert await store.list_dead_letters(10) == []


async def test_dead_letter_after_max_attempts(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
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
    assert "ServiceUnavailable" in dead.error and dead.entry.kind == "apns_pass"
    assert worker.counters["dead"] == 1 and await store.outbox_size() == 0


async def test_permanent_failure_is_dead_lettered_at_once(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    card = await registered_card(store, TOKENS[:1])
    await change(store, card, 1)
    apns_fake.program(TOKENS[0], ApnsReply(400, "BadTopic"))
    worker = make_worker(store, apns_sender)
    await worker.run_once(NOW)
    [dead] = await store.list_dead_letters(10)
    assert "BadTopic" in dead.error
    assert worker.counters["failed"] == 1


async def test_fcm_alerts_delivered_and_unregistered_tokens_deleted(
    store: Store, fcm_sender: FcmSender, fcm_fake: FakeFcmServer, apns_sender: ApnsSender
) -> None:
    await store.add_app_token("0000000000000001", "android", "good-token", NOW)
    await store.add_app_token("0000000000000001", "android", "dead-token", NOW)
    fcm_fake.program("dead-token", FcmReply.unregistered())
    for token in ("good-token", "dead-token"):
        await store.enqueue("fcm_alert", {"token": token, "card": "0000000000000001", "title": "Coffee nearby",
                                          "body": "Come in", "data": {"store": "s1"}}, NOW)
    worker = make_worker(store, apns_sender, fcm=fcm_sender)

    assert await worker.run_once(NOW) == 2

    assert [t.token for t in await store.app_tokens("0000000000000001")] == ["good-token"]
    assert worker.counters["delivered"] == 1 and worker.counters["invalid"] == 1
    assert await store.outbox_size() == 0
    [ok] = fcm_fake.requests_for("good-token")
    assert ok.body["message"]["data"] == {"store": "s1"}


async def test_dry_run_journals_each_push_once_with_its_token(store: Store) -> None:
    card = await registered_card(store)
    await change(store, card, 1)
    worker = make_worker(store, DryRunSender(store, pass_type_id=PASS_TYPE_ID))
    await worker.run_once(NOW)
    journal = await store.list_pushes(10)
    assert sorted(p["token"] for p in journal) == sorted(TOKENS)
    assert all(p["payload"] == {} and p["dry_run"] for p in journal)


async def test_run_forever_wakes_up_on_new_work_and_stops(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
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
        self.completed: list[list[tuple[str, str, str, str, int]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == "complete_pushes":
                self.completed.append(list(args[1]))
            return await method(*args, **kwargs)

        return counted


async def test_a_batch_commits_its_successes_and_skips_in_one_store_call(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    ok_tokens, invalid, throttled, pushed_before = ["d4" * 32, "e5" * 32, "f6" * 32], "a7" * 32, "b8" * 32, "c9" * 32
    card = await issue_card(store)
    devices = {}
    for i, token in enumerate([*ok_tokens, invalid, throttled, pushed_before]):
        devices[token] = f"device-{i}"
        await store.register_device(f"device-{i}", PASS_TYPE_ID, card.serial, token, NOW)
    await change(store, card, 1)
    tag = (await store.get_card(card.number)).tag
    await store.mark_pushed(devices[pushed_before], PASS_TYPE_ID, card.serial, tag)  # a redelivery: skipped
    apns_fake.program(invalid, ApnsReply(410, "Unregistered", timestamp_ms=int((NOW + 5) * 1000)))
    apns_fake.program(throttled, ApnsReply(429, "TooManyRequests"))
    counting = CountingStore(store)
    worker = make_worker(counting, apns_sender)  # type: ignore[arg-type]

    assert await worker.run_once(NOW + 10) == 6

    assert sorted(r.token for r in apns_fake.requests) == sorted([*ok_tokens, invalid, throttled])
    assert counting.calls["push_targets"] == 1
    assert counting.calls["complete_pushes"] == 1
    [completed] = counting.completed
    assert sorted((device, tag_) for _, device, _, _, tag_ in completed) == sorted(
        (devices[t], tag) for t in [*ok_tokens, pushed_before]
    )
    # the rare outcomes keep their own writes; the common ones make no per-entry trips
    assert counting.calls["ack_outbox"] == 1 and counting.calls["retry_outbox"] == 1
    assert counting.calls["remove_registration_if_stale"] == 1
    for per_entry in ("get_registration", "last_pushed_tag", "mark_pushed"):
        assert per_entry not in counting.calls
    assert counting.calls.get("record_push", 0) == 1  # the invalid token's journal record

    assert worker.counters["delivered"] == 3 and worker.counters["skipped"] == 1
    assert worker.counters["invalid"] == 1 and worker.counters["retried"] == 1
    assert await store.outbox_size() == 1  # the throttled one, due again later
    for token in ok_tokens:
        assert await store.last_pushed_tag(devices[token], PASS_TYPE_ID, card.serial) == tag
    assert await store.last_pushed_tag(devices[throttled], PASS_TYPE_ID, card.serial) == 0
    assert await store.get_registration(devices[invalid], PASS_TYPE_ID, card.serial) is None
    journal = await store.list_pushes(10)
    assert sorted(p["outcome"] for p in journal) == ["invalid_token", "ok", "ok", "ok"]
    assert {p["device_id"] for p in journal if p["outcome"] == "ok"} == {devices[t] for t in ok_tokens}


async def test_run_forever_keeps_claiming_while_one_push_is_slow(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    slow, delay = "0a" * 32, 1.5
    tokens = [slow] + [f"{i:02x}" * 32 for i in range(0x10, 0x1a)]
    card = await issue_card(store)
    for i, token in enumerate(tokens):  # enqueued in order: the slow push is in the first batch
        await store.register_device(f"device-{i}", PASS_TYPE_ID, card.serial, token, NOW)
        await store.enqueue("apns_pass", {"device_id": f"device-{i}", "pass_type_id": PASS_TYPE_ID,
                                          "serial": card.serial, "tag": 1}, NOW)
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


async def test_run_forever_claims_no_more_than_its_lanes_can_send(
    store: Store, apns_sender: ApnsSender, apns_fake: FakeApnsServer
) -> None:
    tokens = [f"{i:02x}" * 32 for i in range(0x10, 0x24)]  # 20 devices, every push slow
    card = await issue_card(store)
    for i, token in enumerate(tokens):
        await store.register_device(f"device-{i}", PASS_TYPE_ID, card.serial, token, NOW)
        await store.enqueue("apns_pass", {"device_id": f"device-{i}", "pass_type_id": PASS_TYPE_ID,
                                          "serial": card.serial, "tag": 1}, NOW)
        apns_fake.program(token, ApnsReply(200, delay=0.6))
    stop = asyncio.Event()
    worker = make_worker(store, apns_sender, batch=3, concurrency=2, idle_sleep=0.05, lease_seconds=30)
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        await asyncio.sleep(0.3)
        assert len(apns_fake.requests) == 2  # two lanes, both waiting on a slow answer
        # Only what is being sent is leased: another worker sharing the outbox gets the rest
        # now rather than after this worker's slow pushes.
        peer = await store.claim_outbox("peer", 100, 30, time.time())
        assert len(peer) == len(tokens) - 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert worker.counters["delivered"] == 2
