"""Google Wallet callbacks (passes/google/callbacks.py): ECv2SigningOnly verification against the
test signing chain (tests/fakes/google_keys.py), root keys parsing and caching, and one real
recorded callback for the message-signature construction."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passes.google.callbacks import (
    DEFAULT_SENDER_ID,
    INTERMEDIATE_EXPIRED,
    INTERMEDIATE_SIGNATURE,
    MALFORMED,
    MESSAGE_EXPIRED,
    MESSAGE_SIGNATURE,
    NO_ROOT_KEY,
    PROTOCOL,
    REASONS,
    WRONG_ISSUER,
    WRONG_SENDER,
    Callback,
    CallbackRejected,
    RootKey,
    RootKeysError,
    parse_root_keys,
    root_keys_cache_until,
    signed_message_bytes,
    verify_callback,
)
from tests.fakes.google_keys import DAY_MS, ISSUER, SigningChain, encode

NOW_MS = 1_780_000_000_000


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return SigningChain(now_ms=NOW_MS)


@pytest.fixture(scope="module")
def roots(chain: SigningChain) -> list[RootKey]:
    return parse_root_keys(chain.keys_json(), NOW_MS)


def verify(body: bytes, roots: list[RootKey], **options) -> Callback:
    kwargs = {"sender_id": DEFAULT_SENDER_ID, "issuer_id": ISSUER, "now_ms": NOW_MS, **options}
    return verify_callback(body, roots, **kwargs)


def rejected(body: bytes, roots: list[RootKey], **options) -> CallbackRejected:
    with pytest.raises(CallbackRejected) as caught:
        verify(body, roots, **options)
    assert caught.value.reason in REASONS
    return caught.value


# -- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["save", "del"])
def test_valid_callback_is_accepted(chain: SigningChain, roots: list[RootKey], event: str) -> None:
    body = chain.callback(event=event, object_suffix="card-7", nonce="n-1", exp_time_millis=NOW_MS + 5000)
    assert verify(body, roots) == Callback(
        class_id=f"{ISSUER}.coffee",
        object_id=f"{ISSUER}.card-7",
        event=event,  # type: ignore[arg-type]
        nonce="n-1",
        exp_time_millis=NOW_MS + 5000,
    )


def test_key_expiration_and_exp_time_in_either_form(chain: SigningChain, roots: list[RootKey]) -> None:
    # Google sends keyExpiration as a string and expTimeMillis as a number; both forms are read.
    key_value = json.loads(chain.signed_key())["keyValue"]
    numeric_expiry = json.dumps({"keyValue": key_value, "keyExpiration": chain.intermediate_expires_ms})
    body = chain.callback(signed_key=numeric_expiry, exp_time_millis=str(NOW_MS + 1))
    assert verify(body, roots).exp_time_millis == NOW_MS + 1


def test_any_of_several_root_keys_and_intermediate_signatures(chain: SigningChain) -> None:
    other_root = ec.generate_private_key(ec.SECP256R1())
    roots = parse_root_keys(chain.keys_json(chain.root_key_entry(key=other_root)), NOW_MS)
    assert len(roots) == 2
    body = chain.callback_dict(key_signer=other_root)
    assert verify(encode(body), roots).event == "save"
    # a signature by an unknown key beside a good one: the good one is enough
    body["intermediateSigningKey"]["signatures"].insert(
        0, chain.sign_key("x", root=ec.generate_private_key(ec.SECP256R1()))
    )
    assert verify(encode(body), roots).event == "save"


def test_outer_body_re_spaced_still_verifies(chain: SigningChain, roots: list[RootKey]) -> None:
    body = chain.callback_dict(nonce="n-space")
    for respaced in (encode(body, indent=4), encode(body, separators=(" , ", " : ")), encode(body, ensure_ascii=True)):
        assert verify(respaced, roots).nonce == "n-space"
    reordered = {key: body[key] for key in reversed(list(body))}
    assert verify(encode(reordered, indent=1), roots).nonce == "n-space"


def test_inner_strings_are_verified_as_received_not_re_serialized(chain: SigningChain, roots: list[RootKey]) -> None:
    body = chain.callback_dict()
    assert "\\u003d" in body["intermediateSigningKey"]["signedKey"]  # as Google writes it

    respaced_message = dict(body, signedMessage=json.dumps(json.loads(body["signedMessage"]), indent=2))
    assert rejected(encode(respaced_message), roots).reason == MESSAGE_SIGNATURE

    key = body["intermediateSigningKey"]
    # the same key JSON re-serialized (`=` unescaped): the root signature no longer covers it
    respaced_key = dict(body, intermediateSigningKey=dict(key, signedKey=json.dumps(json.loads(key["signedKey"]))))
    assert rejected(encode(respaced_key), roots).reason == INTERMEDIATE_SIGNATURE


# -- rejected --------------------------------------------------------------------------------------


def test_bad_message_signature(chain: SigningChain, roots: list[RootKey]) -> None:
    assert rejected(chain.callback(tamper_message_signature=True), roots).reason == MESSAGE_SIGNATURE
    assert rejected(chain.callback(tamper_signed_message=True), roots).reason == MESSAGE_SIGNATURE
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert rejected(chain.callback(message_signer=stranger), roots).reason == MESSAGE_SIGNATURE


def test_bad_intermediate_signature(chain: SigningChain, roots: list[RootKey]) -> None:
    assert rejected(chain.callback(tamper_key_signature=True), roots).reason == INTERMEDIATE_SIGNATURE
    stranger = ec.generate_private_key(ec.SECP256R1())
    error = rejected(chain.callback(key_signer=stranger), roots)
    assert error.reason == INTERMEDIATE_SIGNATURE and error.http_status == 401
    # a signedKey swapped for one naming the attacker's key, signature kept
    body = chain.callback_dict()
    body["intermediateSigningKey"]["signedKey"] = chain.signed_key(key=stranger)
    assert rejected(encode(body), roots).reason == INTERMEDIATE_SIGNATURE


def test_expired_intermediate_key(chain: SigningChain, roots: list[RootKey]) -> None:
    for expires in (NOW_MS, NOW_MS - 1):
        error = rejected(chain.callback(intermediate_expires_ms=expires), roots)
        assert error.reason == INTERMEDIATE_EXPIRED
    assert verify(chain.callback(intermediate_expires_ms=NOW_MS + 1), roots).event == "save"


def test_wrong_sender_id(chain: SigningChain, roots: list[RootKey]) -> None:
    # signed for the other sender id Google's pages name: the configured one is wrong
    assert rejected(chain.callback(sender_id="GoogleWalletPasses"), roots).reason == WRONG_SENDER
    assert rejected(chain.callback(), roots, sender_id="GoogleWalletPasses").reason == WRONG_SENDER
    # signed for some other sender: just a signature that does not verify
    assert rejected(chain.callback(sender_id="SomeoneElse"), roots).reason == INTERMEDIATE_SIGNATURE


def test_wrong_issuer_id(chain: SigningChain, roots: list[RootKey]) -> None:
    other = "3388000000099999999"
    # a genuine callback for another issuer (signed for it, naming its ids)
    body = chain.callback(recipient_id=other, issuer_in_ids=other)
    assert rejected(body, roots).reason == WRONG_ISSUER
    # ... or ours, verified as if we were another issuer
    assert rejected(chain.callback(), roots, issuer_id=other).reason == WRONG_ISSUER
    # signed for us but naming another issuer's object or class
    assert rejected(chain.callback(objectId=f"{other}.card-1"), roots).reason == WRONG_ISSUER
    assert rejected(chain.callback(classId="coffee"), roots).reason == WRONG_ISSUER
    # signed for another recipient while naming ours: a signature that does not verify for us
    assert rejected(chain.callback(recipient_id=other), roots).reason == MESSAGE_SIGNATURE


def test_expired_message(chain: SigningChain, roots: list[RootKey]) -> None:
    for exp in (NOW_MS, NOW_MS - 1, 0):
        assert rejected(chain.callback(exp_time_millis=exp), roots).reason == MESSAGE_EXPIRED
    assert verify(chain.callback(exp_time_millis=NOW_MS + 1), roots).exp_time_millis == NOW_MS + 1


def test_unknown_protocol_version(chain: SigningChain, roots: list[RootKey]) -> None:
    for version in ("ECv2", "ECv1", "ECv3SigningOnly", ""):
        error = rejected(chain.callback(protocol=version), roots)
        assert error.reason == PROTOCOL and error.http_status == 400
    # the field says ECv2SigningOnly but the strings were signed under another protocol
    assert rejected(chain.callback(signed_protocol="ECv2"), roots).reason == INTERMEDIATE_SIGNATURE


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"ECv2SigningOnly"',
        b"\xff\xfe{}",
        b"{" + b" " * 70_000 + b"}",
        b'{"protocolVersion": NaN}',
    ],
)
def test_malformed_json(roots: list[RootKey], body: bytes) -> None:
    error = rejected(body, roots)
    assert error.reason == MALFORMED and error.http_status == 400


@pytest.mark.parametrize(
    "path",
    [
        ("signature",),
        ("protocolVersion",),
        ("signedMessage",),
        ("intermediateSigningKey",),
        ("intermediateSigningKey", "signedKey"),
        ("intermediateSigningKey", "signatures"),
    ],
)
def test_missing_outer_fields(chain: SigningChain, roots: list[RootKey], path: tuple[str, ...]) -> None:
    body = chain.callback_dict()
    holder = body
    for name in path[:-1]:
        holder = holder[name]
    del holder[path[-1]]
    assert rejected(encode(body), roots).reason == MALFORMED


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(signature=42),
        lambda b: b.update(signature="not base64!"),
        lambda b: b.update(signedMessage={"nonce": "x"}),
        lambda b: b.update(intermediateSigningKey="{}"),
        lambda b: b["intermediateSigningKey"].update(signatures=[]),
        lambda b: b["intermediateSigningKey"].update(signatures="MEUCIQ=="),
        lambda b: b["intermediateSigningKey"].update(signatures=[7]),
        lambda b: b["intermediateSigningKey"].update(signatures=b["intermediateSigningKey"]["signatures"] * 9),
        lambda b: b["intermediateSigningKey"].update(signedKey={"keyValue": "x"}),
    ],
)
def test_wrongly_typed_outer_fields(chain: SigningChain, roots: list[RootKey], change) -> None:
    body = chain.callback_dict()
    change(body)
    assert rejected(encode(body), roots).reason == MALFORMED


def test_duplicate_members_are_refused(chain: SigningChain, roots: list[RootKey]) -> None:
    body = chain.callback().decode()
    doubled = body[:-1] + ',"protocolVersion":"ECv2SigningOnly"}'
    assert rejected(doubled.encode(), roots).reason == MALFORMED


@pytest.mark.parametrize(
    "fields",
    [
        {"nonce": None},
        {"nonce": ""},
        {"nonce": 5},
        {"classId": None},
        {"objectId": None},
        {"objectId": ["x"]},
        {"eventType": None},
        {"eventType": "SAVE"},
        {"eventType": "delete"},
        {"eventType": ["save"]},
        {"expTimeMillis": None},
        {"expTimeMillis": "soon"},
        {"expTimeMillis": 1.78e12},
        {"expTimeMillis": True},
        {"expTimeMillis": -1},
    ],
)
def test_missing_or_bad_signed_message_fields(chain: SigningChain, roots: list[RootKey], fields: dict) -> None:
    # signed properly: only the content is wrong
    assert rejected(chain.callback(**fields), roots).reason == MALFORMED


@pytest.mark.parametrize(
    "signed_key",
    [
        "not json",
        "[]",
        '{"keyValue":"AAAA"}',  # no keyExpiration
        '{"keyExpiration":"9999999999999"}',  # no keyValue
        '{"keyValue":"not base64!","keyExpiration":"9999999999999"}',
        '{"keyValue":"AAAA","keyExpiration":"9999999999999"}',  # base64, but not a key
        '{"keyValue":"MFkw","keyExpiration":"soon"}',
    ],
)
def test_bad_signed_key_content(chain: SigningChain, roots: list[RootKey], signed_key: str) -> None:
    assert rejected(chain.callback(signed_key=signed_key), roots).reason == MALFORMED


def test_intermediate_key_on_another_curve_is_refused(chain: SigningChain, roots: list[RootKey]) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert rejected(chain.callback(signed_key=chain.signed_key(key=p384)), roots).reason == MALFORMED


def test_no_root_key_valid_now(chain: SigningChain, roots: list[RootKey]) -> None:
    assert rejected(chain.callback(), []).reason == NO_ROOT_KEY
    # keys parsed earlier and cached past their expiry are not used
    later = chain.root_expires_ms
    body = chain.callback(intermediate_expires_ms=later + DAY_MS, exp_time_millis=later + 60_000)
    assert rejected(body, roots, now_ms=later).reason == NO_ROOT_KEY
    assert verify(body, roots, now_ms=later - 1).event == "save"


def test_distinct_reasons_cover_the_brief(chain: SigningChain, roots: list[RootKey]) -> None:
    other = "3388000000099999999"
    cases = {
        MALFORMED: b"{",
        PROTOCOL: chain.callback(protocol="ECv2"),
        NO_ROOT_KEY: None,
        INTERMEDIATE_SIGNATURE: chain.callback(tamper_key_signature=True),
        WRONG_SENDER: chain.callback(sender_id="GoogleWalletPasses"),
        INTERMEDIATE_EXPIRED: chain.callback(intermediate_expires_ms=NOW_MS - 1),
        MESSAGE_SIGNATURE: chain.callback(tamper_message_signature=True),
        WRONG_ISSUER: chain.callback(recipient_id=other, issuer_in_ids=other),
        MESSAGE_EXPIRED: chain.callback(exp_time_millis=NOW_MS - 1),
    }
    seen = {}
    for reason, body in cases.items():
        error = rejected(body or chain.callback(), [] if body is None else roots)
        seen[reason] = error.reason
    assert seen == {reason: reason for reason in cases}
    assert set(cases) == set(REASONS)


# -- root keys -------------------------------------------------------------------------------------


def test_parse_root_keys_keeps_ecv2_signing_only_keys_valid_now(chain: SigningChain) -> None:
    p = chain.root_key_entry
    document = chain.keys_json(
        p(protocol="ECv2"),  # another protocol
        p(expires_ms=NOW_MS),  # expired just now
        p(expires_ms=NOW_MS - DAY_MS),
        {"keyValue": "garbage", "protocolVersion": "ECv1"},  # not ours: not even parsed
        {k: v for k, v in p().items() if k != "keyExpiration"},  # required for ECv2SigningOnly
    )
    keys = parse_root_keys(document, NOW_MS)
    assert [key.expires_ms for key in keys] == [chain.root_expires_ms]
    assert keys[0].public_key == chain.root.public_key()
    assert parse_root_keys(document, chain.root_expires_ms) == []


def test_parse_root_keys_accepts_google_shapes(chain: SigningChain) -> None:
    entry = chain.root_key_entry()
    entry["keyValue"] = entry["keyValue"].replace("=", "\\u003d")  # escaped in the JSON text
    text = json.dumps({"keys": [entry]}).replace("\\\\u003d", "\\u003d")
    assert len(parse_root_keys(text, NOW_MS)) == 1
    numeric = dict(chain.root_key_entry(), keyExpiration=chain.root_expires_ms)
    assert len(parse_root_keys(json.dumps({"keys": [numeric]}).encode(), NOW_MS)) == 1
    assert parse_root_keys(b'{"keys": []}', NOW_MS) == []


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"nope",
        b"[]",
        b"{}",
        b'{"keys": {}}',
        b'{"keys": ["x"]}',
        b'{"keys": [{"protocolVersion": "ECv2SigningOnly", "keyExpiration": "1", "keyValue": "AAAA"}]}',
        b'{"keys": [{"protocolVersion": "ECv2SigningOnly", "keyExpiration": "later", "keyValue": "AAAA"}]}',
    ],
)
def test_parse_root_keys_refuses_malformed_documents(document: bytes) -> None:
    with pytest.raises(RootKeysError):
        parse_root_keys(document, NOW_MS)


def test_root_keys_cache_until(chain: SigningChain) -> None:
    soon = chain.root_key_entry(key=ec.generate_private_key(ec.SECP256R1()), expires_ms=NOW_MS + 3_600_000)
    keys = parse_root_keys(chain.keys_json(soon), NOW_MS)
    assert root_keys_cache_until(keys, NOW_MS) == NOW_MS + 3_600_000  # the earliest expiry
    assert root_keys_cache_until(keys, NOW_MS, "public, max-age=600") == NOW_MS + 600_000
    assert root_keys_cache_until(keys, NOW_MS, "max-age=99999999, must-revalidate") == NOW_MS + 3_600_000
    assert root_keys_cache_until(keys, NOW_MS, 'Max-Age="60"') == NOW_MS + 60_000
    assert root_keys_cache_until(keys, NOW_MS, "private") == NOW_MS + 3_600_000
    assert root_keys_cache_until(keys, NOW_MS, "no-cache") == NOW_MS
    assert root_keys_cache_until(keys, NOW_MS, "no-store, max-age=600") == NOW_MS
    assert root_keys_cache_until(keys, NOW_MS, "s-maxage=5") == NOW_MS + 3_600_000  # shared caches only
    assert root_keys_cache_until([], NOW_MS, "max-age=600") == NOW_MS
    # keys cached earlier: only those still valid count
    assert root_keys_cache_until(keys, NOW_MS + 3_600_000) == chain.root_expires_ms


# -- a real callback -----------------------------------------------------------------------------

# Recorded by edutap-eu/edutap.wallet_google (tests/test_handler_validate.py; issuer
# 3388000000022141777, 2025-10). Its root keys are only available live, so this checks step 4
# (the message signature construction with sender GooglePayPasses) against Google's own output.
REAL_SIGNATURE = "MEUCIQC+xKva1ydmNwJJiP2HJJWsteUe02ztTDKExzcWIpmlywIgJwD4HUYvZJg/cr1OL21vVKr0b2ZXt79NblCQ1V18zsc="
REAL_KEY_VALUE = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKb256ssDdmf7DokZ7jsMtAvjiTX2HF1ay8QR1sSA+gFp"
    "C/ChhRwVdMEVJTaoAP1MIH38QWtqShiQ63zROaKtgQ=="
)
REAL_MESSAGE = (
    '{"classId":"3388000000022141777.lib.edutap.eu",'
    '"objectId":"3388000000022141777.6b4cbd15-0de7-4fe8-95f6-995a51b4595e.object",'
    '"eventType":"del","expTimeMillis":1759331348143,"count":1,"nonce":"1a9e3df0-ec10-4a17-8b39-89d2d7f48e3b"}'
)


def test_real_message_signature_verifies_with_our_construction() -> None:
    key = serialization.load_der_public_key(base64.b64decode(REAL_KEY_VALUE))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(REAL_SIGNATURE)
    key.verify(
        signature,
        signed_message_bytes("GooglePayPasses", ISSUER, "ECv2SigningOnly", REAL_MESSAGE),
        ec.ECDSA(hashes.SHA256()),
    )
    with pytest.raises(InvalidSignature):
        key.verify(
            signature,
            signed_message_bytes("GoogleWalletPasses", ISSUER, "ECv2SigningOnly", REAL_MESSAGE),
            ec.ECDSA(hashes.SHA256()),
        )
