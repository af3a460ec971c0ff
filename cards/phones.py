"""Phone numbers as members type them, parsed and normalized to E.164 with `phonenumbers` (pure).

The join page, activation and bulk import all take what a person wrote ("8 900 123-45-67",
"+7 (900) 123 45 67"); the store keeps one form, E.164, so the same phone is the same member.
A number without a country code is read in the program's region (`default_region`, ISO 3166
alpha-2, "RU" for the Russian programs of ../shared/reference/).
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"
MAX_INPUT = 40  # what a person types, separators included; phonenumbers is slow on huge strings


class PhoneError(ValueError):
    """Not a phone number anyone could be reached at; the message says why, for the form."""


def normalize_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """`text` as E.164 ("+79001234567"); PhoneError when it is not a valid number."""
    raw = text.strip()
    if not raw:
        raise PhoneError("enter a phone number")
    if len(raw) > MAX_INPUT:
        raise PhoneError("too long for a phone number")
    try:
        parsed = phonenumbers.parse(raw, region.upper() or DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise PhoneError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
