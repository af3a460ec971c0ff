"""The push worker: claims outbox entries, delivers them through channels, records the outcome.

One engine: a claimed batch is decoded into typed messages (push/messages.py), each kind goes
to its handler (the `_handlers` table), the handlers turn messages into pushes, the pushes go
out through the channel chosen by (client, scope) (push/channels/base.py `Channels`), batched
per channel, and the batch's outcomes are committed in one store call. `run_forever` claims
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
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from push.backoff import backoff_delay
from push.channels.base import ANY, AlertPush, Channel, Channels, PassPush, Push
from push.messages import AnyMessage, AppAlert, MessageError, PassUpdate, decode
from push.results import PushResult, token_hint
from store.port import OutboxEntry, PassKey, PushMark, Store

log = logging.getLogger(__name__)

JOURNAL_KEEP = 1000
APPLE = "apple"  # the client of a registration made by Apple Wallet


class _Fate(enum.IntEnum):
    """What becomes of an entry, in rising order of caution: the highest of its pushes wins."""

    DONE = 0
    DEAD = 1
    RETRY = 2
    HOLD = 3  # stays leased (paused channel)


@dataclass
class _Entry:
    """One claimed entry while its pushes are out."""

    entry: OutboxEntry
    fate: _Fate = _Fate.DONE
    reason: str = ""
    retry_after: float | None = None

    def settle(self, fate: _Fate, reason: str, retry_after: float | None = None) -> None:
        if fate > self.fate:
            self.fate, self.reason = fate, reason
        if retry_after is not None:
            self.retry_after = max(retry_after, self.retry_after or 0.0)


@dataclass
class _Batch:
    """One claimed batch: what it commits in one go at the end, and the rarer writes after."""

    now: float
    entries: list[_Entry] = field(default_factory=list)
    marks: list[PushMark] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)


# A push on its way, with what the handler needs to act on its result.
_OnResult = Callable[[PushResult, Channel], Awaitable[None]]
_Handler = Callable[[list[tuple[_Entry, Any]], _Batch], Awaitable[None]]


class _Sends:
    """The pushes of one batch grouped by channel, so each channel gets one `deliver` call."""

    def __init__(self) -> None:
        self._groups: dict[int, tuple[Channel, list[Push], list[_OnResult]]] = {}

    def add(self, channel: Channel, push: Push, on_result: _OnResult) -> None:
        group = self._groups.get(id(channel))
        if group is None:
            group = self._groups[id(channel)] = (channel, [], [])
        group[1].append(push)
        group[2].append(on_result)

    async def run(self) -> None:
        groups = list(self._groups.values())
        if len(groups) == 1:
            await self._deliver(*groups[0])
        elif groups:
            await asyncio.gather(*(self._deliver(*group) for group in groups))

    @staticmethod
    async def _deliver(channel: Channel, pushes: list[Push], callbacks: list[_OnResult]) -> None:
        results = await channel.deliver(pushes)
        for on_result, result in zip(callbacks, results, strict=True):
            await on_result(result, channel)


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
        # kind -> handler: one line per message kind
        self._handlers: dict[str, _Handler] = {
            PassUpdate.KIND: self._pass_updates,
            AppAlert.KIND: self._app_alerts,
        }

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
        batch = _Batch(now)
        try:
            by_kind: dict[str, list[tuple[_Entry, Any]]] = {}
            for entry in entries:
                state = _Entry(entry)
                batch.entries.append(state)
                try:
                    message: AnyMessage = decode(entry.kind, entry.fields)
                except MessageError as exc:
                    state.settle(_Fate.DEAD, str(exc))
                    continue
                by_kind.setdefault(entry.kind, []).append((state, message))
            handlers = [self._handlers[kind](items, batch) for kind, items in by_kind.items()]
            if len(handlers) == 1:
                await handlers[0]
            elif handlers:
                await asyncio.gather(*handlers)
            await self._commit(batch)
        except Exception as exc:
            # The store failed a read or the commit, or a bug: the entries stay leased and come
            # back when the lease runs out (pushes already sent are deduped only if marked).
            log.error("push worker: batch of %d failed: %s", len(entries), type(exc).__name__)
            log.debug("push worker: batch failure", exc_info=True)
        finally:
            self._unsent -= len(entries)
            self._room.set()

    async def _commit(self, batch: _Batch) -> None:
        acks = [state.entry.id for state in batch.entries if state.fate is _Fate.DONE]
        if batch.marks or acks or batch.journal:
            await self.store.complete_pushes(batch.marks, acks, batch.journal, batch.now, JOURNAL_KEEP)
        # After the commit, so a retried entry finds its delivered devices marked.
        for state in batch.entries:
            if state.fate is _Fate.RETRY:
                await self._retry(state, batch.now)
            elif state.fate is _Fate.DEAD:
                await self._dead(state.entry, state.reason, batch.now)

    async def _retry(self, state: _Entry, now: float) -> None:
        attempt = state.entry.attempts + 1
        if attempt >= self.max_attempts:
            await self._dead(state.entry, f"gave up after {attempt} attempts: {state.reason}", now)
            return
        delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng, state.retry_after)
        await self.store.retry_outbox(state.entry, delay, now)
        self.counters["retried"] += 1

    async def _dead(self, entry: OutboxEntry, error: str, now: float) -> None:
        await self.store.dead_letter(entry, error, now)
        self.counters["dead"] += 1
        log.warning("push %s %s dead-lettered: %s", entry.kind, entry.id, error)
        await self.store.record_push(
            {"kind": entry.kind, "entry": entry.id, "outcome": "dead", "error": error}, now, JOURNAL_KEEP
        )

    # -- handlers, one per message kind ---------------------------------------------------------
    async def _pass_updates(self, items: list[tuple[_Entry, PassUpdate]], batch: _Batch) -> None:
        keys: list[PassKey] = [(message.pass_type_id, message.serial) for _, message in items]
        targets = await self.store.pass_targets(keys)
        sends = _Sends()
        # Two entries of one pass in a batch (one claimed earlier, retried) push each device once.
        seen: set[tuple[str, str, str]] = set()
        for state, message in items:
            target = targets.get((message.pass_type_id, message.serial))
            if target is None or not target.tag:
                continue  # no such pass (any more): nothing to tell anyone
            for device in target.devices:
                key = (device.device_id, message.pass_type_id, message.serial)
                if device.pushed_tag >= target.tag or key in seen:
                    self.counters["skipped"] += 1  # already told of this (or a newer) change
                    continue
                seen.add(key)
                channel = self._channel(state, APPLE, message.pass_type_id, batch.now)
                if channel is not None:
                    sends.add(
                        channel,
                        PassPush(device.push_token),
                        self._pass_result(state, message, device.device_id, device.push_token, target.tag, batch),
                    )
        await sends.run()

    def _pass_result(
        self, state: _Entry, message: PassUpdate, device_id: str, token: str, tag: int, batch: _Batch
    ) -> _OnResult:
        async def on_result(result: PushResult, channel: Channel) -> None:
            if result.status == "ok":
                batch.marks.append(PushMark(device_id, message.pass_type_id, message.serial, tag))
                self.counters["delivered"] += 1
            elif result.status == "invalid_token":
                # Only if the device has not re-registered (possibly with a new token) since
                # the service saw the token die.
                before = result.timestamp if result.timestamp is not None else batch.now
                await self.store.remove_registration_if_stale(
                    device_id, message.pass_type_id, message.serial, token, before
                )
                self._invalid(state, token, result)
            else:
                self._not_delivered(state, channel, result, batch.now)
            batch.journal.append(
                self._record(
                    state,
                    channel,
                    result,
                    token,
                    pass_type_id=message.pass_type_id,
                    serial=message.serial,
                    device_id=device_id,
                    tag=tag,
                )
            )

        return on_result

    async def _app_alerts(self, items: list[tuple[_Entry, AppAlert]], batch: _Batch) -> None:
        sends = _Sends()
        for state, message in items:
            channel = self._channel(state, f"app:{message.platform}", ANY, batch.now)
            if channel is not None:
                push = AlertPush(message.token, message.title, message.body, message.data)
                sends.add(channel, push, self._alert_result(state, message, batch))
        await sends.run()

    def _alert_result(self, state: _Entry, message: AppAlert, batch: _Batch) -> _OnResult:
        async def on_result(result: PushResult, channel: Channel) -> None:
            if result.status == "ok":
                self.counters["delivered"] += 1
            elif result.status == "invalid_token":
                await self.store.delete_app_token(message.token)
                self._invalid(state, message.token, result)
            else:
                self._not_delivered(state, channel, result, batch.now)
            batch.journal.append(
                self._record(
                    state, channel, result, message.token, platform=message.platform, card=message.card_number[-4:]
                )
            )

        return on_result

    # -- shared by the handlers --------------------------------------------------------------------
    def _channel(self, state: _Entry, client: str, scope: str, now: float) -> Channel | None:
        """The channel for (client, scope), or None with the entry's fate settled."""
        channel = self.channels.get(client, scope)
        if channel is None:
            state.settle(_Fate.DEAD, f"no channel for {client} {scope}")
            return None
        if self.paused and self._is_paused(channel.name, now):
            state.settle(_Fate.HOLD, "channel paused")
            return None
        return channel

    def _invalid(self, state: _Entry, token: str, result: PushResult) -> None:
        self.counters["invalid"] += 1
        log.info("push %s: token %s is invalid (%s); forgotten", state.entry.kind, token_hint(token), result.reason)

    def _not_delivered(self, state: _Entry, channel: Channel, result: PushResult, now: float) -> None:
        if result.status == "auth_error":
            self.counters["auth_errors"] += 1
            self._pause(channel.name, result, now)
            state.settle(_Fate.HOLD, result.reason or "auth_error")
        elif result.status == "retry":
            state.settle(_Fate.RETRY, result.reason or "retry", result.retry_after)
        else:
            self.counters["failed"] += 1
            state.settle(_Fate.DEAD, f"failed: {result.reason}")

    @staticmethod
    def _record(state: _Entry, channel: Channel, result: PushResult, token: str, **extra: Any) -> dict[str, Any]:
        """The one journal record shape, whatever the channel or mode; tokens only as a hint."""
        record: dict[str, Any] = {
            "kind": state.entry.kind,
            "entry": state.entry.id,
            "channel": channel.name,
            "outcome": result.status,
            "dry_run": channel.dry_run,
            "token": token_hint(token),
        }
        if result.reason:
            record["reason"] = result.reason
        record.update(extra)
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
            channel,
            result.reason,
            self.auth_cooldown,
        )
