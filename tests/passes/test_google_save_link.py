"""The "Save to Google Wallet" JWT (passes/google/save_link.py), decoded and verified with PyJWT
against the service account's public key: header, claims, the 1 800-character rule, the URL."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from config.dev_secrets import ensure_dev_service_account
from config.google import ServiceAccount, read_service_account
from passes.google.save_link import (
    MAX_JWT_LENGTH,
    SAVE_URL_PREFIX,
    choose_form,
    full_payload,
    save_jwt,
    save_url,
    skinny_payload,
)

ISSUER = "3388000000022141777"
ORIGINS = ("https://wallet.example.com", "http://127.0.0.1:8000")
IAT = 1_790_000_000
ID_RE = re.compile(r"^\d+\.[\w.-]+$")  # facts §1.2 and §6.5


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccount:
    path = tmp_path_factory.mktemp("google") / "google-service-account.json"
    ensure_dev_service_account(path)
    found, problem = read_service_account(path, allow_http=True)
    assert problem is None and found is not None
    return found


@pytest.fixture(scope="module")
def public_key(account: ServiceAccount) -> Any:
    private = serialization.load_pem_private_key(account.info["private_key"].encode(), password=None)
    return private.public_key()


def loyalty_class(extra_modules: int = 0) -> dict[str, Any]:
    return {
        "id": f"{ISSUER}.coffee-gold",
        "issuerName": "Coffee",
        "programName": "Coffee Club",
        "programLogo": {"sourceUri": {"uri": "https://wallet.example.com/logo.png"}},
        "reviewStatus": "UNDER_REVIEW",
        "hexBackgroundColor": "#1a2b3c",
        "textModulesData": [
            {"id": f"m{n}", "header": "Header " * 4, "body": "Body text " * 20} for n in range(extra_modules)
        ],
    }


def loyalty_object() -> dict[str, Any]:
    return {
        "id": f"{ISSUER}.card-0001",
        "classId": f"{ISSUER}.coffee-gold",
        "state": "ACTIVE",
        "accountId": "0001",
        "accountName": "Ann",
        "loyaltyPoints": {"label": "Points", "balance": {"int": 120}},
        "barcode": {"type": "QR_CODE", "value": "0001", "alternateText": "0001"},
    }


def decode(token: str, public_key: Any) -> dict[str, Any]:
    claims: dict[str, Any] = pyjwt.decode(token, public_key, algorithms=["RS256"], audience="google")
    return claims


def test_jwt_verifies_with_the_service_account_key_and_carries_the_claims(account: ServiceAccount, public_key: Any):
    payload = full_payload(loyalty_object(), loyalty_class())
    token = save_jwt(account.signer, account.client_email, ORIGINS, payload, IAT)
    header = pyjwt.get_unverified_header(token)
    assert header == {"typ": "JWT", "alg": "RS256", "kid": account.key_id}
    claims = decode(token, public_key)
    assert claims == {
        "iss": account.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": IAT,
        "origins": list(ORIGINS),
        "payload": {"loyaltyObjects": [loyalty_object()], "loyaltyClasses": [loyalty_class()]},
    }
    for item in claims["payload"]["loyaltyObjects"] + claims["payload"]["loyaltyClasses"]:
        assert ID_RE.match(item["id"])


def test_a_jwt_signed_by_another_key_or_altered_does_not_verify(
    account: ServiceAccount, public_key: Any, tmp_path: Path
):
    other_path = tmp_path / "other.json"
    ensure_dev_service_account(other_path)
    other, _ = read_service_account(other_path, allow_http=True)
    assert other is not None
    forged = save_jwt(other.signer, account.client_email, ORIGINS, skinny_payload(f"{ISSUER}.x"), IAT)
    with pytest.raises(pyjwt.InvalidSignatureError):
        decode(forged, public_key)
    head, body, signature = save_jwt(account.signer, account.client_email, ORIGINS, {}, IAT).split(".")
    altered = pyjwt.utils.base64url_encode(json.dumps({"iss": "x", "aud": "google"}).encode()).decode()
    with pytest.raises(pyjwt.InvalidSignatureError):
        decode(f"{head}.{altered}.{signature}", public_key)


def test_save_url_shape(account: ServiceAccount):
    token = save_jwt(account.signer, account.client_email, ORIGINS, skinny_payload(f"{ISSUER}.card-0001"), IAT)
    url = save_url(token)
    assert SAVE_URL_PREFIX == "https://pay.google.com/gp/v/save/"
    assert url == "https://pay.google.com/gp/v/save/" + token
    assert re.fullmatch(r"https://pay\.google\.com/gp/v/save/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", url)


def test_skinny_payload_shape():
    assert skinny_payload(f"{ISSUER}.card-0001") == {"loyaltyObjects": [{"id": f"{ISSUER}.card-0001"}]}
    assert skinny_payload(f"{ISSUER}.card-0001", f"{ISSUER}.coffee-gold") == {
        "loyaltyObjects": [{"id": f"{ISSUER}.card-0001", "classId": f"{ISSUER}.coffee-gold"}]
    }


class CountingSigner:
    def __init__(self, account: ServiceAccount) -> None:
        self.account = account
        self.signed: list[Mapping[str, Any]] = []

    def __call__(self, payload: Mapping[str, Any]) -> str:
        self.signed.append(payload)
        return save_jwt(self.account.signer, self.account.client_email, ORIGINS, payload, IAT)


def test_the_full_form_is_chosen_when_its_jwt_fits(account: ServiceAccount, public_key: Any):
    sign = CountingSigner(account)
    full, skinny = full_payload(loyalty_object(), loyalty_class()), skinny_payload(f"{ISSUER}.card-0001")
    payload, token = choose_form(full, skinny, sign)
    assert payload is full and len(token) <= MAX_JWT_LENGTH == 1800
    assert sign.signed == [full]  # signed once: the JWT that was measured is the answer
    assert decode(token, public_key)["payload"] == full


def test_the_skinny_form_is_chosen_past_1800_characters(account: ServiceAccount, public_key: Any):
    sign = CountingSigner(account)
    full, skinny = full_payload(loyalty_object(), loyalty_class(extra_modules=5)), skinny_payload(f"{ISSUER}.card-0001")
    assert len(sign(full)) > MAX_JWT_LENGTH
    payload, token = choose_form(full, skinny, sign)
    assert payload is skinny and len(token) <= MAX_JWT_LENGTH
    assert decode(token, public_key)["payload"] == {"loyaltyObjects": [{"id": f"{ISSUER}.card-0001"}]}


def test_the_rule_is_at_most_1800_at_the_boundary(account: ServiceAccount):
    """Pad the class to the longest full JWT of at most 1 800 characters (full), then one more (skinny)."""
    bind = partial(save_jwt, account.signer, account.client_email, ORIGINS, iat=IAT)
    skinny = skinny_payload(f"{ISSUER}.card-0001")

    def full_with(padding: int) -> dict[str, Any]:
        cls = loyalty_class()
        cls["issuerName"] = "C" * padding
        return full_payload(loyalty_object(), cls)

    def length(padding: int) -> int:
        return len(bind(payload=full_with(padding)))

    low, high = 0, 2000  # the length grows with the padding: the last padding that fits
    assert length(low) <= MAX_JWT_LENGTH < length(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if length(middle) <= MAX_JWT_LENGTH else (low, middle)
    # base64url grows 1 or 2 characters per byte, so the longest that fits is 1 799 or 1 800
    assert MAX_JWT_LENGTH - 1 <= length(low) <= MAX_JWT_LENGTH < length(high)
    payload, token = choose_form(full_with(low), skinny, lambda p: bind(payload=p))
    assert payload["loyaltyClasses"] and token == bind(payload=full_with(low))
    payload, token = choose_form(full_with(high), skinny, lambda p: bind(payload=p))
    assert payload is skinny and token == bind(payload=skinny)
