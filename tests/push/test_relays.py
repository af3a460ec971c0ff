"""Relay channels against the fake relays (tests/fakes/relay_server.py) with real httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from push.channels.apns.sender import ApnsChannel
from push.channels.base import AlertPush, Channels, PassPush, Push
from push.channels.relays import (
    Pass2UChannel,
    PassHubChannel,
    PassWalletChannel,
    RelayChannel,
    WalletPassesChannel,
    WalletUnionChannel,
)
from push.clients import APPLE, PASSWALLET, WALLETPASSES, WALLETUNION_FCM
from push.results import PushResult
from store.port import Store
from tests.fakes.relay_server import FakeRelayServer, Reply
from tests.pii_guard import sensitive
from tests.push.conftest import PASS_TYPE_ID
from tests.push.test_worker import NOW, change, make_worker, registered_card

KEYS = {"walletunion": "wu-key", "pass2u": "p2u-key", "passhub": "ph-key", "walletpasses": "wp-key"}


def fcm_token(i: int) -> str:
    return sensitive(f"fcm{i:04d}:" + "A" * 140, "push token")


@pytest.fixture
def relays() -> Iterator[FakeRelayServer]:
    with FakeRelayServer(keys=KEYS) as server:
        yield server


@pytest.fixture
async def walletunion(relays: FakeRelayServer) -> AsyncIterator[WalletUnionChannel]:
    channel = WalletUnionChannel(PASS_TYPE_ID, url=relays.url_for("walletunion"), key=KEYS["walletunion"])
    yield channel
    await channel.aclose()


def pushes(n: int, **kw: Any) -> list[PassPush]:
    return [PassPush(fcm_token(i), **kw) for i in range(n)]


async def test_120_walletunion_fcm_tokens_go_in_3_calls_of_at_most_50(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    results = await walletunion.deliver(pushes(120))
    assert [r.status for r in results] == ["ok"] * 120
    calls = relays.calls_of("walletunion")
    assert [len(c.tokens) for c in calls] == [50, 50, 20]
    assert [t for c in calls for t in c.tokens] == [fcm_token(i) for i in range(120)]
    assert all(c.body["passTypeIdentifier"] == PASS_TYPE_ID and c.body["hms"] is False for c in calls)
    assert all(c.headers["authorization"] == KEYS["walletunion"] for c in calls)


async def test_hms_tokens_go_up_to_1000_a_call_with_hms_true(relays: FakeRelayServer) -> None:
    channel = WalletUnionChannel(PASS_TYPE_ID, hms=True, url=relays.url_for("walletunion"), key=KEYS["walletunion"])
    try:
        assert {r.status for r in await channel.deliver(pushes(1200))} == {"ok"}
    finally:
        await channel.aclose()
    assert [(len(c.tokens), c.body["hms"]) for c in relays.calls] == [(1000, True), (200, True)]


async def test_413_splits_the_call_into_halves(relays: FakeRelayServer, walletunion: WalletUnionChannel) -> None:
    relays.limits["walletunion"] = 12  # the relay's limit fell below ours
    results = await walletunion.deliver(pushes(50))
    assert {r.status for r in results} == {"ok"}
    sizes = [(len(c.tokens), c.status) for c in relays.calls]
    assert sizes[0] == (50, 413)
    delivered = [t for c in relays.calls if c.status == 200 for t in c.tokens]
    assert sorted(delivered) == sorted(fcm_token(i) for i in range(50))
    assert all(n <= 12 for n, status in sizes if status == 200)


async def test_unknown_and_expired_tokens_are_invalid_the_rest_ok(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    relays.unknown = {fcm_token(1), fcm_token(3)}
    relays.expired = {fcm_token(3), fcm_token(4)}  # the lists may overlap
    results = await walletunion.deliver(pushes(5))
    assert [(r.status, r.reason) for r in results] == [
        ("ok", None),
        ("invalid_token", "unknown_push_token"),
        ("ok", None),
        ("invalid_token", "expired_push_token"),
        ("invalid_token", "expired_push_token"),
    ]


async def test_fcm_failed_is_retried_except_expired_tokens(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    relays.fcm_failed = True
    relays.expired = {fcm_token(0)}
    results = await walletunion.deliver(pushes(2))
    assert [r.status for r in results] == ["invalid_token", "retry"]


async def test_429_retries_after_retry_after_and_holds_further_calls(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    relays.script("walletunion", Reply(429, {"Retry-After": "30", "X-Rate-Limit-Remaining": "0"}))
    results = await walletunion.deliver(pushes(80))
    assert results[0].reason == "HTTP 429" and results[-1].reason == "RateLimited"
    assert all(r.status == "retry" and r.retry_after is not None and 29 <= r.retry_after <= 30 for r in results)
    assert len(relays.calls) == 1  # the second chunk waited instead of being refused too
    # the next batch does not call the relay either, until Retry-After has passed
    assert (await walletunion.deliver(pushes(1)))[0].status == "retry"
    assert len(relays.calls) == 1


async def test_429_without_retry_after_uses_the_rate_limit_reset(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    relays.script("walletunion", Reply(429, {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "7"}))
    [result] = await walletunion.deliver(pushes(1))
    assert (result.status, result.retry_after) == ("retry", 7.0)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retried(relays: FakeRelayServer, walletunion: WalletUnionChannel, status: int) -> None:
    relays.script("walletunion", Reply(status))
    assert {r.status for r in await walletunion.deliver(pushes(3))} == {"retry"}


async def test_connection_refused_and_timeout_are_retried(relays: FakeRelayServer) -> None:
    refused = WalletUnionChannel(PASS_TYPE_ID, url="http://127.0.0.1:1/send", key="k")
    try:
        assert [r.status for r in await refused.deliver(pushes(2))] == ["retry", "retry"]
    finally:
        await refused.aclose()


@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_a_refused_key_is_an_auth_error(relays: FakeRelayServer, key: str | None) -> None:
    channel = WalletPassesChannel(PASS_TYPE_ID, url=relays.url_for("walletpasses"), key=key)
    try:
        results = await channel.deliver(pushes(2))
    finally:
        await channel.aclose()
    assert [(r.status, r.reason) for r in results] == [("auth_error", "HTTP 401")] * 2
    assert len(relays.calls) == 1  # the key is optional for Wallet Passes: the call was made


@pytest.mark.parametrize("cls", [WalletUnionChannel, Pass2UChannel, PassHubChannel])
async def test_a_required_key_not_configured_fails_every_push_without_a_call(
    relays: FakeRelayServer, cls: type[RelayChannel]
) -> None:
    channel = cls(PASS_TYPE_ID, url=relays.url_for(cls.protocol), key=None)
    try:
        results = await channel.deliver(pushes(3))
    finally:
        await channel.aclose()
    assert {r.status for r in results} == {"failed"}
    assert all(r.reason and cls.key_env in r.reason for r in results)
    assert relays.calls == []


async def test_pass2u_puts_the_pass_type_in_the_path_and_takes_1000(relays: FakeRelayServer) -> None:
    channel = Pass2UChannel(PASS_TYPE_ID, url=relays.url_for("pass2u"), key=KEYS["pass2u"])
    try:
        assert {r.status for r in await channel.deliver(pushes(1001))} == {"ok"}
    finally:
        await channel.aclose()
    assert [len(c.tokens) for c in relays.calls] == [1000, 1]
    assert relays.calls[0].path == f"/pass2u/v2/registrations/{PASS_TYPE_ID}/push"
    assert relays.calls[0].headers["x-api-key"] == KEYS["pass2u"]


async def test_passhub_sends_a_bearer_key_and_its_body(relays: FakeRelayServer) -> None:
    channel = PassHubChannel(PASS_TYPE_ID, url=relays.url_for("passhub"), key=KEYS["passhub"])
    try:
        assert [r.status for r in await channel.deliver(pushes(2))] == ["ok", "ok"]
    finally:
        await channel.aclose()
    [call] = relays.calls
    assert call.body == {"pass_type_id": PASS_TYPE_ID, "push_tokens": [fcm_token(0), fcm_token(1)]}
    assert call.headers["authorization"] == f"Bearer {KEYS['passhub']}"


async def test_passwallet_groups_by_push_service_and_refuses_urls_off_the_allowlist(
    relays: FakeRelayServer,
) -> None:
    channel = PassWalletChannel(PASS_TYPE_ID, allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True)
    good = relays.url_for("passwallet")
    batch: list[Push] = [
        PassPush(fcm_token(0), good),
        PassPush(fcm_token(1), "http://10.0.0.1/passwallet"),
        PassPush(fcm_token(2), good + "/"),
        PassPush(fcm_token(3)),
        AlertPush(fcm_token(4), "t", "b"),
    ]
    try:
        results = await channel.deliver(batch)
    finally:
        await channel.aclose()
    assert [(r.status, r.reason) for r in results] == [
        ("ok", None),
        ("failed", "PushServiceUrlNotAllowed"),
        ("ok", None),
        ("failed", "NoPushServiceUrl"),
        ("failed", "RelayTakesPassUpdatesOnly"),
    ]
    [call] = relays.calls
    assert call.body == {"passTypeID": PASS_TYPE_ID, "pushTokens": [fcm_token(0), fcm_token(2)]}


async def test_one_pooled_connection_serves_successive_calls(
    relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    await walletunion.deliver(pushes(150))
    assert len(relays.calls) == 3
    pool = walletunion._client._transport._pool  # type: ignore[attr-defined]  # httpcore's pool: kept alive
    assert len(pool.connections) == 1


# -- through the worker -------------------------------------------------------------------------


async def test_worker_sends_120_devices_in_3_relay_calls_and_forgets_expired_tokens(
    store: Store, relays: FakeRelayServer, walletunion: WalletUnionChannel
) -> None:
    tokens = [fcm_token(i) for i in range(120)]
    card = await registered_card(store, tokens, client=WALLETUNION_FCM)
    await change(store, card, 1)
    relays.expired = {tokens[7]}
    channels = Channels({(WALLETUNION_FCM, PASS_TYPE_ID): walletunion})
    worker = make_worker(store, walletunion, channels=channels)

    assert await worker.run_once(NOW + 1) == 1  # after the registrations: the dead one is stale
    assert [len(c.tokens) for c in relays.calls] == [50, 50, 20]
    assert worker.counters["delivered"] == 119 and worker.counters["invalid"] == 1
    assert await store.outbox_size() == 0
    target = (await store.pass_targets([(PASS_TYPE_ID, card.serial)]))[(PASS_TYPE_ID, card.serial)]
    assert tokens[7] not in {d.push_token for d in target.devices} and len(target.devices) == 119


async def test_one_card_on_an_iphone_and_three_android_apps_each_pushed_once_through_its_own_channel(
    store: Store, relays: FakeRelayServer, walletunion: WalletUnionChannel, apns_sender: ApnsChannel, apns_fake: Any
) -> None:
    card = await registered_card(store, ["ab" * 32])  # device-0: an iPhone
    await store.register_device("wu", PASS_TYPE_ID, card.serial, fcm_token(1), NOW, client=WALLETUNION_FCM)
    await store.register_device("wp", PASS_TYPE_ID, card.serial, fcm_token(2), NOW, client=WALLETPASSES)
    service = relays.url_for("passwallet")
    await store.register_device(
        "pw", PASS_TYPE_ID, card.serial, fcm_token(3), NOW, client=PASSWALLET, push_service_url=service
    )
    await change(store, card, 1)
    walletpasses = WalletPassesChannel(PASS_TYPE_ID, url=relays.url_for("walletpasses"), key=KEYS["walletpasses"])
    passwallet = PassWalletChannel(PASS_TYPE_ID, allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True)
    channels = Channels(
        {
            (APPLE, PASS_TYPE_ID): apns_sender,
            (WALLETUNION_FCM, PASS_TYPE_ID): walletunion,
            (WALLETPASSES, PASS_TYPE_ID): walletpasses,
            (PASSWALLET, PASS_TYPE_ID): passwallet,
        }
    )
    worker = make_worker(store, apns_sender, channels=channels)
    try:
        assert await worker.run_once(NOW + 1) == 1
        assert await worker.run_until_idle(NOW + 2) == 0  # nothing left: nobody is pushed twice
    finally:
        await walletpasses.aclose()
        await passwallet.aclose()
    assert [r.token for r in apns_fake.requests] == ["ab" * 32]
    assert {(c.protocol, tuple(c.tokens)) for c in relays.calls} == {
        ("walletunion", (fcm_token(1),)),
        ("walletpasses", (fcm_token(2),)),
        ("passwallet", (fcm_token(3),)),
    }
    assert worker.pushes == {
        (APPLE, "ok"): 1,
        (WALLETUNION_FCM, "ok"): 1,
        (WALLETPASSES, "ok"): 1,
        (PASSWALLET, "ok"): 1,
    }
    journal = await store.list_pushes(10)
    assert sorted((p["client"], p["channel"].split(":")[0]) for p in journal) == [
        (APPLE, "apns"),
        (PASSWALLET, "passwallet"),
        (WALLETPASSES, "walletpasses"),
        (WALLETUNION_FCM, "walletunion_fcm"),
    ]


# -- one queue per endpoint, shared by concurrent deliver calls -----------------------------------


async def test_concurrent_batches_share_calls_up_to_the_relays_maximum(relays: FakeRelayServer) -> None:
    # the worker runs batches side by side: a burst of one token per card still fills HMS calls
    channel = WalletUnionChannel(PASS_TYPE_ID, hms=True, url=relays.url_for("walletunion"), key=KEYS["walletunion"])
    tokens = [fcm_token(i) for i in range(1000)]
    try:
        answers = await asyncio.gather(
            *(channel.deliver([PassPush(t) for t in tokens[start : start + 100]]) for start in range(0, 1000, 100))
        )
    finally:
        await channel.aclose()
    assert {r.status for batch in answers for r in batch} == {"ok"}
    assert [len(c.tokens) for c in relays.calls] == [1000]
    assert sorted(relays.calls[0].tokens) == sorted(tokens)


async def test_a_lone_push_waits_only_the_linger(relays: FakeRelayServer, walletunion: WalletUnionChannel) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert [r.status for r in await walletunion.deliver(pushes(1))] == ["ok"]
    assert loop.time() - started < walletunion.linger_max + 0.5
    assert [len(c.tokens) for c in relays.calls] == [1]


async def test_a_trickle_is_sent_by_linger_max_whatever_keeps_coming(relays: FakeRelayServer) -> None:
    channel = WalletPassesChannel(PASS_TYPE_ID, url=relays.url_for("walletpasses"), key=KEYS["walletpasses"])
    channel.linger, channel.linger_max = 0.05, 0.15

    async def one_every_10ms(i: int) -> list[PushResult]:
        await asyncio.sleep(i * 0.01)
        return await channel.deliver([PassPush(fcm_token(i))])

    try:
        results = await asyncio.gather(*(one_every_10ms(i) for i in range(40)))  # 0.4 s of tokens, 10 ms apart
    finally:
        await channel.aclose()
    assert {r[0].status for r in results} == {"ok"}
    calls = relays.calls_of("walletpasses")
    assert 2 <= len(calls) <= 5  # neither one call per token nor one for all: the first left by 0.15 s
    assert sorted(t for c in calls for t in c.tokens) == sorted(fcm_token(i) for i in range(40))


async def test_closing_the_channel_answers_every_waiting_push(relays: FakeRelayServer) -> None:
    channel = WalletUnionChannel(PASS_TYPE_ID, url=relays.url_for("walletunion"), key=KEYS["walletunion"])
    channel.linger = channel.linger_max = 5.0  # nothing would go out for a while
    waiting = asyncio.create_task(channel.deliver(pushes(3)))
    await asyncio.sleep(0.05)
    await channel.aclose()
    assert [r.status for r in await waiting] == ["retry"] * 3
    assert relays.calls == []
