"""`google_object`: one card's Google Wallet object is to show the card's current state.

The entry names the card by serial only: the handler reads the card at delivery, so an entry
coalesced with later changes, or retried, always carries the latest state, and the channel
(push/channels/google.py) skips what the object already shows and never sends an older
version over a newer one. Routed through the channel for ("google", the card's program),
falling back to ("google", ANY). Journal records carry the serial and the object id only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, cast

from cards.model import Card
from push.batch import Batch, EntryState
from push.channels.base import Channel, Push
from push.channels.google import GoogleSync, GoogleWalletChannel
from push.kinds.base import Fields, required
from push.results import PushResult

GOOGLE: Final = "google"  # the client of the Google Wallet channel in the worker's table


@dataclass(frozen=True, slots=True)
class GoogleObject:
    KIND: ClassVar[str] = "google_object"

    serial: str

    def coalesce_key(self) -> str:
        # While one waits unclaimed, a later change of the card needs no second entry.
        return json.dumps([self.KIND, self.serial], separators=(",", ":"))

    def to_fields(self) -> Fields:
        return {"serial": self.serial}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> GoogleObject:
        return cls(serial=required(fields, "serial"))


async def handle(items: list[tuple[EntryState, GoogleObject]], batch: Batch) -> None:
    serials = list(dict.fromkeys(message.serial for _, message in items))
    found = await asyncio.gather(*(batch.store.get_card_by_serial(serial) for serial in serials))
    cards = dict(zip(serials, found, strict=True))
    seen: set[str] = set()
    for state, message in items:
        card = cards.get(message.serial)
        if card is None or message.serial in seen:
            # no such card (any more), or a second entry of the card in this batch (one sync each)
            batch.counters["skipped"] += 1
            continue
        seen.add(message.serial)
        channel = batch.channel(state, GOOGLE, card.program)
        if channel is not None:
            # Push is the APNs/relay union of push/channels/base.py; the Google channel takes GoogleSync.
            batch.send(channel, cast(Push, GoogleSync(card)), _OnResult(batch, state, card))


class _OnResult:
    __slots__ = ("batch", "card", "state")

    def __init__(self, batch: Batch, state: EntryState, card: Card) -> None:
        self.batch, self.state, self.card = batch, state, card

    async def __call__(self, result: PushResult, channel: Channel) -> None:
        batch = self.batch
        batch.count(GOOGLE, result.status)
        if result.status == "ok":
            batch.delivered()
        else:
            batch.not_delivered(self.state, channel, result)
        extra: dict[str, object] = {"serial": self.card.serial, "version": self.card.version}
        if isinstance(channel, GoogleWalletChannel):
            extra["object_id"] = channel.object_id(self.card)
        batch.journal(self.state, channel, result, "", **extra)
