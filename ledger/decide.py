"""Pure decisions on ledger events; both store adapters apply exactly these rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cards.model import Card, next_modified_at


class Outcome(str, Enum):  # noqa: UP042  # StrEnum would change str() of a member to its bare value
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNKNOWN = "unknown"
    INVALID = "invalid"  # well-formed, but breaks a rule of the card's program (ledger/plan.py)


@dataclass(frozen=True)
class LedgerEvent:
    """A validated event. Values are absolute (the ledger owns the numbers), so applying an
    event never depends on the state it replaces, only on whether it is newer."""

    id: str
    version: int
    balance: int
    card_number: str | None = None
    account: str | None = None
    tier: str | None = None
    pending: int | None = None
    expiring_points: int | None = None
    expiring_date: str | None = None
    message: str | None = None
    occurred_at: str | None = None


def classify(event: LedgerEvent, card: Card | None, seen_before: bool) -> Outcome:
    if seen_before:
        return Outcome.DUPLICATE
    if card is None:
        return Outcome.UNKNOWN
    if event.version <= card.version:
        return Outcome.STALE
    return Outcome.ACCEPTED


def apply_event(card: Card, event: LedgerEvent, tag: int, now: float, *, modified_at: int | None = None) -> Card:
    """The card after an accepted event; fields the event leaves out keep their value
    (an expiry is cleared by restating it with 0 points). `modified_at` is the stamp of the batch the
    event commits in (ledger/plan.py); without it, the next stamp after the card's own."""
    return card.with_changes(
        balance=event.balance,
        tier=event.tier if event.tier is not None else card.tier,
        pending=event.pending if event.pending is not None else card.pending,
        expiring_points=event.expiring_points if event.expiring_points is not None else card.expiring_points,
        expiring_date=event.expiring_date if event.expiring_points is not None else card.expiring_date,
        last_message=event.message if event.message is not None else card.last_message,
        version=event.version,
        tag=tag,
        modified_at=next_modified_at(card.modified_at, now) if modified_at is None else modified_at,
    )
