"""The card the geo tests start from (a gold member of the coffee program with 250 points), and a
campaign of its program to change per test."""

from __future__ import annotations

from cards.model import Card, Member
from geo.campaigns import Campaign, Conditions
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


def campaign(id: str = "c1", **changes: object) -> Campaign:
    """A campaign of the coffee program for every store, always on, once a day within 150 m."""
    values: dict[str, object] = dict(
        id=id,
        program="coffee",
        name="nearby",
        text="{store}: {balance} points",
        stores=None,
        when=Conditions(),
        starts_at=None,
        ends_at=None,
        max_per_day=1,
        radius_m=150,
    )
    values.update(changes)
    return Campaign(**values)  # type: ignore[arg-type]
