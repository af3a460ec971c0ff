"""Geo: choosing a pass's locations, and the store adapters' near query.

  (a) geo/locations.choose_locations per card, 2 000 stores and 20 campaigns (all-stores and
      store-list campaigns, conditions on balance and tiers): brute force (no index) against
      geo/nearest.NearestIndex, in µs per card, and the ratio. Both paths are first checked to
      give the same answer for every card measured.
  (b) store.store_locations_near with 10 000 stores, radius 5 km: p50/p99 of QUERIES random
      queries on the SQLite adapter and the Redis adapter (database 13 of its own, flushed before
      and after), against brute force in Python over the same 10 000 stores (and the index, for
      scale) measured in the same run. Every answer is compared with brute force's.

This process is pinned to one core (bench/process.py); (a) is timed in this thread's CPU time,
(b) in wall time (the adapters wait on SQLite's thread and on Redis). Prints, never asserts.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from bench.process import pin_self, pinned_run
from cards.model import Card, Member
from geo.campaigns import Campaign, Conditions
from geo.distance import haversine_m
from geo.locations import StoreLocation, choose_locations
from geo.nearest import NearestIndex
from store.factory import open_store
from store.port import Store, nearest_first

SEED = 2026
TODAY = date(2026, 12, 2)
CHOICE_STORES = 2000
CHOICE_CAMPAIGNS = 20
CHOICE_CARDS = 300
CHOICE_ROUNDS = 5
NEAR_STORES = 10_000
QUERIES = 1000
RADIUS_M = 5000.0
REDIS_URL = "redis://127.0.0.1:6379/13"
PROGRAM = "coffee"
TIERS = ("bronze", "silver", "gold")
# Cities the stores cluster around (lat, lon, spread in degrees); the rest are spread over the region.
CITIES = ((55.75, 37.62, 0.15), (59.94, 30.31, 0.10), (56.33, 44.00, 0.06), (55.79, 49.12, 0.06), (54.99, 73.37, 0.05))
REGION = ((50.0, 62.0), (28.0, 75.0))


def _spot(rng: random.Random) -> tuple[float, float]:
    if rng.random() < 0.7:
        lat, lon, spread = rng.choice(CITIES)
        return lat + rng.gauss(0, spread), lon + rng.gauss(0, spread * 1.7)
    (south, north), (west, east) = REGION
    return rng.uniform(south, north), rng.uniform(west, east)


def _stores(rng: random.Random, n: int, programs: Sequence[str]) -> list[StoreLocation]:
    out = []
    for i in range(n):
        lat, lon = _spot(rng)
        out.append(StoreLocation(id=f"st{i:05}", program=rng.choice(programs), name=f"Shop {i}", lat=lat, lon=lon))
    return out


def _campaigns(rng: random.Random, ids: list[str]) -> list[Campaign]:
    out = []
    for n in range(CHOICE_CAMPAIGNS):
        everywhere = n % 4 == 0  # 5 of 20 run at every store
        out.append(
            Campaign(
                id=f"camp{n:02}",
                program=PROGRAM,
                name=f"campaign {n}",
                text="{name}: {balance} points at {store}",
                stores=None if everywhere else tuple(rng.sample(ids, rng.choice([10, 50, 200, 600]))),
                when=Conditions(
                    min_balance=rng.choice([None, 100, 1000, 3000]),
                    tiers=rng.choice([None, None, frozenset({"gold"}), frozenset({"silver", "gold"})]),
                ),
                starts_at=None,
                ends_at=None,
                max_per_day=1,
                radius_m=100,
            )
        )
    return out


def _cards(rng: random.Random) -> list[tuple[Card, tuple[float, float] | None]]:
    cards = []
    for n in range(CHOICE_CARDS):
        card = Card(
            number=f"77900000{n:08}",
            program=PROGRAM,
            account=f"a{n}",
            serial=f"s{n}",
            auth_token="t" * 32,
            member=Member(name=f"Member {n}"),
            balance=rng.choice([0, 50, 500, 2000, 5000]),
            tier=rng.choice(TIERS),
        )
        cards.append((card, None if n % 20 == 0 else _spot(rng)))
    return cards


def _per_card_us(run: Callable[[], None], cards: int) -> float:
    start = time.thread_time()
    run()
    return (time.thread_time() - start) / cards * 1e6


def location_choice() -> None:
    rng = random.Random(SEED)
    stores = _stores(rng, CHOICE_STORES, [PROGRAM])
    started = time.perf_counter()
    index = NearestIndex.of_locations(stores)
    built_ms = (time.perf_counter() - started) * 1e3
    by_id = index.stores
    campaigns = _campaigns(rng, list(by_id))
    cards = _cards(rng)
    mismatches = sum(
        choose_locations(c, campaigns, by_id, area, 0, TODAY)
        != choose_locations(c, campaigns, by_id, area, 0, TODAY, index=index)
        for c, area in cards
    )
    print(
        f"(a) choose_locations, {CHOICE_STORES} stores, {CHOICE_CAMPAIGNS} campaigns (5 all-stores), "
        f"{CHOICE_CARDS} cards (1 in 20 without area), {CHOICE_ROUNDS} interleaved rounds; "
        f"index built in {built_ms:.1f} ms (cell {index.cell_deg:g}°); answers differing: {mismatches}",
        flush=True,
    )

    def brute() -> None:
        for c, area in cards:
            choose_locations(c, campaigns, by_id, area, 0, TODAY)

    def indexed() -> None:
        for c, area in cards:
            choose_locations(c, campaigns, by_id, area, 0, TODAY, index=index)

    brute_us: list[float] = []
    index_us: list[float] = []
    for _ in range(CHOICE_ROUNDS):
        brute_us.append(_per_card_us(brute, len(cards)))
        index_us.append(_per_card_us(indexed, len(cards)))
    b, i = statistics.median(brute_us), statistics.median(index_us)
    print(f"    brute force : {b:8.1f} µs/card (median of rounds; min {min(brute_us):.1f})")
    print(f"    NearestIndex: {i:8.1f} µs/card (median of rounds; min {min(index_us):.1f})")
    print(f"    ratio brute/index: {b / i:.1f}x", flush=True)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(label: str, samples_s: list[float], baseline_p50: float | None, wrong: int) -> None:
    p50, p99 = _pct(samples_s, 0.50) * 1e6, _pct(samples_s, 0.99) * 1e6
    ratio = f"   p50 {p50 / baseline_p50:5.2f}x brute" if baseline_p50 else ""
    print(f"    {label:<22} p50 {p50:9.1f} µs   p99 {p99:9.1f} µs{ratio}   answers differing: {wrong}", flush=True)


Answer = list[tuple[str, float]]


async def _warm_up(store: Store, queries: list[tuple[float, float]]) -> None:
    # connections opened, statements cached, scripts loaded: not what a query costs
    for lat, lon in queries[:20]:
        await store.store_locations_near(lat, lon, RADIUS_M, program=PROGRAM)


async def _timed(store: Store, queries: list[tuple[float, float]]) -> tuple[list[float], list[Answer]]:
    times, answers = [], []
    for lat, lon in queries:
        started = time.perf_counter()
        found = await store.store_locations_near(lat, lon, RADIUS_M, program=PROGRAM)
        times.append(time.perf_counter() - started)
        answers.append([(loc.id, d) for loc, d in found])
    return times, answers


async def _load(url: str, stores: list[StoreLocation]) -> Store:
    store = await open_store(url)
    for start in range(0, len(stores), 500):
        await store.put_store_locations(stores[start : start + 500])
    return store


async def _flush_redis() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.flushdb()
        return True
    except (OSError, aioredis.RedisError) as exc:
        print(f"    Redis at {REDIS_URL} unavailable ({exc.__class__.__name__}): skipped", flush=True)
        return False
    finally:
        await client.aclose()


async def near_queries(tmp: Path) -> None:
    rng = random.Random(SEED + 1)
    stores = _stores(rng, NEAR_STORES, [PROGRAM, PROGRAM, PROGRAM, "tea"])
    queries = [_spot(rng) for _ in range(QUERIES)]
    mine = [s for s in stores if s.program == PROGRAM]
    print(
        f"(b) store_locations_near, {NEAR_STORES} stores ({len(mine)} of the queried program), radius "
        f"{RADIUS_M / 1000:g} km, limit 100, {QUERIES} random queries, wall time per query",
        flush=True,
    )

    def brute(lat: float, lon: float) -> Answer:
        found = ((s, haversine_m(lat, lon, s.lat, s.lon)) for s in mine)
        return [(s.id, d) for s, d in nearest_first(((s, d) for s, d in found if d <= RADIUS_M), 100)]

    index = NearestIndex.of_locations(stores)
    accept = index.program_ids(PROGRAM)

    def indexed(lat: float, lon: float) -> Answer:
        return [(i, d) for d, i in index.nearest(lat, lon, 100, accept, within_m=RADIUS_M)]

    expected: list[Answer] = []
    brute_times: list[float] = []
    for lat, lon in queries:
        started = time.perf_counter()
        expected.append(brute(lat, lon))
        brute_times.append(time.perf_counter() - started)
    index_times: list[float] = []
    index_wrong = 0
    for (lat, lon), want in zip(queries, expected, strict=True):
        started = time.perf_counter()
        got = indexed(lat, lon)
        index_times.append(time.perf_counter() - started)
        index_wrong += got != want
    hits = statistics.mean(len(a) for a in expected)
    print(f"    (mean {hits:.1f} stores found per query)")
    base = _pct(brute_times, 0.5) * 1e6
    _line("brute force (Python)", brute_times, None, 0)
    _line("NearestIndex (Python)", index_times, base, index_wrong)

    sqlite = await _load(f"sqlite:///{tmp / 'geo.db'}", stores)
    try:
        await _warm_up(sqlite, queries)
        times, answers = await _timed(sqlite, queries)
        _line("SQLite adapter", times, base, sum(a != e for a, e in zip(answers, expected, strict=True)))
    finally:
        await sqlite.close()

    if not await _flush_redis():
        return
    try:
        redis = await _load(REDIS_URL, stores)
        try:
            await _warm_up(redis, queries)
            times, answers = await _timed(redis, queries)
            _line("Redis adapter", times, base, sum(a != e for a, e in zip(answers, expected, strict=True)))
        finally:
            await redis.close()
    finally:
        await _flush_redis()


def _run(tmp: Path, cores: tuple[int, int] | None) -> int:
    pin_self(cores[0] if cores else None)
    location_choice()
    asyncio.run(near_queries(tmp))
    return 0


def main() -> int:
    return pinned_run("geo", _run)


if __name__ == "__main__":
    raise SystemExit(main())
