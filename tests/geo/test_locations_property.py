"""Property tests (hypothesis) of the index path: NearestIndex against brute force, and
choose_locations with an index against choose_locations without one."""

from __future__ import annotations

import math

import pytest

from geo.campaigns import Campaign, Conditions
from geo.locations import StoreLocation, choose_locations
from geo.nearest import NearestIndex
from tests.geo.cards import card
from tests.geo.test_locations import TODAY, campaign
from tests.geo.test_nearest import SPECIAL_LATS, SPECIAL_LONS, Accept, brute, loc, same

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

lats = st.one_of(st.sampled_from(SPECIAL_LATS), st.floats(-90, 90), st.floats(88, 90), st.floats(-90, -88))
lons = st.one_of(st.sampled_from(SPECIAL_LONS), st.floats(-180, 180), st.floats(179, 180), st.floats(-180, -179))
# a city, so that distances tie and neighbours are close
near = st.tuples(st.floats(55.70, 55.80), st.floats(37.55, 37.70))
points = st.one_of(st.tuples(lats, lons), near)
cells = st.sampled_from([None, 0.005, 0.05, 0.5, 3.0, 90.0, 360.0])
slow = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@slow
@given(
    spots=st.lists(st.one_of(points, st.sampled_from([(55.75, 37.62), (90.0, 0.0), (0.0, 180.0)])), max_size=100),
    query=points,
    k=st.integers(0, 70),
    picks=st.lists(st.booleans(), min_size=100, max_size=100),
    cell=cells,
    as_predicate=st.booleans(),
    within=st.one_of(st.just(math.inf), st.floats(0, 2.1e7)),
)
def test_nearest_matches_brute_force(
    spots: list[tuple[float, float]],
    query: tuple[float, float],
    k: int,
    picks: list[bool],
    cell: float | None,
    as_predicate: bool,
    within: float,
) -> None:
    stores = {f"s{i:02}": loc(f"s{i:02}", lat, lon) for i, (lat, lon) in enumerate(spots)}
    chosen = {i for n, i in enumerate(stores) if picks[n]}
    accept: Accept = chosen.__contains__ if as_predicate else chosen
    index = NearestIndex(stores, cell_deg=cell)
    same(
        index.nearest(query[0], query[1], k, accept, within_m=within),
        brute(stores, query[0], query[1], k, accept, within),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[dict[str, StoreLocation], list[Campaign]]:
    spots = draw(st.lists(points, max_size=80))
    stores: dict[str, StoreLocation] = {}
    for n, (lat, lon) in enumerate(spots):
        sid = f"s{draw(st.integers(0, 99)):02}"
        program = draw(st.sampled_from(["coffee", "coffee", "tea"]))
        stores[sid] = StoreLocation(id=sid, program=program, name=f"Shop {n}", lat=lat, lon=lon)
    ids = sorted(stores) + ["ghost"]
    campaigns = draw(
        st.lists(
            st.builds(
                lambda n, listed, members, balance, tiers: campaign(
                    f"c{n}",
                    stores=tuple(members) if listed else None,
                    when=Conditions(min_balance=balance, tiers=tiers),
                ),
                st.integers(0, 12),
                st.booleans(),
                st.lists(st.sampled_from(ids), max_size=30),
                st.sampled_from([None, 100, 1000]),
                st.sampled_from([None, frozenset({"gold"}), frozenset({"silver"})]),
            ),
            max_size=6,
        )
    )
    return stores, campaigns


@slow
@given(
    snapshot=snapshots(),
    area=st.one_of(st.none(), points),
    limit=st.integers(-1, 12),
    cell=cells,
    balance=st.sampled_from([50, 250, 5000]),
)
def test_choose_locations_with_index_is_without(
    snapshot: tuple[dict[str, StoreLocation], list[Campaign]],
    area: tuple[float, float] | None,
    limit: int,
    cell: float | None,
    balance: int,
) -> None:
    stores, campaigns = snapshot
    index = NearestIndex(stores, cell_deg=cell)
    member = card(balance=balance)
    plain = choose_locations(member, campaigns, stores, area, 0, TODAY, limit)
    assert choose_locations(member, campaigns, index.stores, area, 0, TODAY, limit, index=index) == plain
