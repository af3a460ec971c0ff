"""geo/alerts.py: the store a ping is near, quiet hours, and the cap and cooldown decisions."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from geo.alerts import (
    COOLDOWN_SECONDS,
    alert_decider,
    local_day_start,
    nearest_alert,
    quiet_hours,
)
from geo.campaigns import Campaign, Conditions
from geo.locations import StoreLocation
from store.port import AlertRecord
from tests.geo.cards import campaign as shared_campaign
from tests.geo.cards import card

LAT, LON = 55.7558, 37.6173
# noon in Moscow (UTC+3) on 2 December 2026
NOON_MSK = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()
TODAY = date(2026, 12, 2)


def store(id: str, dlat: float = 0.0, zone: str = "Europe/Moscow", program: str = "coffee") -> StoreLocation:
    # 0.001° of latitude is about 111 m
    return StoreLocation(id=id, program=program, name=f"Shop {id}", lat=LAT + dlat, lon=LON, timezone=zone)


def campaign(id: str = "c1", **changes: object) -> Campaign:
    return shared_campaign(id, **{"text": "{store} nearby", "max_per_day": 2, "radius_m": 200, **changes})


def by_id(*stores: StoreLocation) -> dict[str, StoreLocation]:
    return {s.id: s for s in stores}


def test_the_nearest_store_within_its_campaigns_radius_is_chosen() -> None:
    stores = by_id(store("far", 0.0015), store("near", 0.0005), store("out", 0.01))
    near = nearest_alert(card(), LAT, LON, [campaign()], stores, NOON_MSK, TODAY)
    assert near is not None and near.store.id == "near" and 50 < near.distance_m < 60


def test_nothing_near_when_every_store_is_beyond_the_radius() -> None:
    stores = by_id(store("a", 0.0025))
    assert nearest_alert(card(), LAT, LON, [campaign(radius_m=200)], stores, NOON_MSK, TODAY) is None
    assert nearest_alert(card(), LAT, LON, [campaign(radius_m=300)], stores, NOON_MSK, TODAY) is not None


def test_each_campaign_has_its_own_radius_and_stores() -> None:
    stores = by_id(store("a", 0.0005), store("b", 0.0015))
    wide_b = campaign("c2", stores=("b",), radius_m=500)
    narrow_a = campaign("c1", stores=("a",), radius_m=10)
    near = nearest_alert(card(), LAT, LON, [narrow_a, wide_b], stores, NOON_MSK, TODAY)
    assert near is not None and (near.store.id, near.campaign.id) == ("b", "c2")


def test_ties_are_broken_by_store_id_then_campaign_id_whatever_the_order() -> None:
    stores = by_id(store("b"), store("a"))
    campaigns = [campaign("c2"), campaign("c1")]
    for order in (campaigns, campaigns[::-1]):
        near = nearest_alert(card(), LAT, LON, order, stores, NOON_MSK, TODAY)
        assert near is not None and (near.store.id, near.campaign.id) == ("a", "c1")


def test_only_qualifying_active_campaigns_and_their_programs_stores_count() -> None:
    stores = by_id(store("a"), store("tea", program="tea"))
    assert (
        nearest_alert(card(), LAT, LON, [campaign(when=Conditions(min_balance=1000))], stores, NOON_MSK, TODAY) is None
    )
    assert nearest_alert(card(), LAT, LON, [campaign(ends_at=NOON_MSK)], stores, NOON_MSK, TODAY) is None
    assert nearest_alert(card(), LAT, LON, [campaign(starts_at=NOON_MSK + 1)], stores, NOON_MSK, TODAY) is None
    assert nearest_alert(card(), LAT, LON, [campaign(stores=("tea", "gone"))], stores, NOON_MSK, TODAY) is None
    assert nearest_alert(card(), LAT, LON, [campaign(program="tea")], stores, NOON_MSK, TODAY) is None
    # a closer store of a campaign the card does not qualify for does not hide a qualifying one
    rich = campaign("c0", stores=("a",), when=Conditions(min_balance=1000))
    open_ = campaign("c9", stores=("b",))
    near = nearest_alert(card(), LAT, LON, [rich, open_], by_id(store("a"), store("b", 0.001)), NOON_MSK, TODAY)
    assert near is not None and near.store.id == "b"


def test_quiet_hours_are_22_to_8_in_the_stores_zone() -> None:
    moscow, utc, blank, bogus = store("m"), store("u", zone="UTC"), store("x", zone=""), store("y", zone="Mars/Base")

    def at(hour: int, minute: int = 0, zone: str = "Europe/Moscow") -> float:
        return datetime(2026, 12, 2, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()

    assert not quiet_hours(moscow, at(8))
    assert not quiet_hours(moscow, at(21, 59))
    assert quiet_hours(moscow, at(22))
    assert quiet_hours(moscow, at(23))
    assert quiet_hours(moscow, at(7, 59))
    # 20:00 UTC is 23:00 in Moscow: quiet there, not in a UTC store; no or an unknown zone is UTC
    assert quiet_hours(moscow, at(20, zone="UTC"))
    assert not quiet_hours(utc, at(20, zone="UTC"))
    assert not quiet_hours(blank, at(20, zone="UTC")) and quiet_hours(blank, at(23, zone="UTC"))
    assert not quiet_hours(bogus, at(20, zone="UTC"))


def test_the_first_alert_is_allowed() -> None:
    near = nearest_alert(card(), LAT, LON, [campaign()], by_id(store("a")), NOON_MSK, TODAY)
    assert near is not None
    assert alert_decider(near, NOON_MSK)([]) is None


def test_the_same_store_again_within_24_hours_is_cooldown_then_allowed() -> None:
    near = nearest_alert(card(), LAT, LON, [campaign("c1", max_per_day=5)], by_id(store("a")), NOON_MSK, TODAY)
    assert near is not None
    earlier = NOON_MSK - COOLDOWN_SECONDS + 60
    # another campaign's alert for this store counts too: the member was told about this shop
    assert alert_decider(near, NOON_MSK)([AlertRecord(earlier, "other", "a")]) == "cooldown"
    assert alert_decider(near, NOON_MSK + 60)([AlertRecord(earlier, "other", "a")]) is None
    assert alert_decider(near, NOON_MSK)([AlertRecord(NOON_MSK - 60, "c1", "elsewhere")]) is None


def test_max_per_day_counts_the_campaigns_alerts_since_local_midnight() -> None:
    near = nearest_alert(card(), LAT, LON, [campaign("c1", max_per_day=2)], by_id(store("a")), NOON_MSK, TODAY)
    assert near is not None
    midnight = local_day_start(near.store, NOON_MSK)
    assert midnight == datetime(2026, 12, 2, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()
    decide = alert_decider(near, NOON_MSK)
    two_today = [AlertRecord(midnight + 10, "c1", "b"), AlertRecord(midnight + 20, "c1", "c")]
    assert decide(two_today) == "capped"
    assert decide(two_today[:1]) is None
    # yesterday's (before local midnight) and other campaigns' alerts do not count
    assert decide([AlertRecord(midnight - 10, "c1", "b"), AlertRecord(midnight + 20, "c1", "c")]) is None
    assert decide([AlertRecord(midnight + 10, "c2", "b"), AlertRecord(midnight + 20, "c1", "c")]) is None


def test_capped_is_named_before_cooldown_when_both_apply() -> None:
    near = nearest_alert(card(), LAT, LON, [campaign("c1", max_per_day=1)], by_id(store("a")), NOON_MSK, TODAY)
    assert near is not None
    assert alert_decider(near, NOON_MSK)([AlertRecord(NOON_MSK - 60, "c1", "a")]) == "capped"
