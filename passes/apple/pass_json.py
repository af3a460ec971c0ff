"""pass.json for a loyalty card: a pure function of (template, card, identifiers, locations).

Layout of the store card (Apple: <= 3 header, 1 primary, <= 4 secondary + auxiliary):
  header     pending points, balance (changeMessage: the lock-screen "Balance: N points")
  primary    tier name (changeMessage)
  secondary  member name, points to the next tier (absent on the top tier)
  auxiliary  expiring points and their date (absent when nothing expires)
  back       news (changeMessage "%@": a campaign's announce or a marketing message, only when
             there is one), last operation (changeMessage "%@": the ledger's message becomes the
             alert), card number, accrual percent of the tier, terms, support contact
  locations  the card's geo locations (geo/evaluate.py) with their relevantText; maxDistance
             only when a campaign asks for less than the default radius (it can only shrink it)
Words are localization keys resolved by the template's `xx.lproj/pass.strings`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cards.model import Card
from cards.numbers import format_card_number
from passes.programs import Program, tier_string_key

MAX_LOCATIONS = 10  # Apple: "An array of up to 10 objects"
# Apple's default relevance radius of a store card: UNCONFIRMED (third parties say 100 m), so
# configurable (WALLET_PASS_DEFAULT_DISTANCE_M); maxDistance "uses the smaller" of the two.
DEFAULT_DISTANCE_M = 100


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    relevant_text: str | None = None

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0 or not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"location out of range: {self.latitude}, {self.longitude}")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"latitude": float(self.latitude), "longitude": float(self.longitude)}
        if self.relevant_text:
            d["relevantText"] = self.relevant_text
        return d


def _expiring_date_value(date: str | None) -> str | None:
    """ISO 8601 with a zone, as Apple requires; the ledger sends a plain YYYY-MM-DD."""
    if not date:
        return None
    try:
        day = _dt.date.fromisoformat(date)
    except ValueError:
        return None
    # Midnight UTC plus ignoresTimeZone: the device shows this calendar day in every zone.
    return f"{day.isoformat()}T00:00:00Z"


def web_service_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/passkit"


def build_pass_json(
    template: Program,
    card: Card,
    *,
    pass_type_id: str,
    team_id: str,
    web_service_url: str,
    locations: Sequence[Location] | None = None,
    default_distance_m: int = DEFAULT_DISTANCE_M,
) -> dict[str, Any]:
    """The pass.json dictionary (not yet serialized) of `card` under `template`.

    `locations` None: the card's own (card.locations)."""
    radius: int | None = None
    if locations is None:
        locations = [Location(lat, lon, text) for lat, lon, text, _ in card.locations]
        radii = [r for *_, r in card.locations[:MAX_LOCATIONS] if r > 0]
        radius = min(radii) if radii else None
    tier = template.tier(card.tier) or template.tier_for_balance(card.balance)

    header = [
        {"key": "pending", "label": "label.pending", "value": card.pending, "numberStyle": "PKNumberStyleDecimal"},
        {
            "key": "balance",
            "label": "label.balance",
            "value": card.balance,
            "numberStyle": "PKNumberStyleDecimal",
            "changeMessage": "change.balance",
        },
    ]
    primary = [
        {"key": "tier", "label": "label.tier", "value": tier_string_key(tier.key), "changeMessage": "change.tier"}
    ]
    secondary: list[dict[str, Any]] = []
    if card.member.name:
        secondary.append({"key": "member", "label": "label.member", "value": card.member.name})
    to_next = tier.points_to_next(card.balance)
    if to_next is not None:
        secondary.append(
            {
                "key": "to_next_tier",
                "label": "label.to_next_tier",
                "value": to_next,
                "numberStyle": "PKNumberStyleDecimal",
            }
        )
    auxiliary: list[dict[str, Any]] = []
    if card.expiring_points:
        auxiliary.append(
            {
                "key": "expiring_points",
                "label": "label.expiring_points",
                "value": card.expiring_points,
                "numberStyle": "PKNumberStyleDecimal",
            }
        )
        date_value = _expiring_date_value(card.expiring_date)
        if date_value:
            auxiliary.append(
                {
                    "key": "expiring_date",
                    "label": "label.expiring_date",
                    "value": date_value,
                    "dateStyle": "PKDateStyleMedium",
                    "timeStyle": "PKDateStyleNone",
                    "ignoresTimeZone": True,
                }
            )

    support = template.support
    support_text = "\n".join(v for k in ("phone", "email", "url") if (v := support.get(k)))
    back: list[dict[str, Any]] = []
    if card.notice:
        back.append({"key": "news", "label": "label.news", "value": card.notice, "changeMessage": "%@"})
    back += [
        {
            "key": "last_operation",
            "label": "label.last_operation",
            "value": card.last_message or "last_operation.none",
            "changeMessage": "%@",
        },
        {"key": "card_number", "label": "label.card_number", "value": format_card_number(card.number)},
        {
            "key": "accrual",
            "label": "label.accrual",
            "value": tier.accrual_percent / 100,
            "numberStyle": "PKNumberStylePercent",
        },
        {"key": "terms", "label": "label.terms", "value": "program.terms"},
    ]
    if support_text:
        back.append(
            {
                "key": "support",
                "label": "label.support",
                "value": support_text,
                "dataDetectorTypes": ["PKDataDetectorTypePhoneNumber", "PKDataDetectorTypeLink"],
            }
        )

    store_card: dict[str, Any] = {"headerFields": header, "primaryFields": primary}
    if secondary:
        store_card["secondaryFields"] = secondary
    if auxiliary:
        store_card["auxiliaryFields"] = auxiliary
    store_card["backFields"] = back

    pass_json: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": pass_type_id,
        "teamIdentifier": team_id,
        "serialNumber": card.serial,
        "organizationName": "program.organization",
        "description": "pass.description",
        "logoText": "program.name",
        "backgroundColor": tier.background_color,
        "foregroundColor": tier.foreground_color,
        "labelColor": tier.label_color,
        "webServiceURL": web_service_url,
        "authenticationToken": card.auth_token,
        "sharingProhibited": template.sharing_prohibited,
        "barcodes": [
            {
                "format": template.barcode_format,
                "message": card.number,
                "messageEncoding": "iso-8859-1",
                "altText": format_card_number(card.number),
            }
        ],
        "semantics": {"balance": {"amount": str(card.balance)}},
        "storeCard": store_card,
    }
    if card.erased_at:
        # the member asked to be forgotten (DELETE /v1/members): the pass stays readable but dead
        pass_json["voided"] = True
    elif locations:
        pass_json["locations"] = [loc.to_json() for loc in list(locations)[:MAX_LOCATIONS]]
        if radius is not None and radius < default_distance_m:
            pass_json["maxDistance"] = radius
    return pass_json
