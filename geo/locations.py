"""Which store locations a card's pass carries (pure).

`choose_locations` decides the pass's `locations` (Apple) / `merchantLocations` (Google): the stores of
the active campaigns the card qualifies for, nearest to the member's area first, at most 10 (Apple's
and Google's limit), each with the rendered text of its campaign. Every choice is deterministic, so the
same state always gives the same tuple and the pass bytes do not change needlessly:

- a store in several qualifying campaigns appears once, with the text of the campaign with the
  smallest id (string order);
- stores at the same distance are ordered by store id; with no area, stores are ordered by id;
- a campaign's store ids that are unknown (deleted store) or belong to another program are skipped;
  `stores=None` means every store of the card's program in `stores_by_id`.

The member's area (last app ping, else enrolment store, else the program's centre) is the caller's
choice; None here means "no area known": order by store id.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from cards.model import Card
from geo.campaigns import Campaign, qualifies, render
from geo.distance import haversine_m

MAX_LOCATIONS = 10


@dataclass(frozen=True)
class StoreLocation:
    """One store of a program, as the store adapters keep it."""

    id: str
    program: str
    name: str
    lat: float
    lon: float
    address: str = ""
    timezone: str = ""


@dataclass(frozen=True)
class PassLocation:
    """One entry of a pass's `locations` (Apple) / `merchantLocations` (Google)."""

    lat: float
    lon: float
    relevant_text: str


def campaign_stores(
    card: Card,
    campaigns: Iterable[Campaign],
    stores_by_id: Mapping[str, StoreLocation],
    now: float,
    today: date,
) -> dict[str, Campaign]:
    """Store id -> the winning campaign (smallest id) among the card's qualifying active campaigns."""
    winners: dict[str, Campaign] = {}
    for campaign in sorted((c for c in campaigns if qualifies(card, c, now, today)), key=lambda c: c.id):
        if campaign.stores is None:
            for store_id, store in stores_by_id.items():
                if store.program == card.program and store.id == store_id and store_id not in winners:
                    winners[store_id] = campaign
            break  # every store of the program has its winner: later campaigns cannot win any
        for store_id in campaign.stores:
            if store_id in winners:
                continue
            found = stores_by_id.get(store_id)
            if found is None or found.program != card.program or found.id != store_id:
                continue
            winners[store_id] = campaign
    return winners


def choose_locations(
    card: Card,
    campaigns: Iterable[Campaign],
    stores_by_id: Mapping[str, StoreLocation],
    area: tuple[float, float] | None,
    now: float,
    today: date,
    limit: int = MAX_LOCATIONS,
    *,
    tier_name: str | None = None,
) -> tuple[PassLocation, ...]:
    """The pass locations for `card` (module doc): at most min(limit, MAX_LOCATIONS), nearest first.

    `tier_name` is the display name `{tier}` renders (None: the card's tier key)."""
    count = max(0, min(limit, MAX_LOCATIONS))
    if count == 0:
        return ()
    winners = campaign_stores(card, campaigns, stores_by_id, now, today)
    if area is None:
        chosen = heapq.nsmallest(count, winners)
    else:
        lat, lon = area
        keyed = ((haversine_m(lat, lon, stores_by_id[i].lat, stores_by_id[i].lon), i) for i in winners)
        chosen = [i for _, i in heapq.nsmallest(count, keyed)]
    locations = []
    for store_id in chosen:
        store = stores_by_id[store_id]
        text = render(winners[store_id].text, card, store.name, tier_name)
        locations.append(PassLocation(lat=store.lat, lon=store.lon, relevant_text=text))
    return tuple(locations)
