"""`X-Wallet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


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
    if timestamp is None or not timestamp.isdigit() or len(timestamp) > 12 or not candidates:
        return "X-Wallet-Signature is malformed"
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "X-Wallet-Signature timestamp is outside the allowed window"
    expected = sign(secret, int(timestamp), body).partition(",v1=")[2]
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.lower())
    return None if matched else "X-Wallet-Signature does not match"
