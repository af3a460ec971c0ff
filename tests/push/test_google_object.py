"""`google_object` entries: the real Worker, both stores, GoogleWalletClient against the fake Wallet
API (tests/fakes/google_wallet_server.py), GoogleWalletChannel rendering with passes/google/model.py."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cards.model import Card, Member
from ledger.decide import LedgerEvent
from passes.google.model import loyalty_class, loyalty_object, object_class_id
from passes.programs import Program, load_programs
from push.channels.base import ANY, Channels
from push.channels.google import GoogleSync, GoogleWalletChannel, message_hash
from push.channels.google_wallet import GoogleWalletClient
from push.kinds.google_object import GOOGLE, GoogleObject
from push.messages import decode, entry
from push.worker import Worker
from store.port import NewEntry, Store
from tests.fakes.google_wallet_server import FakeGoogleWalletServer, WalletReply
from tests.pii_guard import sensitive_card

ISSUER = "3388000000022141777"
TEMPLATES = Path(__file__).resolve().parents[2] / "pass_templates"
PAGE = "https://wallet.example.test/c/page"
LOGO = "https://wallet.example.test/logo.png"
OBJECTS = "/walletobjects/v1/loyaltyObject"


@pytest.fixture(scope="module")
def coffee() -> Program:
    return load_programs(TEMPLATES)["coffee"]


def make_render(program: Program) -> Any:
    def render(card: Card) -> tuple[dict[str, Any], dict[str, Any]]:
        tier = object_class_id(program, card, ISSUER).rsplit(".", 1)[1]
        return (
            loyalty_object(program, card, ISSUER, page_url=PAGE),
            loyalty_class(program, ISSUER, tier, logo_url=LOGO),
        )

    return render


@pytest.fixture
def wallet() -> Iterator[FakeGoogleWalletServer]:
    with FakeGoogleWalletServer() as server:
        yield server


@pytest.fixture
async def client(wallet: FakeGoogleWalletServer) -> AsyncIterator[GoogleWalletClient]:
    async with GoogleWalletClient(wallet.url, wallet.service_account(), timeout=5) as made:
        yield made


@pytest.fixture
async def channel(
    client: GoogleWalletClient, coffee: Program, store: Store, wallet: FakeGoogleWalletServer
) -> GoogleWalletChannel:
    for tier in coffee.tiers:
        assert (await client.insert_class(loyalty_class(coffee, ISSUER, tier, logo_url=LOGO))).ok
    return GoogleWalletChannel(client, make_render(coffee), rate=1000.0, state=store)


def make_worker(store: Store, channel: GoogleWalletChannel, **kwargs: Any) -> Worker:
    options: dict[str, Any] = dict(
        channels=Channels({(GOOGLE, ANY): channel}),
        consumer="test-worker",
        backoff_base=0.001,
        backoff_cap=0.01,
        rng=random.Random(0),
    )
    options.update(kwargs)
    return Worker(store, **options)


def fanout(card: Card) -> list[NewEntry]:
    return [entry(GoogleObject(card.serial))]


async def issue(store: Store, n: int = 1) -> Card:
    card = Card(
        number=f"7790{n:012d}",
        program="coffee",
        account=f"acc-{n}",
        serial=f"serial-{n:04d}",
        auth_token="x" * 32,
        member=Member("Анна"),
        balance=100,
    )
    stored, _ = await store.create_card(sensitive_card(card))
    return stored


async def saved(store: Store, client: GoogleWalletClient, coffee: Program, n: int = 1) -> Card:
    """A card whose Google object exists (the member saved it)."""
    card = await issue(store, n)
    assert (await client.insert_object(loyalty_object(coffee, card, ISSUER, page_url=PAGE))).ok
    return card


async def change(
    store: Store, card: Card, version: int, balance: int, now: float, *, tier: str | None = None, message: str | None
) -> None:
    event = LedgerEvent(
        id=f"ev-{card.serial}-{version}",
        version=version,
        balance=balance,
        card_number=card.number,
        tier=tier,
        message=message,
    )
    result = await store.apply_ledger_events([event], now, fanout)
    assert result.changed


def oid(card: Card) -> str:
    return f"{ISSUER}.{card.serial}"


def patches(wallet: FakeGoogleWalletServer, card: Card) -> list[dict[str, Any]]:
    return [r.body for r in wallet.requests_to("PATCH", f"{OBJECTS}/{oid(card)}")]


def messages_added(wallet: FakeGoogleWalletServer, card: Card) -> list[dict[str, Any]]:
    return [r.body["message"] for r in wallet.requests_to("POST", f"{OBJECTS}/{oid(card)}/addMessage")]


# -- the message kind ----------------------------------------------------------------------------


def test_the_kind_round_trips_and_coalesces_per_serial() -> None:
    new = entry(GoogleObject("serial-1"))
    assert new.kind == "google_object" and dict(new.fields) == {"serial": "serial-1"}
    assert new.coalesce_key == entry(GoogleObject("serial-1")).coalesce_key != entry(GoogleObject("s2")).coalesce_key
    assert decode("google_object", new.fields) == GoogleObject("serial-1")


# -- delivery ------------------------------------------------------------------------------------


async def test_ledger_change_patches_balance_tier_and_notify_and_adds_the_message(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    await change(store, card, 1, 12_000, now, tier="gold", message="Покупка: +600 баллов")
    worker = make_worker(store, channel)
    assert await worker.run_until_idle(now) == 1

    [patch] = patches(wallet, card)
    assert patch["notifyPreference"] == "NOTIFY_ON_UPDATE"
    assert patch["loyaltyPoints"]["balance"] == {"int": 12_000}
    assert patch["classId"] == f"{ISSUER}.coffee.gold"
    # only the fields that carry card state
    assert set(patch) <= {
        "notifyPreference",
        "classId",
        "state",
        "loyaltyPoints",
        "secondaryLoyaltyPoints",
        "textModulesData",
        "merchantLocations",
    }
    [message] = messages_added(wallet, card)
    assert message["messageType"] == "TEXT_AND_NOTIFY" and message["body"] == "Покупка: +600 баллов"
    shown = wallet.objects[oid(card)]
    assert shown["loyaltyPoints"]["balance"] == {"int": 12_000} and shown["classId"].endswith(".gold")
    assert [m["body"] for m in shown["messages"]] == ["Покупка: +600 баллов"]

    assert await store.outbox_size() == 0
    state = await store.get_google_state(card.serial)
    assert state is not None and (state.version, state.balance, state.tier) == (1, 12_000, "gold")
    assert state.message_hash == message_hash("Покупка: +600 баллов") and len(state.notified) == 1
    [record] = [r for r in await store.list_pushes(10) if r.get("kind") == "google_object"]
    assert record["outcome"] == "ok" and record["serial"] == card.serial and record["object_id"] == oid(card)
    assert "Покупка" not in json.dumps(record, ensure_ascii=False) and card.number not in json.dumps(record)

    # delivered again (a redelivered entry): nothing sent, the object already shows it
    await store.enqueue([entry(GoogleObject(card.serial))], now)
    await worker.run_until_idle(now)
    assert len(patches(wallet, card)) == 1 and len(messages_added(wallet, card)) == 1


async def test_a_balance_change_without_message_patches_only_and_the_same_tier_keeps_the_class(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    worker = make_worker(store, channel)
    await change(store, card, 1, 200, now, message=None)
    await worker.run_until_idle(now)
    await change(store, card, 2, 200, now, message=None)  # same balance, same tier
    await worker.run_until_idle(now)
    first, second = patches(wallet, card)
    assert first["notifyPreference"] == "NOTIFY_ON_UPDATE" and "classId" in first
    assert "notifyPreference" not in second and "classId" not in second
    assert messages_added(wallet, card) == []


async def test_coalesced_changes_send_one_patch_with_the_latest_state(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    for version in (1, 2, 3):
        await change(store, card, version, version * 1000, now, message=f"op {version}")
    assert await make_worker(store, channel).run_until_idle(now) == 1
    [patch] = patches(wallet, card)
    assert patch["loyaltyPoints"]["balance"] == {"int": 3000}
    assert [m["body"] for m in messages_added(wallet, card)] == ["op 3"]


async def test_the_fourth_message_in_24_hours_is_text(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    worker = make_worker(store, channel)
    for version in range(1, 6):
        await change(store, card, version, 100 + version, now, message=f"purchase {version}")
        await worker.run_until_idle(now)
    kinds = [m["messageType"] for m in messages_added(wallet, card)]
    assert kinds == ["TEXT_AND_NOTIFY"] * 3 + ["TEXT"] * 2
    # no quota refusal was needed: the channel counted
    assert all(r.status == 200 for r in wallet.requests_to("POST", f"{OBJECTS}/*/addMessage"))
    # the object's messages stay bounded, newest kept
    shown = wallet.objects[oid(card)]["messages"]
    assert [m["body"] for m in shown] == [f"purchase {v}" for v in range(1, 6)][-channel.keep_messages :]


async def test_messages_are_trimmed_to_the_newest(
    store: Store, client: GoogleWalletClient, coffee: Program, wallet: FakeGoogleWalletServer, channel
) -> None:
    trimming = GoogleWalletChannel(client, make_render(coffee), rate=1000.0, state=store, keep_messages=2)
    card = await saved(store, client, coffee)
    now = time.time()
    worker = make_worker(store, trimming)
    for version in range(1, 5):
        await change(store, card, version, 100 + version, now, message=f"m{version}")
        await worker.run_until_idle(now)
    assert [m["body"] for m in wallet.objects[oid(card)]["messages"]] == ["m3", "m4"]


async def test_quota_exceeded_resends_the_message_as_text(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    wallet.script("POST", f"{OBJECTS}/{oid(card)}/addMessage", WalletReply.quota_exceeded())
    await change(store, card, 1, 150, now, message="hello")
    worker = make_worker(store, channel)
    await worker.run_until_idle(now)
    assert [m["messageType"] for m in messages_added(wallet, card)] == ["TEXT_AND_NOTIFY", "TEXT"]
    assert [m["body"] for m in wallet.objects[oid(card)]["messages"]] == ["hello"]
    assert await store.outbox_size() == 0 and await store.list_dead_letters(5) == []
    # Google said the quota is used up: the next message is plain text without asking again
    await change(store, card, 2, 160, now, message="again")
    await worker.run_until_idle(now)
    assert messages_added(wallet, card)[-1]["messageType"] == "TEXT"


async def test_404_inserts_the_object_again(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await issue(store)  # Google has no object for it (deleted on their side, or never inserted)
    now = time.time()
    await change(store, card, 1, 20_000, now, tier="gold", message="welcome back")
    await make_worker(store, channel).run_until_idle(now)
    assert [r.status for r in wallet.requests_to("PATCH", f"{OBJECTS}/{oid(card)}")] == [404]
    [insert] = wallet.requests_to("POST", OBJECTS)
    assert insert.status == 200 and insert.body["id"] == oid(card)
    shown = wallet.objects[oid(card)]
    assert shown["loyaltyPoints"]["balance"] == {"int": 20_000} and shown["classId"] == f"{ISSUER}.coffee.gold"
    assert [m["body"] for m in shown["messages"]] == ["welcome back"]
    assert await store.outbox_size() == 0


async def test_404_with_the_class_missing_too_inserts_both(
    store: Store, client: GoogleWalletClient, coffee: Program, wallet: FakeGoogleWalletServer
) -> None:
    channel = GoogleWalletChannel(client, make_render(coffee), rate=1000.0, state=store)  # no classes seeded
    card = await issue(store)
    now = time.time()
    await change(store, card, 1, 50, now, message=None)
    await make_worker(store, channel).run_until_idle(now)
    assert f"{ISSUER}.coffee.base" in wallet.classes and oid(card) in wallet.objects
    assert await store.outbox_size() == 0


async def test_429_is_retried_after_retry_after(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    wallet.script("PATCH", f"{OBJECTS}/{oid(card)}", WalletReply.rate_limited("30"))
    await change(store, card, 1, 300, now, message=None)
    worker = make_worker(store, channel)
    await worker.run_until_idle(now)
    assert worker.counters["retried"] == 1 and await store.outbox_size() == 1
    assert await worker.run_until_idle(now + 29) == 0  # not before Retry-After
    assert await worker.run_until_idle(now + 31) == 1
    assert [r.status for r in wallet.requests_to("PATCH", f"{OBJECTS}/{oid(card)}")] == [429, 200]
    assert wallet.objects[oid(card)]["loyaltyPoints"]["balance"] == {"int": 300}
    assert await store.outbox_size() == 0


async def test_5xx_is_retried_then_dead_lettered(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    wallet.script_always("PATCH", f"{OBJECTS}/{oid(card)}", WalletReply.server_error(503))
    await change(store, card, 1, 300, now, message=None)
    worker = make_worker(store, channel, max_attempts=3)
    for step in range(6):
        await worker.run_once(now + step)
    assert len(wallet.requests_to("PATCH", f"{OBJECTS}/{oid(card)}")) == 3
    [dead] = await store.list_dead_letters(5)
    assert dead.entry.kind == "google_object" and dead.entry.fields == {"serial": card.serial}
    assert "backendError" in dead.error
    assert await store.outbox_size() == 0 and await store.get_google_state(card.serial) is None


async def test_a_message_failing_after_the_patch_does_not_patch_again(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    wallet.script("POST", f"{OBJECTS}/{oid(card)}/addMessage", WalletReply.server_error(500))
    await change(store, card, 1, 300, now, message="hi")
    worker = make_worker(store, channel)
    await worker.run_until_idle(now)
    await worker.run_until_idle(now + 5)
    assert len(patches(wallet, card)) == 1  # the retry only adds the message: no second notification
    assert [m["messageType"] for m in messages_added(wallet, card)] == ["TEXT_AND_NOTIFY"] * 2
    assert [m["body"] for m in wallet.objects[oid(card)]["messages"]] == ["hi"]


@pytest.mark.parametrize("reply", [WalletReply.permission_denied(), WalletReply.unauthenticated()])
async def test_auth_errors_pause_the_channel_and_keep_the_entry(
    store: Store,
    client: GoogleWalletClient,
    channel: GoogleWalletChannel,
    wallet: FakeGoogleWalletServer,
    coffee: Program,
    reply: WalletReply,
) -> None:
    cards = [await saved(store, client, coffee, n) for n in (1, 2)]
    now = time.time()
    wallet.script_always("PATCH", f"{OBJECTS}/*", reply)
    for card in cards:
        await change(store, card, 1, 500, now, message=None)
    worker = make_worker(store, channel, batch=1, lease_seconds=0.3, auth_cooldown=1.0)
    t0 = time.time()
    await worker.run_once(t0)
    sent = len(wallet.requests_to("PATCH"))
    assert await worker.run_once(t0) == 1  # the other card: channel paused, not even tried
    assert len(wallet.requests_to("PATCH")) == sent
    assert worker.counters["auth_errors"] == 1 and worker.paused
    assert await store.outbox_size() == 2 and await store.list_dead_letters(5) == []

    wallet.clear_scripts()  # credentials fixed
    await asyncio.sleep(t0 + 1.1 - time.time())
    await worker.run_until_idle()
    assert all(wallet.objects[oid(c)]["loyaltyPoints"]["balance"] == {"int": 500} for c in cards)
    assert await store.outbox_size() == 0 and await store.list_dead_letters(5) == []


async def test_an_older_card_state_never_regresses_the_object(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    await change(store, card, 1, 1000, now, message="one")
    old = await store.get_card_by_serial(card.serial)
    await change(store, card, 2, 2000, now, message="two")
    await make_worker(store, channel).run_until_idle(now)
    assert wallet.objects[oid(card)]["loyaltyPoints"]["balance"] == {"int": 2000}
    sent = len(wallet.requests)

    # a late delivery of the older state (another worker that read the card before the change),
    # through another channel instance sharing the store
    assert old is not None and old.version == 1
    other = GoogleWalletChannel(client, make_render(coffee), rate=1000.0, state=store)
    [result] = await other.deliver([GoogleSync(old)])
    assert result.ok and len(wallet.requests) == sent
    assert wallet.objects[oid(card)]["loyaltyPoints"]["balance"] == {"int": 2000}
    state = await store.get_google_state(card.serial)
    assert state is not None and state.version == 2


async def test_concurrent_syncs_of_old_and_new_state_end_at_the_new(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    await change(store, card, 1, 1000, now, message=None)
    old = await store.get_card_by_serial(card.serial)
    await change(store, card, 2, 2000, now, message=None)
    new = await store.get_card_by_serial(card.serial)
    assert old is not None and new is not None
    other = GoogleWalletChannel(client, make_render(coffee), rate=1000.0, state=store)
    for first, second in ((old, new), (new, old)):
        await asyncio.gather(channel.deliver([GoogleSync(first)]), other.deliver([GoogleSync(second)]))
        await channel.deliver([GoogleSync(first), GoogleSync(second)])
        assert wallet.objects[oid(card)]["loyaltyPoints"]["balance"] == {"int": 2000}
    assert (await store.get_google_state(card.serial)).version == 2  # type: ignore[union-attr]


async def test_the_rate_limit_holds_across_the_channel(
    store: Store, client: GoogleWalletClient, coffee: Program, wallet: FakeGoogleWalletServer, channel
) -> None:
    limited = GoogleWalletChannel(client, make_render(coffee), rate=10.0, state=store)
    cards = [await saved(store, client, coffee, n) for n in range(30)]
    now = time.time()
    await store.apply_ledger_events(
        [LedgerEvent(id=f"ev-{c.serial}", version=1, balance=777, card_number=c.number) for c in cards], now, fanout
    )
    start = len(wallet.requests)
    worker = make_worker(store, limited)
    assert await worker.run_until_idle(now) == 30
    times = sorted(r.at for r in wallet.requests[start:])
    assert len(times) == 30
    assert times[-1] - times[0] >= 29 / 10.0 * 0.9
    # never 11 requests within one second, give or take the jitter of a loaded test machine
    # (the limiter spaces the starts of requests; the fake stamps them when it answers)
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 0.75
    assert all(wallet.objects[oid(c)]["loyaltyPoints"]["balance"] == {"int": 777} for c in cards)


class _Overtaken:
    """A client whose first object PATCH waits while `before` (another worker's whole sync of a
    newer state) runs: this channel's older PATCH then lands after the newer one."""

    def __init__(self, client: GoogleWalletClient, before: Any) -> None:
        self._client = client
        self._before = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def patch_object(self, *args: Any, **kwargs: Any) -> Any:
        if self._before is not None:
            before, self._before = self._before, None
            await before()
        return await self._client.patch_object(*args, **kwargs)


async def test_an_older_patch_landing_after_a_newer_one_is_followed_by_the_latest_state(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    await change(store, card, 1, 1000, now, message="one")
    old = await store.get_card_by_serial(card.serial)
    await change(store, card, 2, 20_000, now, tier="gold", message="two")
    new = await store.get_card_by_serial(card.serial)
    assert old is not None and new is not None

    async def newer_worker() -> None:
        [result] = await channel.deliver([GoogleSync(new)])
        assert result.ok

    slow = GoogleWalletChannel(_Overtaken(client, newer_worker), make_render(coffee), rate=1000.0, state=store)  # type: ignore[arg-type]
    [result] = await slow.deliver([GoogleSync(old)])
    assert result.ok
    balances = [p["loyaltyPoints"]["balance"]["int"] for p in patches(wallet, card)]
    assert balances == [20_000, 1000, 20_000]  # the stale PATCH landed, and was followed by the latest
    shown = wallet.objects[oid(card)]
    assert shown["loyaltyPoints"]["balance"] == {"int": 20_000} and shown["classId"] == f"{ISSUER}.coffee.gold"
    # the overtaken sync adds no message of its own; the newer one added its message once
    assert [m["body"] for m in shown["messages"]] == ["two"]
    state = await store.get_google_state(card.serial)
    assert state is not None and state.version == 2 and state.message_hash == message_hash("two")


async def test_has_users_in_a_patch_answer_records_the_save_once_where_callbacks_stopped(
    store: Store, client: GoogleWalletClient, channel: GoogleWalletChannel, wallet: FakeGoogleWalletServer, coffee
) -> None:
    card = await saved(store, client, coffee)
    now = time.time()
    worker = make_worker(store, channel)
    await change(store, card, 1, 200, now, message=None)
    await worker.run_until_idle(now)
    assert await store.google_installs(oid(card)) == []  # nobody saved it yet
    wallet.set_has_users(oid(card))  # saved, and no callback came
    for version, balance in ((2, 300), (3, 400)):
        await change(store, card, version, balance, now, message=None)
        await worker.run_until_idle(now)
    installs = await store.google_installs(oid(card))
    assert [event for event, _ in installs] == ["has_users"]


async def test_a_geo_change_patches_locations_and_adds_the_notice_once(
    store: Store, client: GoogleWalletClient, coffee: Program, wallet: FakeGoogleWalletServer
) -> None:
    """Geo content moves the tag, not the version: the object is patched (merchantLocations) and the
    notice (a campaign's announce or a marketing message) is added as a message, once."""
    from passes.apple.pass_json import Location
    from store.port import CardUpdate

    def render(card: Card) -> tuple[dict[str, Any], dict[str, Any]]:
        tier = object_class_id(coffee, card, ISSUER).rsplit(".", 1)[1]
        points = [Location(lat, lon) for lat, lon, _, _ in card.locations]
        return (
            loyalty_object(coffee, card, ISSUER, page_url=PAGE, locations=points),
            loyalty_class(coffee, ISSUER, tier, logo_url=LOGO),
        )

    for tier in coffee.tiers:
        await client.insert_class(loyalty_class(coffee, ISSUER, tier, logo_url=LOGO))
    channel = GoogleWalletChannel(client, render, rate=1000.0, state=store)
    card = await saved(store, client, coffee)
    now = time.time()
    worker = make_worker(store, channel)
    await change(store, card, 1, 300, now, message=None)
    await worker.run_until_idle(now)
    current = await store.get_card(card.number)
    assert current is not None
    geo = current.with_changes(
        locations=((55.75, 37.61, "Кофе рядом", 100),), notice="Неделя кофе", notice_id="campaign:c1"
    )
    result = await store.update_cards([CardUpdate(current.tag, geo)], now, fanout)
    assert result.cards[0] is not None
    await worker.run_until_idle(now)
    assert patches(wallet, card)[-1]["merchantLocations"] == [{"latitude": 55.75, "longitude": 37.61}]
    assert [m["body"] for m in messages_added(wallet, card)] == ["Неделя кофе"]
    # delivered again: nothing more
    await store.enqueue([entry(GoogleObject(card.serial))], now)
    await worker.run_until_idle(now)
    assert [m["body"] for m in messages_added(wallet, card)] == ["Неделя кофе"]
