"""Signed, expiring links (the .pkpass download and the card page): no key needed to follow one."""

from __future__ import annotations

import hashlib
import hmac


def link_signature(secret: str, purpose: str, subject: str, expires: int) -> str:
    message = f"{purpose}\n{subject}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def sign_link(secret: str, purpose: str, subject: str, expires: int) -> str:
    return f"exp={expires}&sig={link_signature(secret, purpose, subject, expires)}"


def link_valid(secret: str, purpose: str, subject: str, expires: str | None, signature: str | None, now: float) -> bool:
    if not expires or not signature or not expires.isdigit() or len(signature) != 32:
        return False
    expected = link_signature(secret, purpose, subject, int(expires))
    return hmac.compare_digest(expected, signature) and int(expires) >= now
