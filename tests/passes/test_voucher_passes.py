"""Voucher passes, pure: the Apple pass.json of a certificate (storeCard) and an offer (coupon), signed
and verified with openssl, and the Google gift-card / offer bodies against the discovery document."""

from __future__ import annotations

import json

import pytest

from cards.numbers import new_auth_token, new_serial
from passes.apple.validate import validate_pass_json, validate_pkpass
from passes.apple.voucher_json import format_amount, nearest_points, offer_data
from passes.google.vouchers import gift_card_class, offer_class, voucher_class_id, voucher_object
from store.port import Voucher
from tests.passes.conftest import unzip, verify_with_openssl
from tests.passes.walletobjects_schema import assert_valid

ISSUER = "3388000000022222222"
LOGO = "https://wallet.example/assets/coffee/logo@3x.png"


def certificate(**changes) -> Voucher:
    data = {
        "code": "GIFT-7788-1122",
        "pin": "4821",
        "amount": 1000,
        "currency": "RUB",
        "expires": "2027-03-31T23:59:59Z",
        "terms": None,
        "locale": "ru",
    }
    data.update(changes.pop("data", {}))
    base = Voucher(
        id="cert-1",
        kind="certificate",
        serial=new_serial(),
        auth_token=new_auth_token(),
        program="coffee",
        card_number="7790000000000000",
        data=data,
        tag=5,
    )
    return Voucher(**{**base.__dict__, **changes})


def offer(**changes) -> Voucher:
    base_data = {
        "title": "Капучино за полцены",
        "text": "Покажите купон на кассе",
        "code": "HALF50",
        "expires": "2027-01-31T23:59:59+03:00",
        "stores": None,
        "store_points": [[f"s{i}", 55.70 + i / 100, 37.60] for i in range(12)],
    }
    data = offer_data(base_data, None, (55.80, 37.60))
    base = Voucher(
        id="offer-1",
        kind="offer",
        serial=new_serial(),
        auth_token=new_auth_token(),
        program="coffee",
        card_number="7790000000000000",
        data=data,
    )
    return Voucher(**{**base.__dict__, **changes})


def fields(pass_json: dict, style: str) -> dict[str, dict]:
    return {f["key"]: {**f, "group": g} for g, items in pass_json[style].items() for f in items}


def test_certificate_is_a_store_card_with_amount_code_pin_on_the_back_and_expiry(factory, coffee) -> None:
    voucher = certificate()
    pj = factory.voucher_json(voucher)
    assert validate_pass_json(pj, strings=coffee.strings) == []
    assert "storeCard" in pj and "coupon" not in pj
    by_key = fields(pj, "storeCard")
    assert by_key["amount"]["group"] == "primaryFields"
    assert (by_key["amount"]["value"], by_key["amount"]["currencyCode"]) == (1000, "RUB")
    assert by_key["pin"]["group"] == "backFields" and by_key["pin"]["value"] == "4821"
    front = [f for f in by_key.values() if f["group"] != "backFields"]
    assert all("4821" not in json.dumps(f) for f in front)
    assert pj["barcodes"][0]["message"] == "GIFT-7788-1122" == pj["barcodes"][0]["altText"]
    assert pj["expirationDate"] == "2027-03-31T23:59:59Z"
    assert "voided" not in pj
    assert pj["authenticationToken"] == voucher.auth_token and pj["webServiceURL"].endswith("/passkit")
    assert pj["serialNumber"] == voucher.serial
    assert by_key["terms"]["value"] == "certificate.terms"  # the program's, localized

    redeemed = factory.voucher_json(certificate(voided=True, serial=voucher.serial))
    assert redeemed["voided"] is True
    assert fields(redeemed, "storeCard")["status"]["value"] == "status.redeemed"
    assert validate_pass_json(redeemed, strings=coffee.strings) == []


def test_certificate_pass_verifies_with_openssl(factory, pki_dir, tmp_path) -> None:
    rendered = factory.render_voucher(certificate())
    assert validate_pkpass(rendered.data) == []
    files = unzip(rendered.data)
    verify_with_openssl(files, pki_dir, tmp_path / "v")
    assert {"icon.png", "logo.png", "ru.lproj/pass.strings", "en.lproj/pass.strings"} <= set(files)
    # cached by content like a card's pass
    assert factory.render_voucher(certificate(serial=json.loads(files["pass.json"])["serialNumber"])).data
    assert factory.cached_voucher(certificate()) is None


def test_offer_is_a_coupon_with_at_most_ten_locations_titled(factory, coffee) -> None:
    pj = factory.voucher_json(offer())
    assert validate_pass_json(pj, strings=coffee.strings) == []
    assert "coupon" in pj and "storeCard" not in pj
    assert fields(pj, "coupon")["offer"]["value"] == "Капучино за полцены"
    assert len(pj["locations"]) == 10
    assert {loc["relevantText"] for loc in pj["locations"]} == {"Капучино за полцены"}
    # nearest to the member's area first: the farthest two stores (s0, s1 from 55.80) are left out
    assert min(loc["latitude"] for loc in pj["locations"]) == pytest.approx(55.72)
    assert pj["barcodes"][0]["message"] == "HALF50"
    without_code = factory.voucher_json(offer(data={**offer().data, "code": None}))
    assert "barcodes" not in without_code


def test_amounts_and_nearest_points() -> None:
    assert format_amount(1000, "RUB") == "1000 ₽"
    assert format_amount(12.5, "EUR") == "12.50 €"
    assert format_amount(7, "GEL") == "7 GEL"
    assert nearest_points([("b", 1.0, 1.0), ("a", 2.0, 2.0)], None) == [[2.0, 2.0], [1.0, 1.0]]


def test_google_gift_card_bodies_match_the_discovery_document(coffee) -> None:
    voucher = certificate()
    body = voucher_object(coffee, voucher, ISSUER)
    assert_valid("GiftCardObject", body)
    klass = gift_card_class(coffee, ISSUER, logo_url=LOGO, hero_url=LOGO, callback_url="https://x.example/cb")
    assert_valid("GiftCardClass", klass)
    assert body["classId"] == klass["id"] == voucher_class_id(ISSUER, voucher)
    assert body["id"] == f"{ISSUER}.{voucher.serial}"
    assert (body["cardNumber"], body["pin"], body["state"]) == ("GIFT-7788-1122", "4821", "ACTIVE")
    assert body["balance"] == {"micros": "1000000000", "currencyCode": "RUB"}
    assert body["validTimeInterval"]["end"]["date"] == "2027-03-31T23:59:59Z"
    redeemed = voucher_object(coffee, certificate(voided=True, data={"terms": "Только в Москве"}), ISSUER)
    assert_valid("GiftCardObject", redeemed)
    assert redeemed["state"] == "INACTIVE"
    # no personal data or secret in ids
    for value in (body["id"], body["classId"]):
        assert "7790000000000000" not in value and "GIFT" not in value and "cert-1" not in value


def test_google_offer_bodies_match_the_discovery_document(coffee) -> None:
    voucher = offer()
    body = voucher_object(coffee, voucher, ISSUER)
    assert_valid("OfferObject", body)
    klass = offer_class(coffee, ISSUER, voucher, logo_url=LOGO)
    assert_valid("OfferClass", klass)
    assert body["classId"] == klass["id"]
    assert klass["title"] == "Капучино за полцены" and klass["details"] == "Покажите купон на кассе"
    assert len(body["merchantLocations"]) == 10
    # a segment's vouchers share their offer's class
    child = offer(id="offer-1~abc", data={**voucher.data, "offer": "offer-1"})
    assert voucher_class_id(ISSUER, child) == klass["id"]
