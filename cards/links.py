"""Signed, expiring links (the .pkpass download and the card page): no key needed to follow one."""

from __future__ import annotations

import hashlib
import hmac

from cards.bounds import decimal

# expiry in unix seconds: 12 digits reach the year 33658, far past any TTL the settings allow
_EXPIRES_DIGITS = 12
_SIGNATURE_LENGTH = 32


def link_signature(secret: str, purpose: str, subject: str, expires: int) -> str:
    message = f"{purpose}\n{subject}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:_SIGNATURE_LENGTH]


def sign_link(secret: str, purpose: str, subject: str, expires: int) -> str:
    return f"exp={expires}&sig={link_signature(secret, purpose, subject, expires)}"


def link_valid(secret: str, purpose: str, subject: str, expires: str | None, signature: str | None, now: float) -> bool:
    seconds = decimal(expires, _EXPIRES_DIGITS)
    if seconds is None or signature is None or len(signature) != _SIGNATURE_LENGTH:
        return False
    expected = link_signature(secret, purpose, subject, seconds).encode()
    # as bytes: compare_digest raises on a str with non-ASCII characters, which a query may hold
    return hmac.compare_digest(expected, signature.encode()) and seconds >= now
