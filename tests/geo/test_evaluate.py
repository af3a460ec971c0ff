"""geo/evaluate.py: a card's geo content from its state and a snapshot (pure)."""

from __future__ import annotations

from datetime import date

from geo.campaigns import Campaign, Conditions
from geo.evaluate import (
    NOTICE_MAX,
    Message,
    ProgramGeo,
    deliver_message,
    evaluate,
    member_area,
    pass_content_changed,
    program_centre,
)
from geo.locations import StoreLocation
from geo.nearest import NearestIndex
from tests.geo.cards import campaign, card

TODAY = date(2026, 12, 2)
NOW = 1_796_000_000.0
CENTRE = (55.75, 37.62)


def stores(count: int) -> dict[str, StoreLocation]:
    out = {}
    for i in range(count):
        s = StoreLocation(id=f"s{i:03d}", program="coffee", name=f"Shop {i}", lat=CENTRE[0] + i * 0.01, lon=CENTRE[1])
        out[s.id] = s
    return out


def geo(*campaigns: Campaign, count: int = 15, centre: tuple[float, float] | None = CENTRE) -> ProgramGeo:
    own = stores(count)
    index = NearestIndex(own)
    return ProgramGeo("coffee", tuple(campaigns), index.stores, centre, index)


def test_no_campaigns_no_locations() -> None:
    assert evaluate(card(), geo(), NOW, TODAY) == card()


def test_qualifying_card_gets_the_ten_nearest_with_texts_and_radius() -> None:
    got = evaluate(card(area=(CENTRE[0] + 0.1, CENTRE[1])), geo(campaign()), NOW, TODAY)
    assert len(got.locations) == 10
    names = [text.split(":")[0] for _, _, text, _ in got.locations]
    assert names[0] == "Shop 10"  # the member is at store 10
    assert set(names) == {f"Shop {i}" for i in range(5, 15)}
    assert all(text.endswith(": 250 points") for _, _, text, _ in got.locations)
    assert {radius for *_, radius in got.locations} == {150}
    assert pass_content_changed(card(), got)


def test_below_min_balance_no_locations_and_lifting_over_adds_them() -> None:
    rich_only = geo(campaign(when=Conditions(min_balance=500)))
    assert evaluate(card(), rich_only, NOW, TODAY).locations == ()
    assert len(evaluate(card(balance=500), rich_only, NOW, TODAY).locations) == 10


def test_same_state_same_content() -> None:
    snapshot = geo(campaign(), campaign("c2", text="{tier}"))
    first = evaluate(card(), snapshot, NOW, TODAY)
    assert evaluate(first, snapshot, NOW, TODAY) == first
    assert not pass_content_changed(first, evaluate(first, snapshot, NOW, TODAY))


def test_announce_once_then_remembered() -> None:
    snapshot = geo(campaign(announce="Double points this week"))
    first = evaluate(card(), snapshot, NOW, TODAY)
    assert first.notice == "Double points this week"
    assert first.notice_id == "campaign:c1"
    assert first.announced == ("c1",)
    again = evaluate(first, snapshot, NOW, TODAY)
    assert again == first
    # stops qualifying and qualifies again: not announced a second time
    poor = evaluate(
        first.with_changes(balance=0), geo(campaign(announce="x", when=Conditions(min_balance=1))), NOW, TODAY
    )
    assert poor.announced == ("c1",)
    assert evaluate(poor.with_changes(balance=250), snapshot, NOW, TODAY).notice == first.notice


def test_two_new_announcements_join_in_id_order() -> None:
    got = evaluate(card(), geo(campaign("b", announce="Second"), campaign("a", announce="First")), NOW, TODAY)
    assert got.notice == "First · Second"
    assert got.announced == ("a", "b")


def test_inactive_campaign_neither_locates_nor_announces() -> None:
    later = geo(campaign(starts_at=NOW + 60, announce="soon"))
    assert evaluate(card(), later, NOW, TODAY) == card()
    assert evaluate(card(), later, NOW + 60, TODAY).notice == "soon"


def test_other_program_card_untouched() -> None:
    other = card(program="tea")
    assert evaluate(other, geo(campaign()), NOW, TODAY) is other


def test_member_area_order() -> None:
    snapshot = geo(campaign())
    assert member_area(card(area=(1.0, 2.0), home_store="s003"), snapshot) == (1.0, 2.0)
    home = snapshot.stores["s003"]
    assert member_area(card(home_store="s003"), snapshot) == (home.lat, home.lon)
    assert member_area(card(home_store="gone"), snapshot) == CENTRE
    assert member_area(card(), geo(campaign(), centre=None)) is None


def test_program_centre_declared_or_mean() -> None:
    own = stores(3)
    assert program_centre(own, [10, 20]) == (10.0, 20.0)
    lat, lon = program_centre(own, "bad")  # type: ignore[misc]
    assert abs(lat - (CENTRE[0] + 0.01)) < 1e-9 and abs(lon - CENTRE[1]) < 1e-9
    assert program_centre({}, None) is None
    assert program_centre(own, [100, 0]) != (100.0, 0.0)


def message(text: str = "Hello {name}, {balance} points", **changes: object) -> Message:
    segment = campaign("m1", text=text, **changes)
    return Message(id="m1", program="coffee", text=text, campaign=segment)


def test_message_reaches_segment_once() -> None:
    snapshot = geo()
    got = deliver_message(card(), message(), snapshot, TODAY, None)
    assert got.notice == "Hello Anna, 250 points"
    assert got.notice_id == "message:m1"
    assert deliver_message(got, message(), snapshot, TODAY, None) is got
    assert deliver_message(card(balance=5), message(when=Conditions(min_balance=10)), snapshot, TODAY, None) == card(
        balance=5
    )


def test_message_by_stores_uses_home_store_or_area() -> None:
    snapshot = geo()
    for_s001 = message(stores=("s001",))
    assert deliver_message(card(), for_s001, snapshot, TODAY, None).notice is None
    assert deliver_message(card(home_store="s001"), for_s001, snapshot, TODAY, None).notice is not None
    s001 = snapshot.stores["s001"]
    near = card(area=(s001.lat + 0.01, s001.lon))  # ~1.1 km away
    assert deliver_message(near, for_s001, snapshot, TODAY, None).notice is not None
    far = card(area=(s001.lat + 0.1, s001.lon))  # ~11 km
    assert deliver_message(far, for_s001, snapshot, TODAY, None).notice is None


def test_notice_is_cut() -> None:
    got = deliver_message(card(), message(text="x" * 400), geo(), TODAY, None)
    assert got.notice is not None and len(got.notice) == NOTICE_MAX
