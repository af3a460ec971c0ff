"""Retention: what the store forgets on a schedule, in bounded batches, so nothing grows for good.

- accepted ledger event ids after WALLET_IDEMPOTENCY_DAYS (an id is a duplicate only that long;
  the ledger retries for far less);
- report facts (per-day counters) after WALLET_REPORT_DAYS;
- Google callbacks (nonces and events) after WALLET_IDEMPOTENCY_DAYS (Google retries within minutes);
- finished geo and import jobs (their rows, results and errors) after WALLET_JOB_DAYS.

Everything else that grows is bounded where it is written (dead letters, the push journal, device
logs, Google callback events, alert records, registrations per pass): see README "Bounds". A sweep
deletes at most `batch` rows per store call and yields between calls, so it never holds the store
for long; it repeats until nothing is left or `max_batches` ran, and the next tick goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from config.settings import Settings
from store.port import Store, fact_day

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class Swept:
    event_ids: int = 0
    fact_groups: int = 0
    google_callbacks: int = 0
    jobs: int = 0


class Retention:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        interval: float = 600.0,
        batch: int = 1000,
        max_batches: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.idempotency_seconds = settings.idempotency_days * DAY
        self.report_seconds = settings.report_days * DAY
        self.job_seconds = settings.job_days * DAY
        self.interval = interval
        self.batch = batch
        self.max_batches = max_batches
        self.clock = clock

    async def sweep(self) -> Swept:
        now = self.clock()
        store, batch = self.store, self.batch
        horizon = now - self.idempotency_seconds
        before_day = fact_day(now - self.report_seconds)
        swept = Swept(
            event_ids=await self._drain(lambda: store.forget_event_ids(horizon, batch)),
            fact_groups=await self._drain(lambda: store.forget_facts(before_day, batch)),
            google_callbacks=await self._drain(lambda: store.forget_google_callbacks(horizon, batch)),
            jobs=await self._drain(lambda: store.forget_finished_jobs(now - self.job_seconds, batch)),
        )
        if swept != Swept():
            log.info("retention: forgot %s", swept)
        return swept

    async def _drain(self, step: Callable[[], Awaitable[int]]) -> int:
        total = 0
        for _ in range(self.max_batches):
            done = await step()
            total += done
            if done < self.batch:
                break
            await asyncio.sleep(0)  # let requests in between batches
        return total

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # a store outage: the next tick tries again
                log.warning("retention sweep failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
