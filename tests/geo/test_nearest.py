"""geo/nearest.py against brute force: same ids, same order, the same distance floats."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container

import pytest

from geo.distance import haversine_m
from geo.locations import StoreLocation
from geo.nearest import NearestIndex

Accept = Container[str] | Callable[[str], bool]


def brute(
    stores: dict[str, StoreLocation], lat: float, lon: float, k: int, accept: Accept, within_m: float = math.inf
) -> list[tuple[float, str]]:
    allow = accept if callable(accept) else accept.__contains__
    keyed = ((haversine_m(lat, lon, s.lat, s.lon), i) for i, s in stores.items() if allow(i))
    return sorted(p for p in keyed if p[0] <= within_m)[: max(k, 0)]


def loc(id: str, lat: float, lon: float, program: str = "coffee") -> StoreLocation:
    return StoreLocation(id=id, program=program, name=id, lat=lat, lon=lon)


def same(got: list[tuple[float, str]], want: list[tuple[float, str]]) -> None:
    # tuple equality compares the floats exactly; repr pins the bits (and would show -0.0)
    assert got == want
    assert [repr(d) for d, _ in got] == [repr(d) for d, _ in want]


# Points where grids and spheres get awkward, mixed with ordinary ones.
SPECIAL_LATS = [-90.0, -89.9999, -89.5, -85.05112878, -45.0, 0.0, 1e-9, 45.0, 85.05112878, 89.5, 89.9999, 90.0]
SPECIAL_LONS = [-180.0, -179.9999, -179.5, -90.0, 0.0, -0.0, 1e-9, 90.0, 179.5, 179.9999, 180.0]


def random_point(rng: random.Random) -> tuple[float, float]:
    kind = rng.random()
    if kind < 0.25:  # near the antimeridian
        return rng.uniform(-60, 60), rng.choice([-1, 1]) * rng.uniform(179.0, 180.0)
    if kind < 0.45:  # near a pole
        return rng.choice([-1, 1]) * rng.uniform(88.0, 90.0), rng.uniform(-180, 180)
    if kind < 0.55:
        return rng.choice(SPECIAL_LATS), rng.choice(SPECIAL_LONS)
    if kind < 0.8:  # a city-sized cluster
        return 55.75 + rng.uniform(-0.2, 0.2), 37.62 + rng.uniform(-0.3, 0.3)
    return rng.uniform(-90, 90), rng.uniform(-180, 180)


def random_stores(rng: random.Random, n: int) -> dict[str, StoreLocation]:
    stores: dict[str, StoreLocation] = {}
    for i in range(n):
        if stores and rng.random() < 0.15:  # a duplicate of another store's point
            other = stores[rng.choice(list(stores))]
            lat, lon = other.lat, other.lon
        else:
            lat, lon = random_point(rng)
        sid = f"s{i:04}"
        stores[sid] = loc(sid, lat, lon)
    return stores


@pytest.mark.parametrize("cell_deg", [None, 0.005, 0.3, 7.0, 200.0, 360.0])
def test_randomized_against_brute_force(cell_deg: float | None) -> None:
    rng = random.Random(f"nearest-{cell_deg}")
    for _ in range(60):
        stores = random_stores(rng, rng.randint(0, 150))
        index = NearestIndex(stores, cell_deg=cell_deg)
        ids = list(stores)
        for _ in range(8):
            lat, lon = random_point(rng)
            k = rng.choice([0, 1, 3, 10, 50, 500])
            share = rng.choice([0.0, 0.05, 0.5, 1.0])
            chosen = {i for i in ids if rng.random() < share} | {"ghost"}
            accepts: list[Accept] = [chosen, frozenset(chosen), dict.fromkeys(chosen), chosen.__contains__]
            within = rng.choice([math.inf, 0.0, 5000.0, 300_000.0, 2e7])
            for accept in accepts:
                same(index.nearest(lat, lon, k, accept), brute(stores, lat, lon, k, accept))
                got = index.nearest(lat, lon, k, accept, within_m=within)
                same(got, brute(stores, lat, lon, k, accept, within))


def test_duplicates_at_one_point_are_ordered_by_id() -> None:
    stores = {i: loc(i, 10.0, 20.0) for i in ("d", "b", "c", "a")} | {"z": loc("z", 10.0, 20.0001)}
    index = NearestIndex(stores)
    got = index.nearest(10.0, 20.0, 4, lambda _: True)
    assert [i for _, i in got] == ["a", "b", "c", "d"]
    assert {d for d, _ in got} == {0.0}


def test_k_larger_than_matches_and_empty_filters() -> None:
    stores = {f"s{i}": loc(f"s{i}", i * 0.01, i * 0.01) for i in range(20)}
    index = NearestIndex(stores)
    same(index.nearest(0.0, 0.0, 100, set(stores)), brute(stores, 0.0, 0.0, 100, set(stores)))
    assert len(index.nearest(0.0, 0.0, 100, {"s3", "s7"})) == 2
    assert index.nearest(0.0, 0.0, 10, set()) == []
    assert index.nearest(0.0, 0.0, 10, lambda _: False) == []
    assert index.nearest(0.0, 0.0, 0, set(stores)) == []
    assert index.nearest(0.0, 0.0, -1, set(stores)) == []
    assert NearestIndex({}).nearest(0.0, 0.0, 10, lambda _: True) == []


def test_across_the_antimeridian() -> None:
    # the nearest stores to lon 179.99 are just west of -180 on the map, i.e. east of it on the globe
    stores = {"east": loc("east", 0.0, -179.995), "west": loc("west", 0.0, 179.9), "far": loc("far", 0.0, 170.0)}
    for cell in (None, 0.01, 1.0):
        index = NearestIndex(stores, cell_deg=cell)
        for lon in (179.99, 180.0, -180.0, -179.99):
            got = index.nearest(0.0, lon, 2, lambda _: True)
            same(got, brute(stores, 0.0, lon, 2, lambda _: True))
            assert got[0][1] == "east"


def test_at_the_poles() -> None:
    stores = {f"p{i}": loc(f"p{i}", 89.99, -180.0 + i * 36.0) for i in range(10)} | {"pole": loc("pole", 90.0, 17.0)}
    stores |= {"south": loc("south", -90.0, 0.0), "eq": loc("eq", 0.0, 0.0)}
    for cell in (None, 0.005, 1.0):
        index = NearestIndex(stores, cell_deg=cell)
        for lat, lon in ((90.0, 0.0), (90.0, 180.0), (89.999, -123.0), (-90.0, 55.0), (-89.0, 0.0)):
            same(index.nearest(lat, lon, 5, set(stores)), brute(stores, lat, lon, 5, set(stores)))


def test_out_of_range_points_fall_back_to_brute_force() -> None:
    stores = {"a": loc("a", 10.0, 10.0), "odd": loc("odd", 95.0, 200.0), "b": loc("b", -10.0, -10.0)}
    index = NearestIndex(stores, cell_deg=1.0)
    for lat, lon in ((0.0, 0.0), (100.0, 0.0), (0.0, 540.0), (89.0, 179.0)):
        for accept in (set(stores), lambda _: True):
            same(index.nearest(lat, lon, 3, accept), brute(stores, lat, lon, 3, accept))


def test_nan_store_refused_and_snapshot_copied() -> None:
    with pytest.raises(ValueError, match="NaN"):
        NearestIndex({"x": loc("x", math.nan, 0.0)})
    with pytest.raises(ValueError, match="twice"):
        NearestIndex.of_locations([loc("a", 0.0, 0.0), loc("a", 1.0, 1.0)])
    with pytest.raises(ValueError, match="cell_deg"):
        NearestIndex({}, cell_deg=0.0)
    source = {"a": loc("a", 0.0, 0.0)}
    index = NearestIndex(source)
    source["b"] = loc("b", 0.0, 0.0)
    assert len(index) == 1 and dict(index.stores) == {"a": loc("a", 0.0, 0.0)}
    with pytest.raises(TypeError):
        index.stores["c"] = loc("c", 0.0, 0.0)  # type: ignore[index]


def test_program_ids() -> None:
    stores = {"a": loc("a", 0, 0), "b": loc("b", 0, 0, "tea"), "c": loc("c", 0, 0), "alias": loc("a", 1, 1)}
    index = NearestIndex(stores)
    assert index.program_ids("coffee") == {"a", "c"}  # "alias" holds another id: never a store of its own
    assert index.program_ids_sorted("coffee") == ("a", "c")
    assert index.program_ids("none") == frozenset() and index.program_ids_sorted("none") == ()


def test_cell_size_fits_the_data() -> None:
    rng = random.Random(5)
    city = {f"s{i}": loc(f"s{i}", 55.75 + rng.uniform(-0.2, 0.2), 37.6 + rng.uniform(-0.3, 0.3)) for i in range(2000)}
    world = {f"s{i}": loc(f"s{i}", rng.uniform(-80, 80), rng.uniform(-180, 180)) for i in range(2000)}
    assert NearestIndex(city).cell_deg < NearestIndex(world).cell_deg


def test_ring_search_measures_few_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    # exactness alone would also hold if every query fell back to brute force: pin the fast path
    import geo.nearest

    rng = random.Random(9)
    stores = {f"s{i}": loc(f"s{i}", 55.75 + rng.uniform(-0.2, 0.2), 37.6 + rng.uniform(-0.3, 0.3)) for i in range(2000)}
    stores |= {
        f"m{i}": loc(f"m{i}", rng.uniform(-1, 1), rng.choice([-1, 1]) * rng.uniform(179, 180)) for i in range(500)
    }
    index = NearestIndex(stores)
    calls = 0

    def counted(*args: float) -> float:
        nonlocal calls
        calls += 1
        return haversine_m(*args)

    monkeypatch.setattr(geo.nearest, "haversine_m", counted)
    queries: list[tuple[float, float, Accept]] = [
        (55.7, 37.5, set(stores)),
        (0.0, 180.0, lambda _: True),
        (0.3, -179.9, set(stores)),
        (89.9, 37.6, set(stores)),  # 34° from any store: a coarser level answers
    ]
    for lat, lon, accept in queries:
        calls = 0
        got = index.nearest(lat, lon, 10, accept)
        assert got == brute(stores, lat, lon, 10, accept)
        assert calls < 300, calls
