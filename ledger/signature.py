"""`X-Wallet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."""

from __future__ import annotations

import hashlib
import hmac

from cards.bounds import decimal

TOLERANCE_SECONDS = 300

# unix seconds in 12 digits last until the year 33658; a longer `t` is malformed, not a number to read
_TIMESTAMP_DIGITS = 12


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={_digest(secret, str(timestamp), body)}"


def verify(secret: str, header: str | None, body: bytes, now: float) -> str | None:
    """None when valid, else why not (for the 401 message; it never reveals the expected value).
    Several v1 entries are allowed so the ledger can roll its secret over."""
    if not header:
        return "X-Wallet-Signature is missing"
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    seconds = decimal(timestamp, _TIMESTAMP_DIGITS)
    if seconds is None or not candidates:
        return "X-Wallet-Signature is malformed"
    if abs(now - seconds) > TOLERANCE_SECONDS:
        return "X-Wallet-Signature timestamp is outside the allowed window"
    expected = _digest(secret, str(seconds), body).encode()
    matched = False
    for candidate in candidates:
        # as bytes: compare_digest raises on a str with non-ASCII characters, which a header may hold
        matched |= hmac.compare_digest(expected, candidate.lower().encode())
    return None if matched else "X-Wallet-Signature does not match"
