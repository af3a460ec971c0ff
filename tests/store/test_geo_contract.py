"""The geo part of the storage port, one contract for both adapters: the geo generation and the
job restarts every campaign or store-location write makes, campaigns, geo jobs and their
leases, paging a program's cards, compare-and-set card updates with job steps, ledger commits
with `derive` and a geo generation, and the per-card alert reservation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import redis

from cards.model import Card, next_modified_at
from geo.locations import StoreLocation
from ledger.decide import LedgerEvent, Outcome
from store.port import ALERTS_KEPT, AlertRecord, CardUpdate, GeoChanged, JobStep, Store
from store.redis import RedisStore
from tests.conftest import REDIS_URL

from .conftest import make_card, pass_fanout

NOW = 1_700_000_000.0


def campaign(cid: str, program: str = "coffee", **extra: object) -> dict[str, object]:
    return {"id": cid, "program": program, "title": f"Campaign {cid}", **extra}


def shop(i: int, program: str = "coffee") -> StoreLocation:
    return StoreLocation(id=f"s{i}", program=program, name=f"Shop {i}", lat=55.75, lon=37.62)


def ledger_event(event_id: str, card: str, version: int, balance: int) -> LedgerEvent:
    return LedgerEvent(id=event_id, version=version, balance=balance, card_number=card)


async def drain(store: Store) -> list:
    return await store.claim_outbox("drain", 1000, 60, time.time() + 3600)


async def created(store: Store, i: int) -> Card:
    card, _ = await store.create_card(make_card(i))
    return card


# -- geo generation and job restarts -------------------------------------------------------------
async def test_every_geo_write_advances_the_generation_and_reads_do_not(store: Store) -> None:
    assert await store.geo_generation() == 0
    steps = [
        store.put_campaign(campaign("c1"), NOW),
        store.put_campaign(campaign("c1", title="again"), NOW),
        store.delete_campaign("c1", NOW),
        store.put_store_location(shop(1)),
        store.put_store_locations([shop(2), shop(3)]),
        store.delete_store_location("s1"),
        store.restart_campaigns_job("coffee", NOW),
    ]
    for expected, write in enumerate(steps, start=1):
        await write
        assert await store.geo_generation() == expected
    await store.get_campaign("c1")
    await store.list_campaigns()
    await store.list_store_locations()
    await store.store_locations_near(55.75, 37.62, 100)
    await store.get_geo_job("campaigns:coffee")
    await store.cards_page("coffee", "", 10)
    # writes that find nothing to change write nothing
    assert await store.delete_campaign("nope", NOW) is False
    assert await store.delete_store_location("nope") is False
    assert await store.geo_generation() == len(steps)


async def test_a_campaign_write_creates_its_programs_job(store: Store) -> None:
    assert await store.get_geo_job("campaigns:coffee") is None
    await store.put_campaign(campaign("c1"), NOW)
    job = await store.get_geo_job("campaigns:coffee")
    assert job is not None
    assert (job.id, job.program, job.kind, job.payload, job.cursor, job.created_at, job.done) == (
        "campaigns:coffee",
        "coffee",
        "campaigns",
        {},
        "",
        NOW,
        False,
    )


async def test_restart_rewinds_a_job_and_keeps_its_lease_and_creation(store: Store) -> None:
    await store.put_campaign(campaign("c1"), NOW)
    claimed = await store.claim_geo_job("w1", 60, NOW)
    assert claimed is not None and claimed.id == "campaigns:coffee"
    step = JobStep("campaigns:coffee", "w1", "4000", done=True)
    assert (await store.update_cards([], NOW + 1, step=step)).advanced
    done = await store.get_geo_job("campaigns:coffee")
    assert done is not None and (done.cursor, done.done) == ("4000", True)
    assert await store.claim_geo_job("w1", 60, NOW + 2) is None  # done jobs are not claimed

    await store.put_campaign(campaign("c2"), NOW + 5)
    restarted = await store.get_geo_job("campaigns:coffee")
    assert restarted is not None
    assert (restarted.cursor, restarted.done, restarted.created_at) == ("", False, NOW)
    # the lease is kept: another worker cannot take it, its holder can go on
    assert await store.claim_geo_job("w2", 60, NOW + 6) is None
    again = await store.claim_geo_job("w1", 60, NOW + 6)
    assert again is not None and again.id == "campaigns:coffee"


async def test_campaign_moved_to_another_program_restarts_both(store: Store) -> None:
    await store.put_campaign(campaign("c1", "coffee"), NOW)
    await store.update_cards([], NOW, step=None)
    await store.claim_geo_job("w", 60, NOW)
    assert (await store.update_cards([], NOW, step=JobStep("campaigns:coffee", "w", "9", done=True))).advanced
    await store.put_campaign(campaign("c1", "tea"), NOW + 1)
    coffee, tea = await store.get_geo_job("campaigns:coffee"), await store.get_geo_job("campaigns:tea")
    assert coffee is not None and (coffee.cursor, coffee.done) == ("", False)
    assert tea is not None and (tea.cursor, tea.done, tea.created_at) == ("", False, NOW + 1)
    assert [c["id"] for c in await store.list_campaigns("coffee")] == []
    assert [c["id"] for c in await store.list_campaigns("tea")] == ["c1"]

    await store.claim_geo_job("w", 60, NOW + 2)
    await store.update_cards([], NOW + 2, step=JobStep("campaigns:coffee", "w", "9", done=True))
    await store.delete_campaign("c1", NOW + 3)  # a delete restarts the program it was in
    coffee = await store.get_geo_job("campaigns:coffee")
    assert coffee is not None and coffee.done is True
    tea = await store.get_geo_job("campaigns:tea")
    assert tea is not None and tea.done is False


async def test_store_location_writes_restart_their_programs(store: Store) -> None:
    await store.put_store_locations([shop(1, "coffee"), shop(2, "tea")])
    assert {j.program for j in [await store.get_geo_job(f"campaigns:{p}") for p in ("coffee", "tea")] if j} == {
        "coffee",
        "tea",
    }
    for program in ("coffee", "tea"):
        await store.claim_geo_job("w", 60, NOW)
        step = JobStep(f"campaigns:{program}", "w", "9", done=True)
        assert (await store.update_cards([], NOW, step=step)).advanced

    async def open_programs() -> set[str]:
        jobs = [await store.get_geo_job(f"campaigns:{p}") for p in ("coffee", "tea", "juice")]
        return {job.program for job in jobs if job is not None and not job.done}

    assert await open_programs() == set()
    await store.put_store_location(shop(1, "juice"))  # moved: its old and new program
    assert await open_programs() == {"coffee", "juice"}
    for program in ("coffee", "juice"):
        await store.claim_geo_job("w", 60, NOW)
        await store.update_cards([], NOW, step=JobStep(f"campaigns:{program}", "w", "9", done=True))
    await store.delete_store_location("s2")
    assert await open_programs() == {"tea"}


# -- campaigns -----------------------------------------------------------------------------------
async def test_campaign_crud_order_and_filter(store: Store) -> None:
    first = campaign("c2", extra={"nested": [1, 2.5, None]}, name="Кофе ☕")
    assert await store.put_campaign(first, NOW) is True
    assert await store.get_campaign("c2") == first
    replaced = {"id": "c2", "program": "coffee"}
    assert await store.put_campaign(replaced, NOW) is False
    assert await store.get_campaign("c2") == replaced  # whole
    for cid, program in [("b", "tea"), ("a", "coffee"), ("c10", "coffee"), ("Z", "tea")]:
        await store.put_campaign(campaign(cid, program), NOW)
    assert [c["id"] for c in await store.list_campaigns()] == ["Z", "a", "b", "c10", "c2"]
    assert [c["id"] for c in await store.list_campaigns("coffee")] == ["a", "c10", "c2"]
    assert [c["id"] for c in await store.list_campaigns("tea")] == ["Z", "b"]
    assert await store.list_campaigns("none") == []
    assert await store.delete_campaign("c2", NOW) is True
    assert await store.delete_campaign("c2", NOW) is False
    assert await store.get_campaign("c2") is None
    assert [c["id"] for c in await store.list_campaigns("coffee")] == ["a", "c10"]


async def test_campaign_data_survives_reopen(store_factory) -> None:
    first = store_factory()
    await first.open()
    await first.put_campaign(campaign("c1", payload={}), NOW)
    await first.close()
    second = store_factory()
    await second.open()
    assert await second.get_campaign("c1") == campaign("c1", payload={})
    assert await second.geo_generation() == 1


# -- jobs ----------------------------------------------------------------------------------------
async def test_add_geo_job_is_idempotent_by_id(store: Store) -> None:
    payload = {"text": "Hello", "segment": {"tier": ["gold"]}, "empty": {}}
    assert await store.add_geo_job("message:1", "coffee", "message", payload, NOW) is True
    assert await store.add_geo_job("message:1", "tea", "other", {}, NOW + 1) is False
    job = await store.get_geo_job("message:1")
    assert job is not None
    assert (job.program, job.kind, job.payload, job.cursor, job.created_at, job.done) == (
        "coffee",
        "message",
        payload,
        "",
        NOW,
        False,
    )
    assert await store.get_geo_job("message:2") is None
    assert await store.geo_generation() == 0  # jobs are not geo content


async def test_claim_order_lease_expiry_and_renewal(store: Store) -> None:
    assert await store.claim_geo_job("w1", 30, NOW) is None
    await store.add_geo_job("b", "coffee", "message", {}, NOW + 1)
    await store.add_geo_job("a", "coffee", "message", {}, NOW + 1)
    await store.add_geo_job("c", "coffee", "message", {}, NOW)
    order = []
    for worker in ("w1", "w2", "w3"):
        job = await store.claim_geo_job(worker, 30, NOW + 2)
        assert job is not None
        order.append(job.id)
    assert order == ["c", "a", "b"]  # created_at, then id
    assert await store.claim_geo_job("w4", 30, NOW + 2) is None  # all leased

    renewed = await store.claim_geo_job("w2", 30, NOW + 20)  # the same owner renews its own
    assert renewed is not None and renewed.id == "a"
    # at NOW + 40 the leases of w1 and w3 (until NOW + 32) ran out; w2's runs to NOW + 50
    taken = await store.claim_geo_job("w4", 30, NOW + 40)
    assert taken is not None and taken.id == "c"
    taken = await store.claim_geo_job("w5", 30, NOW + 40)
    assert taken is not None and taken.id == "b"
    assert await store.claim_geo_job("w6", 30, NOW + 40) is None
    taken = await store.claim_geo_job("w6", 30, NOW + 50)  # w2's lease has just expired
    assert taken is not None and taken.id == "a"
    # an owner whose job was taken over no longer holds it: it gets no other job here either
    assert await store.claim_geo_job("w2", 30, NOW + 51) is None


# -- cards_page ----------------------------------------------------------------------------------
async def test_cards_page_walks_each_program_once_in_number_order(store: Store) -> None:
    programs: dict[str, list[str]] = {}
    for i in range(2_500):
        program = "coffee" if i % 3 else "tea"
        card = make_card(i, program=program)
        programs.setdefault(program, []).append(card.number)
    cards = [make_card(i, program="coffee" if i % 3 else "tea") for i in range(2_500)]
    # created out of number order, a few at a time (a connection each on Redis)
    backwards = cards[::-1]
    for start in range(0, len(backwards), 50):
        await asyncio.gather(*(store.create_card(card) for card in backwards[start : start + 50]))
    for program, numbers in programs.items():
        for limit in (1, 7, 500, 1000, 5000):
            if limit == 1 and len(numbers) > 100:
                seen = await _walk(store, program, limit, stop_after=100)
                assert seen == sorted(numbers)[:100]
                continue
            assert await _walk(store, program, limit) == sorted(numbers)
    assert await store.cards_page("none", "", 10) == []
    assert await store.cards_page("coffee", "", 0) == []
    assert await store.cards_page("coffee", "9", 10) == []
    page = await store.cards_page("coffee", "", 3)
    assert page == [await store.get_card(card.number) for card in page]  # whole cards, with their tags


async def _walk(store: Store, program: str, limit: int, stop_after: int | None = None) -> list[str]:
    seen: list[str] = []
    after = ""
    while True:
        page = await store.cards_page(program, after, limit)
        assert len(page) <= limit
        assert all(card.program == program for card in page)
        seen += [card.number for card in page]
        if len(page) < limit or (stop_after is not None and len(seen) >= stop_after):
            return seen
        after = page[-1].number


async def test_cards_page_starts_after_any_string(store: Store) -> None:
    for i in range(5):
        await store.create_card(make_card(i))
    numbers = [make_card(i).number for i in range(5)]
    page = await store.cards_page("coffee", numbers[1], 10)
    assert [c.number for c in page] == numbers[2:]
    page = await store.cards_page("coffee", numbers[1] + "0", 10)  # between two numbers
    assert [c.number for c in page] == numbers[2:]


# -- update_cards --------------------------------------------------------------------------------
async def test_bump_gives_a_new_tag_steps_modified_at_and_enqueues(store: Store) -> None:
    card = await created(store, 1)
    other = await created(store, 2)
    await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    await store.register_device("dev", "pass.t", other.serial, "tok", NOW)
    _, since = await store.serials_updated_since("dev", "pass.t", None)
    await drain(store)

    new = card.with_changes(notice="Hello", locations=((55.75, 37.62, "Near", 100),), version=99, tag=12345)
    result = await store.update_cards([CardUpdate(card.tag, new)], NOW, pass_fanout)
    (stored,) = result.cards
    assert stored is not None and result.advanced is False
    assert stored.tag > since
    assert stored.version == card.version  # kept whatever the update says
    assert stored.modified_at == next_modified_at(card.modified_at, NOW)
    assert (stored.notice, stored.locations) == ("Hello", ((55.75, 37.62, "Near", 100),))
    assert await store.get_card(card.number) == stored
    assert await store.get_card_by_serial(card.serial) == stored
    assert await store.serials_updated_since("dev", "pass.t", since) == ([card.serial], stored.tag)
    entries = await drain(store)
    assert [(e.kind, e.fields["serial"]) for e in entries] == [("pass_update", card.serial)]

    # the tag stays store-wide monotonic: a ledger commit and a card after it get higher tags
    ledger = await store.apply_ledger_events([ledger_event("e1", other.number, 1, 5)], NOW)
    assert ledger.changed[0].tag > stored.tag
    third = await created(store, 3)
    assert third.tag > ledger.changed[0].tag


async def test_bump_entries_coalesce_as_the_ledgers_do(store: Store) -> None:
    card = await created(store, 1)
    first = await store.update_cards([CardUpdate(card.tag, card.with_changes(notice="a"))], NOW, pass_fanout)
    stored = first.cards[0]
    assert stored is not None
    await store.update_cards([CardUpdate(stored.tag, stored.with_changes(notice="b"))], NOW, pass_fanout)
    await store.apply_ledger_events([ledger_event("e1", card.number, 1, 5)], NOW, pass_fanout)
    assert await store.outbox_size() == 1


async def test_no_bump_replaces_data_only(store: Store) -> None:
    card = await created(store, 1)
    await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    _, since = await store.serials_updated_since("dev", "pass.t", None)
    update = CardUpdate(card.tag, card.with_changes(area=(55.7, 37.6), modified_at=5, version=7), bump=False)
    (stored,) = (await store.update_cards([update], NOW + 100, pass_fanout)).cards
    assert stored is not None
    assert (stored.tag, stored.modified_at, stored.version, stored.area) == (
        card.tag,
        card.modified_at,
        card.version,
        (55.7, 37.6),
    )
    assert await store.get_card(card.number) == stored
    assert await store.outbox_size() == 0
    assert await store.serials_updated_since("dev", "pass.t", since) == ([], 0)
    # the same tag is still expected: a data-only write does not move it
    again = CardUpdate(card.tag, stored.with_changes(home_store="s1"), bump=False)
    (second,) = (await store.update_cards([again], NOW)).cards
    assert second is not None and second.home_store == "s1"


async def test_update_of_a_card_whose_tag_moved_writes_nothing_for_it(store: Store) -> None:
    a, b = await created(store, 1), await created(store, 2)
    ledger = await store.apply_ledger_events([ledger_event("e1", a.number, 1, 5)], NOW)
    moved = ledger.changed[0]
    result = await store.update_cards(
        [
            CardUpdate(a.tag, a.with_changes(notice="stale")),
            CardUpdate(b.tag, b.with_changes(notice="fresh")),
            CardUpdate(1, make_card(99).with_changes(notice="missing")),
        ],
        NOW,
        pass_fanout,
    )
    assert result.cards[0] is None and result.cards[2] is None
    assert result.cards[1] is not None and result.cards[1].notice == "fresh"
    assert await store.get_card(a.number) == moved
    assert await store.get_card(make_card(99).number) is None
    entries = await drain(store)
    assert [e.fields["serial"] for e in entries] == [b.serial]


async def test_stale_geo_generation_writes_nothing(store: Store) -> None:
    card = await created(store, 1)
    await store.put_campaign(campaign("c1"), NOW)
    await store.claim_geo_job("w", 60, NOW)
    generation = await store.geo_generation()
    await store.put_campaign(campaign("c2"), NOW)
    with pytest.raises(GeoChanged):
        await store.update_cards(
            [CardUpdate(card.tag, card.with_changes(notice="x"))],
            NOW,
            pass_fanout,
            geo_generation=generation,
            step=JobStep("campaigns:coffee", "w", card.number),
        )
    with pytest.raises(GeoChanged):
        await store.update_cards([], NOW, geo_generation=generation, step=JobStep("campaigns:coffee", "w", "9"))
    assert await store.get_card(card.number) == card
    assert await store.outbox_size() == 0
    job = await store.get_geo_job("campaigns:coffee")
    assert job is not None and job.cursor == ""
    ok = await store.update_cards(
        [CardUpdate(card.tag, card.with_changes(notice="x"))],
        NOW,
        geo_generation=generation + 1,
        step=JobStep("campaigns:coffee", "w", card.number),
    )
    assert ok.cards[0] is not None and ok.advanced


async def test_step_advances_only_when_all_written_and_the_lease_is_held(store: Store) -> None:
    a, b = await created(store, 1), await created(store, 2)
    await store.add_geo_job("j", "coffee", "message", {}, NOW)
    step = JobStep("j", "w1", b.number)

    # not leased at all
    r = await store.update_cards([CardUpdate(a.tag, a.with_changes(notice="1"))], NOW, step=step)
    assert r.cards[0] is not None and not r.advanced
    a = r.cards[0]
    assert (await store.get_geo_job("j")).cursor == ""  # type: ignore[union-attr]

    await store.claim_geo_job("w1", 30, NOW)
    # one update lost its compare-and-set: the others are written, the job stays
    r = await store.update_cards(
        [CardUpdate(a.tag, a.with_changes(notice="2")), CardUpdate(b.tag + 1_000, b.with_changes(notice="2"))],
        NOW + 1,
        step=step,
    )
    assert r.cards[0] is not None and r.cards[1] is None and not r.advanced
    a = r.cards[0]
    assert (await store.get_geo_job("j")).cursor == ""  # type: ignore[union-attr]

    # another owner
    r = await store.update_cards([], NOW + 1, step=JobStep("j", "w2", b.number))
    assert not r.advanced

    # the holder, everything written
    r = await store.update_cards([CardUpdate(a.tag, a.with_changes(notice="3"))], NOW + 2, step=step)
    assert r.cards[0] is not None and r.advanced
    job = await store.get_geo_job("j")
    assert job is not None and (job.cursor, job.done) == (b.number, False)

    # an expired lease is not held, even with nobody else claiming
    r = await store.update_cards([], NOW + 31, step=JobStep("j", "w1", "x", done=True))
    assert not r.advanced
    # claimed again by w2: w1's steps no longer advance it, w2's do
    await store.claim_geo_job("w2", 30, NOW + 31)
    assert not (await store.update_cards([], NOW + 32, step=JobStep("j", "w1", "x", done=True))).advanced
    assert (await store.update_cards([], NOW + 32, step=JobStep("j", "w2", "x", done=True))).advanced
    job = await store.get_geo_job("j")
    assert job is not None and (job.cursor, job.done) == ("x", True)
    assert await store.claim_geo_job("w3", 30, NOW + 100) is None
    # a step for a job that does not exist never advances
    assert not (await store.update_cards([], NOW, step=JobStep("nope", "w1", "x"))).advanced


async def test_updates_of_one_batch_commit_together_in_order(store: Store) -> None:
    cards = [await created(store, i) for i in range(5)]
    await store.register_device("dev", "pass.t", cards[0].serial, "tok", NOW)
    _, since = await store.serials_updated_since("dev", "pass.t", None)
    result = await store.update_cards(
        [CardUpdate(c.tag, c.with_changes(notice=str(i)), bump=i % 2 == 0) for i, c in enumerate(cards)],
        NOW,
        pass_fanout,
    )
    tags = [c.tag for c in result.cards if c is not None]
    assert len(tags) == 5
    bumped = [tags[i] for i in (0, 2, 4)]
    assert bumped == sorted(bumped) and bumped[0] > max(c.tag for c in cards)
    assert [tags[i] for i in (1, 3)] == [cards[1].tag, cards[3].tag]
    for stored in result.cards:
        assert stored is not None and await store.get_card(stored.number) == stored
    assert sorted(e.fields["serial"] for e in await drain(store)) == [cards[i].serial for i in (0, 2, 4)]
    serials, last = await store.serials_updated_since("dev", "pass.t", since)
    assert (serials, last) == ([cards[0].serial], tags[0])


# -- apply_ledger_events with derive and a geo generation --------------------------------------------
def derive_notice(card: Card) -> Card:
    return card.with_changes(notice=f"balance {card.balance}", locations=((1.5, 2.5, "here", 50),))


async def test_ledger_stores_the_derived_card_and_fanout_sees_it(store: Store) -> None:
    card = await created(store, 1)
    seen: list[Card] = []

    def fanout(changed: Card) -> list:
        seen.append(changed)
        return pass_fanout(changed)

    result = await store.apply_ledger_events(
        [ledger_event("e1", card.number, 1, 10), ledger_event("e2", card.number, 2, 20)],
        NOW,
        fanout,
        derive=derive_notice,
        geo_generation=await store.geo_generation(),
    )
    assert dict(result.outcomes) == {"e1": Outcome.ACCEPTED, "e2": Outcome.ACCEPTED}
    (changed,) = result.changed
    assert (changed.balance, changed.notice, changed.locations) == (20, "balance 20", ((1.5, 2.5, "here", 50),))
    assert await store.get_card(card.number) == changed
    assert [(c.balance, c.notice) for c in seen] == [(20, "balance 20")]
    assert await store.outbox_size() == 1


async def test_ledger_with_a_stale_geo_generation_writes_nothing(store: Store) -> None:
    card = await created(store, 1)
    await store.register_device("dev", "pass.t", card.serial, "tok", NOW)
    _, since = await store.serials_updated_since("dev", "pass.t", None)
    stale = await store.geo_generation()
    await store.put_store_location(shop(1))
    with pytest.raises(GeoChanged):
        await store.apply_ledger_events(
            [ledger_event("e1", card.number, 1, 10)], NOW, pass_fanout, derive=derive_notice, geo_generation=stale
        )
    assert await store.get_card(card.number) == card
    assert await store.outbox_size() == 0
    assert await store.serials_updated_since("dev", "pass.t", since) == ([], 0)
    # the id was not recorded: the same event is accepted with the current generation
    result = await store.apply_ledger_events(
        [ledger_event("e1", card.number, 1, 10)],
        NOW,
        pass_fanout,
        derive=derive_notice,
        geo_generation=await store.geo_generation(),
    )
    assert dict(result.outcomes) == {"e1": Outcome.ACCEPTED}
    assert await store.outbox_size() == 1


async def test_redis_geo_check_is_in_the_commit_script(store: Store) -> None:
    """The generation moves after the adapter read the cards and the generation: `fanout` runs in
    Python between that read and the commit script on Redis (SQLite reads, checks and commits
    under one write lock, so nothing can move in between there)."""
    if not isinstance(store, RedisStore):
        pytest.skip("SQLite holds its write lock from the check to the commit")
    card = await created(store, 1)
    generation = await store.geo_generation()
    sync = redis.Redis.from_url(REDIS_URL)

    def moving_fanout(changed: Card) -> list:
        sync.incr(store.prefix + "geo")  # another process's campaign write, in between
        return pass_fanout(changed)

    try:
        with pytest.raises(GeoChanged):
            await store.apply_ledger_events(
                [ledger_event("e1", card.number, 1, 1)], NOW, moving_fanout, geo_generation=generation
            )
        assert await store.get_card(card.number) == card
        assert await store.outbox_size() == 0
        generation = await store.geo_generation()
        with pytest.raises(GeoChanged):
            await store.update_cards(
                [CardUpdate(card.tag, card.with_changes(notice="x"))], NOW, moving_fanout, geo_generation=generation
            )
        assert await store.get_card(card.number) == card
        assert await store.outbox_size() == 0
        result = await store.apply_ledger_events(
            [ledger_event("e1", card.number, 1, 1)], NOW, geo_generation=await store.geo_generation()
        )
        assert dict(result.outcomes) == {"e1": Outcome.ACCEPTED}  # the refused commit recorded no id
    finally:
        sync.close()


# -- alerts ----------------------------------------------------------------------------------------
def cap(n: int):
    def decide(records: Sequence[AlertRecord]) -> str | None:
        return None if len(records) < n else "cap"

    return decide


async def test_reserve_alert_records_when_decide_allows(store: Store) -> None:
    assert await store.alert_records("c1") == []
    seen: list[list[AlertRecord]] = []

    def decide(records: Sequence[AlertRecord]) -> str | None:
        seen.append(list(records))
        return None if len(records) < 2 else "enough"

    assert await store.reserve_alert("c1", AlertRecord(NOW, "camp", "s1"), decide, 0) is None
    assert await store.reserve_alert("c1", AlertRecord(NOW + 1, "camp", "s2"), decide, 0) is None
    assert await store.reserve_alert("c1", AlertRecord(NOW + 2, "camp", "s3"), decide, 0) == "enough"
    assert seen[-1] == [AlertRecord(NOW, "camp", "s1"), AlertRecord(NOW + 1, "camp", "s2")]
    assert await store.alert_records("c1") == seen[-1]
    assert await store.alert_records("c2") == []


async def test_concurrent_reservations_never_both_pass(store: Store) -> None:
    results = await asyncio.gather(
        *(store.reserve_alert("c1", AlertRecord(NOW + i, "camp", f"s{i}"), cap(3), 0) for i in range(20))
    )
    assert sorted(results, key=str) == [None] * 3 + ["cap"] * 17
    assert len(await store.alert_records("c1")) == 3


async def test_reserve_alert_prunes_old_and_beyond_the_kept(store: Store) -> None:
    allow = cap(10**6)
    for i in range(5):
        await store.reserve_alert("c1", AlertRecord(NOW + i, "camp", "s"), allow, 0)
    await store.reserve_alert("c1", AlertRecord(NOW + 10, "camp", "s"), allow, NOW + 3)
    assert [r.at for r in await store.alert_records("c1")] == [NOW + 3, NOW + 4, NOW + 10]
    for i in range(ALERTS_KEPT + 5):
        await store.reserve_alert("c1", AlertRecord(NOW + 100 + i, "camp", str(i)), allow, 0)
    records = await store.alert_records("c1")
    assert len(records) == ALERTS_KEPT
    assert records[0].at == NOW + 100 + 5 and records[-1].at == NOW + 100 + ALERTS_KEPT + 4
    # a record older than what is kept is not kept either
    await store.reserve_alert("c1", AlertRecord(NOW, "camp", "old"), allow, NOW + 150)
    records = await store.alert_records("c1")
    assert records[0].at == NOW + 150 and all(r.store != "old" for r in records)
