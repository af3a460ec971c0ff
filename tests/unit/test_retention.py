"""The retention sweep on both stores: event ids older than WALLET_IDEMPOTENCY_DAYS are forgotten in
bounded batches (an old id is accepted again, a recent one stays a duplicate), report days older
than WALLET_REPORT_DAYS go, and a sweep stops after its batches and goes on at the next."""

from __future__ import annotations

from dataclasses import replace

from config.settings import Settings
from ledger.decide import LedgerEvent, Outcome
from service.retention import DAY, Retention
from store.port import FACT_PUSHES, Store, fact_day
from tests.store.conftest import make_card

T0 = 1_800_000_000.0


def _event(i: int, card: str, version: int) -> LedgerEvent:
    return LedgerEvent(id=f"evt-{i}", version=version, balance=version * 10, card_number=card)


def _retention(store: Store, now: float, **kw: int) -> Retention:
    settings = replace(Settings(), idempotency_days=35, report_days=400)
    return Retention(store, settings, clock=lambda: now, **kw)


async def test_old_event_ids_are_forgotten_recent_ones_kept(store: Store) -> None:
    card = make_card(1)
    await store.create_card(card)
    await store.apply_ledger_events([_event(i, card.number, i + 1) for i in range(5)], T0)
    await store.apply_ledger_events([_event(100, card.number, 50)], T0 + 30 * DAY)

    swept = await _retention(store, T0 + 36 * DAY, batch=2).sweep()
    assert swept.event_ids == 5  # three batches of at most two

    again = await store.apply_ledger_events([_event(0, card.number, 60), _event(100, card.number, 61)], T0 + 36 * DAY)
    assert [outcome for _, outcome in again.outcomes] == [Outcome.ACCEPTED, Outcome.DUPLICATE]


async def test_a_sweep_stops_after_its_batches(store: Store) -> None:
    card = make_card(2)
    await store.create_card(card)
    await store.apply_ledger_events([_event(i, card.number, i + 1) for i in range(7)], T0)
    retention = _retention(store, T0 + 40 * DAY, batch=2, max_batches=2)
    assert (await retention.sweep()).event_ids == 4
    assert (await retention.sweep()).event_ids == 3
    assert (await retention.sweep()).event_ids == 0


async def test_report_days_beyond_the_window_are_dropped(store: Store) -> None:
    await store.add_facts(FACT_PUSHES, [("apns", "ok")], T0)
    await store.add_facts(FACT_PUSHES, [("apns", "ok")], T0 + 399 * DAY)
    swept = await _retention(store, T0 + 401 * DAY).sweep()
    assert swept.fact_groups == 1
    counts = await store.fact_counts(FACT_PUSHES, fact_day(T0), fact_day(T0 + 401 * DAY))
    assert [(c.day, c.count) for c in counts] == [(fact_day(T0 + 399 * DAY), 1)]
