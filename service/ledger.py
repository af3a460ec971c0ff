"""Ledger intake, the use case behind `POST /v1/ledger/events`: parse each event, commit the
batch with its outbox entries, answer per event.

The signature and the JSON envelope are the web handler's; from the list of raw events on,
everything is here, so that a bad event is answered under `invalid` and never sinks the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cards.model import Card
from ledger.decide import LedgerEvent, Outcome
from ledger.events import EventError, event_id, parse_event
from ledger.plan import EventCheck
from passes.programs import Program
from push.kinds.google_object import GoogleObject
from push.messages import PassUpdate, entry
from store.port import Derive, GeoChanged, LedgerResult, NewEntry, Store

if TYPE_CHECKING:  # service/geo.py builds on the fanout defined here
    from service.geo import GeoService

log = logging.getLogger(__name__)

Answer = dict[str, list[Any]]

# What a store raises when it cannot encode a value it was given (a string UTF-8 refuses, an integer
# beyond 64 bits). ledger/events.py refuses every such value it knows of; one that still gets through
# costs its own event, found by splitting the batch, never the whole batch: a ledger that retries a
# batch the service always refuses is stuck for good. Connection and other store failures stay errors.
_UNSTORABLE = (UnicodeError, OverflowError, ValueError)
UNSTORABLE_MESSAGE = "the store cannot take this event"
_GEO_RETRIES = 20  # derivations of one batch while campaigns keep changing under it


class LedgerIntake:
    """Built once per process: the tier sets of the programs are fixed while it runs."""

    def __init__(
        self,
        store: Store,
        programs: Mapping[str, Program],
        pass_type_id: str,
        wakeup: asyncio.Event | None = None,
        *,
        google: bool = False,
        geo: GeoService | None = None,
    ) -> None:
        self.store = store
        self.geo = geo  # with it, each changed card's geo content is derived in the same commit
        self.pass_type_id = pass_type_id
        self.wakeup = wakeup
        self.google = google  # each changed card's Google Wallet object is patched too
        self._tiers = {name: frozenset(program.tier_keys) for name, program in programs.items()}
        self._all_tiers: frozenset[str] = frozenset().union(*self._tiers.values())
        # With one tier set for all programs, a tier valid anywhere is valid for every card.
        self._per_program = len(set(self._tiers.values())) > 1

    def fanout(self, card: Card) -> Sequence[NewEntry]:
        """The outbox work of one changed card: its pass, whoever holds it, and its Google Wallet
        object when Google Wallet is on."""
        if self.google:
            return (entry(PassUpdate(self.pass_type_id, card.serial)), entry(GoogleObject(card.serial)))
        return (entry(PassUpdate(self.pass_type_id, card.serial)),)

    def _check(self, event: LedgerEvent, card: Card) -> str | None:
        if event.tier is not None and event.tier not in self._tiers.get(card.program, frozenset()):
            return f"tier {event.tier!r} is not a tier of {card.program}"
        return None

    async def intake(self, items: Sequence[Any], now: float) -> Answer:
        """Apply what parses; answer `{accepted, duplicate, stale, unknown, invalid}`."""
        valid: list[LedgerEvent] = []
        invalid: list[dict[str, Any]] = []
        for item in items:
            try:
                valid.append(parse_event(item, self._all_tiers))
            except EventError as exc:
                invalid.append({"id": event_id(item), "error": str(exc)})
        answer: Answer = {o.value: [] for o in Outcome if o is not Outcome.INVALID}
        if valid:
            check = self._check if self._per_program else None
            result = await self._commit_derived(valid, now, check)
            for index, (ident, outcome) in enumerate(result.outcomes):
                if outcome is Outcome.INVALID:
                    invalid.append({"id": ident, "error": result.errors.get(index, "invalid")})
                else:
                    answer[outcome.value].append(ident)
            if result.changed and self.wakeup is not None:
                self.wakeup.set()
        answer["invalid"] = invalid
        return answer

    async def _commit_derived(self, events: list[LedgerEvent], now: float, check: EventCheck | None) -> LedgerResult:
        """`_commit` with geo content derived from the current geo snapshot: when campaigns or stores
        change between reading the snapshot and the commit, the store refuses it and the batch is
        derived again from the new snapshot."""
        if self.geo is None:
            return await self._commit(events, now, check, None, None)
        for _ in range(_GEO_RETRIES):
            snapshot = await self.geo.snapshot()
            try:
                return await self._commit(events, now, check, self.geo.deriver(snapshot, now), snapshot.generation)
            except GeoChanged:
                continue
        raise GeoChanged("campaigns or stores kept changing during a ledger commit")

    async def _commit(
        self,
        events: list[LedgerEvent],
        now: float,
        check: EventCheck | None,
        derive: Derive | None,
        generation: int | None,
    ) -> LedgerResult:
        """The store's result for `events`; when the store cannot encode something in them, the halves
        are committed one after the other (in order, so the outcomes are those of one batch) until the
        event it cannot take is alone, and that one is INVALID."""
        try:
            return await self.store.apply_ledger_events(
                events, now, self.fanout, check, derive=derive, geo_generation=generation
            )
        except _UNSTORABLE as exc:
            if len(events) == 1:
                log.warning("ledger event refused by the store: %s", type(exc).__name__)
                return LedgerResult(outcomes=[(events[0].id, Outcome.INVALID)], errors={0: UNSTORABLE_MESSAGE})
        middle = len(events) // 2
        first = await self._commit(events[:middle], now, check, derive, generation)
        second = await self._commit(events[middle:], now, check, derive, generation)
        return LedgerResult(
            outcomes=first.outcomes + second.outcomes,
            changed=_latest(first.changed + second.changed),
            errors={**first.errors, **{middle + index: error for index, error in second.errors.items()}},
        )


def _latest(cards: Sequence[Card]) -> list[Card]:
    """One card per number, its last state (a card both halves changed is in both)."""
    return list({card.number: card for card in cards}.values())
