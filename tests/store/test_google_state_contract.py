"""Google Wallet sync bookkeeping (Store.get/put_google_state), the same on both adapters."""

from __future__ import annotations

import asyncio

from store.port import GOOGLE_NOTIFIED_KEPT, GoogleState, Store
from tests.conftest import StoreFactory


async def test_nothing_synced_yet_is_none(store: Store) -> None:
    assert await store.get_google_state("serial-1") is None


async def test_put_then_get_round_trips(store: Store) -> None:
    state = GoogleState(version=3, balance=120, tier="silver", message_hash="ab" * 32, notified=(1.5, 2.5))
    assert await store.put_google_state("serial-1", state) is True
    assert await store.get_google_state("serial-1") == state
    assert await store.get_google_state("serial-2") is None


async def test_a_lower_version_is_not_written(store: Store) -> None:
    newer = GoogleState(version=5, balance=50, tier="gold")
    assert await store.put_google_state("s", newer)
    assert await store.put_google_state("s", GoogleState(version=4, balance=40, tier="base")) is False
    assert await store.get_google_state("s") == newer


async def test_an_equal_or_higher_version_replaces(store: Store) -> None:
    await store.put_google_state("s", GoogleState(version=5, balance=50, tier="gold"))
    same = GoogleState(version=5, balance=50, tier="gold", message_hash="h", notified=(10.0,))
    assert await store.put_google_state("s", same)
    assert await store.get_google_state("s") == same
    higher = GoogleState(version=6, balance=60, tier="gold", message_hash="h", notified=(10.0, 11.0))
    assert await store.put_google_state("s", higher)
    assert await store.get_google_state("s") == higher


async def test_notify_times_are_kept_bounded_newest_last(store: Store) -> None:
    times = tuple(float(t) for t in range(GOOGLE_NOTIFIED_KEPT + 5))
    await store.put_google_state("s", GoogleState(version=1, balance=0, tier="base", notified=times))
    got = await store.get_google_state("s")
    assert got is not None and got.notified == times[-GOOGLE_NOTIFIED_KEPT:]


async def test_concurrent_puts_end_at_the_highest_version(store: Store) -> None:
    states = [GoogleState(version=v, balance=v * 10, tier="base") for v in range(1, 21)]
    order = states[::2] + states[1::2][::-1]
    await asyncio.gather(*(store.put_google_state("s", s) for s in order))
    assert await store.get_google_state("s") == states[-1]


async def test_survives_reopen(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    state = GoogleState(version=2, balance=20, tier="base", message_hash="x")
    await first.put_google_state("s", state)
    await first.close()
    again = store_factory()
    await again.open()
    assert await again.get_google_state("s") == state
