"""Companion-app alerts as pure decisions: which (store, campaign) a ping is near, quiet hours, and
the per-day cap and cooldown that `Store.reserve_alert` applies atomically.

The rules (spec, "Stores and geo-campaigns"), checked in this order so the answer names the first
one that stopped the alert:

- `none_near`: no store of a qualifying active campaign is within that campaign's `radius_m`. Of the
  stores that are, the nearest is chosen (ties: store id, then campaign id), and only that one is
  considered: the alert is about the shop the member is at, not about a farther one.
- `quiet_hours`: it is 22:00-08:00 in the store's time zone (an empty or unknown zone counts as UTC).
- `capped`: the card already got `max_per_day` alerts for the campaign since the local midnight in
  the store's zone.
- `cooldown`: the card got an alert for the same store within the last 24 h (any campaign).

Which day a card's expiry window counts from (`qualifies(today=...)`) is the caller's, the same day
its pass's locations are derived with, so a card is alerted for exactly the campaigns its pass shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from functools import lru_cache
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cards.model import Card
from geo.campaigns import Campaign, qualifies
from geo.distance import haversine_m
from geo.locations import StoreLocation
from store.port import AlertRecord

PingResult: TypeAlias = Literal["sent", "quiet_hours", "capped", "cooldown", "none_near"]
PING_RESULTS: tuple[PingResult, ...] = ("sent", "quiet_hours", "capped", "cooldown", "none_near")

QUIET_FROM_HOUR = 22  # inclusive
QUIET_UNTIL_HOUR = 8  # exclusive
COOLDOWN_SECONDS = 24 * 3600.0
# Records older than this cannot matter to either rule: the cooldown is 24 h, and a local day
# began at most 25 h ago (a day with a DST change).
KEEP_SECONDS = 2 * 24 * 3600.0

Decide: TypeAlias = Callable[[Sequence[AlertRecord]], str | None]


@dataclass(frozen=True)
class NearStore:
    store: StoreLocation
    campaign: Campaign
    distance_m: float


@lru_cache(maxsize=512)
def store_zone(name: str) -> tzinfo:
    """The zone of a store's `timezone`; UTC when it is empty or unknown to this system."""
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(store: StoreLocation, now: float) -> datetime:
    return datetime.fromtimestamp(now, store_zone(store.timezone))


def quiet_hours(store: StoreLocation, now: float) -> bool:
    """Whether `now` is between 22:00 and 08:00 at the store."""
    hour = local_time(store, now).hour
    return hour >= QUIET_FROM_HOUR or hour < QUIET_UNTIL_HOUR


def local_day_start(store: StoreLocation, now: float) -> float:
    """Unix time of the last local midnight at the store (the start of the day the cap counts)."""
    local = local_time(store, now)
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo).timestamp()


def _campaign_stores(campaign: Campaign, stores: Mapping[str, StoreLocation]) -> Iterable[StoreLocation]:
    if campaign.stores is None:
        return (s for s in stores.values() if s.program == campaign.program)
    # a deleted store or one of another program is skipped, as for the pass's locations
    found = (stores.get(store_id) for store_id in campaign.stores)
    return (s for s in found if s is not None and s.program == campaign.program)


def nearest_alert(
    card: Card,
    lat: float,
    lon: float,
    campaigns: Iterable[Campaign],
    stores: Mapping[str, StoreLocation],
    now: float,
    today: date,
) -> NearStore | None:
    """The nearest store within its campaign's radius among the card's qualifying active campaigns
    (ties: store id, then campaign id), or None."""
    best: NearStore | None = None
    for campaign in campaigns:
        for store in _campaign_stores(campaign, stores):
            distance = haversine_m(lat, lon, store.lat, store.lon)
            if distance > campaign.radius_m:
                continue
            if best is not None and (distance, store.id, campaign.id) >= (
                best.distance_m,
                best.store.id,
                best.campaign.id,
            ):
                continue
            if qualifies(card, campaign, now, today):
                best = NearStore(store, campaign, distance)
    return best


def alert_decider(near: NearStore, now: float) -> Decide:
    """What `Store.reserve_alert` asks of the card's alert records: None (send, and record it),
    "capped" or "cooldown"."""
    campaign, store = near.campaign, near.store
    day_start = local_day_start(store, now)

    def decide(records: Sequence[AlertRecord]) -> str | None:
        today = sum(1 for r in records if r.campaign == campaign.id and r.at >= day_start)
        if today >= campaign.max_per_day:
            return "capped"
        if any(r.store == store.id and now - r.at < COOLDOWN_SECONDS for r in records):
            return "cooldown"
        return None

    return decide
