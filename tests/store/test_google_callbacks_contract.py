"""The storage port's contract for Google Wallet callbacks (store/port.py record_google_callback,
google_installs), checked against every adapter: once per nonce, per object, newest first,
bounded, durable across reopening, and safe under concurrent deliveries of one nonce."""

from __future__ import annotations

import asyncio

from store.port import GOOGLE_EVENTS_KEPT, Store
from tests.conftest import StoreFactory
from tests.store.conftest import sqlite_at_schema

NOW = 1_700_000_000.0
OBJECT = "3388000000022141777.card-1"
OTHER = "3388000000022141777.card-2"


async def test_new_nonce_is_recorded(store: Store) -> None:
    assert await store.google_installs(OBJECT) == []
    assert await store.record_google_callback("n1", OBJECT, "save", NOW) is True
    assert await store.google_installs(OBJECT) == [("save", NOW)]


async def test_replayed_nonce_records_nothing(store: Store) -> None:
    assert await store.record_google_callback("n1", OBJECT, "save", NOW) is True
    assert await store.record_google_callback("n1", OBJECT, "save", NOW + 5) is False
    # even when the replay claims something else: the first delivery stands
    assert await store.record_google_callback("n1", OTHER, "del", NOW + 6) is False
    assert await store.google_installs(OBJECT) == [("save", NOW)]
    assert await store.google_installs(OTHER) == []


async def test_events_per_object_newest_first(store: Store) -> None:
    assert await store.record_google_callback("n1", OBJECT, "save", NOW)
    assert await store.record_google_callback("n2", OTHER, "save", NOW + 1)
    assert await store.record_google_callback("n3", OBJECT, "del", NOW + 2.25)
    assert await store.record_google_callback("n4", OBJECT, "save", NOW + 3)
    assert await store.google_installs(OBJECT) == [("save", NOW + 3), ("del", NOW + 2.25), ("save", NOW)]
    assert await store.google_installs(OBJECT, limit=2) == [("save", NOW + 3), ("del", NOW + 2.25)]
    assert await store.google_installs(OBJECT, limit=0) == []
    assert await store.google_installs(OTHER) == [("save", NOW + 1)]


async def test_order_is_recording_order_not_time(store: Store) -> None:
    # a late-delivered callback (an earlier `at`) is still the newest record
    assert await store.record_google_callback("n1", OBJECT, "save", NOW + 10)
    assert await store.record_google_callback("n2", OBJECT, "del", NOW)
    assert await store.google_installs(OBJECT) == [("del", NOW), ("save", NOW + 10)]


async def test_the_newest_are_kept(store: Store) -> None:
    total = GOOGLE_EVENTS_KEPT + 5
    for i in range(total):
        assert await store.record_google_callback(f"n{i}", OBJECT, "save" if i % 2 == 0 else "del", NOW + i)
    installs = await store.google_installs(OBJECT, limit=total)
    assert len(installs) >= GOOGLE_EVENTS_KEPT
    expected = [("save" if i % 2 == 0 else "del", NOW + i) for i in reversed(range(total))]
    assert installs == expected[: len(installs)]
    assert await store.google_installs(OBJECT) == expected[:GOOGLE_EVENTS_KEPT]
    # a trimmed event's nonce is still remembered
    assert await store.record_google_callback("n0", OBJECT, "save", NOW) is False


async def test_ids_and_nonces_are_opaque(store: Store) -> None:
    odd = 'x:"y"\\z ✓'
    assert await store.record_google_callback(odd, odd, "save", NOW)
    assert await store.record_google_callback(odd, odd, "save", NOW) is False
    assert await store.google_installs(odd) == [("save", NOW)]
    assert await store.google_installs(odd + "x") == []


async def test_concurrent_deliveries_of_one_nonce_record_once(store: Store) -> None:
    results = await asyncio.gather(*(store.record_google_callback("n1", OBJECT, "save", NOW) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    assert await store.google_installs(OBJECT) == [("save", NOW)]


async def test_recorded_callbacks_survive_reopening(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    assert await first.record_google_callback("n1", OBJECT, "save", NOW)
    await first.close()
    second = store_factory()
    await second.open()
    assert await second.google_installs(OBJECT) == [("save", NOW)]
    assert await second.record_google_callback("n1", OBJECT, "save", NOW) is False


async def test_sqlite_schema_3_database_gains_the_table(tmp_path) -> None:

    from store.schema.sqlite import MIGRATIONS
    from store.sqlite import SqliteStore

    path = tmp_path / "wallet.db"
    conn = sqlite_at_schema(path, 3)
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 4
        assert await store.record_google_callback("n1", OBJECT, "del", NOW)
        assert await store.google_installs(OBJECT) == [("del", NOW)]
    finally:
        await store.close()
