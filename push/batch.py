"""One claimed batch while it is delivered: the context a kind's handler works in.

A handler (push/kinds/) turns its messages into pushes with `channel()` and `send()`, and
acts on each push's result in a callback: `mark()` a delivered pass update, `journal()` the
push, `invalid()` for a dead token, `not_delivered()` for the rest. The worker then sends
what was queued, one `deliver` call per channel, and commits the batch in one store call.
Each entry's fate is the most cautious of its pushes' (see `Fate`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from push.channels.base import Channel, Push
from push.results import PushResult, token_hint
from store.port import OutboxEntry, PushMark, Store

log = logging.getLogger(__name__)


class Fate(enum.IntEnum):
    """What becomes of an entry, in rising order of caution: the highest of its pushes wins."""

    DONE = 0  # acknowledged
    DEAD = 1  # dead-lettered
    RETRY = 2  # due again after backoff (devices already pushed are not pushed again)
    HOLD = 3  # stays leased: claimed again when the lease runs out, no attempt used (paused channel)


@dataclass
class EntryState:
    """One claimed entry while its pushes are out."""

    entry: OutboxEntry
    fate: Fate = Fate.DONE
    reason: str = ""
    retry_after: float | None = None

    def settle(self, fate: Fate, reason: str, retry_after: float | None = None) -> None:
        if fate > self.fate:
            self.fate, self.reason = fate, reason
        if retry_after is not None:
            self.retry_after = max(retry_after, self.retry_after or 0.0)


OnResult = Callable[[PushResult, Channel], Awaitable[None]]


class Dispatcher(Protocol):
    """What a batch needs of its worker: the channel table with its pauses, and the counters."""

    counters: dict[str, int]
    pushes: Counter[tuple[str, str]]  # (client, outcome) -> pushes answered

    def channel_for(self, client: str, scope: str) -> Channel | None: ...

    def is_paused(self, channel: str, now: float) -> bool: ...

    def pause(self, channel: str, result: PushResult, now: float) -> None: ...


@dataclass
class Batch:
    store: Store
    dispatcher: Dispatcher
    now: float
    entries: list[EntryState] = field(default_factory=list)
    marks: list[PushMark] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    _sends: dict[int, tuple[Channel, list[Push], list[OnResult]]] = field(default_factory=dict)

    @property
    def counters(self) -> dict[str, int]:
        return self.dispatcher.counters

    # -- for handlers ----------------------------------------------------------------------------
    def channel(self, state: EntryState, client: str, scope: str) -> Channel | None:
        """The channel for (client, scope), or None with the entry's fate settled (no such
        channel: dead letter; paused: stays leased)."""
        found = self.dispatcher.channel_for(client, scope)
        if found is None:
            state.settle(Fate.DEAD, f"no channel for {client} {scope}")
            return None
        if self.dispatcher.is_paused(found.name, self.now):
            state.settle(Fate.HOLD, "channel paused")
            return None
        return found

    def send(self, channel: Channel, push: Push, on_result: OnResult) -> None:
        """Queue `push`; `on_result` runs with its result once the channel answered."""
        group = self._sends.get(id(channel))
        if group is None:
            group = self._sends[id(channel)] = (channel, [], [])
        group[1].append(push)
        group[2].append(on_result)

    def count(self, client: str, outcome: str) -> None:
        """One push to an app of this client answered with this outcome (metrics per client)."""
        self.dispatcher.pushes[(client, outcome)] += 1

    def mark(self, mark: PushMark) -> None:
        self.marks.append(mark)
        self.counters["delivered"] += 1

    def delivered(self) -> None:
        self.counters["delivered"] += 1

    def journal(self, state: EntryState, channel: Channel, result: PushResult, token: str, **extra: Any) -> None:
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
        self.records.append(record)

    def invalid(self, state: EntryState, token: str, result: PushResult) -> None:
        self.counters["invalid"] += 1
        log.info("push %s: token %s is invalid (%s); forgotten", state.entry.kind, token_hint(token), result.reason)

    def not_delivered(self, state: EntryState, channel: Channel, result: PushResult) -> None:
        if result.status == "auth_error":
            self.counters["auth_errors"] += 1
            self.dispatcher.pause(channel.name, result, self.now)
            state.settle(Fate.HOLD, result.reason or "auth_error")
        elif result.status == "retry":
            state.settle(Fate.RETRY, result.reason or "retry", result.retry_after)
        else:
            self.counters["failed"] += 1
            state.settle(Fate.DEAD, f"failed: {result.reason}")

    # -- for the worker --------------------------------------------------------------------------
    async def send_all(self) -> None:
        """One `deliver` call per channel, channels side by side."""
        groups, self._sends = list(self._sends.values()), {}
        if len(groups) == 1:
            await self._deliver(*groups[0])
        elif groups:
            await asyncio.gather(*(self._deliver(*group) for group in groups))

    @staticmethod
    async def _deliver(channel: Channel, pushes: list[Push], callbacks: list[OnResult]) -> None:
        results = await channel.deliver(pushes)
        for on_result, result in zip(callbacks, results, strict=True):
            await on_result(result, channel)
