"""choose_locations through a NearestIndex: always what it answers without one."""

from __future__ import annotations

import random

import pytest

from geo.campaigns import Campaign, Conditions
from geo.locations import StoreLocation, choose_locations
from geo.nearest import NearestIndex
from tests.geo.cards import card
from tests.geo.test_locations import CENTRE, TODAY, by_id, campaign, store


def both(
    campaigns: list[Campaign], stores: dict[str, StoreLocation], area: tuple[float, float] | None, **kw: object
) -> tuple[object, ...]:
    index = NearestIndex(stores)
    plain = choose_locations(card(), campaigns, stores, area, 0, TODAY, **kw)  # type: ignore[arg-type]
    indexed = choose_locations(card(), campaigns, index.stores, area, 0, TODAY, index=index, **kw)  # type: ignore[arg-type]
    assert indexed == plain
    return plain


def test_the_scenarios_of_test_locations_agree() -> None:
    stores = by_id(*(store(f"s{i:02}", i * 0.001, (i % 3) * 0.001) for i in range(30)))
    stores |= by_id(store("x", 0.0005, program="tea"), store("z", 0.0, 0.01), store("m", 0.0, -0.01))
    scenarios: list[list[Campaign]] = [
        [campaign()],
        [],
        [campaign(program="tea")],
        [campaign(when=Conditions(min_balance=10**6))],
        [campaign(stores=("s03", "gone", "x", "s03"))],
        [campaign("c9"), campaign("c2", stores=("s05",)), campaign("c5", stores=("s01", "s05"))],
        [campaign("c1", when=Conditions(min_balance=10**6)), campaign("c2")],
        [campaign("c5", stores=("z", "m")), campaign("c7"), campaign("c9", stores=("s00",))],
    ]
    for campaigns in scenarios:
        for area in (CENTRE, None, (CENTRE[0] + 0.01, CENTRE[1] - 0.003)):
            for limit in (0, 3, 10, 50):
                both(campaigns, stores, area, limit=limit)
            both(campaigns, stores, area, tier_name="Gold")


def test_index_of_another_snapshot_is_refused() -> None:
    stores = by_id(store("a", 0.001), store("b", 0.002))
    index = NearestIndex(stores)
    # an equal mapping is accepted (compared whole), a different one is not
    assert choose_locations(card(), [campaign()], dict(stores), CENTRE, 0, TODAY, index=index) == choose_locations(
        card(), [campaign()], stores, CENTRE, 0, TODAY
    )
    moved = stores | {"b": store("b", 0.0001)}
    with pytest.raises(ValueError, match="another store snapshot"):
        choose_locations(card(), [campaign()], moved, CENTRE, 0, TODAY, index=index)
    # limit 0 answers () before anything is looked at
    assert choose_locations(card(), [campaign()], moved, CENTRE, 0, TODAY, limit=0, index=index) == ()


def test_randomized_with_index_matches_without() -> None:
    rng = random.Random(2027)
    for _ in range(300):
        stores = by_id(
            *(
                store(
                    f"s{rng.randrange(400):03}",
                    rng.uniform(-0.3, 0.3),
                    rng.uniform(-0.3, 0.3),
                    rng.choice(["coffee", "coffee", "tea"]),
                )
                for _ in range(rng.randint(0, 300))
            )
        )
        ids = list(stores) + ["ghost"]
        campaigns = [
            campaign(
                f"c{rng.randrange(30)}",
                stores=None if rng.random() < 0.25 else tuple(rng.sample(ids, rng.randint(0, min(len(ids), 40)))),
                when=Conditions(
                    min_balance=rng.choice([None, 100, 1000]),
                    tiers=rng.choice([None, frozenset({"gold"}), frozenset()]),
                ),
                ends_at=rng.choice([None, None, 5.0]),
            )
            for _ in range(rng.randint(0, 8))
        ]
        area = None if rng.random() < 0.15 else (CENTRE[0] + rng.uniform(-0.3, 0.3), CENTRE[1] + rng.uniform(-0.3, 0.3))
        shuffled = list(campaigns)
        rng.shuffle(shuffled)
        both(shuffled, stores, area, limit=rng.choice([1, 10, 10, 20]))
