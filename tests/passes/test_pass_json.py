"""pass.json content: fields per the program domain, tiers, localization keys, limits."""

from __future__ import annotations

import json

import pytest

from passes.apple.pass_json import MAX_LOCATIONS, Location, build_pass_json
from passes.apple.validate import LOCALIZATION_KEY, unresolved_keys, validate_pass_json
from tests.passes.conftest import PASS_TYPE_ID, TEAM_ID

WS = "https://wallet.example.test/passkit"


def build(template, card, **kw):
    return build_pass_json(template, card, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, web_service_url=WS, **kw)


def fields(pj: dict) -> dict[str, dict]:
    return {f["key"]: f for group in pj["storeCard"].values() for f in group}


def group_of(pj: dict, key: str) -> str:
    return next(g for g, fs in pj["storeCard"].items() for f in fs if f["key"] == key)


def test_identity_and_service(coffee, make_card) -> None:
    card = make_card()
    pj = build(coffee, card)
    assert pj["formatVersion"] == 1
    assert pj["passTypeIdentifier"] == PASS_TYPE_ID and pj["teamIdentifier"] == TEAM_ID
    assert pj["serialNumber"] == card.serial
    assert pj["authenticationToken"] == card.auth_token
    assert pj["webServiceURL"] == WS
    assert pj["barcodes"] == [
        {
            "format": "PKBarcodeFormatQR",
            "message": card.number,
            "messageEncoding": "iso-8859-1",
            "altText": " ".join(card.number[i : i + 4] for i in range(0, 16, 4)),
        }
    ]
    assert "barcode" not in pj
    assert pj["semantics"] == {"balance": {"amount": "1250"}}
    assert pj["organizationName"] == "program.organization" and pj["description"] == "pass.description"
    assert pj["logoText"] == "program.name"


def test_member_fields(coffee, make_card) -> None:
    pj = build(coffee, make_card(balance=1250, pending=120, expiring_points=300, expiring_date="2027-03-31"))
    f = fields(pj)
    assert group_of(pj, "balance") == "headerFields"
    assert f["balance"]["value"] == 1250 and "%@" not in f["balance"]["changeMessage"]  # a key, resolved below
    assert f["tier"]["value"] == "tier.base" and f["tier"]["changeMessage"] == "change.tier"
    assert f["member"]["value"] == "Анна Иванова"
    assert f["to_next_tier"]["value"] == 10001 - 1250
    assert f["pending"]["value"] == 120
    assert f["expiring_points"]["value"] == 300
    assert f["expiring_date"]["value"] == "2027-03-31T00:00:00Z" and f["expiring_date"]["ignoresTimeZone"] is True
    assert f["last_operation"]["value"] == "Покупка: +62 балла"
    assert f["last_operation"]["changeMessage"] == "%@"
    assert group_of(pj, "last_operation") == "backFields"
    assert f["accrual"]["value"] == 0.05 and f["accrual"]["numberStyle"] == "PKNumberStylePercent"
    assert "+7 800" in f["support"]["value"]
    assert f["terms"]["value"] == "program.terms"


def test_expiring_omitted_when_nothing_expires(coffee, make_card) -> None:
    for card in (
        make_card(expiring_points=None, expiring_date=None),
        make_card(expiring_points=0, expiring_date="2027-01-01"),
    ):
        f = fields(build(coffee, card))
        assert "expiring_points" not in f and "expiring_date" not in f
    f = fields(build(coffee, make_card(expiring_points=50, expiring_date="not a date")))
    assert "expiring_points" in f and "expiring_date" not in f


def test_no_last_operation_yet(coffee, make_card) -> None:
    f = fields(build(coffee, make_card(last_message=None)))
    assert f["last_operation"]["value"] == "last_operation.none"


def test_tier_change_changes_colors_and_accrual(coffee, make_card) -> None:
    base = build(coffee, make_card(tier="base", balance=9000))
    gold = build(coffee, make_card(tier="gold", balance=12000))
    plat = build(coffee, make_card(tier="platinum", balance=40000))
    for pj, key in ((base, "base"), (gold, "gold"), (plat, "platinum")):
        t = coffee.tier(key)
        assert (pj["backgroundColor"], pj["foregroundColor"], pj["labelColor"]) == (
            t.background_color,
            t.foreground_color,
            t.label_color,
        )
    assert len({base["backgroundColor"], gold["backgroundColor"], plat["backgroundColor"]}) == 3
    assert [fields(p)["accrual"]["value"] for p in (base, gold, plat)] == [0.05, 0.10, 0.15]
    assert [fields(p)["tier"]["value"] for p in (base, gold, plat)] == ["tier.base", "tier.gold", "tier.platinum"]
    assert fields(gold)["to_next_tier"]["value"] == 30001 - 12000
    assert "to_next_tier" not in fields(plat)  # top tier


def test_unknown_tier_falls_back_to_balance(coffee, make_card) -> None:
    f = fields(build(coffee, make_card(tier="diamond", balance=20000)))
    assert f["tier"]["value"] == "tier.gold"


def test_locations_truncated_to_ten(coffee, make_card) -> None:
    locs = [Location(55.75 + i / 1000, 37.61, f"Coffee Point #{i} nearby") for i in range(15)]
    pj = build(coffee, make_card(), locations=locs)
    assert len(pj["locations"]) == MAX_LOCATIONS
    assert pj["locations"][0] == {"latitude": 55.75, "longitude": 37.61, "relevantText": "Coffee Point #0 nearby"}
    assert "relevantText" not in build(coffee, make_card(), locations=[Location(1.0, 2.0)])["locations"][0]
    assert "locations" not in build(coffee, make_card())
    with pytest.raises(ValueError):
        Location(91.0, 0.0)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"tier": "gold", "balance": 15000},
        {"tier": "platinum", "balance": 31000, "pending": 0},
        {"expiring_points": None, "last_message": None, "member": None},
    ],
)
def test_valid_by_apple_rules_and_limits(coffee, make_card, changes) -> None:
    from cards.model import Member

    if changes.get("member", 1) is None:
        changes["member"] = Member(name="")
    locs = [Location(55.0, 37.0, "near")] * 12
    pj = build(coffee, make_card(**changes), locations=locs)
    assert validate_pass_json(pj, strings=coffee.strings, require_https=True) == []
    sc = pj["storeCard"]
    assert len(sc["headerFields"]) <= 3 and len(sc["primaryFields"]) == 1
    assert len(sc.get("secondaryFields", [])) + len(sc.get("auxiliaryFields", [])) <= 4
    keys = [f["key"] for fs in sc.values() for f in fs]
    assert len(keys) == len(set(keys))
    json.dumps(pj)  # JSON-able


def test_every_localizable_key_exists(coffee, make_card) -> None:
    pj = build(coffee, make_card(tier="gold", last_message=None))
    assert unresolved_keys(pj, coffee.strings) == []
    used = set()
    for f in fields(pj).values():
        for attr in ("label", "changeMessage", "value"):
            v = f.get(attr)
            if isinstance(v, str) and LOCALIZATION_KEY.match(v):
                used.add(v)
    used |= {pj["organizationName"], pj["description"], pj["logoText"]}
    assert {
        "tier.gold",
        "change.balance",
        "label.balance",
        "program.terms",
        "program.organization",
        "last_operation.none",
    } <= used
    for locale, table in coffee.strings.items():
        assert used <= set(table), (locale, used - set(table))
    # every changeMessage resolves to a text with %@ in every locale
    for f in fields(pj).values():
        if "changeMessage" in f and f["changeMessage"] != "%@":
            assert all("%@" in table[f["changeMessage"]] for table in coffee.strings.values())


def test_pure_and_deterministic(coffee, make_card) -> None:
    card = make_card()
    assert json.dumps(build(coffee, card)) == json.dumps(build(coffee, card))


def test_card_locations_and_max_distance(coffee, make_card) -> None:
    spots = tuple((55.7 + i / 100, 37.6, f"Shop {i} nearby", 300 if i else 60) for i in range(12))
    pj = build(coffee, make_card(locations=spots))
    assert len(pj["locations"]) == MAX_LOCATIONS
    assert pj["locations"][1] == {"latitude": 55.71, "longitude": 37.6, "relevantText": "Shop 1 nearby"}
    assert pj["maxDistance"] == 60  # a campaign asking for less than the default radius shrinks it
    wide = build(coffee, make_card(locations=tuple(s[:3] + (300,) for s in spots)))
    assert "maxDistance" not in wide  # maxDistance can only shrink Apple's default radius
    assert "maxDistance" not in build(coffee, make_card(locations=spots), default_distance_m=50)
    validate_pass_json(pj)


def test_notice_is_a_back_field_with_a_change_message(coffee, make_card) -> None:
    assert "news" not in fields(build(coffee, make_card()))
    pj = build(coffee, make_card(notice="Double points this week"))
    news = fields(pj)["news"]
    assert group_of(pj, "news") == "backFields"
    assert news["value"] == "Double points this week" and news["changeMessage"] == "%@"
    assert news["label"] == "label.news"
    assert not unresolved_keys(pj, coffee.strings)
    validate_pass_json(pj)


def test_an_erased_members_pass_is_void_without_locations(coffee, make_card) -> None:
    locs = [Location(55.75, 37.61, "Coffee Point nearby")]
    live = build(coffee, make_card(), locations=locs)
    assert "voided" not in live and live["locations"]
    from cards.model import Member

    void = build(coffee, make_card(erased_at=1_800_000_000, member=Member(name="")), locations=locs)
    assert void["voided"] is True and "locations" not in void
    assert validate_pass_json(void, strings=coffee.strings, require_https=True) == []
