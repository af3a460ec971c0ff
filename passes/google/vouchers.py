"""Google Wallet bodies of vouchers (store/port.py Voucher): GiftCardClass/GiftCardObject for a gift
certificate, OfferClass/OfferObject for an offer. Pure functions of (template, voucher, ids), as
passes/google/model.py is for cards, and mirroring the Apple pass (passes/apple/voucher_json.py):

  Apple pass                         Google Wallet
  amount + currencyCode              GiftCardObject balance (Money: micros, currencyCode)
  barcode: the code                  object barcode (value and alternateText) and cardNumber
  back: PIN                          GiftCardObject pin (Google shows it in the details) and the
                                     class's pinLabel
  expirationDate                     object validTimeInterval.end
  voided (redeemed)                  object state INACTIVE
  back: terms                        GiftCardClass text module `terms`, or the voucher's own on the
                                     object
  offer title / text                 OfferClass title / details (one class per offer: the title is
                                     a class field), finePrint the program's terms
  offer locations (<= 10)            OfferObject merchantLocations (<= 10)
  the first tier's colour            class hexBackgroundColor

Ids carry no personal data and no secret: objects are `<issuerId>.<serial>` (random), the gift-card
class is `<issuerId>.<program>.giftcard`, an offer's class `<issuerId>.<program>.offer_<digest of the
offer id>` (the ledger's ids are its own business, not Google's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from passes.apple.voucher_json import CERTIFICATE, OFFER, offer_locations
from passes.google.model import (
    BARCODE_TYPES,
    REVIEW_STATUS,
    _issuer,
    _tel,
    _text_module,
    _uri,
    _words,
    class_id,
    hex_color,
    id_suffix,
    localized,
    merchant_locations,
)
from passes.programs import Program
from store.port import Voucher

GIFT_CARD_CLASS_SUFFIX: Final = "giftcard"
ACTIVE: Final = "ACTIVE"
INACTIVE: Final = "INACTIVE"
_MICROS: Final = Decimal(1_000_000)


def voucher_object_id(issuer_id: str, voucher: Voucher) -> str:
    """`<issuerId>.<serial>`, as for cards (the serial is random and stable)."""
    return f"{_issuer(issuer_id)}.{id_suffix(voucher.serial)}"


def offer_key(voucher: Voucher) -> str:
    """The offer a voucher belongs to: a segment's vouchers share their offer's id (and class)."""
    return str(voucher.data.get("offer") or voucher.id)


def voucher_class_id(issuer_id: str, voucher: Voucher) -> str:
    if voucher.kind == CERTIFICATE:
        return f"{class_id(issuer_id, voucher.program)}.{GIFT_CARD_CLASS_SUFFIX}"
    digest = hashlib.sha256(offer_key(voucher).encode()).hexdigest()[:24]
    return f"{class_id(issuer_id, voucher.program)}.offer_{digest}"


def _support(program: Program) -> dict[str, Any] | None:
    default = program.default_locale
    support = program.support
    uris: list[dict[str, Any]] = []
    if support.get("phone"):
        uris.append(
            _uri("support_phone", _tel(support["phone"]), dict.fromkeys(program.locales, support["phone"]), default)
        )
    if support.get("email"):
        uris.append(
            _uri(
                "support_email", "mailto:" + support["email"], dict.fromkeys(program.locales, support["email"]), default
            )
        )
    if support.get("url"):
        uris.append(_uri("support_url", support["url"], _words(program, "label.support"), default))
    return {"uris": uris} if uris else None


def _class_common(program: Program, *, hero_url: str | None, callback_url: str | None) -> dict[str, Any]:
    default = program.default_locale
    body: dict[str, Any] = {
        "issuerName": program.organization(default),
        "localizedIssuerName": localized(_words(program, "program.organization"), default),
        "reviewStatus": REVIEW_STATUS,
        "hexBackgroundColor": hex_color(program.default_tier.background_color),
        "multipleDevicesAndHoldersAllowedStatus": (
            "ONE_USER_ALL_DEVICES" if program.sharing_prohibited else "MULTIPLE_HOLDERS"
        ),
    }
    support = _support(program)
    if support is not None:
        body["linksModuleData"] = support
    names = _words(program, "program.name")
    if hero_url:
        body["heroImage"] = {"sourceUri": {"uri": hero_url}, "contentDescription": localized(names, default)}
    if callback_url:
        body["callbackOptions"] = {"url": callback_url}
    return body


def gift_card_class(
    program: Program,
    issuer_id: str,
    *,
    logo_url: str,
    hero_url: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The program's GiftCardClass (one for all its certificates)."""
    default = program.default_locale
    names = _words(program, "program.name")
    body: dict[str, Any] = {
        "id": f"{class_id(issuer_id, program)}.{GIFT_CARD_CLASS_SUFFIX}",
        **_class_common(program, hero_url=hero_url, callback_url=callback_url),
        "merchantName": names[default],
        "localizedMerchantName": localized(names, default),
        "programLogo": {"sourceUri": {"uri": logo_url}, "contentDescription": localized(names, default)},
        "cardNumberLabel": program.text("label.code", default),
        "localizedCardNumberLabel": localized(_words(program, "label.code"), default),
        "pinLabel": program.text("label.pin", default),
        "localizedPinLabel": localized(_words(program, "label.pin"), default),
        "textModulesData": [
            _text_module("terms", _words(program, "label.terms"), _words(program, "certificate.terms"), default)
        ],
    }
    return body


def offer_class(
    program: Program,
    issuer_id: str,
    voucher: Voucher,
    *,
    logo_url: str,
    hero_url: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The OfferClass of the voucher's offer (title and details are class fields)."""
    default = program.default_locale
    names = _words(program, "program.name")
    data = voucher.data
    body: dict[str, Any] = {
        "id": voucher_class_id(issuer_id, voucher),
        **_class_common(program, hero_url=hero_url, callback_url=callback_url),
        "provider": names[default],
        "localizedProvider": localized(names, default),
        "title": str(data.get("title") or ""),
        "redemptionChannel": "INSTORE",
        "titleImage": {"sourceUri": {"uri": logo_url}, "contentDescription": localized(names, default)},
        "finePrint": program.text("program.terms", default),
        "localizedFinePrint": localized(_words(program, "program.terms"), default),
    }
    if data.get("text"):
        body["details"] = str(data["text"])
    return body


def _money(amount: Any, currency: str) -> dict[str, Any]:
    micros = int(Decimal(str(amount)) * _MICROS)
    return {"micros": str(micros), "currencyCode": currency}


def _barcode(program: Program, code: str) -> dict[str, Any]:
    return {"type": BARCODE_TYPES[program.barcode_format], "value": code, "alternateText": code}


def voucher_object(program: Program, voucher: Voucher, issuer_id: str) -> dict[str, Any]:
    """The GiftCardObject or OfferObject of `voucher`: ACTIVE, or INACTIVE once voided (redeemed)."""
    data = voucher.data
    body: dict[str, Any] = {
        "id": voucher_object_id(issuer_id, voucher),
        "classId": voucher_class_id(issuer_id, voucher),
        "state": INACTIVE if voucher.voided else ACTIVE,
    }
    code = str(data.get("code") or "")
    if voucher.kind == CERTIFICATE:
        body["cardNumber"] = code
        if data.get("pin"):
            body["pin"] = str(data["pin"])
        body["balance"] = _money(data.get("amount", 0), str(data.get("currency") or "RUB"))
    elif voucher.kind != OFFER:
        raise ValueError(f"not a voucher kind: {voucher.kind!r}")
    if code:
        body["barcode"] = _barcode(program, code)
    if data.get("expires"):
        body["validTimeInterval"] = {"end": {"date": str(data["expires"])}}
    if voucher.kind == CERTIFICATE:
        default = program.default_locale
        status = "status.redeemed" if voucher.voided else "status.active"
        modules = [_text_module("status", _words(program, "label.status"), _words(program, status), default)]
        if data.get("terms"):
            terms = str(data["terms"])
            modules.append(
                _text_module(
                    "terms_own", _words(program, "label.terms"), dict.fromkeys(program.locales, terms), default
                )
            )
        body["textModulesData"] = modules
    else:
        body["merchantLocations"] = merchant_locations(offer_locations(data))
    return body


def voucher_class(
    program: Program,
    issuer_id: str,
    voucher: Voucher,
    *,
    logo_url: str,
    hero_url: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The class the voucher's object belongs to."""
    if voucher.kind == CERTIFICATE:
        return gift_card_class(program, issuer_id, logo_url=logo_url, hero_url=hero_url, callback_url=callback_url)
    return offer_class(program, issuer_id, voucher, logo_url=logo_url, hero_url=hero_url, callback_url=callback_url)


# the REST resources of each kind (walletobjects/v1/<resource>)
RESOURCES: Final[Mapping[str, tuple[str, str]]] = {
    CERTIFICATE: ("giftCardClass", "giftCardObject"),
    OFFER: ("offerClass", "offerObject"),
}
# the save JWT's payload arrays of each kind (facts §1.1)
PAYLOAD_KEYS: Final[Mapping[str, str]] = {CERTIFICATE: "giftCardObjects", OFFER: "offerObjects"}
