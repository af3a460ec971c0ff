"""Store locations (geo/), one contract for both adapters: CRUD, replace and move, the program
filter, all-or-nothing imports, and the near query against a brute-force haversine over
10 000 random stores.

Tolerance of the near check: the contract allows a store within EDGE_TOLERANCE_M of the
radius to be in or out, and stores whose distances differ by at most that much to come in
either order (equal-distance ties); reported distances must be the brute force's within
DISTANCE_TOLERANCE_M. Both adapters re-rank with geo.distance.haversine_m on the stored
coordinates, so in practice their answers equal the brute force exactly (ties by id).
"""

from __future__ import annotations

import math
import random
import time

import pytest

from geo.distance import haversine_m
from geo.locations import StoreLocation
from store.port import GEO_MAX_LAT, InvalidStoreLocation, Store

EDGE_TOLERANCE_M = 0.5
DISTANCE_TOLERANCE_M = 1e-6


def loc(i: int | str, lat: float = 55.75, lon: float = 37.62, program: str = "coffee", **changes: str) -> StoreLocation:
    return StoreLocation(id=f"s{i}", program=program, name=f"Shop {i}", lat=lat, lon=lon, **changes)


# -- CRUD ----------------------------------------------------------------------------------------
async def test_put_get_replace_delete(store: Store) -> None:
    first = loc(1, address="Tverskaya 1", timezone="Europe/Moscow")
    assert await store.get_store_location("s1") is None
    assert await store.put_store_location(first) is True
    assert await store.get_store_location("s1") == first

    replaced = StoreLocation("s1", "coffee", "Renamed", 55.0, 37.0)
    assert await store.put_store_location(replaced) is False
    assert await store.get_store_location("s1") == replaced  # whole: address and zone gone too

    assert await store.delete_store_location("s1") is True
    assert await store.delete_store_location("s1") is False
    assert await store.get_store_location("s1") is None
    assert await store.list_store_locations() == []
    assert await store.store_locations_near(55.0, 37.0, 10_000) == []


async def test_unicode_and_int_coordinates_read_back(store: Store) -> None:
    shop = StoreLocation("кофе-1", "coffee", "Кофе Поинт ☕", 10, -20, address="ул. Ленина, 1", timezone="Asia/Tokyo")
    await store.put_store_location(shop)
    got = await store.get_store_location("кофе-1")
    assert got == shop
    assert got is not None and isinstance(got.lat, float) and isinstance(got.lon, float)


async def test_move_and_change_program(store: Store) -> None:
    await store.put_store_location(loc(1, lat=10.0, lon=10.0, program="coffee"))
    await store.put_store_location(loc(2, lat=10.0, lon=10.001, program="coffee"))
    moved = loc(1, lat=-33.0, lon=151.0, program="tea")
    assert await store.put_store_location(moved) is False

    assert [s.id for s in await store.list_store_locations("coffee")] == ["s2"]
    assert await store.list_store_locations("tea") == [moved]
    near_old = await store.store_locations_near(10.0, 10.0, 1_000)
    assert [s.id for s, _ in near_old] == ["s2"]
    assert [s.id for s, _ in await store.store_locations_near(10.0, 10.0, 1_000, program="coffee")] == ["s2"]
    assert await store.store_locations_near(10.0, 10.0, 1_000, program="tea") == []
    near_new = await store.store_locations_near(-33.0, 151.0, 10, program="tea")
    assert near_new == [(moved, 0.0)]
    assert await store.store_locations_near(-33.0, 151.0, 10, program="coffee") == []

    assert await store.delete_store_location("s1") is True
    assert await store.list_store_locations("tea") == []
    assert await store.store_locations_near(-33.0, 151.0, 10) == []


async def test_list_sorted_by_id_and_filtered(store: Store) -> None:
    ids = ["b", "a", "c10", "c2", "Z"]
    for n, i in enumerate(ids):
        await store.put_store_location(StoreLocation(i, "coffee" if n % 2 == 0 else "tea", i, 1.0 + n, 2.0 + n))
    assert [s.id for s in await store.list_store_locations()] == sorted(ids)
    assert [s.id for s in await store.list_store_locations("coffee")] == sorted(["b", "c10", "Z"])
    assert [s.id for s in await store.list_store_locations("tea")] == ["a", "c2"]
    assert await store.list_store_locations("nobody") == []


# -- imports -------------------------------------------------------------------------------------
async def test_import_counts_new_and_replaces(store: Store) -> None:
    await store.put_store_location(loc(1, lat=1.0, lon=1.0))
    batch = [loc(1, lat=2.0, lon=2.0, program="tea"), loc(2, lat=3.0, lon=3.0), loc(3, lat=4.0, lon=4.0)]
    assert await store.put_store_locations(batch) == 2
    assert await store.list_store_locations() == batch
    assert await store.put_store_locations([]) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"lat": 91.0},
        {"lat": GEO_MAX_LAT + 1e-6},
        {"lat": -90.0},
        {"lon": 180.5},
        {"lon": -181.0},
        {"lat": math.nan},
        {"lon": math.inf},
        {"id": ""},
        {"program": ""},
    ],
)
async def test_import_is_all_or_nothing(store: Store, bad: dict[str, object]) -> None:
    kept = loc("kept", lat=5.0, lon=5.0)
    await store.put_store_location(kept)
    good = [loc(i, lat=5.0 + i / 100, lon=5.0) for i in range(50)]
    broken = StoreLocation(**{**loc("bad", lat=5.0, lon=5.0).__dict__, **bad})
    replacing_kept = loc("kept", lat=60.0, lon=60.0, program="tea")
    with pytest.raises(InvalidStoreLocation):
        await store.put_store_locations([*good[:25], replacing_kept, broken, *good[25:]])
    assert await store.list_store_locations() == [kept]
    with pytest.raises(InvalidStoreLocation):
        await store.put_store_location(broken)
    assert await store.list_store_locations() == [kept]
    assert [s.id for s, _ in await store.store_locations_near(5.0, 5.0, 100_000)] == ["skept"]


async def test_import_rejects_an_id_twice(store: Store) -> None:
    with pytest.raises(InvalidStoreLocation, match="twice"):
        await store.put_store_locations([loc(1), loc(2), loc(1, lat=1.0)])
    assert await store.list_store_locations() == []


async def test_the_band_edges_are_accepted(store: Store) -> None:
    edges = [
        loc("n", lat=GEO_MAX_LAT, lon=180.0),
        loc("s", lat=-GEO_MAX_LAT, lon=-180.0),
        loc("e", lat=0.0, lon=180.0),
        loc("w", lat=0.0, lon=-180.0),
    ]
    assert await store.put_store_locations(edges) == 4
    # 180 and -180 are one meridian: both points are at the same place
    found = await store.store_locations_near(0.0, 180.0, 1.0)
    assert [s.id for s, _ in found] == ["se", "sw"]
    assert all(d < 1e-6 for _, d in found)
    # across the pole: 2 x 4.95 degrees of latitude, about 1 101 km
    pole = await store.store_locations_near(GEO_MAX_LAT, 0.0, 1_200_000)
    assert [s.id for s, _ in pole] == ["sn"]


# -- the near query ------------------------------------------------------------------------------
async def test_near_query_arguments(store: Store) -> None:
    await store.put_store_locations([loc(1, lat=1.0, lon=1.0), loc(2, lat=1.0, lon=1.0), loc(3, lat=1.0, lon=1.0001)])
    assert await store.store_locations_near(1.0, 1.0, 1_000, limit=0) == []
    # radius 0: exactly there; equal distances by id
    assert [(s.id, d) for s, d in await store.store_locations_near(1.0, 1.0, 0)] == [("s1", 0.0), ("s2", 0.0)]
    assert [s.id for s, _ in await store.store_locations_near(1.0, 1.0, 1_000, limit=2)] == ["s1", "s2"]
    # the whole globe
    assert len(await store.store_locations_near(-1.0, -179.0, 1e9)) == 3
    for lat, lon, radius in [(89.0, 0.0, 10.0), (0.0, 181.0, 10.0), (math.nan, 0.0, 10.0), (0.0, 0.0, -1.0)]:
        with pytest.raises(InvalidStoreLocation):
            await store.store_locations_near(lat, lon, radius)


def _random_stores(rng: random.Random, count: int) -> list[StoreLocation]:
    """Clusters (a city, Fiji across the antimeridian, the far north), a global scatter, and
    groups sharing one point (exact ties)."""
    clusters = [(55.75, 37.62, 0.2), (-17.7, 179.98, 0.3), (84.9, 20.0, 0.1), (0.0, 0.0, 0.05), (40.7, -74.0, 0.5)]
    stores = []
    for i in range(count):
        kind = i % 10
        if kind < 6:
            clat, clon, spread = clusters[i % len(clusters)]
            lat = min(max(rng.gauss(clat, spread), -GEO_MAX_LAT), GEO_MAX_LAT)
            lon = (rng.gauss(clon, spread / max(math.cos(math.radians(clat)), 0.1)) + 180.0) % 360.0 - 180.0
        elif kind < 9:
            lat, lon = rng.uniform(-GEO_MAX_LAT, GEO_MAX_LAT), rng.uniform(-180.0, 180.0)
        else:  # ten stores per shared point
            point = random.Random(i // 100)
            lat, lon = point.uniform(55.5, 56.0), point.uniform(37.3, 37.9)
        stores.append(StoreLocation(f"st{i:05d}", ("coffee", "tea", "bakery")[i % 3], f"Store {i}", lat, lon))
    return stores


def _brute_force(
    stores: list[StoreLocation], lat: float, lon: float, radius: float, program: str | None, limit: int
) -> list[tuple[float, str]]:
    found = [(haversine_m(lat, lon, s.lat, s.lon), s.id) for s in stores if program is None or s.program == program]
    return sorted(item for item in found if item[0] <= radius)[:limit]


def _assert_same(actual: list[tuple[float, str]], expected: list[tuple[float, str]], radius: float) -> None:
    if actual == expected:
        return
    edge = [(d, i) for d, i in actual + expected if abs(d - radius) <= EDGE_TOLERANCE_M]
    core_actual = [item for item in actual if item not in edge]
    core_expected = [item for item in expected if item not in edge]
    assert len(core_actual) == len(core_expected), (actual[:5], expected[:5])
    for (da, ia), (de, ie) in zip(core_actual, core_expected, strict=True):
        assert abs(da - de) <= (DISTANCE_TOLERANCE_M if ia == ie else EDGE_TOLERANCE_M), (ia, da, ie, de)


async def test_near_matches_brute_force_on_10000_stores(store: Store) -> None:
    rng = random.Random(20261202)
    stores = _random_stores(rng, 10_000)
    started = time.perf_counter()
    assert await store.put_store_locations(stores) == 10_000
    loaded = time.perf_counter() - started
    by_id = {s.id: s for s in stores}

    centres = [
        (55.75, 37.62),  # in a cluster, and on the shared points
        (-17.7, 179.99),  # Fiji, east of the antimeridian
        (-17.7, -179.99),  # and west of it
        (85.0, -160.0),  # circles around the (north) pole
        (0.0, 0.0),
        (40.7, -74.0),
        *[(rng.uniform(-80.0, 80.0), rng.uniform(-180.0, 180.0)) for _ in range(4)],
    ]
    radii = [50.0, 2_000.0, 25_000.0, 300_000.0, 2_500_000.0]
    queries = 0
    started = time.perf_counter()
    for lat, lon in centres:
        for radius in radii:
            for program, limit in [(None, 100), ("tea", 100), (None, 10_000), ("coffee", 7)]:
                got = await store.store_locations_near(lat, lon, radius, program=program, limit=limit)
                queries += 1
                for s, d in got:
                    assert by_id[s.id] == s
                    assert program is None or s.program == program
                    assert d == pytest.approx(haversine_m(lat, lon, s.lat, s.lon), abs=DISTANCE_TOLERANCE_M)
                expected = _brute_force(stores, lat, lon, radius, program, limit)
                _assert_same([(d, s.id) for s, d in got], expected, radius)
    took = time.perf_counter() - started
    # generous bounds for a loaded CI box; this machine does both in well under a second or two
    assert loaded < 20.0
    assert took / queries < 0.5
    # the shared points give exact ties, in id order
    tied = await store.store_locations_near(by_id["st00009"].lat, by_id["st00009"].lon, 0.0)
    assert [s.id for s, _ in tied] == sorted(
        s.id for s in stores if (s.lat, s.lon) == (by_id["st00009"].lat, by_id["st00009"].lon)
    )
    assert len(tied) >= 2
