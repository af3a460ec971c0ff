"""Google Wallet LoyaltyClass and LoyaltyObject bodies: pure functions of (template, card, ids, locations).

They mirror the Apple pass built from the same template (passes/apple/pass_json.py):

  Apple pass                              Google Wallet
  organizationName / logoText             class issuerName / programName (+ localized*)
  backgroundColor (the tier's)            class hexBackgroundColor        -> one class per tier, below
  primary: tier                           class rewardsTier / rewardsTierLabel
  header: balance                         object loyaltyPoints (int balance, localized label)
  header: pending / secondary: to next    object secondaryLoyaltyPoints: pending while any is pending,
                                          else points to the next tier (absent on the top tier with
                                          nothing pending); the one not shown there is a text module
  secondary: member                       object accountName (class accountNameLabel)
  back: card number                       object accountId, formatted (class accountIdLabel)
  barcode: card number, formatted altText object barcode: same value and alternateText, type mapped
  auxiliary: expiring points and date     object text modules `expiring_points`, `expiring_date`
  back: last operation                    object text module `last_operation` (the ledger's message)
  back: accrual percent of the tier       object text module `accrual`
  back: terms                             class text module `terms`
  back: support contact                   class linksModuleData (tel:, mailto:, web page)
  (card page link)                        object linksModuleData `card_page`
  locations (<= 10)                       object merchantLocations (<= 10)
  sharingProhibited                       class multipleDevicesAndHoldersAllowedStatus

Words come from the template's `xx.lproj/pass.strings` and go out as LocalizedString with a
translatedValue for every locale of the program; the class's defaultValue is the program's default
locale, the object's the card's locale.

One class per tier. Google puts `hexBackgroundColor` and `rewardsTier` only on LoyaltyClass; a
LoyaltyObject has neither (facts/google-wallet.md §1.3, §1.4: the discovery document, and a strict
validation that rejects `hexBackgroundColor` on an object). The SPEC wants the Google card to show
the tier "and its colours" like the Apple pass, so each tier gets its class, `<issuerId>.<program>.<tier>`,
and a card's object points at the class of its tier. Class-wide words (names, labels, terms, support)
are the same in every tier's class. Open risk, for the live-update work: the facts could not confirm
that Google accepts a changed `classId` on an existing object; the tier is therefore also readable
without the class (`secondaryLoyaltyPoints` shows the points to the next tier, the accrual text module
the tier's percent), and a refused move needs a fallback there (e.g. re-insert under a new id).

Ids: `<issuerId>.<suffix>`, the suffix only ASCII letters, digits, `.`, `_`, `-` (anything else becomes
`_`). Objects are named by the card's serial (random, stable, URL-safe), never by the card number or
the member, so ids in Google's console, logs and URLs carry no personal data.

Same inputs, same dictionary: no clock, no randomness, lists in template order.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from cards.model import Card
from cards.numbers import format_card_number
from passes.programs import COLOR_RE, Program, Tier

MAX_MERCHANT_LOCATIONS: Final = 10  # Google rejects more than 10 on a class or an object
TEXT_HEADER_MAX: Final = 35  # TextModuleData: recommended maximum lengths
TEXT_BODY_MAX: Final = 500
REVIEW_STATUS: Final = "UNDER_REVIEW"  # insert and patch both; Google approves it automatically
STATES: Final = ("ACTIVE", "COMPLETED", "EXPIRED", "INACTIVE")
# PassKit barcode formats of the template -> Google's barcode types
BARCODE_TYPES: Final[Mapping[str, str]] = {
    "PKBarcodeFormatQR": "QR_CODE",
    "PKBarcodeFormatPDF417": "PDF_417",
    "PKBarcodeFormatAztec": "AZTEC",
    "PKBarcodeFormatCode128": "CODE_128",
}
# The card page link's title: the template's key when it defines one, else the program's name.
CARD_PAGE_KEY: Final = "label.card_page"

_ISSUER_ID = re.compile(r"^[0-9]+$")
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class LatLng(Protocol):
    """A point: passes.apple.pass_json.Location fits, and so does whatever the geo work passes in."""

    @property
    def latitude(self) -> float: ...

    @property
    def longitude(self) -> float: ...


# --- ids -------------------------------------------------------------------------------------------


def id_suffix(value: str) -> str:
    """`value` with every character outside letters, digits, `.`, `_`, `-` replaced by `_`."""
    if not value:
        raise ValueError("an id suffix must not be empty")
    return _NOT_ID.sub("_", value)


def _issuer(issuer_id: str) -> str:
    if not isinstance(issuer_id, str) or not _ISSUER_ID.match(issuer_id):
        raise ValueError(f"a Google Wallet issuer id is digits, got {issuer_id!r}")
    return issuer_id


def class_id(issuer_id: str, program: Program | str, tier: Tier | str | None = None) -> str:
    """`<issuerId>.<program>` or, per tier (what this module builds), `<issuerId>.<program>.<tier>`."""
    name = program.program if isinstance(program, Program) else program
    suffix = id_suffix(name)
    if tier is not None:
        suffix += "." + id_suffix(tier.key if isinstance(tier, Tier) else tier)
    return f"{_issuer(issuer_id)}.{suffix}"


def object_id(issuer_id: str, card: Card) -> str:
    """`<issuerId>.<serial>`: the serial is random and stable; the number and the member stay out."""
    return f"{_issuer(issuer_id)}.{id_suffix(card.serial)}"


def card_tier(program: Program, card: Card) -> Tier:
    """The tier the card shows (as the Apple pass does: its recorded tier, else the balance's)."""
    return program.tier(card.tier) or program.tier_for_balance(card.balance)


def object_class_id(program: Program, card: Card, issuer_id: str) -> str:
    return class_id(issuer_id, program, card_tier(program, card))


# --- values ----------------------------------------------------------------------------------------


def hex_color(color: str) -> str:
    """`rgb(111, 78, 55)` (the template's form) -> `#6f4e37`."""
    m = COLOR_RE.fullmatch(color)
    if not m or any(int(g) > 255 for g in m.groups()):
        raise ValueError(f"not an rgb() colour: {color!r}")
    return "#{:02x}{:02x}{:02x}".format(*(int(g) for g in m.groups()))


def _language(locale: str) -> str:
    return locale.split("-")[0].lower()


def format_number(value: int, locale: str) -> str:
    """Digits grouped by thousands: `1,250` in English, `1 250` (no-break space) otherwise."""
    grouped = f"{value:,}"
    return grouped if _language(locale) == "en" else grouped.replace(",", "\u00a0")


def format_percent(value: int, locale: str) -> str:
    return f"{value}%" if _language(locale) == "en" else f"{value}\u00a0%"


def format_date(date: str | None, locale: str) -> str | None:
    """The ledger's `YYYY-MM-DD` for people: `31.03.2027` in Russian, `Mar 31, 2027` in English."""
    if not date:
        return None
    try:
        day = _dt.date.fromisoformat(date)
    except ValueError:
        return None
    lang = _language(locale)
    if lang == "en":
        return f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}"
    if lang == "ru":
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    return day.isoformat()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def card_locale(program: Program, card: Card) -> str:
    """The card's locale when the program has it (or its language), else the program's default."""
    if card.locale in program.locales:
        return card.locale
    lang = _language(card.locale or "")
    return lang if lang in program.locales else program.default_locale


def localized(values: Mapping[str, str], default_locale: str) -> dict[str, Any]:
    """A LocalizedString: every value as a translatedValue, the default locale's as defaultValue."""
    return {
        "defaultValue": {"language": default_locale, "value": values[default_locale]},
        "translatedValues": [{"language": lc, "value": v} for lc, v in values.items()],
    }


def _per_locale(program: Program, make: Callable[[str], str]) -> dict[str, str]:
    return {lc: make(lc) for lc in program.locales}


def _words(program: Program, key: str) -> dict[str, str]:
    return {lc: program.text(key, lc) for lc in program.locales}


def _text_module(
    module_id: str, headers: Mapping[str, str], bodies: Mapping[str, str], default_locale: str
) -> dict[str, Any]:
    headers = {lc: _clip(v, TEXT_HEADER_MAX) for lc, v in headers.items()}
    bodies = {lc: _clip(v, TEXT_BODY_MAX) for lc, v in bodies.items()}
    return {
        "id": module_id,
        "header": headers[default_locale],
        "localizedHeader": localized(headers, default_locale),
        "body": bodies[default_locale],
        "localizedBody": localized(bodies, default_locale),
    }


def _uri(uri_id: str, uri: str, descriptions: Mapping[str, str], default_locale: str) -> dict[str, Any]:
    return {
        "id": uri_id,
        "uri": uri,
        "description": descriptions[default_locale],
        "localizedDescription": localized(descriptions, default_locale),
    }


def _points(program: Program, label_key: str, value: int, default_locale: str) -> dict[str, Any]:
    labels = _words(program, label_key)
    return {
        "label": labels[default_locale],
        "localizedLabel": localized(labels, default_locale),
        "balance": {"int": int(value)},
    }


def _tel(phone: str) -> str:
    return "tel:" + re.sub(r"[^0-9+]", "", phone)


# --- the class -------------------------------------------------------------------------------------


def loyalty_class(
    program: Program,
    issuer_id: str,
    tier: Tier | str,
    *,
    logo_url: str,
    hero_url: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The LoyaltyClass of one tier of `program` (see the module docstring for why per tier).

    `logo_url` is the public https URL of the program's logo (`programLogo` is required), `hero_url`
    optionally that of the strip image, `callback_url` where Google posts save/delete callbacks.
    """
    chosen = program.tier(tier) if isinstance(tier, str) else tier
    if chosen is None or program.tier(chosen.key) is None:
        raise ValueError(f"program {program.program!r} has no tier {tier!r}")
    default = program.default_locale
    names = _words(program, "program.name")
    body: dict[str, Any] = {
        "id": class_id(issuer_id, program, chosen),
        "issuerName": program.organization(default),
        "localizedIssuerName": localized(_words(program, "program.organization"), default),
        "programName": names[default],
        "localizedProgramName": localized(names, default),
        "programLogo": {"sourceUri": {"uri": logo_url}, "contentDescription": localized(names, default)},
        "reviewStatus": REVIEW_STATUS,
        "hexBackgroundColor": hex_color(chosen.background_color),
        "rewardsTierLabel": program.text("label.tier", default),
        "localizedRewardsTierLabel": localized(_words(program, "label.tier"), default),
        "rewardsTier": chosen.name(default),
        "localizedRewardsTier": localized({lc: chosen.name(lc) for lc in program.locales}, default),
        "accountIdLabel": program.text("label.card_number", default),
        "localizedAccountIdLabel": localized(_words(program, "label.card_number"), default),
        "accountNameLabel": program.text("label.member", default),
        "localizedAccountNameLabel": localized(_words(program, "label.member"), default),
        "multipleDevicesAndHoldersAllowedStatus": (
            "ONE_USER_ALL_DEVICES" if program.sharing_prohibited else "MULTIPLE_HOLDERS"
        ),
        "textModulesData": [
            _text_module("terms", _words(program, "label.terms"), _words(program, "program.terms"), default)
        ],
    }
    support = program.support
    support_label = _words(program, "label.support")
    uris: list[dict[str, Any]] = []
    if support.get("phone"):
        uris.append(
            _uri("support_phone", _tel(support["phone"]), _per_locale(program, lambda _: support["phone"]), default)
        )
    if support.get("email"):
        uris.append(
            _uri(
                "support_email", "mailto:" + support["email"], _per_locale(program, lambda _: support["email"]), default
            )
        )
    if support.get("url"):
        uris.append(_uri("support_url", support["url"], support_label, default))
    if uris:
        body["linksModuleData"] = {"uris": uris}
    if hero_url:
        body["heroImage"] = {"sourceUri": {"uri": hero_url}, "contentDescription": localized(names, default)}
    if callback_url:
        body["callbackOptions"] = {"url": callback_url}
    return body


def loyalty_classes(
    program: Program,
    issuer_id: str,
    *,
    logo_url: str,
    hero_url: str | None = None,
    callback_url: str | None = None,
) -> list[dict[str, Any]]:
    """Every class of `program`, one per tier in template order."""
    return [
        loyalty_class(program, issuer_id, t, logo_url=logo_url, hero_url=hero_url, callback_url=callback_url)
        for t in program.tiers
    ]


# --- the object ------------------------------------------------------------------------------------


def merchant_locations(locations: Sequence[LatLng]) -> list[dict[str, float]]:
    """The first MAX_MERCHANT_LOCATIONS points (the caller orders them, nearest first)."""
    out: list[dict[str, float]] = []
    for loc in list(locations)[:MAX_MERCHANT_LOCATIONS]:
        lat, lon = float(loc.latitude), float(loc.longitude)
        if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
            raise ValueError(f"location out of range: {lat}, {lon}")
        out.append({"latitude": lat, "longitude": lon})
    return out


def loyalty_object(
    program: Program,
    card: Card,
    issuer_id: str,
    *,
    page_url: str,
    locations: Sequence[LatLng] = (),
    state: str = "ACTIVE",
) -> dict[str, Any]:
    """The LoyaltyObject of `card`: its tier's class, balance, barcode, text and links (module docstring).

    `page_url` is the card's page (`GET /c/{serial}?<signed link>`); `locations` the stores the pass
    carries (at most 10 are used; empty until the geo work fills them); `state` one of STATES
    (`INACTIVE` for a voided card).
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    tier = card_tier(program, card)
    lc = card_locale(program, card)
    to_next = tier.points_to_next(card.balance)

    body: dict[str, Any] = {
        "id": object_id(issuer_id, card),
        "classId": class_id(issuer_id, program, tier),
        "state": state,
        "accountId": format_card_number(card.number),
    }
    if card.member.name:
        body["accountName"] = card.member.name
    body["loyaltyPoints"] = _points(program, "label.balance", card.balance, lc)
    if card.pending:
        body["secondaryLoyaltyPoints"] = _points(program, "label.pending", card.pending, lc)
    elif to_next is not None:
        body["secondaryLoyaltyPoints"] = _points(program, "label.to_next_tier", to_next, lc)
    body["barcode"] = {
        "type": BARCODE_TYPES[program.barcode_format],
        "value": card.number,
        "alternateText": format_card_number(card.number),
    }

    last = card.last_message
    modules = [
        _text_module(
            "last_operation",
            _words(program, "label.last_operation"),
            _per_locale(program, lambda _: last) if last else _words(program, "last_operation.none"),
            lc,
        )
    ]
    if card.expiring_points:
        points = card.expiring_points
        modules.append(
            _text_module(
                "expiring_points",
                _words(program, "label.expiring_points"),
                _per_locale(program, lambda x: format_number(points, x)),
                lc,
            )
        )
        if format_date(card.expiring_date, lc) is not None:
            modules.append(
                _text_module(
                    "expiring_date",
                    _words(program, "label.expiring_date"),
                    _per_locale(program, lambda x: format_date(card.expiring_date, x) or ""),
                    lc,
                )
            )
    if card.pending and to_next is not None:  # the secondary points show the pending ones
        modules.append(
            _text_module(
                "to_next_tier",
                _words(program, "label.to_next_tier"),
                _per_locale(program, lambda x: format_number(to_next, x)),
                lc,
            )
        )
    modules.append(
        _text_module(
            "accrual",
            _words(program, "label.accrual"),
            _per_locale(program, lambda x: format_percent(tier.accrual_percent, x)),
            lc,
        )
    )
    body["textModulesData"] = modules

    if all(CARD_PAGE_KEY in program.strings[x] for x in program.locales):
        page_titles = _words(program, CARD_PAGE_KEY)
    else:
        page_titles = _words(program, "program.name")
    body["linksModuleData"] = {"uris": [_uri("card_page", page_url, page_titles, lc)]}
    body["merchantLocations"] = merchant_locations(locations)
    return body
