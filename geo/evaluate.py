"""A card's geo content as a pure function of its state and a geo snapshot.

The pass shows two things geo decides: `locations` (the <= 10 stores of the card's qualifying active
campaigns nearest to the member, each with its campaign's rendered text and radius) and `notice`
(a change message: a campaign's `announce` the first time the card qualifies for it, or a marketing
message). Both are stored on the card (cards.model.Card), so that the pass bytes are a function of the
stored card alone, and a change of either is a change of the pass: a new tag and a push.

`evaluate` is what every writer calls, the ledger commit, campaign jobs and app pings alike, with
the snapshot of campaigns and stores it read (service/geo.py), so the same state always gives the
same content and re-evaluating an unchanged card writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cards.model import Card, Spot
from geo.campaigns import Campaign, meets, qualifies, render
from geo.distance import haversine_m
from geo.locations import StoreLocation, choose_locations
from geo.nearest import NearestIndex

NOTICE_MAX = 150  # a change message: what a lock-screen banner shows, about two lines
MESSAGE_STORE_RADIUS_M = 5000  # a message for "stores" reaches members whose area is this close
_SEPARATOR = " · "


@dataclass(frozen=True)
class ProgramGeo:
    """One program's campaigns and store locations as read at one geo generation."""

    program: str
    campaigns: tuple[Campaign, ...] = ()
    stores: Mapping[str, StoreLocation] = field(default_factory=dict)
    centre: tuple[float, float] | None = None  # the program's centre: the member area of last resort
    index: NearestIndex | None = None


def program_centre(stores: Mapping[str, StoreLocation], declared: Any = None) -> tuple[float, float] | None:
    """The template's declared `centre` [lat, lon] when valid, else the mean of the store coordinates
    (in id order, so the float sum is the same everywhere), else None."""
    if isinstance(declared, (list, tuple)) and len(declared) == 2:
        try:
            lat, lon = float(declared[0]), float(declared[1])
        except (TypeError, ValueError):
            lat, lon = float("nan"), float("nan")
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
            return lat, lon
    if not stores:
        return None
    ordered = [stores[k] for k in sorted(stores)]
    return sum(s.lat for s in ordered) / len(ordered), sum(s.lon for s in ordered) / len(ordered)


def member_area(card: Card, geo: ProgramGeo) -> tuple[float, float] | None:
    """Where the member is taken to be: the last app ping's area, else the enrolment store, else the
    program's centre."""
    if card.area is not None:
        return card.area
    if card.home_store is not None:
        home = geo.stores.get(card.home_store)
        if home is not None:
            return home.lat, home.lon
    return geo.centre


def choose_spots(card: Card, geo: ProgramGeo, now: float, today: date, tier_name: str | None) -> tuple[Spot, ...]:
    """The pass's locations, each with the radius of the campaign that put it there."""
    area = member_area(card, geo)
    chosen = choose_locations(card, geo.campaigns, geo.stores, area, now, today, tier_name=tier_name, index=geo.index)
    return tuple((loc.lat, loc.lon, loc.relevant_text, loc.radius_m) for loc in chosen)


def evaluate(card: Card, geo: ProgramGeo, now: float, today: date, tier_name: str | None = None) -> Card:
    """`card` with its locations and announcements as `geo` decides at `now`.

    A campaign with an `announce` the card qualifies for and was never shown becomes the notice (several
    at once: their texts joined, in campaign id order) and is remembered in `announced`, so it is shown
    once; a card that stops qualifying keeps it remembered."""
    if card.program != geo.program:
        return card
    spots = choose_spots(card, geo, now, today, tier_name)
    fresh = sorted(
        (c for c in geo.campaigns if c.announce and c.id not in card.announced and qualifies(card, c, now, today)),
        key=lambda c: c.id,
    )
    if not fresh:
        return card if spots == card.locations else card.with_changes(locations=spots)
    text = _SEPARATOR.join(str(c.announce) for c in fresh)
    return card.with_changes(
        locations=spots,
        notice=render(text, card, "", tier_name, limit=NOTICE_MAX),
        notice_id="campaign:" + ",".join(c.id for c in fresh),
        announced=tuple(sorted({*card.announced, *(c.id for c in fresh)})),
    )


@dataclass(frozen=True)
class Message:
    """A marketing message to the card holders a segment selects (POST /v1/messages)."""

    id: str
    program: str
    text: str
    campaign: Campaign  # its conditions (and stores) in a campaign's shape, for `meets`


def in_segment(card: Card, message: Message, geo: ProgramGeo, today: date) -> bool:
    """Whether the message is for this card: its program, conditions met and, with stores, the member's
    enrolment store is one of them or the member's area is within MESSAGE_STORE_RADIUS_M of one."""
    if card.program != message.program or not meets(card, message.campaign.when, today):
        return False
    stores = message.campaign.stores
    if stores is None:
        return True
    if card.home_store is not None and card.home_store in stores:
        return True
    area = card.area
    if area is None:
        return False
    for store_id in stores:
        store = geo.stores.get(store_id)
        if (
            store is not None
            and store.program == card.program
            and haversine_m(area[0], area[1], store.lat, store.lon) <= MESSAGE_STORE_RADIUS_M
        ):
            return True
    return False


def deliver_message(card: Card, message: Message, geo: ProgramGeo, today: date, tier_name: str | None) -> Card:
    """`card` with the message as its notice when the segment selects it (once: a card that shows it
    already is returned as it is)."""
    notice_id = "message:" + message.id
    if card.notice_id == notice_id or not in_segment(card, message, geo, today):
        return card
    return card.with_changes(notice=render(message.text, card, "", tier_name, limit=NOTICE_MAX), notice_id=notice_id)


def pass_content_changed(old: Card, new: Card) -> bool:
    """Whether the pass shows something else: then the write takes a new tag and pushes."""
    return old.locations != new.locations or old.notice != new.notice or old.notice_id != new.notice_id
