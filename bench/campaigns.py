"""Campaign change over 100 000 cards, 20 % of them affected, on SQLite and on Redis.

A program with 2 000 stores and 100 000 cards, one registered device each; a fifth of the cards have
the points a new campaign asks for. Measured: the time from the campaign's write to every affected
pass enqueued (the campaign job run to its end by service/geo.py's runner, batch by batch), and the
pushes that makes: the devices of the enqueued passes whose pushed tag is behind (what the worker
would send). The target is under 60 s on this machine and exactly one push per affected device.

Baseline, measured in the same run on the same store: one read-only pass over the program's cards in
pages of the job's batch size (what any re-evaluation has to read at least); the ratio says what the
evaluation and the writes cost on top.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from pathlib import Path

from cards.model import Card, Member
from cards.numbers import new_auth_token, new_card_number, new_serial
from geo.campaigns import Campaign, Conditions, campaign_to_dict
from geo.locations import StoreLocation
from passes.programs import load_programs
from service.geo import GeoRunner, GeoService
from service.ledger import LedgerIntake
from store.factory import open_store
from store.port import Store

ROOT = Path(__file__).resolve().parents[1]
PASS_TYPE_ID = "pass.bench.wallet.loyalty"
CARDS = int(os.environ.get("BENCH_CAMPAIGN_CARDS", "100000"))
STORES = 2000
BATCH = 500
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def _card(i: int, now: float) -> Card:
    # every fifth card has the 500 points the campaign asks for
    return Card(
        number=new_card_number("7790"),
        program="coffee",
        account=f"bench-{i}",
        serial=new_serial(),
        auth_token=new_auth_token(),
        member=Member(name=f"Bench {i}"),
        balance=600 if i % 5 == 0 else 100,
        created_at=int(now),
        modified_at=int(now),
    )


async def _seed(store: Store, now: float) -> int:
    rng = secrets.SystemRandom()
    stores = [
        StoreLocation(f"st{i:04d}", "coffee", f"Shop {i}", 55.5 + rng.random() * 0.5, 37.3 + rng.random() * 0.6)
        for i in range(STORES)
    ]
    await store.put_store_locations(stores)
    affected = 0
    chunk = 100  # creations in flight: within the Redis client's connection pool
    for start in range(0, CARDS, chunk):

        async def one(i: int) -> None:
            stored, _ = await store.create_card(_card(i, now))
            await store.register_device(f"d{i}-{uuid.uuid4().hex[:8]}", PASS_TYPE_ID, stored.serial, "ab" * 32, now)

        await asyncio.gather(*(one(i) for i in range(start, min(start + chunk, CARDS))))
        affected += sum(1 for i in range(start, min(start + chunk, CARDS)) if i % 5 == 0)
    return affected


async def _scan(store: Store) -> tuple[float, int]:
    started = time.perf_counter()
    cursor, seen = "", 0
    while True:
        page = await store.cards_page("coffee", cursor, BATCH)
        seen += len(page)
        if len(page) < BATCH:
            break
        cursor = page[-1].number
    return time.perf_counter() - started, seen


async def _pushes(store: Store) -> tuple[int, int]:
    """(pass updates enqueued, pushes they make): every due pass_update, expanded to its devices."""
    entries = []
    while True:
        claimed = await store.claim_outbox("bench-count", 5000, 600.0, time.time())
        if not claimed:
            break
        entries += claimed
        await store.ack_outbox([e.id for e in claimed])
    keys = [(e.fields["pass_type_id"], e.fields["serial"]) for e in entries if e.kind == "pass_update"]
    pushes = 0
    for start in range(0, len(keys), 1000):
        targets = await store.pass_targets(keys[start : start + 1000])
        pushes += sum(1 for t in targets.values() for d in t.devices if d.pushed_tag < t.tag)
    return len(keys), pushes


async def _run(url: str, label: str) -> None:
    store = await open_store(url)
    try:
        now = time.time()
        t0 = time.perf_counter()
        affected = await _seed(store, now)
        print(f"  {label}: seeded {CARDS} cards + devices, {STORES} stores in {time.perf_counter() - t0:.0f} s")
        programs = load_programs(ROOT / "pass_templates")
        intake = LedgerIntake(store, programs, PASS_TYPE_ID)
        geo = GeoService(store, programs, intake.fanout)
        runner = GeoRunner(geo, owner="bench", batch_size=BATCH)
        await runner.drain()  # the store writes above started the program's job: nothing to change
        await _pushes(store)
        scan_s, seen = await _scan(store)

        campaign = Campaign(
            id="bench",
            program="coffee",
            name="bench",
            text="{store}: {balance} points",
            stores=None,
            when=Conditions(min_balance=500),
            starts_at=None,
            ends_at=None,
            max_per_day=1,
            radius_m=100,
        )
        started = time.perf_counter()
        await store.put_campaign(campaign_to_dict(campaign), time.time())
        await runner.drain()
        took = time.perf_counter() - started
        enqueued, pushes = await _pushes(store)
        ok = "ok" if enqueued == affected and pushes == affected else "MISMATCH"
        print(
            f"  {label}: campaign over {seen} cards: all {enqueued} affected passes enqueued in {took:.1f} s "
            f"(target < 60 s), {pushes} pushes for {affected} affected devices [{ok}]; "
            f"read-only scan {scan_s:.1f} s, ratio {took / scan_s:.1f}x; "
            f"{runner.stats.evaluated / took:.0f} cards/s evaluated"
        )
    finally:
        await store.close()


async def _flush_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-campaigns-") as tmp:
        asyncio.run(_run(f"sqlite:///{Path(tmp) / 'wallet.db'}", "sqlite"))
    asyncio.run(_flush_redis())
    try:
        asyncio.run(_run(REDIS_URL, "redis"))
    finally:
        asyncio.run(_flush_redis())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
