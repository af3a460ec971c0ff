"""The "Save to Google Wallet" link: an RS256 JWT signed with the service-account key, and the
rule choosing the full payload or the skinny one. Pure: no network, no clock.

Facts: ../shared/facts/google-wallet.md §1.1 (claims, signing, URL form, 1 800 characters, skinny JWT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from google.auth import jwt
from google.auth.crypt import Signer

SAVE_URL_PREFIX: Final = "https://pay.google.com/gp/v/save/"
# "The maximum safe length for the JWT is 1800 characters" (facts §1.1: seen in a mirror of
# Google's page and in several implementations; the sentence on developers.google.com is UNCONFIRMED)
MAX_JWT_LENGTH: Final = 1800

Payload = dict[str, Any]


def save_jwt(
    signer: Signer,
    service_account_email: str,
    origins: Iterable[str],
    payload: Mapping[str, Any],
    iat: int,
) -> str:
    """The signed save JWT. Header `{"typ": "JWT", "alg": "RS256", "kid": <private_key_id>}`
    (google-auth); claims as Google's Jwt reference lists them, `iat` included although Google's
    Python sample leaves it out (the reference marks it required)."""
    claims = {
        "iss": service_account_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(iat),
        "origins": list(origins),
        "payload": dict(payload),
    }
    encoded: bytes = jwt.encode(signer, claims)  # type: ignore[no-untyped-call]  # google-auth leaves it untyped
    return encoded.decode("ascii")


def save_url(signed_jwt: str) -> str:
    return SAVE_URL_PREFIX + signed_jwt


def full_payload(loyalty_object: Mapping[str, Any], loyalty_class: Mapping[str, Any]) -> Payload:
    """Class and object inline: nothing has to exist at Google before the link is opened."""
    return {"loyaltyObjects": [dict(loyalty_object)], "loyaltyClasses": [dict(loyalty_class)]}


def skinny_payload(object_id: str, class_id: str | None = None) -> Payload:
    """A reference to an object inserted over REST first (its class too). Google's current sample
    also names the `classId`; an older one sent the `id` alone (facts §1.1)."""
    reference = {"id": object_id} if class_id is None else {"id": object_id, "classId": class_id}
    return {"loyaltyObjects": [reference]}


def choose_form(
    full: Mapping[str, Any],
    skinny: Mapping[str, Any],
    sign: Callable[[Mapping[str, Any]], str],
) -> tuple[Mapping[str, Any], str]:
    """(payload, its signed JWT): the full payload when its JWT is at most MAX_JWT_LENGTH
    characters, else the skinny one, whose object the caller must insert over REST before the link
    is used. `sign` turns a payload into a JWT (save_jwt with the other arguments bound); the full
    form is signed once and, when it fits, that JWT is the answer (no second signature)."""
    signed = sign(full)
    if len(signed) <= MAX_JWT_LENGTH:
        return full, signed
    return skinny, sign(skinny)
