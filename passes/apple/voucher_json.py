"""pass.json of a voucher (store/port.py Voucher): a pure function of (template, voucher, identifiers).

A gift certificate is a `storeCard` (Apple has no gift-card style; its store-card article names gift
cards among store cards), an offer a `coupon`:

  certificate  primary    amount with its currencyCode
               secondary  valid until (absent without an expiry)
               barcode    the code (message and altText: the cashier can type it)
               back       status (changeMessage: "redeemed" alerts), code, PIN, valid until, terms,
                          support contact. The PIN is only here: the front is what bystanders see.
  offer        primary    title
               secondary  valid until
               barcode    the code, when the offer has one
               back       text, code, valid until, program terms, support contact
               locations  the offer's stores (<= 10), relevantText = the title
  both         expirationDate, voided (a redeemed certificate), the card's webServiceURL and the
               voucher's own authenticationToken, the colours of the program's first tier, the
               program's images and pass.strings (the template pack is shared with the cards).

`data` keys (service: web/vouchers.py): code, pin, amount, currency, expires (ISO 8601 with offset),
terms; title, text, locations ([[lat, lon], ...]). Words are localization keys of pass.strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from cards.model import Card
from geo.distance import haversine_m
from passes.apple.pass_json import MAX_LOCATIONS, Location
from passes.programs import Program
from store.port import Voucher

CERTIFICATE: Final = "certificate"
OFFER: Final = "offer"
KINDS: Final = (CERTIFICATE, OFFER)
# What a lock-screen notice names an amount with; other currencies by their ISO code.
CURRENCY_SIGNS: Final[Mapping[str, str]] = {"RUB": "₽", "EUR": "€", "USD": "$", "KZT": "₸", "BYN": "Br"}


def format_amount(amount: float | int, currency: str) -> str:
    """`1000 ₽`, `12.50 EUR`-like text for people (notices); the pass itself shows the number."""
    value = str(int(amount)) if float(amount).is_integer() else f"{float(amount):.2f}"
    return f"{value} {CURRENCY_SIGNS.get(currency, currency)}"


def _amount_value(amount: Any) -> int | float:
    number = float(amount)
    return int(number) if number.is_integer() else number


def _date_field(key: str, value: str) -> dict[str, Any]:
    return {
        "key": key,
        "label": "label.valid_until",
        "value": value,
        "dateStyle": "PKDateStyleMedium",
        "timeStyle": "PKDateStyleNone",
    }


def _support(template: Program) -> list[dict[str, Any]]:
    support = template.support
    text = "\n".join(v for k in ("phone", "email", "url") if (v := support.get(k)))
    if not text:
        return []
    return [
        {
            "key": "support",
            "label": "label.support",
            "value": text,
            "dataDetectorTypes": ["PKDataDetectorTypePhoneNumber", "PKDataDetectorTypeLink"],
        }
    ]


def offer_locations(data: Mapping[str, Any]) -> list[Location]:
    """The offer's stored points as pass locations (at most MAX_LOCATIONS), each with its title."""
    title = str(data.get("title") or "") or None
    points = data.get("locations") or ()
    return [Location(float(lat), float(lon), title) for lat, lon in list(points)[:MAX_LOCATIONS]]


def build_voucher_json(
    template: Program,
    voucher: Voucher,
    *,
    pass_type_id: str,
    team_id: str,
    web_service_url: str,
) -> dict[str, Any]:
    """The pass.json dictionary of `voucher` under its program's `template`."""
    if voucher.kind not in KINDS:
        raise ValueError(f"not a voucher kind: {voucher.kind!r}")
    data = voucher.data
    tier = template.default_tier
    code = data.get("code")
    expires = data.get("expires")
    secondary: list[dict[str, Any]] = []
    if expires:
        secondary.append(_date_field("expires", str(expires)))
    back: list[dict[str, Any]] = []
    fields: dict[str, Any]
    if voucher.kind == CERTIFICATE:
        currency = str(data.get("currency") or "RUB")
        primary = [
            {
                "key": "amount",
                "label": "label.certificate",
                "value": _amount_value(data.get("amount", 0)),
                "currencyCode": currency,
            }
        ]
        back.append(
            {
                "key": "status",
                "label": "label.status",
                "value": "status.redeemed" if voucher.voided else "status.active",
                "changeMessage": "change.status",
            }
        )
        if code:
            back.append({"key": "code", "label": "label.code", "value": str(code)})
        if data.get("pin"):
            back.append({"key": "pin", "label": "label.pin", "value": str(data["pin"])})
        if expires:
            back.append(_date_field("expires_back", str(expires)))
        back.append({"key": "terms", "label": "label.terms", "value": str(data.get("terms") or "certificate.terms")})
        style = "storeCard"
        description = "certificate.description"
        logo_text = "certificate.name"
    else:
        primary = [{"key": "offer", "label": "label.offer", "value": str(data.get("title") or "")}]
        if data.get("text"):
            back.append({"key": "details", "label": "label.offer_details", "value": str(data["text"])})
        if code:
            back.append({"key": "code", "label": "label.code", "value": str(code)})
        if expires:
            back.append(_date_field("expires_back", str(expires)))
        back.append({"key": "terms", "label": "label.terms", "value": "program.terms"})
        style = "coupon"
        description = "offer.description"
        logo_text = "program.name"
    back += _support(template)
    fields = {"primaryFields": primary}
    if secondary:
        fields["secondaryFields"] = secondary
    fields["backFields"] = back

    pass_json: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": pass_type_id,
        "teamIdentifier": team_id,
        "serialNumber": voucher.serial,
        "organizationName": "program.organization",
        "description": description,
        "logoText": logo_text,
        "backgroundColor": tier.background_color,
        "foregroundColor": tier.foreground_color,
        "labelColor": tier.label_color,
        "webServiceURL": web_service_url,
        "authenticationToken": voucher.auth_token,
        "sharingProhibited": template.sharing_prohibited,
    }
    if code:
        pass_json["barcodes"] = [
            {
                "format": template.barcode_format,
                "message": str(code),
                "messageEncoding": "iso-8859-1",
                "altText": str(code),
            }
        ]
    if expires:
        pass_json["expirationDate"] = str(expires)
    if voucher.voided:
        pass_json["voided"] = True
    pass_json[style] = fields
    if voucher.kind == OFFER:
        locations = offer_locations(data)
        if locations:
            pass_json["locations"] = [loc.to_json() for loc in locations]
    return pass_json


def nearest_points(
    points: Sequence[tuple[str, float, float]], area: tuple[float, float] | None, limit: int = MAX_LOCATIONS
) -> list[list[float]]:
    """At most `limit` of the (id, lat, lon) stores as [lat, lon]: nearest to `area` first when known,
    else in id order (a pass carries at most 10, Apple's limit)."""
    ordered = sorted(points, key=lambda p: p[0])
    if area is not None:
        ordered.sort(key=lambda p: haversine_m(area[0], area[1], p[1], p[2]))
    return [[float(lat), float(lon)] for _, lat, lon in ordered[:limit]]


def offer_data(base: Mapping[str, Any], card: Card | None, area: tuple[float, float] | None) -> dict[str, Any]:
    """An offer voucher's data for `card`: the offer's fields, the card's locale and the pass's points."""
    points = [(str(i), float(lat), float(lon)) for i, lat, lon in base.get("store_points") or ()]
    data = {k: v for k, v in base.items() if k not in ("store_points", "segment")}
    data["locations"] = nearest_points(points, area)
    if card is not None:
        data["locale"] = card.locale
    return data
