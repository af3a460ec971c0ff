"""The push worker: claims outbox entries, delivers them concurrently, records the outcome.

Entry kinds (store/port.py `OutboxEntry`):
- `apns_pass`: the empty APNs push telling one device that one pass changed. The push goes
  to the registration's *current* token; a tag already pushed to that device is not pushed
  again, so a redelivered entry (crash, expired lease) stays invisible to the user.
- `fcm_alert` / `apns_alert`: an alert to a companion app token.

Outcomes: ok → acknowledged (and, for passes, the tag marked pushed); invalid_token → the
token is forgotten; retry → due again after backoff (at least the server's Retry-After),
dead-lettered after `max_attempts`; failed → dead-lettered at once; auth_error → the
channel pauses for `auth_cooldown` seconds and its entries stay queued (their leases run out
and they are claimed again), because a refused credential fails every push the same way.

Store trips: a claimed batch costs one `push_targets` read (tokens and pushed tags) and one
`complete_pushes` commit (tags marked, entries acked, journal appended) for all its successes
and dedupe skips; only the rare outcomes above are written entry by entry. `run_forever`
claims the next batch while earlier ones are still sending, so one slow push holds back only
the acknowledgement of its own batch, not the work behind it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from push.backoff import backoff_delay
from push.results import PushResult, token_hint
from store.port import DeliveredPush, OutboxEntry, PushKey, Store

log = logging.getLogger("wallet.push")

JOURNAL_KEEP = 1000


class PassSender(Protocol):
    async def send_pass_update(self, push_token: str) -> PushResult: ...
    async def close(self) -> None: ...


class AlertSender(Protocol):
    async def send_alert(self, token: str, title: str, body: str, data: dict[str, Any]) -> PushResult: ...
    async def close(self) -> None: ...


class FcmLike(Protocol):
    async def send(self, token: str, title: str, body: str, data: dict[str, Any]) -> PushResult: ...
    async def close(self) -> None: ...


@dataclass
class _Batch:
    """One claimed batch: what was read for it up front, and what it commits in one go at the end."""

    now: float
    targets: dict[PushKey, tuple[str | None, int]]
    done: list[DeliveredPush] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    skipped: int = 0
    # Entries of the batch whose send is not over yet; run_forever's lanes call `sent` per
    # entry and the last one resolves `all_sent`.
    unsent: int = 0
    all_sent: asyncio.Future[None] | None = None
    sent: Callable[[], None] = lambda: None


def _pass_key(payload: dict[str, Any]) -> PushKey | None:
    key = (payload.get("device_id"), payload.get("pass_type_id"), payload.get("serial"))
    # A malformed payload fails on its own in _pass_update instead of failing the batch read.
    return key if all(isinstance(part, str) for part in key) else None  # type: ignore[return-value]


class Worker:
    """`await run_once()` delivers one claimed batch; `await run_forever(stop)` keeps polling,
    with up to `concurrency` claimed entries sending at a time."""

    def __init__(
        self,
        store: Store,
        *,
        apns: Mapping[str, PassSender],
        fcm: FcmLike | None = None,
        apns_alert: AlertSender | None = None,
        consumer: str,
        batch: int = 100,
        lease_seconds: float = 30.0,
        max_attempts: int = 8,
        concurrency: int = 200,
        backoff_base: float = 2.0,
        backoff_cap: float = 900.0,
        auth_cooldown: float = 60.0,
        idle_sleep: float = 0.5,
        wakeup: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.apns = dict(apns)
        self.fcm = fcm
        self.apns_alert = apns_alert
        self.consumer = consumer
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_cooldown = auth_cooldown
        self.idle_sleep = idle_sleep
        self.wakeup = wakeup
        self.clock = clock
        self.rng = rng or random.Random()
        self.concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        # Claimed entries whose send is not over yet, and a signal when that number drops.
        self._unsent = 0
        self._room = asyncio.Event()
        # channel ("apns:<pass type>", "fcm", "apns_alert") → paused until (clock seconds)
        self.paused: dict[str, float] = {}
        self._channels: dict[str, str] = {}  # pass type → its channel name, built once
        self.counters: dict[str, int] = {
            "delivered": 0, "retried": 0, "dead": 0, "invalid": 0, "auth_errors": 0,
            "failed": 0, "skipped": 0,
        }

    # -- loop --------------------------------------------------------------------------------
    async def run_once(self, now: float | None = None) -> int:
        """Claim up to `batch` due entries and handle them; returns how many were claimed."""
        now = self.clock() if now is None else now
        entries = await self.store.claim_outbox(self.consumer, self.batch, self.lease_seconds, now)
        if entries:
            self._unsent += len(entries)
            await self._run_batch(entries, now)
        return len(entries)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Claim whenever there is room, without waiting for earlier batches to finish.

        At most `concurrency` claimed entries are unsent at any time, so every claimed entry
        starts sending at once instead of queueing while its lease runs down: `concurrency`
        long-lived sender lanes take claimed entries as they come (no task per entry).
        On stop, batches already claimed are finished before returning.
        """
        # Each claim is a store write: wait until half a batch fits rather than claim a few at a time.
        min_claim = max(1, min(self.batch, self.concurrency) // 2)
        in_flight: set[asyncio.Task[None]] = set()
        # Claimed entries no lane has taken yet, and the lanes waiting for one (each on a future
        # that is handed the next entry directly): cheaper than an asyncio.Queue per entry.
        backlog: deque[tuple[OutboxEntry, _Batch]] = deque()
        idle: deque[asyncio.Future[tuple[OutboxEntry, _Batch]]] = deque()

        def feed(item: tuple[OutboxEntry, _Batch]) -> None:
            while idle:
                waiter = idle.popleft()
                if not waiter.done():  # a lane cancelled while waiting leaves a done future
                    waiter.set_result(item)
                    return
            backlog.append(item)

        lanes = [asyncio.create_task(self._lane(backlog, idle)) for _ in range(max(1, self.concurrency))]
        failures = 0
        try:
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
                        await self._wait(stop, self.wakeup, backoff_delay(failures, self.idle_sleep, 30.0, self.rng))
                        continue
                    if entries:
                        self._unsent += len(entries)
                        task = asyncio.create_task(self._run_batch(entries, now, feed))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    if len(entries) < limit:  # nothing more is due now
                        await self._wait(stop, self.wakeup, self.idle_sleep)
            finally:
                if in_flight:
                    await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            for lane in lanes:
                lane.cancel()
            # Only when cancelled while finishing: a batch left without lanes would wait forever
            # (its entries stay leased and come back after the lease, as after a crash).
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*lanes, *in_flight, return_exceptions=True)

    async def _lane(
        self, backlog: deque[tuple[OutboxEntry, _Batch]], idle: deque[asyncio.Future[tuple[OutboxEntry, _Batch]]]
    ) -> None:
        """One sender of run_forever: claimed entries one at a time, for as long as the loop runs."""
        create_future = asyncio.get_running_loop().create_future
        while True:
            if backlog:
                entry, batch = backlog.popleft()
            else:
                waiter = create_future()
                idle.append(waiter)
                entry, batch = await waiter
            try:
                if entry.kind == "apns_pass":
                    await self._pass_update(entry, batch)
                else:
                    await self._handle(entry, batch)
            except Exception as exc:
                # As in _guarded: the entry stays leased and comes back when the lease runs out.
                log.error("push worker: entry %s failed: %s", entry.id, type(exc).__name__)
            finally:
                batch.sent()

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

    def _sent(self, count: int = 1) -> None:
        self._unsent -= count
        if count:
            self._room.set()

    async def close(self) -> None:
        senders: list[Any] = [*self.apns.values(), self.fcm, self.apns_alert]
        seen: set[int] = set()
        for sender in senders:
            if sender is not None and id(sender) not in seen:
                seen.add(id(sender))
                await sender.close()

    # -- one batch ---------------------------------------------------------------------------
    async def _run_batch(
        self, entries: list[OutboxEntry], now: float,
        feed: Callable[[tuple[OutboxEntry, _Batch]], None] | None = None,
    ) -> None:
        """Deliver claimed `entries` (already counted in `_unsent`) and commit their outcomes:
        each under the semaphore in a task of its own, or, with `feed`, by run_forever's lanes."""
        batch = _Batch(now, {})
        batch.unsent = len(entries)
        try:
            keys = [key for entry in entries if entry.kind == "apns_pass" and (key := _pass_key(entry.payload))]
            if keys:
                batch.targets = await self.store.push_targets(keys)
            if feed is None:
                await asyncio.gather(*(self._guarded(entry, batch) for entry in entries))
            else:
                batch.all_sent = asyncio.get_running_loop().create_future()
                batch.sent = functools.partial(self._lane_sent, batch)
                for entry in entries:
                    feed((entry, batch))
                await batch.all_sent
            await self._complete(batch)
        except Exception as exc:
            # The store failed the batch read or commit: the entries stay leased and come back
            # when the lease runs out (pushes already sent are deduped only if marked).
            log.error("push worker: batch of %d failed: %s", len(entries), type(exc).__name__)
        finally:
            self._sent(batch.unsent)
            batch.unsent = 0

    def _lane_sent(self, batch: _Batch) -> None:
        batch.unsent -= 1
        self._unsent -= 1
        self._room.set()
        if not batch.unsent and batch.all_sent is not None and not batch.all_sent.done():
            batch.all_sent.set_result(None)

    async def _complete(self, batch: _Batch) -> None:
        if batch.done or batch.journal:
            await self.store.complete_pushes(self.consumer, batch.done, batch.journal, batch.now, JOURNAL_KEEP)
        self.counters["delivered"] += batch.delivered
        self.counters["skipped"] += batch.skipped

    # -- one entry ---------------------------------------------------------------------------
    async def _guarded(self, entry: OutboxEntry, batch: _Batch) -> None:
        async with self._limit:
            try:
                await self._handle(entry, batch)
            except Exception as exc:
                # Unexpected (store hiccup, a bug): leave the entry leased; it comes back
                # when the lease runs out. Never let one entry sink the batch.
                log.error("push worker: entry %s failed: %s", entry.id, type(exc).__name__)
            finally:
                batch.unsent -= 1
                self._sent()

    async def _handle(self, entry: OutboxEntry, batch: _Batch) -> None:
        now = batch.now
        if entry.kind == "apns_pass":
            await self._pass_update(entry, batch)
        elif entry.kind in ("fcm_alert", "apns_alert"):
            await self._alert(entry, now)
        else:
            await self._dead(entry, f"unknown kind {entry.kind!r}", now)

    async def _pass_update(self, entry: OutboxEntry, batch: _Batch) -> None:
        now, p = batch.now, entry.payload
        device, pass_type, serial, tag = p["device_id"], p["pass_type_id"], p["serial"], p.get("tag")
        sender = self.apns.get(pass_type)
        if sender is None:
            await self._dead(entry, f"no APNs sender for pass type {pass_type}", now)
            return
        channel = self._channels.get(pass_type) or self._channels.setdefault(pass_type, f"apns:{pass_type}")
        if self.paused and self._is_paused(channel, now):
            return  # stays leased; claimed again after the lease, without using an attempt
        key = (device, pass_type, serial)
        token, last_tag = batch.targets.get(key, (None, 0))
        if token is None:
            await self._skip(entry)  # the device unregistered meanwhile
            return
        if tag is not None and last_tag >= tag:
            # Already pushed this (or a newer) change to this device: acked with the batch.
            batch.done.append((entry.id, *key, tag))
            batch.skipped += 1
            return
        result = await sender.send_pass_update(token)
        if result.status == "ok":
            batch.done.append((entry.id, *key, tag if tag is not None else 0))
            batch.delivered += 1
            # A dry-run sender journals the push itself; journal real deliveries here.
            if not getattr(sender, "records_pushes", False):
                # What _record builds, spelled out: this runs once per delivered push.
                batch.journal.append({"kind": "apns_pass", "entry": entry.id, "outcome": "ok", "serial": serial,
                                      "tag": tag, "pass_type_id": pass_type, "device_id": device})
        elif result.status == "invalid_token":
            # Only if the device has not re-registered (possibly with a new token) since APNs
            # saw the token die.
            before = result.timestamp if result.timestamp is not None else now
            await self.store.remove_registration_if_stale(device, pass_type, serial, token, before)
            await self._invalid(entry, token, result, now)
        else:
            await self._not_delivered(entry, channel, result, now)

    async def _alert(self, entry: OutboxEntry, now: float) -> None:
        # Companion-app alerts are rare next to pass updates: acknowledged one by one.
        p = entry.payload
        token = p["token"]
        title, body, data = p.get("title", ""), p.get("body", ""), dict(p.get("data") or {})
        if entry.kind == "fcm_alert":
            channel, fcm, apns = "fcm", self.fcm, None
        else:
            channel, fcm, apns = "apns_alert", None, self.apns_alert
        if fcm is None and apns is None:
            await self._dead(entry, f"no sender configured for {entry.kind}", now)
            return
        if self._is_paused(channel, now):
            return
        if fcm is not None:
            result = await fcm.send(token, title, body, data)
            sender: Any = fcm
        else:
            assert apns is not None
            result = await apns.send_alert(token, title, body, data)
            sender = apns
        if result.status == "ok":
            await self._delivered(entry, sender, {"card": p.get("card")}, now)
        elif result.status == "invalid_token":
            await self.store.delete_app_token(token)
            await self._invalid(entry, token, result, now)
        else:
            await self._not_delivered(entry, channel, result, now)

    # -- outcomes ----------------------------------------------------------------------------
    async def _delivered(self, entry: OutboxEntry, sender: Any, extra: dict[str, Any], now: float) -> None:
        await self.store.ack_outbox(self.consumer, [entry.id])
        self.counters["delivered"] += 1
        if not getattr(sender, "records_pushes", False):
            await self._journal(entry, "ok", extra, now)

    async def _invalid(self, entry: OutboxEntry, token: str, result: PushResult, now: float) -> None:
        await self.store.ack_outbox(self.consumer, [entry.id])
        self.counters["invalid"] += 1
        log.info("push %s: token %s is invalid (%s); forgotten", entry.kind, token_hint(token), result.reason)
        await self._journal(entry, "invalid_token", {"reason": result.reason}, now)

    async def _skip(self, entry: OutboxEntry) -> None:
        await self.store.ack_outbox(self.consumer, [entry.id])
        self.counters["skipped"] += 1

    async def _not_delivered(self, entry: OutboxEntry, channel: str, result: PushResult, now: float) -> None:
        if result.status == "auth_error":
            self.counters["auth_errors"] += 1
            self._pause(channel, result, now)
            return  # left leased: back after the lease, not counted as an attempt
        if result.status == "retry":
            attempt = entry.attempts + 1
            if attempt >= self.max_attempts:
                await self._dead(entry, f"gave up after {attempt} attempts: {result.reason}", now)
                return
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng, result.retry_after)
            await self.store.retry_outbox(entry, delay, now)
            self.counters["retried"] += 1
            return
        self.counters["failed"] += 1
        await self._dead(entry, f"failed: {result.reason}", now)

    async def _dead(self, entry: OutboxEntry, error: str, now: float) -> None:
        await self.store.dead_letter(entry, error, now)
        self.counters["dead"] += 1
        log.warning("push %s %s dead-lettered: %s", entry.kind, entry.id, error)
        await self._journal(entry, "dead", {"error": error}, now)

    async def _journal(self, entry: OutboxEntry, outcome: str, extra: dict[str, Any], now: float) -> None:
        await self.store.record_push(self._record(entry, outcome, extra), now, JOURNAL_KEEP)

    @staticmethod
    def _record(entry: OutboxEntry, outcome: str, extra: dict[str, Any]) -> dict[str, Any]:
        record = {"kind": entry.kind, "entry": entry.id, "outcome": outcome, **extra}
        if entry.kind == "apns_pass":
            record["pass_type_id"] = entry.payload.get("pass_type_id")
            record["device_id"] = entry.payload.get("device_id")
        return record

    # -- auth pauses -------------------------------------------------------------------------
    def _is_paused(self, channel: str, now: float) -> bool:
        until = self.paused.get(channel)
        if until is None:
            return False
        if now >= until:
            del self.paused[channel]
            log.info("push channel %s: retrying after credential cool-down", channel)
            return False
        return True

    def _pause(self, channel: str, result: PushResult, now: float) -> None:
        if channel in self.paused and self.paused[channel] > now:
            return  # one log line per pause, not one per entry of the batch
        self.paused[channel] = now + self.auth_cooldown
        log.error(
            "push channel %s: credentials refused (%s); pausing %.0fs, entries stay queued",
            channel, result.reason, self.auth_cooldown,
        )
