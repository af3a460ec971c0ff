"""The storage port's contract (store/port.py), checked against every adapter: lifecycle, cards,
ledger events, PassKit registrations and update tags, device logs, app tokens, push journal."""

from __future__ import annotations

import time

import pytest

from cards.model import Card
from ledger.decide import LedgerEvent, Outcome
from store.port import CardConflict, Store
from tests.conftest import StoreFactory

from .conftest import make_card, note, pass_fanout

NOW = 1_700_000_000.0  # before the real clock: entries enqueued at NOW are due for drain()


def event(
    event_id: str,
    version: int,
    balance: int = 0,
    *,
    card: str | None = None,
    account: str | None = None,
    tier: str | None = None,
    pending: int | None = None,
    expiring_points: int | None = None,
    expiring_date: str | None = None,
    message: str | None = None,
    occurred_at: str | None = None,
) -> LedgerEvent:
    return LedgerEvent(
        id=event_id,
        version=version,
        balance=balance,
        card_number=card,
        account=account,
        tier=tier,
        pending=pending,
        expiring_points=expiring_points,
        expiring_date=expiring_date,
        message=message,
        occurred_at=occurred_at,
    )


def outcomes(result) -> dict[str, Outcome]:
    return dict(result.outcomes)


async def drain(store: Store, consumer: str = "drain") -> list:
    return await store.claim_outbox(consumer, 1000, 60, time.time() + 3600)


# -- lifecycle -------------------------------------------------------------------------------------


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_data_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    card, _ = await first.create_card(make_card(1))
    await first.register_device("dev", "pass.t", card.serial, "push-1", NOW)
    await first.apply_ledger_events([event("e1", 1, 50, card=card.number)], NOW, pass_fanout)
    await first.enqueue([note(1)], NOW)
    await first.append_device_logs(["hello"], NOW, keep=10)
    await first.close()

    second = store_factory()
    await second.open()
    await second.open()  # opening (and migrating) again is harmless
    stored = await second.get_card(card.number)
    assert stored is not None and stored.balance == 50 and stored.version == 1
    registration = await second.get_registration("dev", "pass.t", card.serial)
    assert registration is not None and registration.push_token == "push-1"
    assert await second.outbox_size() == 2  # the ledger's pass update and the note
    assert await second.list_device_logs(10) == [(NOW, "hello")]
    dup = await second.apply_ledger_events([event("e1", 2, 60, card=card.number)], NOW)
    assert outcomes(dup) == {"e1": Outcome.DUPLICATE}
    # The counter survives too: a later card gets a later tag.
    later, _ = await second.create_card(make_card(2))
    assert later.tag > stored.tag


async def test_closed_store_is_not_reachable(store_factory: StoreFactory) -> None:
    store = store_factory()
    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless
    assert await store.ping() is False


# -- cards -----------------------------------------------------------------------------------------


async def test_create_and_get_card(store: Store) -> None:
    card, created = await store.create_card(make_card(1))
    assert created is True
    assert card.tag > 0
    assert await store.get_card(card.number) == card
    assert await store.get_card_by_serial(card.serial) == card
    assert await store.get_card_by_account(card.account) == card
    assert card.member.email == "m1@example.com" and card.created_at == 1_600_000_000


async def test_unknown_cards_are_none(store: Store) -> None:
    assert await store.get_card("nope") is None
    assert await store.get_card_by_serial("nope") is None
    assert await store.get_card_by_account("nope") is None


async def test_create_card_is_idempotent_by_account(store: Store) -> None:
    first, _ = await store.create_card(make_card(1, extra={"k": "v"}))
    # Same account and program, another generated number and serial: the first card wins.
    again, created = await store.create_card(make_card(2, account=first.account))
    assert created is False
    assert again == first
    assert await store.get_card(make_card(2).number) is None


async def test_create_card_conflicts(store: Store) -> None:
    first, _ = await store.create_card(make_card(1))
    with pytest.raises(CardConflict):  # same account, another program
        await store.create_card(make_card(2, account=first.account, program="tea"))
    with pytest.raises(CardConflict):  # number taken
        await store.create_card(make_card(2, number=first.number))
    with pytest.raises(CardConflict):  # serial taken
        await store.create_card(make_card(2, serial=first.serial))
    assert await store.get_card_by_account("acct-2") is None  # failed attempts left nothing behind
    assert await store.get_card_by_serial("serial-2") is None


async def test_tags_strictly_increase_across_cards_and_never_come_from_the_clock(store: Store) -> None:
    tags = []
    for i in range(5):
        card, _ = await store.create_card(make_card(i))
        tags.append(card.tag)
    result = await store.apply_ledger_events([event("e", 1, card=make_card(0).number)], NOW)
    tags.append(result.changed[0].tag)
    assert tags == sorted(set(tags))
    assert tags[-1] < 1_000  # a counter, not a timestamp


# -- ledger ----------------------------------------------------------------------------------------


async def test_accepted_event_updates_the_card(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    result = await store.apply_ledger_events(
        [
            event(
                "e1",
                3,
                120,
                card=card.number,
                tier="gold",
                pending=7,
                expiring_points=20,
                expiring_date="2030-01-01",
                message="You earned 20 points",
            )
        ],
        NOW,
    )
    assert result.outcomes == [("e1", Outcome.ACCEPTED)]
    [changed] = result.changed
    stored = await store.get_card(card.number)
    assert changed == stored
    assert (stored.balance, stored.tier, stored.pending, stored.version) == (120, "gold", 7, 3)
    assert (stored.expiring_points, stored.expiring_date) == (20, "2030-01-01")
    assert stored.last_message == "You earned 20 points"
    assert stored.tag > card.tag
    assert stored.modified_at == int(NOW)
    assert await store.get_card_by_serial(card.serial) == stored
    assert await store.get_card_by_account(card.account) == stored

    # Fields an event leaves out keep their value; modified_at moves even within one second.
    result = await store.apply_ledger_events([event("e2", 4, 130, card=card.number)], NOW)
    stored = result.changed[0]
    assert (stored.balance, stored.tier, stored.pending, stored.last_message) == (
        130,
        "gold",
        7,
        "You earned 20 points",
    )
    assert stored.modified_at == int(NOW) + 1


async def test_event_by_account(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    result = await store.apply_ledger_events([event("e1", 1, 10, account=card.account)], NOW)
    assert result.outcomes == [("e1", Outcome.ACCEPTED)]
    stored = await store.get_card(card.number)
    assert stored is not None and stored.balance == 10


async def test_duplicate_ids_change_nothing(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    await store.apply_ledger_events([event("e1", 1, 10, card=card.number)], NOW)
    before = await store.get_card(card.number)
    result = await store.apply_ledger_events([event("e1", 5, 99, card=card.number)], NOW)
    assert result.outcomes == [("e1", Outcome.DUPLICATE)]
    assert result.changed == []
    assert await store.get_card(card.number) == before


async def test_duplicate_within_one_batch(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    result = await store.apply_ledger_events(
        [event("e1", 1, 10, card=card.number), event("e1", 2, 20, card=card.number)], NOW
    )
    assert result.outcomes == [("e1", Outcome.ACCEPTED), ("e1", Outcome.DUPLICATE)]
    stored = await store.get_card(card.number)
    assert stored is not None and stored.balance == 10


async def test_stale_versions_change_nothing(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    await store.apply_ledger_events([event("e1", 5, 50, card=card.number)], NOW)
    before = await store.get_card(card.number)
    result = await store.apply_ledger_events(
        [event("e2", 5, 1, card=card.number), event("e3", 4, 2, account=card.account)], NOW
    )
    assert outcomes(result) == {"e2": Outcome.STALE, "e3": Outcome.STALE}
    assert await store.get_card(card.number) == before
    # A stale id is not recorded as accepted: it is stale again, not a duplicate.
    again = await store.apply_ledger_events([event("e2", 5, 1, card=card.number)], NOW)
    assert again.outcomes == [("e2", Outcome.STALE)]


async def test_unknown_card_or_account(store: Store) -> None:
    await store.create_card(make_card(1))
    result = await store.apply_ledger_events(
        [event("e1", 1, card="0000000000000000"), event("e2", 1, account="nobody"), event("e3", 1)], NOW
    )
    assert result.outcomes == [("e1", Outcome.UNKNOWN), ("e2", Outcome.UNKNOWN), ("e3", Outcome.UNKNOWN)]
    assert result.changed == []
    assert await store.outbox_size() == 0


async def test_versions_are_ordered_within_one_batch(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    result = await store.apply_ledger_events(
        [
            event("v3", 3, 30, card=card.number),
            event("v2", 2, 20, card=card.number),
            event("v4", 4, 40, account=card.account),
        ],
        NOW,
    )
    assert result.outcomes == [("v3", Outcome.ACCEPTED), ("v2", Outcome.STALE), ("v4", Outcome.ACCEPTED)]
    [changed] = result.changed  # one final state per card
    assert (changed.version, changed.balance) == (4, 40)
    assert await store.get_card(card.number) == changed


async def test_outcomes_keep_input_order_across_cards(store: Store) -> None:
    a, _ = await store.create_card(make_card(1))
    b, _ = await store.create_card(make_card(2))
    result = await store.apply_ledger_events(
        [
            event("b1", 1, card=b.number),
            event("x", 1, card="missing"),
            event("a1", 1, card=a.number),
            event("b0", 1, card=b.number),
        ],
        NOW,
    )
    assert result.outcomes == [
        ("b1", Outcome.ACCEPTED),
        ("x", Outcome.UNKNOWN),
        ("a1", Outcome.ACCEPTED),
        ("b0", Outcome.STALE),
    ]
    assert {c.number for c in result.changed} == {a.number, b.number}
    assert len({c.tag for c in result.changed}) == 2


async def test_empty_batch(store: Store) -> None:
    result = await store.apply_ledger_events([], NOW)
    assert result.outcomes == [] and result.changed == []


async def test_one_outbox_entry_per_changed_card_whatever_its_devices(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    other, _ = await store.create_card(make_card(2))
    for i in range(5):
        await store.register_device(f"dev-{i}", "pass.t", card.serial, f"tok-{i}", NOW)
    await store.apply_ledger_events([event("e1", 1, 10, card=card.number)], NOW, pass_fanout)
    [entry] = await drain(store)
    assert (entry.kind, entry.fields, entry.attempts) == (
        "pass_update",
        {"pass_type_id": "pass.t", "serial": card.serial},
        0,
    )
    assert entry.enqueued_at == pytest.approx(NOW)
    # a card that did not change gets nothing
    assert other.serial not in {e.fields.get("serial") for e in await drain(store, "w2")}


async def test_no_outbox_entries_without_a_fanout(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    await store.register_device("dev-a", "pass.t", card.serial, "tok-a", NOW)
    await store.apply_ledger_events([event("e1", 1, 10, card=card.number)], NOW)
    assert await store.outbox_size() == 0


async def test_unclaimed_entries_are_coalesced(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    await store.apply_ledger_events([event("e1", 1, 10, card=card.number)], NOW, pass_fanout)
    await store.apply_ledger_events([event("e2", 2, 20, card=card.number)], NOW, pass_fanout)
    assert await store.outbox_size() == 1
    [entry] = await drain(store, "w1")

    # Claimed: coalescing has ended for it, the next change enqueues a fresh entry.
    await store.apply_ledger_events([event("e3", 3, 30, card=card.number)], NOW, pass_fanout)
    assert await store.outbox_size() == 2
    [fresh] = await drain(store, "w2")
    assert fresh.id != entry.id and fresh.fields == entry.fields


async def test_coalescing_is_per_pass(store: Store) -> None:
    a, _ = await store.create_card(make_card(1))
    b, _ = await store.create_card(make_card(2))
    await store.apply_ledger_events([event("a1", 1, card=a.number), event("b1", 1, card=b.number)], NOW, pass_fanout)
    await store.apply_ledger_events([event("a2", 2, card=a.number), event("b2", 2, card=b.number)], NOW, pass_fanout)
    assert sorted(e.fields["serial"] for e in await drain(store)) == [a.serial, b.serial]


async def test_ledger_entries_coalesce_with_enqueued_ones_of_the_same_key(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    [waiting] = await store.enqueue(pass_fanout(card), NOW)
    await store.enqueue([note(1)], NOW)  # no key: never merged
    await store.apply_ledger_events([event("e1", 1, card=card.number)], NOW, pass_fanout)
    assert await store.outbox_size() == 2
    assert waiting in {e.id for e in await drain(store)}


async def test_an_event_failing_the_check_is_invalid_and_changes_nothing(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))

    def check(ev: LedgerEvent, c: Card) -> str | None:
        return "tier not in program" if ev.tier == "gold" and c.program == "coffee" else None

    result = await store.apply_ledger_events(
        [event("e1", 1, 10, card=card.number, tier="gold"), event("e2", 2, 20, card=card.number)],
        NOW,
        pass_fanout,
        check,
    )
    assert result.outcomes == [("e1", Outcome.INVALID), ("e2", Outcome.ACCEPTED)]
    assert result.errors == {0: "tier not in program"}
    stored = await store.get_card(card.number)
    assert stored is not None
    assert (stored.version, stored.balance, stored.tier) == (2, 20, card.tier)
    # the invalid id was not recorded: once fixed, it is accepted
    again = await store.apply_ledger_events([event("e1", 3, 30, card=card.number)], NOW, pass_fanout, check)
    assert again.outcomes == [("e1", Outcome.ACCEPTED)]


# -- PassKit registrations ---------------------------------------------------------------------------


async def test_register_is_an_upsert(store: Store) -> None:
    assert await store.register_device("dev", "pass.t", "s1", "tok-1", NOW) is True
    assert await store.register_device("dev", "pass.t", "s1", "tok-2", NOW + 5) is False
    reg = await store.get_registration("dev", "pass.t", "s1")
    assert reg is not None
    assert (reg.device_id, reg.pass_type_id, reg.serial, reg.push_token, reg.updated_at) == (
        "dev",
        "pass.t",
        "s1",
        "tok-2",
        NOW + 5,
    )
    assert await store.count_registrations("s1") == 1
    assert await store.get_registrations("s1") == [reg]


async def test_a_registration_records_its_client_and_push_service(store: Store) -> None:
    await store.register_device("iphone", "pass.t", "s1", "a" * 64, NOW)
    await store.register_device("android", "pass.t", "s1", "fcm:tok-1", NOW, client="walletunion_fcm")
    url = "https://push.passwallet.net"
    await store.register_device("attido", "pass.t", "s1", "pw-1", NOW, client="passwallet", push_service_url=url)
    by_device = {r.device_id: r for r in await store.get_registrations("s1")}
    assert {d: (r.client, r.push_service_url) for d, r in by_device.items()} == {
        "iphone": ("apple", None),
        "android": ("walletunion_fcm", None),
        "attido": ("passwallet", url),
    }
    assert await store.count_registrations_by_client("s1") == {"apple": 1, "walletunion_fcm": 1, "passwallet": 1}
    assert await store.count_registrations_by_client("none") == {}
    await store.create_card(make_card(1, serial="s1"))
    [target] = (await store.pass_targets([("pass.t", "s1")])).values()
    assert sorted((d.device_id, d.client, d.push_service_url) for d in target.devices) == [
        ("android", "walletunion_fcm", None),
        ("attido", "passwallet", url),
        ("iphone", "apple", None),
    ]


async def test_re_registration_moves_the_device_to_its_new_client(store: Store) -> None:
    # Wallet Passes can fall back to PassWallet's path (facts §2): the device then pushes there.
    await store.register_device("dev", "pass.t", "s1", "tok-1", NOW, client="walletpasses")
    url = "https://push.passwallet.net/x"
    assert (
        await store.register_device("dev", "pass.t", "s1", "tok-2", NOW + 1, client="passwallet", push_service_url=url)
        is False
    )
    reg = await store.get_registration("dev", "pass.t", "s1")
    assert reg is not None
    assert (reg.client, reg.push_token, reg.push_service_url) == ("passwallet", "tok-2", url)
    # and back: the URL goes with the client that had it
    await store.register_device("dev", "pass.t", "s1", "tok-3", NOW + 2, client="walletpasses")
    reg = await store.get_registration("dev", "pass.t", "s1")
    assert reg is not None
    assert (reg.client, reg.push_token, reg.push_service_url) == ("walletpasses", "tok-3", None)
    assert await store.count_registrations_by_client("s1") == {"walletpasses": 1}


async def test_registrations_of_a_serial(store: Store) -> None:
    await store.register_device("dev-b", "pass.t", "s1", "tb", NOW)
    await store.register_device("dev-a", "pass.t", "s1", "ta", NOW)
    await store.register_device("dev-a", "pass.other", "s1", "ta", NOW)
    await store.register_device("dev-a", "pass.t", "s2", "ta", NOW)
    regs = await store.get_registrations("s1")
    assert sorted((r.device_id, r.pass_type_id) for r in regs) == [
        ("dev-a", "pass.other"),
        ("dev-a", "pass.t"),
        ("dev-b", "pass.t"),
    ]
    assert await store.count_registrations("s1") == 3
    assert await store.count_registrations("none") == 0
    assert await store.get_registrations("none") == []
    assert await store.get_registration("dev-c", "pass.t", "s1") is None


async def test_unregister(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW)
    assert await store.unregister_device("dev", "pass.t", "s1") is True
    assert await store.unregister_device("dev", "pass.t", "s1") is False
    assert await store.get_registration("dev", "pass.t", "s1") is None
    assert await store.count_registrations("s1") == 0
    assert await store.serials_updated_since("dev", "pass.t", None) == ([], 0)


async def test_remove_registration_if_stale(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok-1", NOW)
    # Another token: the device re-registered with a new one, keep it.
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok-0", NOW + 10) is False
    # Updated at or after the time APNs rejected the token: keep it.
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok-1", NOW) is False
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok-1", NOW - 1) is False
    assert await store.get_registration("dev", "pass.t", "s1") is not None
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok-1", NOW + 0.5) is True
    assert await store.get_registration("dev", "pass.t", "s1") is None
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok-1", NOW + 0.5) is False
    assert await store.serials_updated_since("dev", "pass.t", None) == ([], 0)


async def test_re_registering_refreshes_the_timestamp(store: Store) -> None:
    await store.register_device("dev", "pass.t", "s1", "tok", NOW)
    await store.register_device("dev", "pass.t", "s1", "tok", NOW + 10)
    assert await store.remove_registration_if_stale("dev", "pass.t", "s1", "tok", NOW + 5) is False


async def test_serials_updated_since(store: Store) -> None:
    cards = [(await store.create_card(make_card(i)))[0] for i in range(4)]
    for card in cards[:3]:
        await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    await store.register_device("other-dev", "pass.t", cards[3].serial, "tok", NOW)

    serials, last = await store.serials_updated_since("dev", "pass.t", None)
    assert sorted(serials) == sorted(c.serial for c in cards[:3])
    assert last == max(c.tag for c in cards[:3])
    assert await store.serials_updated_since("dev", "pass.t", last) == ([], 0)
    assert await store.serials_updated_since("dev", "pass.other", None) == ([], 0)
    assert await store.serials_updated_since("nobody", "pass.t", None) == ([], 0)

    # Two cards change after `last`, one after the other: both are reported, not only the newest.
    r0 = await store.apply_ledger_events([event("e0", 1, card=cards[0].number)], NOW)
    r1 = await store.apply_ledger_events([event("e1", 1, card=cards[1].number)], NOW)
    serials, newest = await store.serials_updated_since("dev", "pass.t", last)
    assert sorted(serials) == sorted([cards[0].serial, cards[1].serial])
    assert newest == r1.changed[0].tag > r0.changed[0].tag > last
    assert await store.serials_updated_since("dev", "pass.t", r0.changed[0].tag) == ([cards[1].serial], newest)
    # A device that was not registered for a changed card sees nothing of it.
    await store.apply_ledger_events([event("e3", 1, card=cards[3].number)], NOW)
    assert await store.serials_updated_since("dev", "pass.t", newest) == ([], 0)


async def test_changes_in_the_same_instant_are_all_reported(store: Store) -> None:
    a, _ = await store.create_card(make_card(1))
    b, _ = await store.create_card(make_card(2))
    for card in (a, b):
        await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    _, since = await store.serials_updated_since("dev", "pass.t", None)
    # One batch, one `now`: the store counter still orders the two changes.
    result = await store.apply_ledger_events([event("a", 1, card=a.number), event("b", 1, card=b.number)], NOW)
    serials, last = await store.serials_updated_since("dev", "pass.t", since)
    assert sorted(serials) == sorted([a.serial, b.serial])
    assert last == max(c.tag for c in result.changed)
    # And a change right after, in the same second, is reported after that tag.
    later = await store.apply_ledger_events([event("a2", 2, card=a.number)], NOW)
    assert await store.serials_updated_since("dev", "pass.t", last) == ([a.serial], later.changed[0].tag)


async def test_registration_without_a_card_reports_nothing(store: Store) -> None:
    await store.register_device("dev", "pass.t", "no-such-serial", "tok", NOW)
    assert await store.serials_updated_since("dev", "pass.t", None) == ([], 0)


# -- device logs, app tokens, push journal, pushed tags ------------------------------------------------


async def test_device_logs_are_bounded_newest_first(store: Store) -> None:
    assert await store.list_device_logs(10) == []
    await store.append_device_logs(["one", "two"], NOW, keep=3)
    await store.append_device_logs(["three", "four"], NOW + 1, keep=3)
    assert await store.list_device_logs(10) == [(NOW + 1, "four"), (NOW + 1, "three"), (NOW, "two")]
    assert await store.list_device_logs(1) == [(NOW + 1, "four")]
    await store.append_device_logs(["ünïcode ✓"], NOW + 2, keep=3)
    assert [m for _, m in await store.list_device_logs(10)] == ["ünïcode ✓", "four", "three"]


async def test_app_tokens(store: Store) -> None:
    assert await store.app_tokens("card-1") == []
    await store.add_app_token("card-1", "android", "fcm-1", NOW)
    await store.add_app_token("card-1", "ios", "apns-1", NOW + 1)
    await store.add_app_token("card-2", "android", "fcm-2", NOW)
    tokens = await store.app_tokens("card-1")
    assert [(t.card_number, t.platform, t.token, t.updated_at) for t in tokens] == [
        ("card-1", "android", "fcm-1", NOW),
        ("card-1", "ios", "apns-1", NOW + 1),
    ]
    # Adding a token again refreshes it; a token moved to another card leaves the first one.
    await store.add_app_token("card-1", "android", "fcm-1", NOW + 2)
    await store.add_app_token("card-2", "ios", "apns-1", NOW + 3)
    assert [(t.token, t.updated_at) for t in await store.app_tokens("card-1")] == [("fcm-1", NOW + 2)]
    assert sorted(t.token for t in await store.app_tokens("card-2")) == ["apns-1", "fcm-2"]
    await store.delete_app_token("fcm-1")
    await store.delete_app_token("never-added")
    assert await store.app_tokens("card-1") == []


async def test_push_journal_is_bounded_newest_first(store: Store) -> None:
    for i in range(5):
        await store.record_push({"kind": "apns_pass", "n": i, "ok": True}, NOW + i, keep=3)
    pushes = await store.list_pushes(10)
    assert [p["n"] for p in pushes] == [4, 3, 2]
    assert pushes[0]["kind"] == "apns_pass" and pushes[0]["ok"] is True
    assert [p["n"] for p in await store.list_pushes(2)] == [4, 3]


async def test_last_pushed_tag(store: Store) -> None:
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 0
    await store.mark_pushed("dev", "pass.t", "s1", 7)
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 7
    await store.mark_pushed("dev", "pass.t", "s1", 9)
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 9
    await store.mark_pushed("dev", "pass.t", "s1", 8)  # an older push finishing late
    assert await store.last_pushed_tag("dev", "pass.t", "s1") == 9
    assert await store.last_pushed_tag("dev", "pass.t", "s2") == 0
    assert await store.last_pushed_tag("other", "pass.t", "s1") == 0


async def test_a_new_registration_beyond_the_cap_evicts_the_least_recently_updated(store: Store) -> None:
    for i in range(4):
        assert await store.register_device(f"dev-{i}", "pass.t", "s1", f"tok-{i}", NOW + i, max_devices=4)
    await store.register_device("dev-0", "pass.t", "s1", "tok-0b", NOW + 10, max_devices=4)  # dev-0 vouches again
    await store.register_device("dev-other", "pass.t", "s2", "tok", NOW, max_devices=4)  # another pass: apart
    # the fifth device of s1 pushes out dev-1, the one updated longest ago
    assert await store.register_device("dev-new", "pass.t", "s1", "tok-new", NOW + 20, max_devices=4)
    assert sorted(r.device_id for r in await store.get_registrations("s1")) == ["dev-0", "dev-2", "dev-3", "dev-new"]
    assert await store.serials_updated_since("dev-1", "pass.t", None) == ([], 0)
    # even with a clock running behind, the device that just registered is the one kept
    assert await store.register_device("dev-late", "pass.t", "s1", "tok-late", NOW - 100, max_devices=4)
    assert "dev-late" in {r.device_id for r in await store.get_registrations("s1")}
    assert await store.count_registrations("s1") == 4
    assert await store.count_registrations("s2") == 1
    # an update of a registered device evicts nobody
    assert not await store.register_device("dev-3", "pass.t", "s1", "tok-3b", NOW + 30, max_devices=4)
    assert await store.count_registrations("s1") == 4
