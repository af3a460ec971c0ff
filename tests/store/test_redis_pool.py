"""The Redis adapter's connection pool waits under a burst instead of failing: the worker looks up
many cards at once, and a burst of 1 000 concurrent calls once raised MaxConnectionsError."""

from __future__ import annotations

import asyncio
import uuid

from store.redis import RedisStore
from tests.conftest import REDIS_URL, delete_prefix
from tests.store.conftest import make_card


async def test_a_burst_beyond_the_pool_waits_for_connections() -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix, max_connections=20)
    await store.open()
    try:
        stored, _ = await store.create_card(make_card(1))
        found = await asyncio.gather(*(store.get_card(stored.number) for _ in range(1000)))
        assert all(card == stored for card in found)
    finally:
        await store.close()
        await delete_prefix(prefix)
