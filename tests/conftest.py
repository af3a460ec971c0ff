"""Fixtures shared by every test package: the store adapters, each on fresh, private data.

SQLite lives in the test's tmp_path; Redis uses the real server (db 15, or
WALLET_TEST_REDIS_URL) under a prefix unique to the test, whose keys are deleted afterwards,
so concurrent runs never see each other. A missing Redis fails the Redis half: CI has one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from store.port import Store
from store.redis import RedisStore
from store.sqlite import SqliteStore

# every test fails at teardown when its logs (or its servers' and workers' logs) hold PII or a secret
pytest_plugins = ["tests.pii_guard"]

REDIS_URL = os.environ.get("WALLET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

StoreFactory = Callable[[], Store]


async def delete_prefix(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "redis"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes unopened stores over the same data (for close/reopen tests); closes them after."""
    made: list[Store] = []
    prefix = f"test:{uuid.uuid4().hex}:"

    def make() -> Store:
        if request.param == "sqlite":
            store: Store = SqliteStore(tmp_path / "var" / "wallet.db")
        else:
            store = RedisStore(REDIS_URL, prefix=prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
    if request.param == "redis":
        await delete_prefix(prefix)


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    opened = store_factory()
    await opened.open()
    return opened
