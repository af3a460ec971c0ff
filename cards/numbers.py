"""Card numbers, serials and authentication tokens.

Card numbers are what a cashier scans and a member may read aloud, so they are digits
with a Luhn check digit; the digits after the program prefix come from `secrets`, so
numbers are neither sequential nor guessable. Serials and tokens are URL-safe random
strings (PassKit puts both into URLs and the `Authorization` header).
"""

from __future__ import annotations

import secrets

CARD_NUMBER_LENGTH = 16

# A ledger account id as the ledger backend names it: the web API and the ledger parser both check it.
ACCOUNT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload + digit` pass the Luhn test."""
    if not payload.isdigit() or not payload.isascii():
        raise ValueError("Luhn payload must be ASCII digits")
    total = 0
    # Walking from the right, every second digit of the payload is doubled, because the
    # check digit itself will occupy the rightmost (undoubled) position.
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when `number` is all ASCII digits (at least two) and its Luhn checksum is 0."""
    if not isinstance(number, str) or len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def new_card_number(prefix: str) -> str:
    """A 16-digit card number: program prefix + random digits + Luhn check digit."""
    if not prefix.isascii() or not prefix.isdigit():
        raise ValueError("card prefix must be ASCII digits")
    random_len = CARD_NUMBER_LENGTH - 1 - len(prefix)
    # At least 8 random digits (~27 bits) keeps numbers unguessable even for long prefixes.
    if random_len < 8:
        raise ValueError(f"card prefix too long ({len(prefix)} digits); at most {CARD_NUMBER_LENGTH - 9}")
    body = prefix + str(secrets.randbelow(10**random_len)).zfill(random_len)
    return body + luhn_check_digit(body)


def new_serial() -> str:
    """A pass serial number: 128 random bits, URL-safe base64 (22 characters)."""
    return secrets.token_urlsafe(16)


def new_auth_token() -> str:
    """A PassKit authenticationToken: 192 random bits, URL-safe (32 characters, Apple needs >= 16)."""
    return secrets.token_urlsafe(24)


def last4(number: str | None) -> str:
    """What logs may show of a card number (or any identifier): its last 4 characters only."""
    if not number:
        return "????"
    return str(number)[-4:]


def format_card_number(number: str) -> str:
    """Groups of four for humans ("7790 1234 5678 9012"); used as the barcode's altText."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
