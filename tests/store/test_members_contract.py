"""Members in the storage port, one contract for both adapters: the phone index (create_card with and
without unique_phone, concurrent joins with one phone), batch creation (create_cards), consents, and
the geo jobs' history (list_geo_jobs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cards.model import Card, Member
from store.port import CardConflict, Consent, JobStep, Store
from tests.conftest import StoreFactory

from .conftest import make_card

NOW = 1_700_000_000.0


def member_card(
    i: int, phone: str | None, *, program: str = "coffee", account: str | None = None, **changes: object
) -> Card:
    card = make_card(i, program=program, account=account, **changes)
    return card.with_changes(member=Member(name=f"Member {i}", phone=phone, email=None))


async def next_tag(store: Store, i: int) -> int:
    """The tag the counter hands out next, by creating a card (number i) to see it."""
    card, created = await store.create_card(member_card(i, None))
    assert created
    return card.tag


# -- phone index -----------------------------------------------------------------------------------
async def test_a_created_card_is_indexed_by_its_phone(store: Store) -> None:
    card, created = await store.create_card(member_card(1, "+79001234567"))
    assert created
    assert await store.card_by_phone("coffee", "+79001234567") == card
    assert await store.card_by_phone("coffee", "+79001234568") is None
    assert await store.card_by_phone("tea", "+79001234567") is None  # per program


async def test_the_first_card_with_a_phone_keeps_it(store: Store) -> None:
    first, _ = await store.create_card(member_card(1, "+79001234567"))
    second, created = await store.create_card(member_card(2, "+79001234567"))
    assert created  # without unique_phone a second card with the phone is made (imports, the API)
    assert second.number != first.number
    assert await store.card_by_phone("coffee", "+79001234567") == first


async def test_a_card_without_a_phone_is_not_indexed(store: Store) -> None:
    card, created = await store.create_card(member_card(1, None), unique_phone=True)
    assert created
    again, created_again = await store.create_card(member_card(2, None), unique_phone=True)
    assert created_again and again.number != card.number
    assert await store.card_by_phone("coffee", "") is None


async def test_unique_phone_returns_the_holder_and_writes_nothing(store: Store) -> None:
    holder, _ = await store.create_card(member_card(1, "+79001234567"))
    tag_before = holder.tag
    found, created = await store.create_card(member_card(2, "+79001234567"), unique_phone=True)
    assert (found, created) == (holder, False)
    assert await store.get_card_by_account("acct-2") is None
    assert await store.get_card(member_card(2, None).number) is None
    assert await store.cards_page("coffee", "", 10) == [holder]
    # no tag was spent on it
    assert await next_tag(store, 3) == tag_before + 1


async def test_unique_phone_is_per_program(store: Store) -> None:
    await store.create_card(member_card(1, "+79001234567"))
    tea, created = await store.create_card(member_card(2, "+79001234567", program="tea"), unique_phone=True)
    assert created and tea.program == "tea"
    assert await store.card_by_phone("tea", "+79001234567") == tea


async def test_unique_phone_keeps_the_account_rule_first(store: Store) -> None:
    mine, _ = await store.create_card(member_card(1, "+79001234567"))
    # the same account joining again gets its card, whatever phone it gives now
    again, created = await store.create_card(member_card(9, "+79990000000", account="acct-1"), unique_phone=True)
    assert (again, created) == (mine, False)
    assert await store.card_by_phone("coffee", "+79990000000") is None
    with pytest.raises(CardConflict):
        await store.create_card(member_card(8, "+79001234567", account="acct-1", program="tea"), unique_phone=True)


async def test_unique_phone_still_refuses_a_taken_number(store: Store) -> None:
    await store.create_card(member_card(1, "+79001234567"))
    with pytest.raises(CardConflict):
        await store.create_card(member_card(1, "+79990000000", account="other"), unique_phone=True)
    assert await store.card_by_phone("coffee", "+79990000000") is None


async def test_concurrent_joins_with_one_phone_make_one_card(store: Store) -> None:
    joins = [store.create_card(member_card(i, "+79001234567"), unique_phone=True) for i in range(10)]
    results = await asyncio.gather(*joins)
    created = [card for card, made in results if made]
    assert len(created) == 1
    assert {card.number for card, _ in results} == {created[0].number}
    assert await store.card_by_phone("coffee", "+79001234567") == created[0]
    assert len(await store.cards_page("coffee", "", 100)) == 1


async def test_concurrent_joins_across_store_instances_make_one_card(store_factory: StoreFactory) -> None:
    """Several processes (here: store instances, each its own connection) joining with one phone."""
    stores = [store_factory() for _ in range(3)]
    for opened in stores:
        await opened.open()
    joins = [stores[i % 3].create_card(member_card(i, "+79001234567"), unique_phone=True) for i in range(12)]
    results = await asyncio.gather(*joins)
    assert sum(made for _, made in results) == 1
    assert len({card.number for card, _ in results}) == 1
    assert len(await stores[0].cards_page("coffee", "", 100)) == 1


async def test_concurrent_joins_with_different_phones_all_succeed(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create_card(member_card(i, f"+7900123{i:04d}"), unique_phone=True) for i in range(10))
    )
    assert all(made for _, made in results)
    assert len({card.tag for card, _ in results}) == 10


# -- create_cards ----------------------------------------------------------------------------------
async def test_create_cards_creates_a_batch_with_fresh_tags(store: Store) -> None:
    before, _ = await store.create_card(member_card(0, None))
    batch = [member_card(i, f"+7900000{i:04d}") for i in range(1, 51)]
    results = await store.create_cards(batch)
    assert [created for _, created in results] == [True] * 50
    stored = [card for card, _ in results]
    assert [card.number for card in stored] == [card.number for card in batch]
    tags = [card.tag for card in stored]
    assert tags == sorted(tags) and len(set(tags)) == 50 and tags[0] > before.tag
    for card, original in zip(stored, batch, strict=True):
        assert card == original.with_changes(tag=card.tag)
        assert await store.get_card(card.number) == card
        assert await store.get_card_by_serial(card.serial) == card
        assert await store.get_card_by_account(card.account) == card
        assert await store.card_by_phone("coffee", card.member.phone or "") == card
    assert [c.number for c in await store.cards_page("coffee", "", 100)] == sorted(
        [before.number] + [c.number for c in stored]
    )
    assert await next_tag(store, 99) == tags[-1] + 1


async def test_create_cards_returns_existing_cards_and_creates_an_account_once(store: Store) -> None:
    existing, _ = await store.create_card(member_card(1, None))
    batch = [
        member_card(2, None),
        member_card(7, None, account="acct-1"),  # has card 1
        member_card(3, None),
        member_card(4, None, account="acct-2"),  # twice in the batch: card 2 is created, this finds it
    ]
    results = await store.create_cards(batch)
    assert [created for _, created in results] == [True, False, True, False]
    assert results[1][0] == existing
    assert results[3][0] == results[0][0]
    assert await store.get_card(member_card(4, None).number) is None
    assert await store.get_card(member_card(7, None).number) is None
    # again: everything exists (a re-run of an import killed mid-way)
    again = await store.create_cards(batch)
    assert [created for _, created in again] == [False] * 4
    assert [card for card, _ in again] == [card for card, _ in results]


async def test_create_cards_indexes_phones_first_keeps_them(store: Store) -> None:
    holder, _ = await store.create_card(member_card(1, "+79001111111"))
    results = await store.create_cards(
        [member_card(2, "+79001111111"), member_card(3, "+79002222222"), member_card(4, "+79002222222")]
    )
    assert all(created for _, created in results)
    assert await store.card_by_phone("coffee", "+79001111111") == holder
    assert await store.card_by_phone("coffee", "+79002222222") == results[1][0]


@pytest.mark.parametrize(
    "clash",
    [
        lambda: member_card(1, None, account="other"),  # number of a stored card
        lambda: member_card(50, None, serial="serial-1"),  # serial of a stored card
    ],
)
async def test_create_cards_collision_raises_and_writes_nothing(store: Store, clash: Callable[[], Card]) -> None:
    stored, _ = await store.create_card(member_card(1, "+79001111111"))
    batch = [member_card(10, "+79003333333"), clash(), member_card(11, None)]
    with pytest.raises(CardConflict):
        await store.create_cards(batch)
    assert await store.cards_page("coffee", "", 100) == [stored]
    assert await store.get_card_by_account("acct-10") is None
    assert await store.card_by_phone("coffee", "+79003333333") is None
    assert await next_tag(store, 12) == stored.tag + 1


async def test_create_cards_collision_inside_the_batch_raises(store: Store) -> None:
    with pytest.raises(CardConflict):
        await store.create_cards([member_card(1, None), member_card(1, None, account="other")])
    with pytest.raises(CardConflict):
        await store.create_cards([member_card(1, None), member_card(2, None, serial="serial-1")])
    assert await store.cards_page("coffee", "", 10) == []


async def test_create_cards_account_in_another_program_raises(store: Store) -> None:
    await store.create_card(member_card(1, None, program="tea"))
    with pytest.raises(CardConflict):
        await store.create_cards([member_card(2, None), member_card(3, None, account="acct-1")])
    assert await store.cards_page("coffee", "", 10) == []
    with pytest.raises(CardConflict):
        await store.create_cards([member_card(4, None), member_card(5, None, account="acct-4", program="tea")])
    assert await store.cards_page("coffee", "", 10) == []


async def test_create_cards_empty_batch(store: Store) -> None:
    assert await store.create_cards([]) == []


async def test_create_cards_large_batch_in_one_call(store: Store) -> None:
    batch = [member_card(i, f"+7901{i:07d}") for i in range(2_000)]
    results = await store.create_cards(batch)
    assert sum(created for _, created in results) == 2_000
    assert len({card.tag for card, _ in results}) == 2_000
    page = await store.cards_page("coffee", "", 5_000)
    assert len(page) == 2_000


# -- consents --------------------------------------------------------------------------------------
async def test_consents_are_appended_in_order(store: Store) -> None:
    card, _ = await store.create_card(member_card(1, "+79001234567"))
    first = [
        Consent("terms", None, True, "v1", NOW),
        Consent("marketing", "sms", True, "v1", NOW),
        Consent("marketing", "email", False, "v1", NOW),
    ]
    await store.add_consents(card.number, first)
    later = [Consent("marketing", "sms", False, "v2", NOW + 60, source="activate")]
    await store.add_consents(card.number, later)
    await store.add_consents(card.number, [])
    assert await store.consents(card.number) == first + later
    assert await store.consents("nobody") == []


async def test_consents_survive_reopening(store_factory: StoreFactory) -> None:
    writer = store_factory()
    await writer.open()
    await writer.add_consents("4000", [Consent("terms", None, True, "2024-01", 1.5, source="import")])
    await writer.close()
    reader = store_factory()
    await reader.open()
    assert await reader.consents("4000") == [Consent("terms", None, True, "2024-01", 1.5, source="import")]


# -- list_geo_jobs ---------------------------------------------------------------------------------
async def test_list_geo_jobs_newest_first_with_filters(store: Store) -> None:
    await store.add_geo_job("m1", "coffee", "message", {"text": "a"}, NOW)
    await store.add_geo_job("m2", "tea", "message", {"text": "b"}, NOW + 1)
    await store.put_campaign({"id": "c1", "program": "coffee"}, NOW + 2)  # job campaigns:coffee
    await store.add_geo_job("m3", "coffee", "message", {"text": "c"}, NOW + 3)
    await store.add_geo_job("m0b", "coffee", "message", {}, NOW)  # same created_at as m1: id descending

    jobs = await store.list_geo_jobs()
    assert [job.id for job in jobs] == ["m3", "campaigns:coffee", "m2", "m1", "m0b"]
    assert jobs[0].payload == {"text": "c"} and jobs[0].created_at == NOW + 3
    assert [job.id for job in await store.list_geo_jobs("coffee")] == ["m3", "campaigns:coffee", "m1", "m0b"]
    assert [job.id for job in await store.list_geo_jobs(kind="campaigns")] == ["campaigns:coffee"]
    assert [job.id for job in await store.list_geo_jobs("coffee", "message", limit=2)] == ["m3", "m1"]
    assert [job.id for job in await store.list_geo_jobs("tea", "campaigns")] == []
    assert await store.list_geo_jobs(limit=0) == []
    assert await store.list_geo_jobs() == [await store.get_geo_job(job.id) for job in jobs]


async def test_list_geo_jobs_keeps_done_and_restarted_jobs(store: Store) -> None:
    await store.put_campaign({"id": "c1", "program": "coffee"}, NOW)
    await store.add_geo_job("m1", "coffee", "message", {}, NOW + 1)
    claimed = await store.claim_geo_job("w", 60, NOW + 2)
    assert claimed is not None and claimed.id == "campaigns:coffee"
    assert (await store.update_cards([], NOW + 2, step=JobStep("campaigns:coffee", "w", "9", done=True))).advanced
    jobs = await store.list_geo_jobs()
    assert [(job.id, job.done) for job in jobs] == [("m1", False), ("campaigns:coffee", True)]
    await store.restart_campaigns_job("coffee", NOW + 10)  # restarted: keeps its created_at
    jobs = await store.list_geo_jobs()
    assert [(job.id, job.done, job.created_at) for job in jobs] == [
        ("m1", False, NOW + 1),
        ("campaigns:coffee", False, NOW),
    ]


async def test_list_geo_jobs_pages_past_unmatched_jobs(store: Store) -> None:
    for i in range(450):
        await store.add_geo_job(f"t{i:04d}", "tea", "message", {}, NOW + i)
    await store.add_geo_job("c-old", "coffee", "message", {}, NOW - 1)
    assert [job.id for job in await store.list_geo_jobs("coffee")] == ["c-old"]
    assert len(await store.list_geo_jobs(limit=1000)) == 451
    assert [job.id for job in await store.list_geo_jobs(limit=3)] == ["t0449", "t0448", "t0447"]
