"""service/geo.py against both stores: campaign jobs re-evaluate exactly the affected cards, resume
after a crash without pushing twice, and the ledger commit derives geo content from the snapshot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from geo.campaigns import Campaign, Conditions, campaign_to_dict
from geo.locations import StoreLocation
from passes.programs import load_programs
from service.geo import GeoRunner, GeoService
from service.ledger import LedgerIntake
from store.port import Store
from tests.geo.cards import campaign as shared_campaign
from tests.store.conftest import make_card

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = load_programs(ROOT / "pass_templates")
PASS_TYPE = "pass.test"


def campaign(id: str = "c1", **changes: object) -> Campaign:
    return shared_campaign(
        id, **{"text": "{store}: {balance}", "when": Conditions(min_balance=100), "radius_m": 100, **changes}
    )


async def setup(store: Store, cards: int = 40) -> tuple[GeoService, LedgerIntake]:
    await store.put_store_locations(
        [StoreLocation(f"st{i}", "coffee", f"Shop {i}", 55.7 + i / 100, 37.6) for i in range(12)]
    )
    for i in range(cards):
        # every other card has enough points for the campaign
        await store.create_card(make_card(i, balance=200 if i % 2 == 0 else 50))
    intake = LedgerIntake(store, PROGRAMS, PASS_TYPE)
    geo = GeoService(store, PROGRAMS, intake.fanout)
    intake.geo = geo
    return geo, intake


async def outbox_serials(store: Store) -> list[str]:
    claimed = await store.claim_outbox(
        "check", 10_000, 30.0, time.time() + 3600
    )  # also what a test clock made due later
    await store.ack_outbox([e.id for e in claimed])
    return [e.fields["serial"] for e in claimed if e.kind == "pass_update"]


async def test_campaign_job_updates_exactly_the_qualifying_cards(store: Store) -> None:
    geo, _ = await setup(store)
    await store.claim_outbox("drain", 10_000, 30.0, time.time())  # nothing yet: issue enqueues none here
    runner = GeoRunner(geo, owner="r1", batch_size=7)
    await store.put_campaign(campaign_to_dict(campaign()), time.time())
    await runner.drain()
    serials = await outbox_serials(store)
    assert sorted(serials) == sorted(f"serial-{i}" for i in range(0, 40, 2))
    rich = await store.get_card(make_card(0).number)
    assert rich is not None and len(rich.locations) == 10
    # no area: the program's centre (the mean of its stores, 55.755) decides the order
    assert rich.locations[0][2] in ("Shop 5: 200", "Shop 6: 200")
    poor = await store.get_card(make_card(1).number)
    assert poor is not None and poor.locations == ()

    # the same campaign saved again: re-evaluated, nothing changed, nothing pushed
    await store.put_campaign(campaign_to_dict(campaign()), time.time())
    await runner.drain()
    assert await outbox_serials(store) == []

    # a text edit changes exactly the qualifying passes
    before = {c.number: c.tag for c in await store.cards_page("coffee", "", 100)}
    await store.put_campaign(campaign_to_dict(campaign(text="{store} nearby")), time.time())
    await runner.drain()
    assert sorted(await outbox_serials(store)) == sorted(f"serial-{i}" for i in range(0, 40, 2))
    after = {c.number: c.tag for c in await store.cards_page("coffee", "", 100)}
    assert [n for n in before if before[n] != after[n]] == [make_card(i).number for i in range(0, 40, 2)]


async def test_a_job_killed_mid_way_resumes_without_pushing_twice(store: Store) -> None:
    geo, _ = await setup(store, cards=60)
    clock = [time.time()]
    first = GeoRunner(geo, owner="dies", batch_size=5, lease_seconds=5, clock=lambda: clock[0])
    await store.put_campaign(campaign_to_dict(campaign()), clock[0])
    job = await store.claim_geo_job("dies", 5, clock[0])
    assert job is not None
    for _ in range(3):  # three batches, then the process is gone
        job = await first._step(job)
        assert job is not None
    partial = await outbox_serials(store)
    assert 0 < len(partial) < 30
    # another runner may take the job only once the lease expired
    second = GeoRunner(geo, owner="takes-over", batch_size=5, lease_seconds=5, clock=lambda: clock[0])
    assert not await second.run_once()
    clock[0] += 6
    assert await second.run_once()
    rest = await outbox_serials(store)
    assert not set(rest) & set(partial)  # nothing pushed twice
    assert sorted(partial + rest) == sorted(f"serial-{i}" for i in range(0, 60, 2))  # nothing missed
    done = await store.get_geo_job("campaigns:coffee")
    assert done is not None and done.done


async def test_ledger_commit_derives_from_the_snapshot(store: Store) -> None:
    geo, intake = await setup(store, cards=2)
    runner = GeoRunner(geo, owner="r1")
    await store.put_campaign(campaign_to_dict(campaign(announce="Welcome to the club week")), time.time())
    await runner.drain()
    await outbox_serials(store)
    poor = make_card(1)
    answer = await intake.intake([{"id": "e1", "card": poor.number, "version": 1, "balance": 150}], time.time())
    assert answer["accepted"] == ["e1"]
    lifted = await store.get_card(poor.number)
    assert lifted is not None and len(lifted.locations) == 10
    assert lifted.locations[0][2].endswith(": 150")
    assert lifted.notice == "Welcome to the club week" and lifted.announced == ("c1",)
    assert await outbox_serials(store) == [poor.serial]  # one pass update for the change
    again = await intake.intake([{"id": "e2", "card": poor.number, "version": 2, "balance": 160}], time.time())
    assert again["accepted"] == ["e2"]
    later = await store.get_card(poor.number)
    assert later is not None and later.notice == lifted.notice  # shown once: the value did not change


async def test_ledger_commit_with_a_stale_snapshot_derives_again(store: Store) -> None:
    geo, intake = await setup(store, cards=2)
    snapshot = await geo.snapshot()
    # a campaign lands after this process read its snapshot
    await store.put_campaign(campaign_to_dict(campaign()), time.time())
    assert (await geo.snapshot()).generation != snapshot.generation
    poor = make_card(1)
    answer = await intake.intake([{"id": "e1", "card": poor.number, "version": 1, "balance": 150}], time.time())
    assert answer["accepted"] == ["e1"]
    card = await store.get_card(poor.number)
    assert card is not None and len(card.locations) == 10


async def test_schedule_start_and_end_restart_the_job(store: Store) -> None:
    geo, _ = await setup(store, cards=4)
    clock = [time.time()]
    runner = GeoRunner(geo, owner="r1", clock=lambda: clock[0])
    await store.put_campaign(campaign_to_dict(campaign(starts_at=clock[0] + 10, ends_at=clock[0] + 20)), clock[0])
    await runner.check_schedules()
    await runner.drain()
    assert await outbox_serials(store) == []  # not started
    clock[0] += 11
    assert await runner.check_schedules() == ["coffee"]
    await runner.drain()
    assert sorted(await outbox_serials(store)) == ["serial-0", "serial-2"]
    clock[0] += 1
    assert await runner.check_schedules() == []  # nothing passed
    clock[0] += 10
    assert await runner.check_schedules() == ["coffee"]
    await runner.drain()
    assert sorted(await outbox_serials(store)) == ["serial-0", "serial-2"]
    ended = await store.get_card(make_card(0).number)
    assert ended is not None and ended.locations == ()


async def test_message_job_reaches_the_segment_once(store: Store) -> None:
    geo, _ = await setup(store, cards=6)
    runner = GeoRunner(geo, owner="r1", batch_size=4)
    payload = {"id": "m1", "text": "Hi {name}", "when": {"min_balance": 100}, "stores": None}
    assert await store.add_geo_job("message:m1", "coffee", "message", payload, time.time())
    assert not await store.add_geo_job("message:m1", "coffee", "message", payload, time.time())
    await runner.drain()
    assert sorted(await outbox_serials(store)) == ["serial-0", "serial-2", "serial-4"]
    card = await store.get_card(make_card(0).number)
    assert card is not None and card.notice == "Hi Member 0" and card.notice_id == "message:m1"


@pytest.mark.parametrize("moved", [False, True])
async def test_set_area_bumps_only_when_the_pass_changes(store: Store, moved: bool) -> None:
    geo, _ = await setup(store, cards=1)
    await store.put_campaign(campaign_to_dict(campaign()), time.time())
    await GeoRunner(geo, owner="r1").drain()
    await outbox_serials(store)
    card = await store.get_card(make_card(0).number)
    assert card is not None
    # north of every store another ten are nearest; at the program's centre (where the pass was
    # ordered from, no area being known) nothing changes
    centre = (await geo.snapshot()).program("coffee").centre
    assert centre is not None
    area = (55.81, 37.6) if moved else centre
    stored = await geo.set_area(card, area)
    assert stored is not None and stored.area == area
    pushed = await outbox_serials(store)
    if moved:
        assert stored.tag > card.tag and pushed == [card.serial]
    else:
        assert stored.tag == card.tag and pushed == []


async def test_no_campaigns_leaves_ledger_cards_alone(store: Store) -> None:
    _, intake = await setup(store, cards=1)
    await intake.intake([{"id": "x", "card": make_card(0).number, "version": 1, "balance": 5}], time.time())
    card = await store.get_card(make_card(0).number)
    assert card is not None and card.locations == () and card.notice is None
