"""What a promised write survives: SQLite fsyncs it (synchronous=FULL) before returning; a prod
start on Redis checks that the server keeps what it acknowledged, or that writes wait for
replicas."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from cards.model import Card, Member
from ledger.decide import LedgerEvent
from store.durability import persistence_problems
from store.factory import build_store
from store.port import StoreError
from store.redis import RedisStore
from store.sqlite import SqliteStore
from tests.conftest import REDIS_URL, delete_prefix

NOW = 1_700_000_000.0


def card() -> Card:
    return Card(
        number="4000000000000001", program="coffee", account="a1", serial="s1", auth_token="t" * 32, member=Member("M")
    )


async def _traced(store: SqliteStore) -> list[str]:
    """Every statement the store's connection runs from now on."""
    statements: list[str] = []

    def install(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(statements.append)

    await store._call(lambda: install(store._connection()))
    return statements


async def test_sqlite_promised_writes_commit_with_synchronous_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    await store.open()
    try:
        statements = await _traced(store)
        stored, _ = await store.create_card(card())
        assert statements[0] == "PRAGMA synchronous = FULL" and statements[-1] == "PRAGMA synchronous = NORMAL"
        statements.clear()
        await store.apply_ledger_events([LedgerEvent(id="e1", version=1, balance=5, card_number=stored.number)], NOW)
        assert statements[0] == "PRAGMA synchronous = FULL"
        assert statements.index("COMMIT") < statements.index("PRAGMA synchronous = NORMAL")
        statements.clear()
        await store.register_device("d", "pass.t", stored.serial, "tok", NOW)
        assert statements[0] == "PRAGMA synchronous = FULL"
        # bookkeeping the worker can redo commits without the fsync
        statements.clear()
        await store.claim_outbox("w", 10, 30, NOW)
        await store.record_push({"n": 1}, NOW, keep=10)
        assert not any("synchronous" in s for s in statements)
    finally:
        await store.close()


async def test_sqlite_synchronous_normal_is_an_explicit_choice(tmp_path: Path) -> None:
    store = build_store(f"sqlite:///{tmp_path / 'w.db'}?synchronous=normal")
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        statements = await _traced(store)
        await store.create_card(card())
        assert not any("synchronous" in s for s in statements)
    finally:
        await store.close()
    with pytest.raises(StoreError):
        build_store(f"sqlite:///{tmp_path / 'w.db'}?synchronous=off")
    with pytest.raises(StoreError):
        build_store(f"sqlite:///{tmp_path / 'w.db'}?cache=shared")


def test_redis_without_fsync_or_replicas_refuses_a_prod_start() -> None:
    # The test server runs without persistence (--appendonly no): exactly what prod must refuse.
    refused, warned = persistence_problems(REDIS_URL)
    assert len(refused) == 1 and warned == []
    assert "appendonly is no" in refused[0] and "appendfsync always" in refused[0] and "wait_replicas" in refused[0]
    refused, warned = persistence_problems(REDIS_URL + "?wait_replicas=1")
    assert refused and "0 replica(s) connected of the 1" in refused[0]
    # accepting the risk is possible, and said at start
    refused, warned = persistence_problems(REDIS_URL + "?durability=relaxed&prefix=x:")
    assert refused == [] and len(warned) == 1


def test_an_unreachable_redis_refuses_a_prod_start() -> None:
    refused, _ = persistence_problems("redis://:secret-password@127.0.0.1:1/0")
    assert refused == ["WALLET_DATABASE_URL: the Redis server did not answer (ConnectionError)"]
    assert "secret-password" not in refused[0]


async def test_redis_promised_writes_wait_for_replicas() -> None:
    prefix = f"test-durable:{uuid.uuid4().hex}:"
    store = build_store(f"{REDIS_URL}?prefix={prefix}&wait_replicas=1")
    assert isinstance(store, RedisStore) and store.wait_replicas == 1
    store.wait_timeout_ms = 50
    await store.open()
    try:
        # no replica acknowledges: the write is not reported done (the caller answers 5xx, not 202)
        with pytest.raises(StoreError, match="acknowledged by 0 of 1 replicas"):
            await store.create_card(card())
    finally:
        await store.close()
        await delete_prefix(prefix)
