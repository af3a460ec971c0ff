"""service/reports.py: report rows from fact counts and stored cards, the query's period, and CSV (pure)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date
from typing import cast

import pytest

from cards.model import Card, Member
from geo.campaigns import Campaign, Conditions
from geo.evaluate import ProgramGeo, evaluate
from geo.locations import StoreLocation
from geo.nearest import NearestIndex
from push import clients
from service import reports
from service.reports import CampaignTally, Period, ReportQueryError
from store.port import FactCount, Store
from tests.geo.cards import campaign as shared_campaign
from web.wallet_apps import APPS

TODAY = date(2026, 12, 2)
NOW = 1_796_000_000.0  # 2026-11-30 UTC: campaigns without times are active


# -- the period -----------------------------------------------------------------------------------


def test_the_default_period_is_the_30_days_up_to_today():
    assert reports.parse_period(None, None, TODAY) == Period("2026-11-03", "2026-12-02")
    assert reports.parse_period("", "", TODAY) == Period("2026-11-03", "2026-12-02")


def test_from_alone_runs_to_today_and_to_alone_takes_the_30_days_before_it():
    assert reports.parse_period("2026-11-30", None, TODAY) == Period("2026-11-30", "2026-12-02")
    assert reports.parse_period(None, "2026-02-01", TODAY) == Period("2026-01-03", "2026-02-01")


def test_one_day_and_the_longest_period():
    assert reports.parse_period("2026-12-02", "2026-12-02", TODAY) == Period("2026-12-02", "2026-12-02")
    # 400 days, both ends included
    assert reports.parse_period("2025-10-29", "2026-12-02", TODAY) == Period("2025-10-29", "2026-12-02")
    with pytest.raises(ReportQueryError) as refused:
        reports.parse_period("2025-10-28", "2026-12-02", TODAY)
    assert refused.value.name == "from" and "400 days" in str(refused.value)


@pytest.mark.parametrize(
    ("from_text", "to_text", "name"),
    [
        ("2026-12-03", "2026-12-02", "to"),
        ("2026-12-10", None, "to"),  # after today, without `to`
        ("2026-1-02", None, "from"),
        ("20261202", None, "from"),
        ("2026-12-02T00:00:00Z", None, "from"),
        (None, "2026-02-30", "to"),
        (None, "2026-13-01", "to"),
        (None, " 2026-12-01", "to"),
        (None, "2026-12-01\n", "to"),
        (None, "２０２６-12-01", "to"),  # full-width digits: not ASCII
    ],
)
def test_a_bad_period_names_its_parameter(from_text, to_text, name):
    with pytest.raises(ReportQueryError) as refused:
        reports.parse_period(from_text, to_text, TODAY)
    assert refused.value.name == name


def test_formats():
    assert reports.parse_format(None) == "json"
    assert reports.parse_format("csv") == "csv"
    for bad in ("CSV", "xml", " csv"):
        with pytest.raises(ReportQueryError):
            reports.parse_format(bad)


# -- installs and pushes --------------------------------------------------------------------------


def fact(day: str, *dims: str, count: int = 1) -> FactCount:
    return FactCount(day=day, dims=tuple(dims), count=count)


INSTALL_FACTS = [
    fact("2026-12-01", "coffee", "google", "base", "install", count=2),
    fact("2026-12-01", "coffee", "apple", "gold", "install", count=3),
    fact("2026-12-01", "coffee", "apple", "gold", "remove"),
    fact("2026-12-01", "coffee", "walletunion_fcm", "base", "remove"),
    fact("2026-12-01", "coffee", "newapp", "base", "install"),
    fact("2026-12-01", "coffee", "apple", "base", "install"),
    fact("2026-11-30", "tea", "pass2u", "base", "install", count=4),
    fact("2026-12-01", "coffee", "apple", "gold", "odd"),  # not an action: left out
    fact("2026-12-01", "coffee", "apple"),  # malformed: left out
]


def test_install_rows_per_day_program_platform_and_tier_in_platform_order():
    rows = reports.install_rows(INSTALL_FACTS)
    assert [(r["day"], r["program"], r["client"], r["tier"], r["installs"], r["removals"]) for r in rows] == [
        ("2026-11-30", "tea", "pass2u", "base", 4, 0),
        ("2026-12-01", "coffee", "apple", "base", 1, 0),
        ("2026-12-01", "coffee", "apple", "gold", 3, 1),
        ("2026-12-01", "coffee", "walletunion_fcm", "base", 0, 1),
        ("2026-12-01", "coffee", "google", "base", 2, 0),
        ("2026-12-01", "coffee", "newapp", "base", 1, 0),  # an unknown client: after the known ones
    ]
    assert [r["platform"] for r in rows] == [
        "Pass2U Wallet",
        "Apple Wallet",
        "Apple Wallet",
        "WalletUnion",
        "Google Wallet",
        "newapp",
    ]
    assert list(rows[0]) == list(reports.INSTALL_COLUMNS)


def test_install_rows_of_one_program():
    rows = reports.install_rows(INSTALL_FACTS, "tea")
    assert [(r["program"], r["installs"]) for r in rows] == [("tea", 4)]
    assert reports.install_rows(INSTALL_FACTS, "juice") == []


def test_the_same_group_on_several_counts_is_summed():
    facts = [fact("2026-12-01", "coffee", "apple", "base", "install", count=2)] * 3
    [row] = reports.install_rows(facts)
    assert (row["installs"], row["removals"]) == (6, 0)


def test_every_client_has_a_label_and_the_android_apps_are_named_as_on_the_card_page():
    assert set(clients.CLIENTS) | {reports.GOOGLE} == set(reports.PLATFORMS)
    assert list(reports.PLATFORMS)[0] == clients.APPLE and list(reports.PLATFORMS)[-1] == reports.GOOGLE
    assert reports.PLATFORMS[clients.APPLE] == "Apple Wallet"
    assert reports.PLATFORMS[reports.GOOGLE] == "Google Wallet"
    for app in APPS:
        assert reports.PLATFORMS[app.client] == app.name


def test_push_rows_per_day_channel_and_result():
    facts = [
        fact("2026-12-02", "apns", "ok", count=5),
        fact("2026-12-01", "dry_run", "ok", count=2),
        fact("2026-12-01", "apns", "unregistered"),
        fact("2026-12-01", "apns", "ok", count=7),
        fact("2026-12-01", "", "dead"),
        fact("2026-12-01", "apns"),  # malformed
    ]
    assert reports.push_rows(facts) == [
        {"day": "2026-12-01", "channel": "", "result": "dead", "count": 1},
        {"day": "2026-12-01", "channel": "apns", "result": "ok", "count": 7},
        {"day": "2026-12-01", "channel": "apns", "result": "unregistered", "count": 1},
        {"day": "2026-12-01", "channel": "dry_run", "result": "ok", "count": 2},
        {"day": "2026-12-02", "channel": "apns", "result": "ok", "count": 5},
    ]


# -- campaigns ------------------------------------------------------------------------------------

CENTRE = (55.75, 37.62)


def card(number: str = "7790000000000001", **changes: object) -> Card:
    base = Card(
        number=number,
        program="coffee",
        account="a" + number,
        serial="s" + number,
        auth_token="t" * 32,
        member=Member(name="Anna"),
        balance=250,
        tier="gold",
    )
    return base.with_changes(**changes)


def campaign(id: str, **changes: object) -> Campaign:
    return shared_campaign(id, **{"name": "name of " + id, **changes})


def shops(count: int = 4) -> dict[str, StoreLocation]:
    found = {}
    for i in range(count):
        s = StoreLocation(id=f"s{i}", program="coffee", name=f"Shop {i}", lat=CENTRE[0] + i * 0.01, lon=CENTRE[1])
        found[s.id] = s
    return found


def program_geo(*campaigns: Campaign, indexed: bool = True) -> ProgramGeo:
    own = shops()
    if not indexed:
        return ProgramGeo("coffee", tuple(sorted(campaigns, key=lambda c: c.id)), own, CENTRE)
    index = NearestIndex(own)
    return ProgramGeo("coffee", tuple(sorted(campaigns, key=lambda c: c.id)), index.stores, CENTRE, index)


def stored(c: Card, geo: ProgramGeo) -> Card:
    """The card as the store holds it after the geo job: its content evaluated."""
    return evaluate(c, geo, NOW, TODAY, None)


def carried(c: Card, geo: ProgramGeo) -> set[str]:
    return reports.carried_campaigns(c, geo, reports.spot_index(geo), NOW, TODAY, None)


@pytest.mark.parametrize("indexed", [True, False])
def test_a_pass_carries_the_campaigns_that_put_its_locations_there(indexed):
    a = campaign("a", stores=("s0", "s1"))
    b = campaign("b", stores=("s2",), text="{store} is open", radius_m=300)
    c = campaign("c", stores=("s3",), when=Conditions(min_balance=1000))  # the card does not qualify
    geo = program_geo(a, b, c, indexed=indexed)
    held = stored(card(), geo)
    assert len(held.locations) == 3
    assert carried(held, geo) == {"a", "b"}


def test_a_stale_pass_still_carries_what_it_shows():
    """A campaign paused (or its conditions changed) before the job re-derived the pass: the stored
    locations still show it, and are still attributed to it."""
    a = campaign("a", stores=("s0",))
    held = stored(card(), program_geo(a))
    paused = program_geo(campaign("a", stores=("s0",), paused=True))
    assert held.locations and carried(held, paused) == {"a"}


def test_a_location_no_campaign_can_have_written_is_nobodys():
    a = campaign("a", stores=("s0",))
    held = stored(card(), program_geo(a))
    # the text changed since: the stored spot is not what "a" writes now, nor what evaluation gives
    changed = program_geo(campaign("a", stores=("s0",), text="come to {store}"))
    assert carried(held, changed) == set()
    # the campaign is gone
    assert carried(held, program_geo()) == set()


def test_a_location_two_campaigns_could_have_written_goes_to_the_winner_when_the_pass_is_current():
    # same store, text and radius: only the evaluation (the smallest id wins a store) tells them apart
    a = campaign("a", stores=("s0",))
    b = campaign("b", stores=("s0", "s1"))
    geo = program_geo(a, b)
    held = stored(card(), geo)
    assert len(held.locations) == 2
    assert carried(held, geo) == {"a", "b"}  # s0 is a's (ambiguous, resolved), s1 only b's
    alone = stored(card(), program_geo(campaign("b", stores=("s0", "s1"))))
    assert carried(alone, program_geo(campaign("b", stores=("s0", "s1")))) == {"b"}


def test_an_ambiguous_location_of_a_pass_that_is_not_current_is_not_attributed():
    a = campaign("a", stores=("s0",))
    b = campaign("b", stores=("s0",))
    geo = program_geo(a, b)
    held = stored(card(), geo).with_changes(area=(CENTRE[0] + 0.03, CENTRE[1]))
    # still what the evaluation gives: attributed to the winner
    assert carried(held, geo) == {"a"}
    # the balance moved and the pass was not re-derived: neither the spot's text nor the evaluation agree
    moved = held.with_changes(balance=999)
    assert carried(moved, geo) == set()


def test_the_notice_of_an_announce_carries_its_campaigns():
    a = campaign("a", stores=("s0",), announce="New: coffee nearby")
    b = campaign("b", stores=(), announce="Tea too")  # no stores: only its announce
    geo = program_geo(a, b)
    held = stored(card(), geo)
    assert held.notice_id == "campaign:a,b"
    assert carried(held, geo) == {"a", "b"}
    assert carried(held.with_changes(notice_id="campaign:a,gone"), geo) == {"a"}
    assert carried(held.with_changes(notice_id="message:a", locations=()), geo) == set()


def test_tally_counts_qualifying_and_carrying_cards_and_leaves_out_erased_and_other_programs():
    gold = campaign("gold", stores=("s0",), when=Conditions(tiers=frozenset({"gold"})))
    rich = campaign("rich", stores=("s1",), when=Conditions(min_balance=500))
    paused = campaign("paused", stores=("s2",), paused=True)
    geo = program_geo(gold, rich, paused)
    cards = [
        stored(card("7790000000000001"), geo),  # gold, 250
        stored(card("7790000000000002", balance=900), geo),  # gold, 900
        stored(card("7790000000000003", tier="base", balance=600), geo),  # base, 600
        card("7790000000000004"),  # gold but never evaluated: qualifies, carries nothing
        stored(card("7790000000000005", erased_at=1), geo),
        card("7790000000000006", program="tea"),
    ]
    tally = CampaignTally()
    reports.tally_cards(tally, cards[:3], geo, reports.spot_index(geo), NOW, TODAY, lambda _c: None)
    reports.tally_cards(tally, cards[3:], geo, reports.spot_index(geo), NOW, TODAY, lambda _c: None)
    assert tally.cards == 4
    assert tally.qualifying == Counter({"gold": 3, "rich": 2, "paused": 4})  # the schedule aside
    assert tally.carrying == Counter({"gold": 2, "rich": 2})


def test_campaign_rows_with_alerts_and_a_deleted_campaign():
    a = campaign("a")
    b = campaign("b", paused=True)
    other = campaign("x", program="tea")
    alerts = reports.alert_counts(
        [
            fact("2026-12-01", "coffee", "a", "sent", count=3),
            fact("2026-12-02", "coffee", "a", "sent"),
            fact("2026-12-02", "coffee", "a", "capped", count=2),
            fact("2026-12-02", "coffee", "a", "quiet"),
            fact("2026-12-02", "coffee", "a", "cooldown", count=5),
            fact("2026-12-02", "coffee", "gone", "sent"),
            fact("2026-12-02", "tea", "x", "sent"),
            fact("2026-12-02", "coffee", "a"),  # malformed
        ],
        "coffee",
    )
    tally = CampaignTally(qualifying=Counter({"a": 7, "b": 2}), carrying=Counter({"a": 5}))
    rows = reports.campaign_rows([b, other, a], tally, alerts, "coffee", NOW)
    assert rows == [
        {
            "campaign": "a",
            "name": "name of a",
            "program": "coffee",
            "active": True,
            "deleted": False,
            "qualifying": 7,
            "carrying": 5,
            "alerts_sent": 4,
            "alerts_capped": 2,
            "alerts_cooldown": 5,
            "alerts_quiet_hours": 1,
        },
        {
            "campaign": "b",
            "name": "name of b",
            "program": "coffee",
            "active": False,
            "deleted": False,
            "qualifying": 2,
            "carrying": 0,
            "alerts_sent": 0,
            "alerts_capped": 0,
            "alerts_cooldown": 0,
            "alerts_quiet_hours": 0,
        },
        {
            "campaign": "gone",
            "name": "",
            "program": "coffee",
            "active": False,
            "deleted": True,
            "qualifying": 0,
            "carrying": 0,
            "alerts_sent": 1,
            "alerts_capped": 0,
            "alerts_cooldown": 0,
            "alerts_quiet_hours": 0,
        },
    ]
    assert all(list(row) == list(reports.CAMPAIGN_COLUMNS) for row in rows)


def test_every_ping_result_about_a_campaign_maps_to_a_fact_decision():
    from geo.alerts import PING_RESULTS

    assert set(reports.ALERT_DECISIONS) == set(PING_RESULTS) - {"none_near"}
    assert set(reports.ALERT_DECISIONS.values()) == {"sent", "capped", "cooldown", "quiet"}


# -- CSV ------------------------------------------------------------------------------------------


def test_csv_has_a_header_row_and_the_columns_in_order():
    rows = reports.install_rows(INSTALL_FACTS, "tea")
    text = reports.to_csv(reports.INSTALL_COLUMNS, rows)
    assert text == (
        "day,program,platform,client,tier,installs,removals\r\n2026-11-30,tea,Pass2U Wallet,pass2u,base,4,0\r\n"
    )
    assert reports.to_csv(reports.PUSH_COLUMNS, []) == "day,channel,result,count\r\n"


def test_csv_quotes_booleans_and_formulas():
    rows: list[dict[str, object]] = [
        {"campaign": "-x1", "name": 'Coffee, "fresh"\nand hot', "active": True, "deleted": False, "qualifying": 3},
        {"campaign": "a", "name": '=HYPERLINK("http://evil")', "active": False, "deleted": True},
        {"campaign": "b", "name": "+1 free", "qualifying": 0},
        {"campaign": "c", "name": "@SUM(A1)"},
        {"campaign": "d", "name": "-5"},
    ]
    text = reports.to_csv(reports.CAMPAIGN_COLUMNS, rows)
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == list(reports.CAMPAIGN_COLUMNS)
    first = dict(zip(parsed[0], parsed[1], strict=True))
    assert first["campaign"] == "-x1"  # an id is left as it is
    assert first["name"] == 'Coffee, "fresh"\nand hot'
    assert (first["active"], first["deleted"], first["qualifying"], first["carrying"]) == ("true", "false", "3", "")
    names = [dict(zip(parsed[0], line, strict=True))["name"] for line in parsed[2:]]
    assert names == ['\'=HYPERLINK("http://evil")', "'+1 free", "'@SUM(A1)", "-5"]


# -- the card scan of GET /v1/reports/campaigns -----------------------------------------------------


class PagedCards:
    """What tally_program reads of a store: cards_page, over a fixed list in number order."""

    def __init__(self, cards: list[Card]) -> None:
        self.cards = sorted(cards, key=lambda c: c.number)
        self.calls: list[tuple[str, int]] = []

    async def cards_page(self, program: str, after: str, limit: int) -> list[Card]:
        self.calls.append((after, limit))
        return [c for c in self.cards if c.program == program and c.number > after][:limit]


def numbered(count: int) -> list[Card]:
    return [card(f"77900000000{i:05d}") for i in range(count)]


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (4, 2), (5, 2), (6, 3)])
async def test_the_scan_reads_every_card_a_page_at_a_time(count: int, pages: int):
    from web.reports import tally_program

    geo = program_geo(campaign("a", stores=("s0",)))
    source = PagedCards([stored(c, geo) for c in numbered(count)])
    tally, complete = await tally_program(cast(Store, source), geo, NOW, TODAY, lambda _c: None, page_size=3)
    assert complete and tally.cards == count
    assert tally.qualifying["a"] == count and tally.carrying["a"] == count
    assert len(source.calls) == pages


@pytest.mark.parametrize(("count", "complete"), [(6, True), (7, False)])
async def test_the_scan_stops_at_its_limit_and_says_whether_cards_were_left(count: int, complete: bool):
    from web.reports import tally_program

    geo = program_geo(campaign("a"))
    source = PagedCards(numbered(count))
    tally, finished = await tally_program(cast(Store, source), geo, NOW, TODAY, lambda _c: None, page_size=3, limit=6)
    assert finished is complete
    assert tally.cards == 6 and tally.qualifying["a"] == 6
