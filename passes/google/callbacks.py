"""Google Wallet save/delete callbacks: ECv2SigningOnly verification (pure; no I/O, no clock).

Google POSTs a JSON body to the class's `callbackOptions.url` when a user saves or deletes a
pass (facts: ../shared/facts/google-wallet.md §3):

  {"signature": b64 DER ECDSA,
   "intermediateSigningKey": {"signedKey": "<JSON string: keyValue, keyExpiration>",
                              "signatures": [b64 DER ECDSA, ...]},
   "protocolVersion": "ECv2SigningOnly",
   "signedMessage": "<JSON string: classId, objectId, eventType, expTimeMillis, count, nonce>"}

Verification (the Google Pay ECv2 construction, as Tink's PaymentMethodTokenRecipient does it):
  1. root keys from the keys URL: those with protocolVersion ECv2SigningOnly whose keyExpiration
     has not passed (`parse_root_keys`; cache them until `root_keys_cache_until`);
  2. one of `intermediateSigningKey.signatures` verifies under a root key (ECDSA P-256,
     SHA-256) over LV(sender id) || LV(protocol version) || LV(signedKey);
  3. signedKey.keyExpiration has not passed;
  4. `signature` verifies under signedKey.keyValue over
     LV(sender id) || LV(recipient id = issuer id) || LV(protocol version) || LV(signedMessage);
  5. expTimeMillis has not passed. De-duplicating on `nonce` is the caller's (the store's) job.
LV(x) is the 4-byte little-endian length of x's UTF-8 bytes, then those bytes.

`signedKey` and `signedMessage` are verified exactly as received: the string values the body's
JSON holds, encoded as UTF-8, never re-serialized (Google's inner JSON has `\\u003d` escapes
and its own spacing). Re-spacing the outer body is harmless; touching an inner string is not.

Anything wrong raises `CallbackRejected` with one of the REASONS, and `http_status` 400 (the
body is not a callback we understand) or 401 (it is one, but not verified for us now).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PROTOCOL_VERSION = "ECv2SigningOnly"
# What real callbacks are signed with (facts §3: recorded 2023-2025 payloads verify with it only).
DEFAULT_SENDER_ID = "GooglePayPasses"
# Sender ids Google's pages name (facts §3: some doc variants show GoogleWalletPasses). Only used
# to say *why* a signature failed (a misconfigured sender id), never to accept a callback.
KNOWN_SENDER_IDS = ("GooglePayPasses", "GoogleWalletPasses")
DEFAULT_KEYS_URL = "https://pay.google.com/gp/m/issuer/keys"

# A real callback is well under 2 KiB with one intermediate signature; anything bigger is not
# one (and each signature costs verifications: a body must not buy many).
MAX_BODY_BYTES = 64 * 1024
MAX_KEY_SIGNATURES = 8

MALFORMED = "malformed"  # not JSON, or a field missing or of the wrong type
PROTOCOL = "protocol_version"  # protocolVersion is not ECv2SigningOnly
NO_ROOT_KEY = "no_root_key"  # no root key is valid now (none given, or all expired)
INTERMEDIATE_SIGNATURE = "intermediate_signature"  # no intermediate signature verifies under a root key
WRONG_SENDER = "wrong_sender"  # ... but it does under another known sender id: the configured one is wrong
INTERMEDIATE_EXPIRED = "intermediate_expired"
MESSAGE_SIGNATURE = "message_signature"  # the message signature does not verify under the intermediate key
WRONG_ISSUER = "wrong_issuer"  # signed for (or naming ids of) another issuer than ours
MESSAGE_EXPIRED = "message_expired"
REASONS = (
    MALFORMED,
    PROTOCOL,
    NO_ROOT_KEY,
    INTERMEDIATE_SIGNATURE,
    WRONG_SENDER,
    INTERMEDIATE_EXPIRED,
    MESSAGE_SIGNATURE,
    WRONG_ISSUER,
    MESSAGE_EXPIRED,
)
_BAD_REQUEST = frozenset({MALFORMED, PROTOCOL})

Event = Literal["save", "del"]
_EVENTS: dict[str, Event] = {"save": "save", "del": "del"}
_ECDSA = ec.ECDSA(hashes.SHA256())
_DIGITS = re.compile(r"[0-9]{1,19}")  # a non-negative int64 in decimal; no sign, no spaces


class CallbackRejected(Exception):
    """The callback is refused. `reason` is one of REASONS; `detail` says more, for logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def http_status(self) -> int:
        """400 for a body that is not a callback we understand, 401 for one not verified."""
        return 400 if self.reason in _BAD_REQUEST else 401


class RootKeysError(ValueError):
    """The root keys document is not the JSON Google serves."""


@dataclass(frozen=True)
class RootKey:
    """A root signing key from the keys URL (ECv2SigningOnly only)."""

    public_key: ec.EllipticCurvePublicKey
    expires_ms: int  # keyExpiration: not valid from this instant on

    def valid_at(self, now_ms: int) -> bool:
        return now_ms < self.expires_ms


@dataclass(frozen=True)
class Callback:
    """A verified callback: the user saved (`save`) or deleted (`del`) the object."""

    class_id: str
    object_id: str
    event: Event
    nonce: str
    exp_time_millis: int


# -- the signed strings ------------------------------------------------------------------------


def _lv(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(4, "little") + data


def signed_key_bytes(sender_id: str, protocol_version: str, signed_key: str) -> bytes:
    """What a root key signs: LV(sender id) || LV(protocol version) || LV(signedKey)."""
    return _lv(sender_id) + _lv(protocol_version) + _lv(signed_key)


def signed_message_bytes(sender_id: str, recipient_id: str, protocol_version: str, signed_message: str) -> bytes:
    """What the intermediate key signs: LV(sender) || LV(recipient) || LV(protocol) || LV(signedMessage)."""
    return _lv(sender_id) + _lv(recipient_id) + _lv(protocol_version) + _lv(signed_message)


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, _ECDSA)
    except InvalidSignature:
        return False
    return True


# -- JSON helpers --------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"duplicate member {name!r}")
        found[name] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """A JSON object, with duplicate members and NaN/Infinity refused (ValueError)."""
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _millis(value: object) -> int | None:
    """An epoch-millisecond field: Google sends keyExpiration as a decimal string and
    expTimeMillis as a number; either form is accepted for both. None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _p256_key(value: object) -> ec.EllipticCurvePublicKey | None:
    """A base64 DER SubjectPublicKeyInfo of a P-256 key, or None."""
    der = _b64(value)
    if der is None:
        return None
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key


# -- root keys -------------------------------------------------------------------------------------


def parse_root_keys(json_bytes: bytes | str, now_ms: int) -> list[RootKey]:
    """The root keys of WALLET_GOOGLE_KEYS_URL's answer (`{"keys": [{keyValue, protocolVersion,
    keyExpiration}, ...]}`) usable for ECv2SigningOnly now: other protocol versions are skipped,
    and so are keys without keyExpiration (required for every version but ECv1) or past it.
    A document that is not that shape, or an ECv2SigningOnly entry whose key or expiration does
    not parse, raises RootKeysError."""
    try:
        document = _json_object(json_bytes, "the keys document")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RootKeysError(f"keys document is not a JSON object: {exc}") from exc
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise RootKeysError("keys document has no `keys` list")
    keys = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RootKeysError(f"keys[{index}] is not an object")
        if entry.get("protocolVersion") != PROTOCOL_VERSION:
            continue
        if "keyExpiration" not in entry:
            continue
        expires = _millis(entry["keyExpiration"])
        if expires is None:
            raise RootKeysError(f"keys[{index}].keyExpiration is not epoch milliseconds")
        key = _p256_key(entry.get("keyValue"))
        if key is None:
            raise RootKeysError(f"keys[{index}].keyValue is not a base64 DER P-256 public key")
        root = RootKey(key, expires)
        if root.valid_at(now_ms):
            keys.append(root)
    return keys


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[=,]|$)", re.IGNORECASE)


def root_keys_cache_until(keys: Sequence[RootKey], now_ms: int, cache_control: str | None = None) -> int:
    """Until when (epoch ms) keys fetched at `now_ms` may be used without fetching again: the
    earliest keyExpiration among them, sooner when the answer's Cache-Control max-age says so
    (no-cache / no-store: now). No usable keys: now (fetch again on the next callback; the caller
    should space its retries)."""
    until = min((key.expires_ms for key in keys if key.valid_at(now_ms)), default=now_ms)
    if cache_control:
        if _NO_CACHE.search(cache_control):
            return now_ms
        match = _MAX_AGE.search(cache_control)
        if match:
            until = min(until, now_ms + int(match.group(1)) * 1000)
    return max(until, now_ms)


# -- the callback ----------------------------------------------------------------------------------


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CallbackRejected(MALFORMED, f"{where}{name} is missing or not a {kind.__name__}")
    return value


def _issuer_of(object_or_class_id: object) -> str | None:
    if not isinstance(object_or_class_id, str) or "." not in object_or_class_id:
        return None
    return object_or_class_id.split(".", 1)[0]


def verify_callback(
    body: bytes, root_keys: Sequence[RootKey], *, sender_id: str, issuer_id: str, now_ms: int
) -> Callback:
    """The verified callback in `body` (the request body as received), or CallbackRejected.
    `root_keys` as parse_root_keys gave them (re-checked against `now_ms`); `sender_id` is
    WALLET_GOOGLE_SENDER_ID (DEFAULT_SENDER_ID), `issuer_id` ours (the recipient id)."""
    if len(body) > MAX_BODY_BYTES:
        raise CallbackRejected(MALFORMED, f"body over {MAX_BODY_BYTES} bytes")
    try:
        outer = _json_object(body.decode("utf-8"), "the body")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackRejected(MALFORMED, f"body is not a JSON object: {exc}") from exc

    protocol = _field(outer, "protocolVersion", str, "")
    if protocol != PROTOCOL_VERSION:
        raise CallbackRejected(PROTOCOL, f"protocolVersion {protocol[:40]!r}, expected {PROTOCOL_VERSION}")
    signed_message: str = _field(outer, "signedMessage", str, "")
    message_signature = _b64(_field(outer, "signature", str, ""))
    if message_signature is None:
        raise CallbackRejected(MALFORMED, "signature is not base64")
    intermediate = _field(outer, "intermediateSigningKey", dict, "")
    signed_key: str = _field(intermediate, "signedKey", str, "intermediateSigningKey.")
    encoded = _field(intermediate, "signatures", list, "intermediateSigningKey.")
    key_signatures = [_b64(s) for s in encoded]
    if not key_signatures or any(s is None for s in key_signatures):
        raise CallbackRejected(MALFORMED, "intermediateSigningKey.signatures is empty or not base64 strings")
    if len(key_signatures) > MAX_KEY_SIGNATURES:
        raise CallbackRejected(MALFORMED, f"more than {MAX_KEY_SIGNATURES} intermediate key signatures")

    # 1-2: the intermediate key is signed by a root key valid now.
    roots = [key for key in root_keys if key.valid_at(now_ms)]
    if not roots:
        raise CallbackRejected(NO_ROOT_KEY, "no ECv2SigningOnly root key is valid now")

    def key_signed_for(sender: str) -> bool:
        data = signed_key_bytes(sender, protocol, signed_key)
        return any(_verifies(root.public_key, sig, data) for root in roots for sig in key_signatures if sig)

    if not key_signed_for(sender_id):
        for other in KNOWN_SENDER_IDS:
            if other != sender_id and key_signed_for(other):
                raise CallbackRejected(WRONG_SENDER, f"signed by sender {other!r}, configured {sender_id!r}")
        raise CallbackRejected(INTERMEDIATE_SIGNATURE, "no intermediate key signature verifies under a root key")

    # 3: the intermediate key itself (signed, so only Google can have got it wrong).
    try:
        key_json = _json_object(signed_key, "signedKey")
    except ValueError as exc:
        raise CallbackRejected(MALFORMED, f"signedKey is not a JSON object: {exc}") from exc
    expires = _millis(key_json.get("keyExpiration"))
    if expires is None:
        raise CallbackRejected(MALFORMED, "signedKey.keyExpiration is missing or not epoch milliseconds")
    if expires <= now_ms:
        raise CallbackRejected(INTERMEDIATE_EXPIRED, f"intermediate key expired at {expires}")
    intermediate_key = _p256_key(key_json.get("keyValue"))
    if intermediate_key is None:
        raise CallbackRejected(MALFORMED, "signedKey.keyValue is not a base64 DER P-256 public key")

    # 4: the message, signed for us.
    if not _verifies(
        intermediate_key, message_signature, signed_message_bytes(sender_id, issuer_id, protocol, signed_message)
    ):
        # Why, for the log: a message genuinely signed for the issuer its ids name, not ours.
        try:
            named = _issuer_of(_json_object(signed_message, "signedMessage").get("classId"))
        except ValueError:
            named = None
        if (
            named is not None
            and named != issuer_id
            and _verifies(
                intermediate_key, message_signature, signed_message_bytes(sender_id, named, protocol, signed_message)
            )
        ):
            raise CallbackRejected(WRONG_ISSUER, f"signed for issuer {named!r}, ours is {issuer_id!r}")
        raise CallbackRejected(MESSAGE_SIGNATURE, "the message signature does not verify under the intermediate key")

    try:
        message = _json_object(signed_message, "signedMessage")
    except ValueError as exc:
        raise CallbackRejected(MALFORMED, f"signedMessage is not a JSON object: {exc}") from exc
    class_id: str = _field(message, "classId", str, "signedMessage.")
    object_id: str = _field(message, "objectId", str, "signedMessage.")
    nonce: str = _field(message, "nonce", str, "signedMessage.")
    if not nonce:
        raise CallbackRejected(MALFORMED, "signedMessage.nonce is empty")
    event_type = message.get("eventType")
    event = _EVENTS.get(event_type) if isinstance(event_type, str) else None
    if event is None:
        raise CallbackRejected(MALFORMED, "signedMessage.eventType is not save or del")
    exp_time = _millis(message.get("expTimeMillis"))
    if exp_time is None:
        raise CallbackRejected(MALFORMED, "signedMessage.expTimeMillis is missing or not epoch milliseconds")

    # 5: still fresh, and about our own classes and objects.
    if exp_time <= now_ms:
        raise CallbackRejected(MESSAGE_EXPIRED, f"message expired at {exp_time}")
    for name, value in (("classId", class_id), ("objectId", object_id)):
        if _issuer_of(value) != issuer_id:
            raise CallbackRejected(WRONG_ISSUER, f"{name} {value[:80]!r} is not under issuer {issuer_id!r}")
    return Callback(class_id=class_id, object_id=object_id, event=event, nonce=nonce, exp_time_millis=exp_time)
