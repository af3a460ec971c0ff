"""The numbers the service takes: the bounds of a card's figures, and whole numbers written as text.

Every number that comes in as text (a query parameter, a header, a link) is read by `decimal`, and every
card figure is checked against the bounds here, by the HTTP readers and the ledger parser alike."""

from __future__ import annotations

# Balances, pending and expiring points: 0 to POINTS_MAX. A trillion points is far beyond any loyalty
# program and far inside what a JSON number carries exactly (2**53) and what SQLite stores (2**63).
POINTS_MAX = 10**12

# The ledger's version of a card: 1 to VERSION_MAX. Below 2**53 so that every JavaScript client reads
# back exactly the number the ledger sent.
VERSION_MAX = 2**53 - 1


def decimal(text: str | bytes | None, max_digits: int) -> int | None:
    """The whole number `text` spells in 1 to `max_digits` ASCII digits (leading zeros allowed), else None.

    Not `str.isdigit()` + `int()`: isdigit() is also true for superscripts and other scripts' digits,
    which int() then refuses or reads, and int() refuses more than 4300 digits; both were 500s."""
    if text is None or not 0 < len(text) <= max_digits:
        return None
    if isinstance(text, bytes):
        # bytes.isdigit() is ASCII-only already
        return int(text) if text.isdigit() else None
    if not text.isascii() or not text.isdigit():
        return None
    return int(text)
