"""The push worker: claims outbox entries, delivers them through channels, records the outcome.

One engine: a claimed batch is decoded into typed messages, each kind goes to its handler (the
registry in push/messages.py; the handlers live in push/kinds/), the handlers turn messages
into pushes through the batch context (push/batch.py), the pushes go out through the channel
chosen by (client, scope) (push/channels/base.py `Channels`), one `deliver` call per channel,
and the batch's outcomes are committed in one store call. `run_forever` claims
the next batch while earlier ones are still sending; `run_once` and `run_until_idle` run the
same batch step once or until nothing is due (tests, the CLI).

Kinds:
- `pass_update`: one pass changed. Expanded at delivery to the devices registered for it now,
  each pushed only if the pass's current tag is above the tag last pushed to it, so a
  redelivered entry (crash, expired lease) stays invisible to the user and a device that
  registered after the change is pushed too.
- `app_alert`: a visible alert to one companion-app install.

Outcomes per push: ok → the tag marked pushed (pass updates) and journaled; invalid_token →
the token is forgotten; retry → the entry is due again after backoff (at least Retry-After;
devices already pushed are not pushed again), dead-lettered after `max_attempts`; failed →
dead-lettered; auth_error → the channel pauses for `auth_cooldown` seconds and the entry stays
leased (claimed again when the lease runs out, without using an attempt), because a refused
credential fails every push the same way. An entry's outcome is the most cautious of its
pushes' (stay leased, then retry, then dead letter, then done).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

from push.backoff import backoff_delay
from push.batch import Batch, EntryState, Fate
from push.channels.base import Channel, Channels
from push.clients import APPLE
from push.messages import KINDS, Message, MessageError, decode
from push.results import PushResult
from store.port import DEAD_LETTERS_KEPT, OutboxEntry, Store

log = logging.getLogger(__name__)

JOURNAL_KEEP = 1000
__all__ = ["APPLE", "JOURNAL_KEEP", "Worker"]


class Worker:
    """`await run_forever(stop)` keeps delivering; `await run_once()` delivers one batch."""

    def __init__(
        self,
        store: Store,
        *,
        channels: Channels,
        consumer: str,
        batch: int = 100,
        lease_seconds: float = 30.0,
        max_attempts: int = 8,
        # Entries in flight: enough for a burst's pushes to one relay to meet in its call queue
        # (one token per card still fills a 1000-token call); channels bound their own in-flight
        # pushes (ApnsChannel max_in_flight), so a large number here costs APNs nothing.
        concurrency: int = 1000,
        backoff_base: float = 2.0,
        backoff_cap: float = 900.0,
        auth_cooldown: float = 60.0,
        idle_sleep: float = 0.5,
        wakeup: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        dead_letters_kept: int = DEAD_LETTERS_KEPT,
    ) -> None:
        self.store = store
        self.dead_letters_kept = dead_letters_kept
        self.channels = channels
        self.consumer = consumer
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_cooldown = auth_cooldown
        self.idle_sleep = idle_sleep
        self.wakeup = wakeup
        self.clock = clock
        self.rng = rng or random.Random()
        # Claimed entries whose batch is not finished yet, and a signal when that number drops.
        self._unsent = 0
        self._room = asyncio.Event()
        self.paused: dict[str, float] = {}  # channel name -> paused until (clock seconds)
        self.counters: dict[str, int] = {
            "delivered": 0,
            "retried": 0,
            "dead": 0,
            "invalid": 0,
            "auth_errors": 0,
            "failed": 0,
            "skipped": 0,
        }
        self.pushes: Counter[tuple[str, str]] = Counter()  # (client, outcome), for /metrics
        # (kind, seconds from an entry's enqueue to its outcome committed), for each entry done; the web
        # process sets it when it runs this worker (web/metrics.py watch_worker), else nothing observes
        self.observe_latency: Callable[[str, float], None] | None = None

    # -- loop --------------------------------------------------------------------------------
    async def run_once(self, now: float | None = None) -> int:
        """Claim up to `batch` due entries and deliver them; returns how many were claimed."""
        now = self.clock() if now is None else now
        entries = await self.store.claim_outbox(self.consumer, self.batch, self.lease_seconds, now)
        if entries:
            self._unsent += len(entries)
            await self._run_batch(entries, now)
        return len(entries)

    async def run_until_idle(self, now: float | None = None) -> int:
        """Batches until none is due; returns how many entries were claimed in all."""
        total = 0
        while claimed := await self.run_once(now):
            total += claimed
        return total

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Claim whenever there is room, without waiting for earlier batches to finish.

        At most `concurrency` claimed entries are unfinished at any time, so a claimed entry
        starts sending at once instead of queueing while its lease runs down. On stop,
        batches already claimed are finished before returning.
        """
        # Each claim is a store write: wait until half a batch fits rather than claim a few at a time.
        min_claim = max(1, min(self.batch, self.concurrency) // 2)
        in_flight: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not stop.is_set():
                room = self.concurrency - self._unsent
                if room < min_claim:
                    self._room.clear()
                    await self._wait(stop, self._room)
                    continue
                if self.wakeup is not None:
                    self.wakeup.clear()
                limit, now = min(self.batch, room), self.clock()
                try:
                    entries = await self.store.claim_outbox(self.consumer, limit, self.lease_seconds, now)
                    failures = 0
                except Exception as exc:  # the store being down must not kill the worker
                    failures += 1
                    log.error("push worker: claim failed (%s); retrying", type(exc).__name__)
                    log.debug("push worker: claim failure", exc_info=True)
                    await self._wait(stop, self.wakeup, backoff_delay(failures, self.idle_sleep, 30.0, self.rng))
                    continue
                if entries:
                    self._unsent += len(entries)
                    task = asyncio.create_task(self._run_batch(entries, now))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if len(entries) < limit:  # nothing more is due now
                    await self._wait(stop, self.wakeup, self.idle_sleep)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    @staticmethod
    async def _wait(stop: asyncio.Event, event: asyncio.Event | None, seconds: float | None = None) -> None:
        """Sleep up to `seconds` (None: no limit); wake early on stop or when `event` is set."""
        waits = [asyncio.ensure_future(stop.wait())]
        if event is not None:
            waits.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def close(self) -> None:
        await self.channels.aclose()

    # -- one batch ---------------------------------------------------------------------------
    async def _run_batch(self, entries: list[OutboxEntry], now: float) -> None:
        """Deliver claimed `entries` (already counted in `_unsent`) and commit their outcomes."""
        batch = Batch(self.store, self, now)
        try:
            by_kind: dict[str, list[tuple[EntryState, Message]]] = {}
            for entry in entries:
                state = EntryState(entry)
                batch.entries.append(state)
                try:
                    message = decode(entry.kind, entry.fields)
                except MessageError as exc:
                    state.settle(Fate.DEAD, str(exc))
                    continue
                by_kind.setdefault(entry.kind, []).append((state, message))
            for kind, items in by_kind.items():
                await KINDS[kind].handle(items, batch)
            await batch.send_all()
            await self._commit(batch)
        except Exception as exc:
            # The store failed a read or the commit, or a bug: the entries stay leased and come
            # back when the lease runs out (pushes already sent are deduped only if marked).
            log.error("push worker: batch of %d failed: %s", len(entries), type(exc).__name__)
            log.debug("push worker: batch failure", exc_info=True)
        finally:
            self._unsent -= len(entries)
            self._room.set()

    async def _commit(self, batch: Batch) -> None:
        acks = [state.entry.id for state in batch.entries if state.fate is Fate.DONE]
        if batch.marks or acks or batch.records:
            await self.store.complete_pushes(batch.marks, acks, batch.records, batch.now, JOURNAL_KEEP)
        if self.observe_latency is not None:
            done_at = self.clock()
            for state in batch.entries:
                if state.fate is Fate.DONE and state.entry.enqueued_at:
                    self.observe_latency(state.entry.kind, done_at - state.entry.enqueued_at)
        # After the commit, so a retried entry finds its delivered devices marked.
        for state in batch.entries:
            if state.fate is Fate.RETRY:
                await self._retry(state, batch.now)
            elif state.fate is Fate.DEAD:
                await self._dead(state.entry, state.reason, batch.now)

    async def _retry(self, state: EntryState, now: float) -> None:
        attempt = state.entry.attempts + 1
        if attempt >= self.max_attempts:
            await self._dead(state.entry, f"gave up after {attempt} attempts: {state.reason}", now)
            return
        delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng, state.retry_after)
        await self.store.retry_outbox(state.entry, delay, now)
        self.counters["retried"] += 1

    async def _dead(self, entry: OutboxEntry, error: str, now: float) -> None:
        await self.store.dead_letter(entry, error, now, self.dead_letters_kept)
        self.counters["dead"] += 1
        log.warning("push %s %s dead-lettered: %s", entry.kind, entry.id, error)
        await self.store.record_push(
            {"kind": entry.kind, "entry": entry.id, "outcome": "dead", "error": error}, now, JOURNAL_KEEP
        )

    # -- the batch context's view of the worker (push/batch.py Dispatcher) --------------------------
    def channel_for(self, client: str, scope: str) -> Channel | None:
        return self.channels.get(client, scope)

    # -- auth pauses -------------------------------------------------------------------------
    def is_paused(self, channel: str, now: float) -> bool:
        until = self.paused.get(channel) if self.paused else None
        if until is None:
            return False
        if now >= until:
            del self.paused[channel]
            log.info("push channel %s: retrying after credential cool-down", channel)
            return False
        return True

    def pause(self, channel: str, result: PushResult, now: float) -> None:
        if channel in self.paused and self.paused[channel] > now:
            return  # one log line per pause, not one per entry of the batch
        self.paused[channel] = now + self.auth_cooldown
        log.error(
            "push channel %s: credentials refused (%s); pausing %.0fs, entries stay queued",
            channel,
            result.reason,
            self.auth_cooldown,
        )
