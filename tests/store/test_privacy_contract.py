"""Erasure of a member's personal data (erase_member, DELETE /v1/members/{card}), against every
adapter: what is scrubbed, what stays (number, ledger figures, registrations), and that a second
erasure writes nothing."""

from __future__ import annotations

import json
import time

from cards.model import Card, Member, next_modified_at
from ledger.decide import LedgerEvent, Outcome
from store.port import AlertRecord, Consent, ImportJob, NewEntry, Store

from .conftest import make_card, note, pass_fanout

NOW = 1_700_000_000.0
ERASED_AT = NOW + 100.5
PHONE = "+79001234567"


def enroll_entry(card_number: str, name: str = "Anna") -> NewEntry:
    """An enrolment announcement as push/kinds/enroll_webhook.py enqueues it: it carries the member's data."""
    key = json.dumps(["enroll_webhook", card_number], separators=(",", ":"))
    return NewEntry("enroll_webhook", {"card_number": card_number, "name": name, "phone": PHONE}, coalesce_key=key)


def member_card(i: int, phone: str | None = PHONE, **changes: object) -> Card:
    return make_card(i).with_changes(
        member=Member(name=f"Anna {i}", phone=phone, email=f"anna{i}@example.com"),
        app_token=f"app-secret-{i}",
        area=(55.75, 37.62),
        balance=120,
        tier="gold",
        **changes,
    )


async def setup_member(store: Store, i: int = 1) -> Card:
    card, created = await store.create_card(member_card(i))
    assert created
    await store.add_consents(
        card.number, [Consent("terms", None, True, "v1", NOW), Consent("marketing", "sms", True, "v1", NOW)]
    )
    await store.add_app_token(card.number, "android", f"fcm-{i}", NOW)
    await store.add_app_token(card.number, "ios", f"apns-{i}", NOW)
    assert await store.reserve_alert(card.number, AlertRecord(NOW, "c1", "st1"), lambda records: None, 0) is None
    await store.register_device(f"dev-{i}", "pass.t", card.serial, f"tok-{i}", NOW, program="coffee", tier="gold")
    return card


async def drain(store: Store) -> list:
    return await store.claim_outbox("drain", 1000, 60, time.time())


async def test_an_unknown_card_is_none(store: Store) -> None:
    assert await store.erase_member("4000000000099999", NOW) is None


async def test_erasure_scrubs_the_members_personal_data_and_keeps_the_figures(store: Store) -> None:
    card = await setup_member(store)
    result = await store.apply_ledger_events(
        [LedgerEvent(id="e1", version=1, balance=250, card_number=card.number)], NOW + 1
    )
    assert dict(result.outcomes) == {"e1": Outcome.ACCEPTED}
    before = await store.get_card(card.number)
    assert before is not None
    fanned: list[Card] = []

    def fanout(changed: Card) -> list[NewEntry]:
        fanned.append(changed)
        return pass_fanout(changed)

    erasure = await store.erase_member(card.number, ERASED_AT, fanout)
    assert erasure is not None and erasure.erased is True
    erased = erasure.card
    assert erased.member == Member(name="") and erased.member.phone is None and erased.member.email is None
    assert (erased.app_token, erased.area, erased.erased_at) == ("", None, int(ERASED_AT))
    # identity and ledger figures stay
    assert (erased.number, erased.serial, erased.account, erased.program) == (
        card.number,
        card.serial,
        card.account,
        card.program,
    )
    assert (erased.balance, erased.version, erased.tier) == (250, 1, "gold")
    assert erased.tag > before.tag
    assert erased.modified_at == next_modified_at(before.modified_at, ERASED_AT)
    assert await store.get_card(card.number) == erased
    assert await store.get_card_by_serial(card.serial) == erased
    assert await store.get_card_by_account(card.account) == erased
    # the erased card, but for its tag: fanout never reads it (an adapter may assign it at commit)
    assert [c.with_changes(tag=erased.tag) for c in fanned] == [erased]
    # what is deleted
    assert await store.card_by_phone("coffee", PHONE) is None
    assert await store.consents(card.number) == []
    assert await store.app_tokens(card.number) == []
    assert await store.alert_records(card.number) == []
    # registrations stay: the void push needs them
    assert [r.device_id for r in await store.get_registrations(card.serial)] == ["dev-1"]
    [entry] = await drain(store)
    assert (entry.kind, entry.fields) == ("pass_update", {"pass_type_id": "pass.t", "serial": card.serial})


async def test_a_second_erasure_writes_nothing(store: Store) -> None:
    card = await setup_member(store)
    first = await store.erase_member(card.number, ERASED_AT, pass_fanout)
    assert first is not None and first.erased
    await store.ack_outbox([e.id for e in await drain(store)])
    size = await store.outbox_size()
    again = await store.erase_member(card.number, ERASED_AT + 50, pass_fanout)
    assert again is not None and again.erased is False
    assert again.card == first.card  # the same tag, modified_at and erased_at
    assert await store.get_card(card.number) == first.card
    assert await store.outbox_size() == size == 0


async def test_the_new_tag_is_reported_to_registered_devices(store: Store) -> None:
    card = await setup_member(store)
    tag = (await store.pass_targets([("pass.t", card.serial)]))[("pass.t", card.serial)].tag
    erasure = await store.erase_member(card.number, ERASED_AT)
    assert erasure is not None
    assert (await store.pass_targets([("pass.t", card.serial)]))[("pass.t", card.serial)].tag == erasure.card.tag > tag
    serials, last = await store.serials_updated_since("dev-1", "pass.t", tag)
    assert (serials, last) == ([card.serial], erasure.card.tag)


async def test_only_the_phone_index_entry_of_the_erased_card_goes(store: Store) -> None:
    holder = await setup_member(store, 1)
    other, created = await store.create_card(member_card(2))  # the same phone: the first card keeps it
    assert created
    assert await store.erase_member(other.number, ERASED_AT) is not None
    assert await store.card_by_phone("coffee", PHONE) == holder
    erasure = await store.erase_member(holder.number, ERASED_AT)
    assert erasure is not None and erasure.erased
    assert await store.card_by_phone("coffee", PHONE) is None
    # the phone is free again: a new member may join with it
    joined, created = await store.create_card(member_card(3), unique_phone=True)
    assert created and await store.card_by_phone("coffee", PHONE) == joined


async def test_other_members_data_stays(store: Store) -> None:
    card = await setup_member(store, 1)
    other = await setup_member(store, 2)
    kept = await store.get_card(other.number)
    assert kept is not None
    await store.erase_member(card.number, ERASED_AT)
    assert await store.get_card(kept.number) == kept
    assert len(await store.consents(kept.number)) == 2
    assert len(await store.app_tokens(kept.number)) == 2
    assert len(await store.alert_records(kept.number)) == 1


async def test_the_waiting_enrolment_announcement_is_removed_and_other_entries_stay(store: Store) -> None:
    card = await setup_member(store, 1)
    other = await setup_member(store, 2)
    await store.enqueue(
        [enroll_entry(card.number), enroll_entry(other.number, "Boris"), note(1), note(2, key="some-key")], NOW
    )
    assert await store.outbox_size() == 4
    erasure = await store.erase_member(card.number, ERASED_AT)
    assert erasure is not None and erasure.erased
    entries = await drain(store)
    assert sorted((e.kind, e.fields.get("card_number", e.fields.get("n"))) for e in entries) == [
        ("enroll_webhook", other.number),
        ("note", "1"),
        ("note", "2"),
    ]


async def test_import_rows_of_unfinished_jobs_lose_the_members_personal_fields(store: Store) -> None:
    card = await setup_member(store, 1)

    def row(line: int, account: str) -> dict[str, object]:
        return {
            "line": line,
            "account": account,
            "name": "Anna",
            "phone": PHONE,
            "email": "anna@example.com",
            "balance": 5,
            "tier": "base",
            "locale": "ru",
        }

    rows = [row(2, "someone-else"), row(3, card.account)] + [row(4 + i, f"acct-x{i}") for i in range(600)]
    assert await store.create_import_job(ImportJob("running", "coffee", "running", len(rows), 0, NOW, NOW), rows)
    assert await store.create_import_job(ImportJob("validating", "coffee", "validating", 1, 0, NOW, NOW), [rows[1]])
    erasure = await store.erase_member(card.number, ERASED_AT)
    assert erasure is not None and erasure.erased
    for job_id, count in (("running", len(rows)), ("validating", 1)):
        stored = await store.import_rows(job_id, 0, 1000)
        assert len(stored) == count
        [mine] = [r for r in stored if r["account"] == card.account]
        assert all(mine.get(key) in (None, "") for key in ("name", "phone", "email"))
        assert (mine["line"], mine["balance"], mine["tier"]) == (3, 5, "base")  # the rest of the row stays
    # the other members' rows are as they were
    assert (await store.import_rows("running", 0, 1))[0] == rows[0]
    assert await store.import_rows("running", 2, 1000) == rows[2:]


async def test_the_ledger_still_moves_an_erased_card(store: Store) -> None:
    card = await setup_member(store)
    erasure = await store.erase_member(card.number, ERASED_AT)
    assert erasure is not None
    result = await store.apply_ledger_events(
        [LedgerEvent(id="e9", version=5, balance=999, card_number=card.number)], ERASED_AT + 1
    )
    assert dict(result.outcomes) == {"e9": Outcome.ACCEPTED}
    stored = await store.get_card(card.number)
    assert stored is not None
    assert (stored.balance, stored.member, stored.erased_at) == (999, Member(name=""), int(ERASED_AT))
    again = await store.erase_member(card.number, ERASED_AT + 5)
    assert again is not None and again.erased is False and again.card == stored
