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
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from push.backoff import backoff_delay
from push.results import PushResult, token_hint
from store.port import OutboxEntry, Store

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


class Worker:
    """`await run_once()` delivers one claimed batch; `await run_forever(stop)` keeps polling."""

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
        self._limit = asyncio.Semaphore(concurrency)
        # channel ("apns:<pass type>", "fcm", "apns_alert") → paused until (clock seconds)
        self.paused: dict[str, float] = {}
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
            await asyncio.gather(*(self._guarded(entry, now) for entry in entries))
        return len(entries)

    async def run_forever(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            if self.wakeup is not None:
                self.wakeup.clear()
            try:
                claimed = await self.run_once()
                failures = 0
            except Exception as exc:  # the store being down must not kill the worker
                failures += 1
                log.error("push worker: batch failed (%s); retrying", type(exc).__name__)
                claimed = 0
                await self._idle(stop, backoff_delay(failures, self.idle_sleep, 30.0, self.rng))
                continue
            if claimed < self.batch:
                await self._idle(stop, self.idle_sleep)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to `seconds`; wake early on stop or when new work is announced."""
        waits = [asyncio.ensure_future(stop.wait())]
        if self.wakeup is not None:
            waits.append(asyncio.ensure_future(self.wakeup.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def close(self) -> None:
        senders: list[Any] = [*self.apns.values(), self.fcm, self.apns_alert]
        seen: set[int] = set()
        for sender in senders:
            if sender is not None and id(sender) not in seen:
                seen.add(id(sender))
                await sender.close()

    # -- one entry ---------------------------------------------------------------------------
    async def _guarded(self, entry: OutboxEntry, now: float) -> None:
        async with self._limit:
            try:
                await self._handle(entry, now)
            except Exception as exc:
                # Unexpected (store hiccup, a bug): leave the entry leased; it comes back
                # when the lease runs out. Never let one entry sink the batch.
                log.error("push worker: entry %s failed: %s", entry.id, type(exc).__name__)

    async def _handle(self, entry: OutboxEntry, now: float) -> None:
        if entry.kind == "apns_pass":
            await self._pass_update(entry, now)
        elif entry.kind in ("fcm_alert", "apns_alert"):
            await self._alert(entry, now)
        else:
            await self._dead(entry, f"unknown kind {entry.kind!r}", now)

    async def _pass_update(self, entry: OutboxEntry, now: float) -> None:
        p = entry.payload
        device, pass_type, serial, tag = p["device_id"], p["pass_type_id"], p["serial"], p.get("tag")
        sender = self.apns.get(pass_type)
        if sender is None:
            await self._dead(entry, f"no APNs sender for pass type {pass_type}", now)
            return
        channel = f"apns:{pass_type}"
        if self._is_paused(channel, now):
            return  # stays leased; claimed again after the lease, without using an attempt
        registration = await self.store.get_registration(device, pass_type, serial)
        if registration is None:
            await self._skip(entry)  # the device unregistered meanwhile
            return
        if tag is not None and await self.store.last_pushed_tag(device, pass_type, serial) >= tag:
            await self._skip(entry)  # already pushed this (or a newer) change to this device
            return
        token = registration.push_token
        result = await sender.send_pass_update(token)
        if result.status == "ok":
            if tag is not None:
                await self.store.mark_pushed(device, pass_type, serial, tag)
            await self._delivered(entry, sender, {"serial": serial, "tag": tag}, now)
        elif result.status == "invalid_token":
            # Only if the device has not re-registered (possibly with a new token) since APNs
            # saw the token die.
            before = result.timestamp if result.timestamp is not None else now
            await self.store.remove_registration_if_stale(device, pass_type, serial, token, before)
            await self._invalid(entry, token, result, now)
        else:
            await self._not_delivered(entry, channel, result, now)

    async def _alert(self, entry: OutboxEntry, now: float) -> None:
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
        # A dry-run sender journals the push itself; journal real deliveries here.
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
        record = {"kind": entry.kind, "entry": entry.id, "outcome": outcome, **extra}
        if entry.kind == "apns_pass":
            record["pass_type_id"] = entry.payload.get("pass_type_id")
            record["device_id"] = entry.payload.get("device_id")
        await self.store.record_push(record, now, JOURNAL_KEEP)

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
