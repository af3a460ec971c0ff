"""Google Wallet LoyaltyClass / LoyaltyObject bodies: values, ids, determinism, ru/en, discovery schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from cards.model import Member
from passes.apple.pass_json import Location, build_pass_json
from passes.google import model
from passes.google.model import (
    MAX_MERCHANT_LOCATIONS,
    class_id,
    loyalty_class,
    loyalty_classes,
    loyalty_object,
    object_id,
)
from tests.passes import walletobjects_schema as schema
from tests.passes.conftest import PASS_TYPE_ID, TEAM_ID

ISSUER = "3388000000022222222"
LOGO = "https://wallet.example.test/v1/programs/coffee/logo.png"
HERO = "https://wallet.example.test/v1/programs/coffee/strip.png"
CALLBACK = "https://wallet.example.test/google/callbacks"
PAGE = "https://wallet.example.test/c/SERIAL?sig=abc"
ID_RE = re.compile(r"^[0-9]+\.[A-Za-z0-9._-]+$")


def obj(coffee, card, **kw):
    kw.setdefault("page_url", PAGE)
    return loyalty_object(coffee, card, ISSUER, **kw)


def cls(coffee, tier="base", **kw):
    kw.setdefault("logo_url", LOGO)
    return loyalty_class(coffee, ISSUER, tier, **kw)


def modules(body: dict) -> dict[str, dict]:
    return {m["id"]: m for m in body.get("textModulesData", [])}


def translations(localized: dict) -> dict[str, str]:
    return {t["language"]: t["value"] for t in localized["translatedValues"]}


# --- ids ---------------------------------------------------------------------------------------------


def test_ids_have_the_issuer_and_the_allowed_alphabet(coffee, make_card) -> None:
    card = make_card()
    assert class_id(ISSUER, coffee) == f"{ISSUER}.coffee"
    assert class_id(ISSUER, coffee, "gold") == f"{ISSUER}.coffee.gold"
    assert class_id(ISSUER, "coffee", coffee.tier("gold")) == f"{ISSUER}.coffee.gold"
    assert object_id(ISSUER, card) == f"{ISSUER}.{card.serial}"
    for i in (class_id(ISSUER, coffee), class_id(ISSUER, coffee, "platinum"), object_id(ISSUER, card)):
        assert ID_RE.match(i), i


def test_ids_sanitize_and_stay_deterministic(coffee, make_card) -> None:
    odd = make_card(serial="a b/c+d=é.ok_-")
    assert object_id(ISSUER, odd) == f"{ISSUER}.a_b_c_d__.ok_-"
    assert object_id(ISSUER, odd) == object_id(ISSUER, make_card(serial="a b/c+d=é.ok_-"))
    assert ID_RE.match(class_id(ISSUER, "coffee shop", "gold tier"))
    with pytest.raises(ValueError):
        object_id(ISSUER, make_card(serial=""))


@pytest.mark.parametrize("issuer", ["", "abc", "12.3", "１２３", "12 3", "-1"])
def test_issuer_id_must_be_digits(coffee, make_card, issuer) -> None:
    with pytest.raises(ValueError):
        class_id(issuer, coffee)
    with pytest.raises(ValueError):
        object_id(issuer, make_card())


def test_ids_carry_no_personal_data(coffee, make_card) -> None:
    card = make_card(member=Member(name="Anna", phone="+79990000000", email="anna@example.test"))
    body = obj(coffee, card)
    for i in (body["id"], body["classId"]):
        for secret in (card.number, card.number[-4:], "Anna", "79990000000", "anna", card.account):
            assert secret not in i


# --- the class ---------------------------------------------------------------------------------------


def test_one_class_per_tier_with_the_tier_colour(coffee) -> None:
    classes = loyalty_classes(coffee, ISSUER, logo_url=LOGO)
    assert [c["id"] for c in classes] == [f"{ISSUER}.coffee.{k}" for k in ("base", "gold", "platinum")]
    # rgb(111, 78, 55), rgb(150, 112, 28), rgb(58, 62, 70) in the template
    assert [c["hexBackgroundColor"] for c in classes] == ["#6f4e37", "#96701c", "#3a3e46"]
    assert [c["rewardsTier"] for c in classes] == ["Базовый", "Золотой", "Платиновый"]
    assert [translations(c["localizedRewardsTier"])["en"] for c in classes] == ["Base", "Gold", "Platinum"]
    # everything but id and tier is the same in every tier's class
    strip = {"id", "hexBackgroundColor", "rewardsTier", "localizedRewardsTier"}
    rest = [{k: v for k, v in c.items() if k not in strip} for c in classes]
    assert rest[0] == rest[1] == rest[2]


def test_class_values(coffee) -> None:
    c = cls(coffee, "gold", hero_url=HERO, callback_url=CALLBACK)
    assert c["reviewStatus"] == "UNDER_REVIEW"
    assert c["issuerName"] == "Кофе Поинт" and translations(c["localizedIssuerName"])["en"] == "Coffee Point"
    assert c["programName"] == "Клуб Кофе Поинт"
    assert c["localizedProgramName"]["defaultValue"] == {"language": "ru", "value": "Клуб Кофе Поинт"}
    assert translations(c["localizedProgramName"]) == {"ru": "Клуб Кофе Поинт", "en": "Coffee Point Club"}
    assert c["programLogo"]["sourceUri"] == {"uri": LOGO}
    assert c["heroImage"]["sourceUri"] == {"uri": HERO}
    assert c["callbackOptions"] == {"url": CALLBACK}
    assert c["rewardsTierLabel"] == "УРОВЕНЬ" and translations(c["localizedRewardsTierLabel"])["en"] == "TIER"
    assert c["accountIdLabel"] == "Номер карты" and translations(c["localizedAccountIdLabel"])["en"] == "Card number"
    assert c["accountNameLabel"] == "УЧАСТНИК"
    assert c["multipleDevicesAndHoldersAllowedStatus"] == "ONE_USER_ALL_DEVICES"  # sharingProhibited
    terms = modules(c)["terms"]
    assert terms["header"] == "Условия" and terms["body"] == coffee.text("program.terms", "ru")
    assert translations(terms["localizedBody"])["en"] == coffee.text("program.terms", "en")
    assert c["linksModuleData"]["uris"] == [
        {
            "id": "support_phone",
            "uri": "tel:+78005550190",
            "description": "+7 800 555-01-90",
            "localizedDescription": {
                "defaultValue": {"language": "ru", "value": "+7 800 555-01-90"},
                "translatedValues": [
                    {"language": "ru", "value": "+7 800 555-01-90"},
                    {"language": "en", "value": "+7 800 555-01-90"},
                ],
            },
        },
        {
            "id": "support_email",
            "uri": "mailto:club@coffee-point.example",
            "description": "club@coffee-point.example",
            "localizedDescription": {
                "defaultValue": {"language": "ru", "value": "club@coffee-point.example"},
                "translatedValues": [
                    {"language": "ru", "value": "club@coffee-point.example"},
                    {"language": "en", "value": "club@coffee-point.example"},
                ],
            },
        },
        {
            "id": "support_url",
            "uri": "https://coffee-point.example/club",
            "description": "Поддержка",
            "localizedDescription": {
                "defaultValue": {"language": "ru", "value": "Поддержка"},
                "translatedValues": [{"language": "ru", "value": "Поддержка"}, {"language": "en", "value": "Support"}],
            },
        },
    ]
    assert "merchantLocations" not in c  # per card, on the object
    assert "heroImage" not in cls(coffee) and "callbackOptions" not in cls(coffee)


def test_class_unknown_tier(coffee) -> None:
    with pytest.raises(ValueError):
        cls(coffee, "diamond")


# --- the object --------------------------------------------------------------------------------------


def test_object_values(coffee, make_card) -> None:
    card = make_card(balance=1250, pending=120, expiring_points=300, expiring_date="2027-03-31")
    o = obj(coffee, card)
    assert o["id"] == f"{ISSUER}.{card.serial}"
    assert o["classId"] == f"{ISSUER}.coffee.base"
    assert o["state"] == "ACTIVE"
    assert o["accountId"] == " ".join(card.number[i : i + 4] for i in range(0, 16, 4))
    assert o["accountName"] == "Анна Иванова"
    assert o["loyaltyPoints"]["balance"] == {"int": 1250}
    assert o["loyaltyPoints"]["label"] == "БАЛЛЫ"
    assert translations(o["loyaltyPoints"]["localizedLabel"]) == {"ru": "БАЛЛЫ", "en": "POINTS"}
    assert o["secondaryLoyaltyPoints"]["balance"] == {"int": 120}
    assert o["secondaryLoyaltyPoints"]["label"] == "ОЖИДАЮТ"
    m = modules(o)
    assert list(m) == ["last_operation", "expiring_points", "expiring_date", "to_next_tier", "accrual"]
    assert m["last_operation"]["header"] == "Последняя операция" and m["last_operation"]["body"] == card.last_message
    assert m["expiring_points"]["body"] == "300"
    assert m["expiring_date"]["body"] == "31.03.2027"
    assert translations(m["expiring_date"]["localizedBody"])["en"] == "Mar 31, 2027"
    assert m["to_next_tier"]["body"] == "8\u00a0751"  # 10 001 - 1 250, grouped
    assert translations(m["to_next_tier"]["localizedBody"])["en"] == "8,751"
    assert m["accrual"]["header"] == "Начисление с каждой покупки" and m["accrual"]["body"] == "5\u00a0%"
    assert translations(m["accrual"]["localizedBody"])["en"] == "5%"
    assert o["linksModuleData"] == {
        "uris": [
            {
                "id": "card_page",
                "uri": PAGE,
                "description": "Клуб Кофе Поинт",
                "localizedDescription": {
                    "defaultValue": {"language": "ru", "value": "Клуб Кофе Поинт"},
                    "translatedValues": [
                        {"language": "ru", "value": "Клуб Кофе Поинт"},
                        {"language": "en", "value": "Coffee Point Club"},
                    ],
                },
            }
        ]
    }
    assert o["merchantLocations"] == []
    for absent in ("hexBackgroundColor", "rewardsTier", "messages", "locations"):
        assert absent not in o


def test_barcode_carries_what_the_apple_pass_carries(coffee, make_card) -> None:
    card = make_card()
    apple = build_pass_json(coffee, card, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, web_service_url="https://x/p")
    [apple_barcode] = apple["barcodes"]
    assert obj(coffee, card)["barcode"] == {
        "type": "QR_CODE",
        "value": apple_barcode["message"],
        "alternateText": apple_barcode["altText"],
    }
    assert apple_barcode["message"] == card.number


def test_secondary_points_pending_else_to_next_tier(coffee, make_card) -> None:
    o = obj(coffee, make_card(balance=1250, pending=0))
    assert o["secondaryLoyaltyPoints"]["balance"] == {"int": 8751}
    assert o["secondaryLoyaltyPoints"]["label"] == "ДО СЛЕД. УРОВНЯ"
    assert "to_next_tier" not in modules(o)
    top = obj(coffee, make_card(balance=40000, tier="platinum", pending=0))
    assert "secondaryLoyaltyPoints" not in top and "to_next_tier" not in modules(top)
    top_pending = obj(coffee, make_card(balance=40000, tier="platinum", pending=5))
    assert top_pending["secondaryLoyaltyPoints"]["balance"] == {"int": 5}
    assert "to_next_tier" not in modules(top_pending)


def test_tier_moves_the_object_to_its_class(coffee, make_card) -> None:
    gold = obj(coffee, make_card(balance=12000, tier="gold"))
    assert gold["classId"] == class_id(ISSUER, coffee, "gold")
    assert modules(gold)["accrual"]["body"] == "10\u00a0%"
    # no recorded tier the program knows: the balance decides, as on the Apple pass
    assert obj(coffee, make_card(balance=35000, tier="legacy"))["classId"] == class_id(ISSUER, coffee, "platinum")
    assert model.object_class_id(coffee, make_card(tier="gold"), ISSUER) == class_id(ISSUER, coffee, "gold")


def test_nothing_expiring_no_last_operation(coffee, make_card) -> None:
    o = obj(coffee, make_card(expiring_points=None, expiring_date=None, last_message=None, pending=0))
    m = modules(o)
    assert list(m) == ["last_operation", "accrual"]
    assert m["last_operation"]["body"] == "Операций пока нет"
    assert translations(m["last_operation"]["localizedBody"])["en"] == "No operations yet"
    # points without a usable date: the points only (the Apple pass drops the date field the same way)
    m = modules(obj(coffee, make_card(expiring_points=1500, expiring_date="31/03/2027")))
    assert m["expiring_points"]["body"] == "1\u00a0500" and "expiring_date" not in m


def test_english_card_defaults_to_english(coffee, make_card) -> None:
    o = obj(coffee, make_card(locale="en", pending=0))
    assert o["loyaltyPoints"]["label"] == "POINTS"
    assert o["loyaltyPoints"]["localizedLabel"]["defaultValue"] == {"language": "en", "value": "POINTS"}
    assert o["secondaryLoyaltyPoints"]["label"] == "TO NEXT TIER"
    m = modules(o)
    assert m["expiring_date"]["body"] == "Mar 31, 2027" and m["accrual"]["body"] == "5%"
    assert m["last_operation"]["header"] == "Last operation"
    assert o["linksModuleData"]["uris"][0]["description"] == "Coffee Point Club"
    # both languages are always there; Google picks by the phone's language
    for mod in m.values():
        assert set(translations(mod["localizedHeader"])) == {"ru", "en"}
        assert set(translations(mod["localizedBody"])) == {"ru", "en"}
    # a locale the program lacks falls back to its language, then to the program's default
    assert obj(coffee, make_card(locale="en-GB"))["loyaltyPoints"]["label"] == "POINTS"
    assert obj(coffee, make_card(locale="de"))["loyaltyPoints"]["label"] == "БАЛЛЫ"


def test_merchant_locations_at_most_ten(coffee, make_card) -> None:
    @dataclass(frozen=True)
    class Point:
        latitude: float
        longitude: float

    points = [Location(55.75 + i / 1000, 37.61) for i in range(12)]
    o = obj(coffee, make_card(), locations=points)
    assert len(o["merchantLocations"]) == MAX_MERCHANT_LOCATIONS
    assert o["merchantLocations"][0] == {"latitude": 55.75, "longitude": 37.61}
    assert obj(coffee, make_card(), locations=[Point(1, 2)])["merchantLocations"] == [
        {"latitude": 1.0, "longitude": 2.0}
    ]
    with pytest.raises(ValueError):
        obj(coffee, make_card(), locations=[Point(91, 0)])


def test_state(coffee, make_card) -> None:
    assert obj(coffee, make_card(), state="INACTIVE")["state"] == "INACTIVE"
    with pytest.raises(ValueError):
        obj(coffee, make_card(), state="inactive")  # Google's deprecated lowercase alias


def test_text_within_google_limits(coffee, make_card) -> None:
    o = obj(coffee, make_card(last_message="x" * 2000))
    body = modules(o)["last_operation"]["body"]
    assert len(body) == model.TEXT_BODY_MAX and body.endswith("…")
    for c in [*loyalty_classes(coffee, ISSUER, logo_url=LOGO), o]:
        for mod in c["textModulesData"]:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", mod["id"])
            for t in mod["localizedHeader"]["translatedValues"]:
                assert len(t["value"]) <= model.TEXT_HEADER_MAX
            for t in mod["localizedBody"]["translatedValues"]:
                assert len(t["value"]) <= model.TEXT_BODY_MAX


# --- determinism ---------------------------------------------------------------------------------------


def test_same_state_same_json(coffee, make_card, templates) -> None:
    card = make_card()
    twin = card.with_changes(version=card.version + 7, tag=99, modified_at=123, auth_token="other")
    first = json.dumps(obj(coffee, card), ensure_ascii=False)
    assert json.dumps(obj(coffee, card), ensure_ascii=False) == first
    assert json.dumps(obj(coffee, twin), ensure_ascii=False) == first  # bookkeeping is not pass content
    assert json.dumps(cls(coffee, "gold"), ensure_ascii=False) == json.dumps(cls(coffee, "gold"), ensure_ascii=False)
    assert obj(coffee, card.with_changes(balance=card.balance + 1)) != obj(coffee, card)


# --- the discovery document ----------------------------------------------------------------------------

STATES = [
    {},
    {"pending": 0},
    {"pending": 0, "expiring_points": None, "expiring_date": None, "last_message": None},
    {"balance": 12000, "tier": "gold", "locale": "en"},
    {"balance": 40000, "tier": "platinum", "pending": 0},
    {"member": Member(name=""), "locale": "de", "expiring_date": "bad"},
    {"balance": 0, "pending": 0, "last_message": "ü" * 900},
]


@pytest.mark.parametrize("changes", STATES)
def test_objects_match_the_discovery_document(coffee, make_card, changes) -> None:
    locations = [Location(55.75, 37.61), Location(-33.9, 151.2)]
    for state in ("ACTIVE", "INACTIVE"):
        schema.assert_valid("LoyaltyObject", obj(coffee, make_card(**changes), locations=locations, state=state))


def test_classes_match_the_discovery_document(coffee) -> None:
    for c in loyalty_classes(coffee, ISSUER, logo_url=LOGO, hero_url=HERO, callback_url=CALLBACK):
        schema.assert_valid("LoyaltyClass", c)
    for c in loyalty_classes(coffee, ISSUER, logo_url=LOGO):
        schema.assert_valid("LoyaltyClass", c)


def test_save_payload_matches_the_discovery_document(coffee, make_card) -> None:
    """The JWT's `payload` is a `Resources` (facts §6.1): classes and objects side by side."""
    payload = {
        "loyaltyClasses": loyalty_classes(coffee, ISSUER, logo_url=LOGO),
        "loyaltyObjects": [obj(coffee, make_card()), obj(coffee, make_card(tier="gold"))],
    }
    schema.assert_valid("Resources", payload)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda o: o.update(hexBackgroundColor="#ffffff"), "hexBackgroundColor"),  # class-only field
        (lambda o: o.update(rewardsTier="Gold"), "rewardsTier"),
        (lambda o: o.update(state="ON"), "state"),
        (lambda o: o.update(state="active"), "state"),  # deprecated alias
        (lambda o: o["loyaltyPoints"].update(balance={"int": "lots"}), "loyaltyPoints/balance/int"),
        (lambda o: o["loyaltyPoints"].update(balance={"int": 1, "string": "1"}), "loyaltyPoints/balance"),
        (lambda o: o["barcode"].update(type="qrCode"), "barcode/type"),
        (lambda o: o.update(merchantLocations=[{"latitude": 1.0, "longitude": 2.0}] * 11), "merchantLocations"),
        (lambda o: o["textModulesData"][0].update(id="a.b"), "textModulesData/0/id"),
        (lambda o: o.update(id="coffee.card"), "id"),
        (lambda o: o.update(hasUsers=True), "hasUsers"),
        (lambda o: o.pop("classId"), "classId"),
        (lambda o: o.update(kind="walletobjects#loyaltyObject"), "kind"),
    ],
)
def test_the_schema_catches_mistakes(coffee, make_card, change, expected) -> None:
    """The checker itself: each of these slips must be reported (else the tests above prove little)."""
    body = obj(coffee, make_card())
    change(body)
    problems = schema.errors("LoyaltyObject", body)
    assert problems and any(expected in p for p in problems), problems


def test_the_schema_requires_class_fields(coffee) -> None:
    body = cls(coffee)
    for field in ("id", "issuerName", "programName", "programLogo", "reviewStatus"):
        broken = {k: v for k, v in body.items() if k != field}
        assert any(field in p for p in schema.errors("LoyaltyClass", broken)), field
    assert schema.errors("LoyaltyClass", {**body, "hexBackgroundColor": "brown"})
    assert schema.errors("LoyaltyClass", {**body, "programLogo": {"sourceUri": {"uri": LOGO}, "privateImageId": "x"}})
