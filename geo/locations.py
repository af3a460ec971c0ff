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

Given a geo/nearest.NearestIndex of the same snapshot, `choose_locations` answers exactly the same
without measuring every winning store (the index's nearest query, and campaign store lists resolved
once per snapshot rather than once per card): that is what makes re-evaluating every card cheap.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from cards.model import Card
from geo.campaigns import Campaign, qualifies, render
from geo.distance import haversine_m
from geo.nearest import NearestIndex

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
    # The winning campaign's radius (the pass's relevance distance); the default is a stored
    # campaign's own default (geo/campaigns.campaign_from_dict).
    radius_m: int = 100


def campaign_stores(
    card: Card,
    campaigns: Iterable[Campaign],
    stores_by_id: Mapping[str, StoreLocation],
    now: float,
    today: date,
) -> dict[str, Campaign]:
    """Store id -> the winning campaign (smallest id) among the card's qualifying active campaigns."""
    winners, every = _listed_winners(card, campaigns, stores_by_id, now, today)
    if every is not None:
        for store_id, store in stores_by_id.items():
            if store.program == card.program and store.id == store_id and store_id not in winners:
                winners[store_id] = every
    return winners


def _listed_winners(
    card: Card,
    campaigns: Iterable[Campaign],
    stores_by_id: Mapping[str, StoreLocation],
    now: float,
    today: date,
) -> tuple[dict[str, Campaign], Campaign | None]:
    """The winners among store-list campaigns up to the first all-stores one (by id), and that one:
    it wins every other store of the program, so later campaigns cannot win any."""
    winners: dict[str, Campaign] = {}
    for campaign in sorted((c for c in campaigns if qualifies(card, c, now, today)), key=lambda c: c.id):
        if campaign.stores is None:
            return winners, campaign
        for store_id in campaign.stores:
            if store_id in winners:
                continue
            found = stores_by_id.get(store_id)
            if found is None or found.program != card.program or found.id != store_id:
                continue
            winners[store_id] = campaign
    return winners, None


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
    index: NearestIndex | None = None,
) -> tuple[PassLocation, ...]:
    """The pass locations for `card` (module doc): at most min(limit, MAX_LOCATIONS), nearest first.

    `tier_name` is the display name `{tier}` renders (None: the card's tier key). `index`, when
    given, must index the same snapshot as `stores_by_id` (pass `index.stores` as `stores_by_id`:
    any other mapping is compared whole, and ValueError when it differs); the answer is the same,
    found without measuring every winning store."""
    count = max(0, min(limit, MAX_LOCATIONS))
    if count == 0:
        return ()
    if index is not None:
        chosen, winner = _choose_indexed(card, campaigns, stores_by_id, area, now, today, count, index)
    else:
        winners = campaign_stores(card, campaigns, stores_by_id, now, today)
        winner = winners.__getitem__
        if area is None:
            chosen = heapq.nsmallest(count, winners)
        else:
            lat, lon = area
            keyed = ((haversine_m(lat, lon, stores_by_id[i].lat, stores_by_id[i].lon), i) for i in winners)
            chosen = [i for _, i in heapq.nsmallest(count, keyed)]
    locations = []
    for store_id in chosen:
        store = stores_by_id[store_id]
        campaign = winner(store_id)
        text = render(campaign.text, card, store.name, tier_name)
        locations.append(PassLocation(lat=store.lat, lon=store.lon, relevant_text=text, radius_m=campaign.radius_m))
    return tuple(locations)


def _choose_indexed(
    card: Card,
    campaigns: Iterable[Campaign],
    stores_by_id: Mapping[str, StoreLocation],
    area: tuple[float, float] | None,
    now: float,
    today: date,
    count: int,
    index: NearestIndex,
) -> tuple[list[str], Callable[[str], Campaign]]:
    """choose_locations' store ids and winner lookup, through the index. No per-card winners dict:
    a store's winner is the first qualifying campaign (by id) whose resolved store set (memoised
    by the index) holds it, and the nearest query accepts the union of those sets, so a card costs
    its qualifying campaigns and the few dozen stores the index measures, not the stores listed."""
    if index.stores is not stores_by_id and index.stores != stores_by_id:
        raise ValueError("the nearest-store index was built from another store snapshot")
    groups: list[tuple[Campaign, frozenset[str], tuple[str, ...]]] = []
    for campaign in sorted((c for c in campaigns if qualifies(card, c, now, today)), key=lambda c: c.id):
        members, ordered = index.campaign_members(card.program, campaign.stores)
        groups.append((campaign, members, ordered))
        if campaign.stores is None:
            break  # it covers every store of the program: later campaigns cannot win any

    def winner(store_id: str) -> Campaign:
        return next(c for c, members, _ in groups if store_id in members)

    if area is None:
        merged = heapq.merge(*(ordered for _, _, ordered in groups))
        return list(itertools.islice(_unique(merged), count)), winner
    accept: Container[str] | Callable[[str], bool]
    sets = sorted((members for _, members, _ in groups), key=len, reverse=True)
    if groups and groups[-1][0].stores is None:
        accept = groups[-1][1]  # the whole program; every other set is inside it
    elif len(sets) <= 1 or sum(map(len, sets)) <= len(index) // 8:
        accept = frozenset().union(*sets)  # small: the index measures these members directly
    else:
        accept = lambda store_id: any(store_id in members for members in sets)  # noqa: E731
    return [i for _, i in index.nearest(area[0], area[1], count, accept)], winner


def _unique(ids: Iterable[str]) -> Iterator[str]:
    """Sorted ids without repeats (of sorted input)."""
    last = None
    for store_id in ids:
        if store_id != last:
            yield store_id
            last = store_id
