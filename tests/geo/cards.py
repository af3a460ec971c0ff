"""The card the geo tests start from (a gold member of the coffee program with 250 points)."""

from __future__ import annotations

from cards.model import Card, Member
from tests.pii_guard import sensitive_card


def card(**changes: object) -> Card:
    base = Card(
        number="7790000000000001",
        program="coffee",
        account="a1",
        serial="s1",
        auth_token="t" * 32,
        member=Member(name="Anna"),
        balance=250,
        tier="gold",
    )
    return sensitive_card(base.with_changes(**changes))
