"""Planning a batch of ledger events against a snapshot of card state, shared by both adapters.

The adapters load the cards and already accepted ids a batch touches, this module walks the
events in order with ledger.decide's rules (so a v3 then a v2 of one card in one batch leaves
the v2 stale), and the adapter then commits the plan in one atomic step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cards.model import Card, next_modified_at
from ledger.decide import LedgerEvent, Outcome, apply_event, classify


@dataclass
class CardChange:
    """Everything an atomic commit needs for one card the batch changed."""

    base_version: int  # the version the plan was made against (compare-and-set material)
    card: Card  # final state after the batch's accepted events for this card
    event_ids: list[str] = field(default_factory=list)  # accepted ids, in order


@dataclass
class BatchPlan:
    outcomes: list[tuple[str, Outcome]]
    changes: dict[str, CardChange]  # by card number, in first-change order
    errors: dict[int, str] = field(default_factory=dict)  # position in the batch -> why INVALID


# A rule an event must meet against the card it addresses: None when met, else why not.
# Cards never change program, so a per-program rule needs no read beyond the plan's own.
EventCheck = Callable[[LedgerEvent, Card], "str | None"]


def card_key(event: LedgerEvent, number_by_account: Mapping[str, str]) -> str | None:
    """The card number an event addresses: its `card`, else the card of its `account`."""
    if event.card_number is not None:
        return event.card_number
    if event.account is not None:
        return number_by_account.get(event.account)
    return None


def plan_batch(
    events: Iterable[LedgerEvent],
    cards: Mapping[str, Card],
    number_by_account: Mapping[str, str],
    seen_ids: set[str],
    next_tag: Callable[[], int],
    now: float,
    check: EventCheck | None = None,
    derive: Callable[[Card], Card] | None = None,
) -> BatchPlan:
    """Classify and apply `events` in order. `seen_ids` is extended with the ids accepted here,
    so an id repeated within the batch is a duplicate; `next_tag` hands out one tag per
    accepted event (an adapter that assigns tags at commit time may return a placeholder).
    An event that would be accepted but fails `check` is INVALID, with the reason in `errors`.
    `derive` maps each changed card's final state to what is stored (its geo content, which
    depends on the ledger state: service/geo.py)."""
    state = dict(cards)
    outcomes: list[tuple[str, Outcome]] = []
    changes: dict[str, CardChange] = {}
    errors: dict[int, str] = {}
    for index, event in enumerate(events):
        number = card_key(event, number_by_account)
        card = state.get(number) if number is not None else None
        outcome = classify(event, card, event.id in seen_ids)
        if outcome is Outcome.ACCEPTED and check is not None:
            assert card is not None
            problem = check(event, card)
            if problem is not None:
                outcome = Outcome.INVALID
                errors[index] = problem
        outcomes.append((event.id, outcome))
        if outcome is not Outcome.ACCEPTED:
            continue
        assert card is not None and number is not None
        change = changes.get(number)
        # One modified_at step per card per batch, taken from the stored card: a post of 1 000 events for
        # one card moves its Last-Modified one second, not 1 000 (see cards.model.next_modified_at).
        stamp = next_modified_at(card.modified_at, now) if change is None else change.card.modified_at
        updated = apply_event(card, event, next_tag(), now, modified_at=stamp)
        state[number] = updated
        seen_ids.add(event.id)
        if change is None:
            change = changes[number] = CardChange(base_version=card.version, card=updated)
        change.card = updated
        change.event_ids.append(event.id)
    if derive is not None:
        for change in changes.values():
            change.card = derive(change.card)
    return BatchPlan(outcomes=outcomes, changes=changes, errors=errors)
