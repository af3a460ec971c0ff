from __future__ import annotations

import random
from datetime import date

from geo.campaigns import Campaign, Conditions
from geo.distance import haversine_m
from geo.locations import MAX_LOCATIONS, PassLocation, StoreLocation, choose_locations
from tests.geo.cards import campaign as shared_campaign
from tests.geo.cards import card

TODAY = date(2026, 12, 2)
CENTRE = (55.75, 37.62)


def campaign(id: str = "c1", **changes: object) -> Campaign:
    return shared_campaign(id, **{"text": f"{id}: {{store}} — {{balance}}", "radius_m": 100, **changes})


def store(id: str, dlat: float, dlon: float = 0.0, program: str = "coffee") -> StoreLocation:
    return StoreLocation(id=id, program=program, name=f"Shop {id}", lat=CENTRE[0] + dlat, lon=CENTRE[1] + dlon)


def by_id(*stores: StoreLocation) -> dict[str, StoreLocation]:
    return {s.id: s for s in stores}


def test_store_location_shape() -> None:
    s = StoreLocation(id="s", program="p", name="n", lat=1.0, lon=2.0)
    assert (s.address, s.timezone) == ("", "")


def test_nearest_first_with_rendered_text() -> None:
    stores = by_id(store("far", 0.05), store("near", 0.001), store("mid", 0.01))
    got = choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY)
    assert [loc.lat for loc in got] == [stores[i].lat for i in ("near", "mid", "far")]
    assert got[0] == PassLocation(lat=stores["near"].lat, lon=stores["near"].lon, relevant_text="c1: Shop near — 250")


def test_no_qualifying_campaign_no_locations() -> None:
    stores = by_id(store("a", 0.001))
    assert (
        choose_locations(card(balance=10), [campaign(when=Conditions(min_balance=100))], stores, CENTRE, 0, TODAY) == ()
    )
    assert choose_locations(card(), [campaign(ends_at=5.0)], stores, CENTRE, 10.0, TODAY) == ()
    assert choose_locations(card(), [], stores, CENTRE, 0, TODAY) == ()


def test_at_most_ten_and_limit() -> None:
    stores = by_id(*(store(f"s{i:02}", i * 0.001) for i in range(30)))
    got = choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY)
    assert len(got) == MAX_LOCATIONS
    assert [loc.lat for loc in got] == [stores[f"s{i:02}"].lat for i in range(10)]
    assert len(choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY, limit=3)) == 3
    assert len(choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY, limit=50)) == MAX_LOCATIONS
    assert choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY, limit=0) == ()


def test_explicit_store_list_skips_unknown_and_foreign_stores() -> None:
    stores = by_id(store("a", 0.001), store("b", 0.002), store("x", 0.0005, program="tea"))
    c = campaign(stores=("b", "gone", "x", "b"))
    got = choose_locations(card(), [c], stores, CENTRE, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c1: Shop b — 250"]


def test_all_stores_means_the_programs_only() -> None:
    stores = by_id(store("a", 0.001), store("x", 0.0005, program="tea"))
    got = choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c1: Shop a — 250"]


def test_campaign_of_other_program_ignored() -> None:
    stores = by_id(store("a", 0.001))
    assert choose_locations(card(), [campaign(program="tea")], stores, CENTRE, 0, TODAY) == ()


def test_overlap_store_once_with_smallest_campaign_id() -> None:
    stores = by_id(store("a", 0.001), store("b", 0.002))
    campaigns = [campaign("c9"), campaign("c2", stores=("b",)), campaign("c5", stores=("a", "b"))]
    got = choose_locations(card(), campaigns, stores, CENTRE, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c5: Shop a — 250", "c2: Shop b — 250"]
    # order of the campaigns given does not matter
    assert choose_locations(card(), list(reversed(campaigns)), stores, CENTRE, 0, TODAY) == got


def test_overlap_winner_is_among_qualifying_only() -> None:
    stores = by_id(store("a", 0.001))
    campaigns = [campaign("c1", when=Conditions(min_balance=10**6)), campaign("c2")]
    got = choose_locations(card(), campaigns, stores, CENTRE, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c2: Shop a — 250"]


def test_distance_ties_broken_by_store_id() -> None:
    # symmetric east/west of the area: equal distances
    stores = by_id(store("z", 0.0, 0.01), store("m", 0.0, -0.01), store("a", 0.0, 0.01))
    got = choose_locations(card(), [campaign()], stores, CENTRE, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c1: Shop a — 250", "c1: Shop m — 250", "c1: Shop z — 250"]


def test_no_area_orders_by_store_id() -> None:
    stores = by_id(store("b", 0.001), store("c", 0.0001), store("a", 0.01))
    got = choose_locations(card(), [campaign()], stores, None, 0, TODAY)
    assert [loc.relevant_text for loc in got] == ["c1: Shop a — 250", "c1: Shop b — 250", "c1: Shop c — 250"]


def test_tier_name_is_rendered() -> None:
    stores = by_id(store("a", 0.001))
    got = choose_locations(card(), [campaign(text="{tier}")], stores, CENTRE, 0, TODAY, tier_name="Gold")
    assert got[0].relevant_text == "Gold"
    assert choose_locations(card(), [campaign(text="{tier}")], stores, CENTRE, 0, TODAY)[0].relevant_text == "gold"


def _key(sid: str, stores: dict[str, StoreLocation], area: tuple[float, float] | None) -> tuple[float, str]:
    if area is None:
        return (0.0, sid)
    return (haversine_m(area[0], area[1], stores[sid].lat, stores[sid].lon), sid)


def test_randomized_matches_brute_force_and_is_deterministic() -> None:
    # hypothesis is not installed; a seeded random sweep against a brute-force model stands in for it.
    rng = random.Random(2026)
    for _ in range(200):
        stores = by_id(
            *(
                store(
                    f"s{rng.randrange(60):02}",
                    rng.uniform(-0.2, 0.2),
                    rng.uniform(-0.2, 0.2),
                    rng.choice(["coffee", "tea"]),
                )
                for _ in range(rng.randint(0, 40))
            )
        )
        ids = list(stores) + ["ghost"]
        campaigns = [
            campaign(
                f"c{rng.randrange(10)}",
                stores=None if rng.random() < 0.3 else tuple(rng.sample(ids, rng.randint(0, len(ids)))),
                when=Conditions(min_balance=rng.choice([None, 100, 1000])),
            )
            for _ in range(rng.randint(0, 5))
        ]
        area = None if rng.random() < 0.2 else (CENTRE[0] + rng.uniform(-0.1, 0.1), CENTRE[1])
        got = choose_locations(card(), campaigns, stores, area, 0, TODAY)

        # brute force: every (store, winning campaign), sorted fully
        winner: dict[str, Campaign] = {}
        for c in campaigns:
            if c.when.min_balance is not None and c.when.min_balance > 250:
                continue
            members = [s.id for s in stores.values() if s.program == "coffee"] if c.stores is None else c.stores
            for sid in members:
                if sid in stores and stores[sid].program == "coffee" and (sid not in winner or c.id < winner[sid].id):
                    winner[sid] = c

        expected = sorted(winner, key=lambda sid: _key(sid, stores, area))[:MAX_LOCATIONS]
        assert got == tuple(
            PassLocation(stores[s].lat, stores[s].lon, f"{winner[s].id}: Shop {s} — 250") for s in expected
        )
        shuffled = list(campaigns)
        rng.shuffle(shuffled)
        assert choose_locations(card(), shuffled, dict(reversed(list(stores.items()))), area, 0, TODAY) == got
