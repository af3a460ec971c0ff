"""Vouchers (gift certificates, offers) in the storage port, one contract for both adapters: creation
(idempotent per kind and id, tags from the card counter, fanout in the same commit), reads, the
compare-and-set update, and their serials in PassKit exactly as cards' (registrations, serials
updated since, pass targets, registration counts)."""

from __future__ import annotations

import time

import pytest

from cards.model import next_modified_at
from push.messages import PassUpdate, entry
from store.port import CardConflict, CardUpdate, NewEntry, Store, StoreError, Voucher
from tests.conftest import StoreFactory

from .conftest import make_card, note, pass_fanout

NOW = 1_700_000_000.0


def voucher(i: int, *, kind: str = "certificate", card: str | None = "4000000000000001", **changes: object) -> Voucher:
    made = Voucher(
        id=f"v{i}",
        kind=kind,
        serial=f"vserial-{kind}-{i}",
        auth_token=f"vtoken-{i}",
        program="coffee",
        card_number=card,
        data={"code": f"GIFT-{i}", "amount": 1000 + i, "currency": "RUB", "title": "Gift"},
        created_at=1_600_000_000,
        modified_at=1_600_000_000,
    )
    return Voucher(**{**made.__dict__, **changes})


async def drain(store: Store) -> list:
    return await store.claim_outbox("drain", 1000, 60, time.time() + 3600)


# -- creation and reads ----------------------------------------------------------------------------
async def test_create_voucher_takes_a_tag_from_the_card_counter(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    made, created = await store.create_voucher(voucher(1, card=card.number), NOW)
    assert created
    assert made.tag == card.tag + 1
    assert made == voucher(1, card=card.number, tag=made.tag)
    later, _ = await store.create_card(make_card(2))
    assert later.tag == made.tag + 1


async def test_create_voucher_again_returns_the_stored_one(store: Store) -> None:
    made, _ = await store.create_voucher(voucher(1), NOW)
    again, created = await store.create_voucher(voucher(1, data={"code": "OTHER"}, serial="vserial-new"), NOW + 1)
    assert (again, created) == (made, False)
    assert await store.get_voucher_by_serial("vserial-new") is None
    # the same id of another kind is another voucher
    offer, created_offer = await store.create_voucher(voucher(1, kind="offer"), NOW)
    assert created_offer and offer.tag > made.tag
    assert await store.get_voucher("certificate", "v1") == made
    assert await store.get_voucher("offer", "v1") == offer


async def test_create_voucher_enqueues_its_fanout_in_the_commit(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))

    def fanout(v: object) -> list[NewEntry]:
        # the voucher's own pass, and its holder's card announced (PassUpdate of the card's serial)
        return [*pass_fanout(v), entry(PassUpdate("pass.t", card.serial))]  # type: ignore[arg-type]

    made, _ = await store.create_voucher(voucher(1, card=card.number), NOW, fanout)
    entries = await drain(store)
    assert sorted(e.fields["serial"] for e in entries) == sorted([made.serial, card.serial])
    await store.ack_outbox([e.id for e in entries])
    # a second create writes nothing and enqueues nothing
    await store.create_voucher(voucher(1, card=card.number), NOW, fanout)
    assert await store.outbox_size() == 0


async def test_reads_by_kind_id_serial_and_card(store: Store) -> None:
    assert await store.get_voucher("certificate", "v1") is None
    assert await store.get_voucher_by_serial("vserial-certificate-1") is None
    assert await store.vouchers_of_card("4000000000000001") == []
    a, _ = await store.create_voucher(voucher(3), NOW)
    b, _ = await store.create_voucher(voucher(1, kind="offer"), NOW)
    other, _ = await store.create_voucher(voucher(2, card="4000000000000002"), NOW)
    c, _ = await store.create_voucher(voucher(0), NOW)
    loose, _ = await store.create_voucher(voucher(9, card=None), NOW)
    assert await store.get_voucher_by_serial(a.serial) == a
    assert await store.get_voucher_by_serial(loose.serial) == loose and loose.card_number is None
    assert await store.vouchers_of_card("4000000000000001") == [a, b, c]  # oldest first
    assert await store.vouchers_of_card("4000000000000002") == [other]
    assert await store.get_voucher_by_serial("serial-1") is None  # a card's serial is not a voucher


async def test_a_taken_serial_is_refused(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    with pytest.raises(StoreError):
        await store.create_voucher(voucher(1, serial=card.serial), NOW)
    made, _ = await store.create_voucher(voucher(2), NOW)
    with pytest.raises(StoreError):
        await store.create_voucher(voucher(3, serial=made.serial), NOW)
    assert await store.get_voucher("certificate", "v1") is None
    assert await store.get_voucher("certificate", "v3") is None
    # and a card may not take a voucher's serial, alone or in a batch
    with pytest.raises(CardConflict):
        await store.create_card(make_card(5, serial=made.serial))
    with pytest.raises(CardConflict):
        await store.create_cards([make_card(6), make_card(7, serial=made.serial)])
    assert await store.get_card_by_account("acct-6") is None


async def test_vouchers_survive_reopening(store_factory: StoreFactory) -> None:
    writer = store_factory()
    await writer.open()
    made, _ = await writer.create_voucher(voucher(1, voided=True, data={"nested": {"a": [1, 2]}, "pin": "0042"}), NOW)
    await writer.close()
    reader = store_factory()
    await reader.open()
    assert await reader.get_voucher("certificate", "v1") == made
    assert await reader.get_voucher_by_serial(made.serial) == made


# -- compare-and-set update ------------------------------------------------------------------------
async def test_update_voucher_bumps_the_tag_and_enqueues(store: Store) -> None:
    made, _ = await store.create_voucher(voucher(1), NOW)
    card, _ = await store.create_card(make_card(1))
    now = 1_700_000_500.0
    changed = voucher(
        1, data={"code": "GIFT-1", "amount": 0, "redeemed": True}, voided=True, serial="ignored", card="ignored"
    )
    updated = await store.update_voucher(changed, made.tag, now, pass_fanout)
    assert updated is not None
    assert updated.tag > card.tag > made.tag
    assert (updated.data, updated.voided) == ({"code": "GIFT-1", "amount": 0, "redeemed": True}, True)
    # identity is the store's
    assert (updated.serial, updated.card_number, updated.auth_token, updated.program, updated.created_at) == (
        made.serial,
        made.card_number,
        made.auth_token,
        made.program,
        made.created_at,
    )
    assert updated.modified_at == next_modified_at(made.modified_at, now)
    assert await store.get_voucher("certificate", "v1") == updated
    assert await store.get_voucher_by_serial(made.serial) == updated
    assert await store.vouchers_of_card(made.card_number or "") == [updated]
    entries = await drain(store)
    assert [(e.kind, e.fields) for e in entries] == [("pass_update", {"pass_type_id": "pass.t", "serial": made.serial})]


async def test_update_voucher_with_a_moved_tag_returns_none(store: Store) -> None:
    made, _ = await store.create_voucher(voucher(1), NOW)
    first = await store.update_voucher(voucher(1, data={"n": 1}), made.tag, NOW, pass_fanout)
    assert first is not None
    await store.ack_outbox([e.id for e in await drain(store)])
    stale = await store.update_voucher(voucher(1, data={"n": 2}), made.tag, NOW, pass_fanout)
    assert stale is None
    assert await store.get_voucher("certificate", "v1") == first
    assert await store.outbox_size() == 0
    assert await store.update_voucher(voucher(7), 1, NOW) is None  # gone (never was)
    second = await store.update_voucher(voucher(1, data={"n": 3}), first.tag, NOW)
    assert second is not None and second.tag > first.tag and second.data == {"n": 3}


async def test_update_voucher_fanout_coalesces(store: Store) -> None:
    made, _ = await store.create_voucher(voucher(1), NOW)
    one = await store.update_voucher(voucher(1, data={"n": 1}), made.tag, NOW, pass_fanout)
    assert one is not None
    two = await store.update_voucher(voucher(1, data={"n": 2}), one.tag, NOW, pass_fanout)
    assert two is not None
    three = await store.update_voucher(voucher(1, data={"n": 3}), two.tag, NOW, lambda v: [note(1)])
    assert three is not None
    assert sorted(e.kind for e in await drain(store)) == ["note", "pass_update"]


# -- PassKit: a voucher's serial works as a card's -------------------------------------------------
async def test_serials_updated_since_reports_voucher_serials(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    made, _ = await store.create_voucher(voucher(1, card=card.number), NOW)
    assert await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    assert await store.register_device("dev", "pass.t", made.serial, "tok", NOW)
    assert await store.register_device("dev", "pass.other", made.serial, "tok", NOW)
    assert await store.count_registrations(made.serial) == 2
    assert await store.count_registrations_by_client(made.serial) == {"apple": 2}

    serials, last = await store.serials_updated_since("dev", "pass.t", None)
    assert serials == [card.serial, made.serial] and last == made.tag > card.tag
    assert await store.serials_updated_since("dev", "pass.t", card.tag) == ([made.serial], made.tag)
    assert await store.serials_updated_since("dev", "pass.t", made.tag) == ([], 0)

    updated = await store.update_voucher(voucher(1, card=card.number, voided=True), made.tag, NOW)
    assert updated is not None
    assert await store.serials_updated_since("dev", "pass.t", made.tag) == ([made.serial], updated.tag)
    # a card change after it is reported after it
    [event_card] = (await store.update_cards([CardUpdate(card.tag, card.with_changes(balance=5))], NOW)).cards
    assert event_card is not None
    assert await store.serials_updated_since("dev", "pass.t", None) == (
        [made.serial, card.serial],
        event_card.tag,
    )
    assert await store.unregister_device("dev", "pass.t", made.serial)
    assert await store.serials_updated_since("dev", "pass.t", card.tag) == ([card.serial], event_card.tag)


async def test_pass_targets_give_a_vouchers_tag_and_devices(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    made, _ = await store.create_voucher(voucher(1, card=card.number), NOW)
    await store.register_device("d1", "pass.t", made.serial, "tok1", NOW)
    await store.register_device("d2", "pass.t", made.serial, "tok2", NOW, client="passwallet")
    await store.register_device("d3", "pass.t", card.serial, "tok3", NOW)
    await store.mark_pushed("d1", "pass.t", made.serial, made.tag)
    targets = await store.pass_targets(
        [("pass.t", made.serial), ("pass.t", card.serial), ("pass.t", "nothing"), ("pass.x", made.serial)]
    )
    v = targets[("pass.t", made.serial)]
    assert v.tag == made.tag
    assert [(d.device_id, d.push_token, d.pushed_tag, d.client) for d in v.devices] == [
        ("d1", "tok1", made.tag, "apple"),
        ("d2", "tok2", 0, "passwallet"),
    ]
    assert targets[("pass.t", card.serial)].tag == card.tag
    assert [d.device_id for d in targets[("pass.t", card.serial)].devices] == ["d3"]
    assert targets[("pass.t", "nothing")].tag == 0
    assert targets[("pass.x", made.serial)].tag == made.tag
    assert targets[("pass.x", made.serial)].devices == ()
    updated = await store.update_voucher(voucher(1, card=card.number, data={}), made.tag, NOW)
    assert updated is not None
    assert (await store.pass_targets([("pass.t", made.serial)]))[("pass.t", made.serial)].tag == updated.tag


async def test_registrations_for_a_voucher_serial(store: Store) -> None:
    made, _ = await store.create_voucher(voucher(1), NOW)
    assert await store.register_device("dev", "pass.t", made.serial, "tok", NOW, max_devices=2)
    assert not await store.register_device("dev", "pass.t", made.serial, "tok2", NOW + 1)
    reg = await store.get_registration("dev", "pass.t", made.serial)
    assert reg is not None and reg.push_token == "tok2"
    assert [r.device_id for r in await store.get_registrations(made.serial)] == ["dev"]
    assert await store.remove_registration_if_stale("dev", "pass.t", made.serial, "tok2", NOW + 2)
    assert await store.count_registrations(made.serial) == 0
