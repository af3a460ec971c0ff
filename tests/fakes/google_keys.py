"""A test ECv2SigningOnly signing chain for Google Wallet callbacks: a P-256 root key (what
WALLET_GOOGLE_KEYS_URL serves), an intermediate key signed by it, and callback bodies signed by
the intermediate key, with knobs for every invalid variant.

The signed strings are built here on their own (not with passes.google.callbacks' helpers), so
the tests check the verifier against a second writing of the construction (facts §3):
  root signs         LV(sender) || LV(protocol) || LV(signedKey)
  intermediate signs LV(sender) || LV(recipient) || LV(protocol) || LV(signedMessage)
LV = 4-byte little-endian length, then the UTF-8 bytes.

    chain = SigningChain(now_ms=NOW_MS)
    keys_json = chain.keys_json()                 # bytes, as the keys URL answers
    body = chain.callback(event="save")           # bytes, as Google POSTs
    body = chain.callback(sender_id="Other")      # ... signed for another sender id, etc.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PROTOCOL = "ECv2SigningOnly"
SENDER = "GooglePayPasses"
ISSUER = "3388000000022141777"
DAY_MS = 86_400_000
_DEFAULT: Any = object()


def _lv(*parts: str) -> bytes:
    return b"".join(struct.pack("<I", len(p.encode())) + p.encode() for p in parts)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(der)


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return _b64(key.sign(data, ec.ECDSA(hashes.SHA256())))


def _google_escapes(text: str) -> str:
    """Google's inner JSON escapes `=` as \\u003d (Gson's HTML-safe escaping): keep that in the
    test data, so a verifier that re-serialized the strings would fail."""
    return text.replace("=", "\\u003d")


class SigningChain:
    """One root key and one intermediate key, for callbacks to issuer `issuer_id`."""

    def __init__(
        self,
        *,
        now_ms: int,
        issuer_id: str = ISSUER,
        sender_id: str = SENDER,
        root_expires_ms: int | None = None,
        intermediate_expires_ms: int | None = None,
    ) -> None:
        self.now_ms = now_ms
        self.issuer_id = issuer_id
        self.sender_id = sender_id
        self.root = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = ec.generate_private_key(ec.SECP256R1())
        self.root_expires_ms = root_expires_ms if root_expires_ms is not None else now_ms + 365 * DAY_MS
        self.intermediate_expires_ms = (
            intermediate_expires_ms if intermediate_expires_ms is not None else now_ms + 7 * DAY_MS
        )

    # -- what the keys URL serves ----------------------------------------------------------------
    def root_key_entry(
        self, *, key: ec.EllipticCurvePrivateKey | None = None, protocol: str = PROTOCOL, expires_ms: int | None = None
    ) -> dict[str, Any]:
        return {
            "keyValue": _spki(key or self.root),
            "protocolVersion": protocol,
            "keyExpiration": str(self.root_expires_ms if expires_ms is None else expires_ms),
        }

    def keys_json(self, *entries: dict[str, Any], root_expires_ms: int | None = None) -> bytes:
        """`{"keys": [...]}`: this chain's root key (with `root_expires_ms` if given), an ECv1-style
        key the verifier must skip, and any extra `entries`."""
        other = ec.generate_private_key(ec.SECP256R1())
        keys = [
            {"keyValue": _spki(other), "protocolVersion": "ECv1"},  # no expiration: ECv1 keys have none
            self.root_key_entry(expires_ms=root_expires_ms),
            *entries,
        ]
        return json.dumps({"keys": keys}).encode()

    # -- the parts of a callback -----------------------------------------------------------------
    def signed_key(
        self, *, expires_ms: int | None = None, key: ec.EllipticCurvePrivateKey | None = None, **extra: Any
    ) -> str:
        """The signedKey string, as Google writes it (compact, `=` escaped)."""
        fields: dict[str, Any] = {
            "keyValue": _spki(key or self.intermediate),
            "keyExpiration": str(self.intermediate_expires_ms if expires_ms is None else expires_ms),
        }
        fields.update(extra)
        fields = {k: v for k, v in fields.items() if v is not None}
        return _google_escapes(json.dumps(fields, separators=(",", ":")))

    def signed_message(
        self,
        *,
        event: str = "save",
        object_suffix: str = "card-1",
        class_suffix: str = "coffee",
        nonce: Any = _DEFAULT,
        exp_time_millis: Any = _DEFAULT,
        issuer_in_ids: str | None = None,
        **overrides: Any,
    ) -> str:
        """The signedMessage string, in the field order and form of real callbacks (a fresh
        nonce, expiring a minute after `now_ms`). Other keywords set JSON fields by name; None
        (here or for nonce / exp_time_millis) drops the field."""
        issuer = issuer_in_ids if issuer_in_ids is not None else self.issuer_id
        fields: dict[str, Any] = {
            "classId": f"{issuer}.{class_suffix}",
            "objectId": f"{issuer}.{object_suffix}",
            "eventType": event,
            "expTimeMillis": self.now_ms + 60_000 if exp_time_millis is _DEFAULT else exp_time_millis,
            "count": 1,
            "nonce": str(uuid.uuid4()) if nonce is _DEFAULT else nonce,
        }
        fields.update(overrides)
        fields = {k: v for k, v in fields.items() if v is not None}
        return json.dumps(fields, separators=(",", ":"))

    def sign_key(
        self,
        signed_key: str,
        *,
        sender_id: str | None = None,
        protocol: str = PROTOCOL,
        root: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        return _sign(root or self.root, _lv(sender_id or self.sender_id, protocol, signed_key))

    def sign_message(
        self,
        signed_message: str,
        *,
        sender_id: str | None = None,
        recipient_id: str | None = None,
        protocol: str = PROTOCOL,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        recipient = recipient_id if recipient_id is not None else self.issuer_id
        return _sign(key or self.intermediate, _lv(sender_id or self.sender_id, recipient, protocol, signed_message))

    # -- a whole callback ------------------------------------------------------------------------
    def callback_dict(
        self,
        *,
        sender_id: str | None = None,
        recipient_id: str | None = None,
        protocol: str = PROTOCOL,
        signed_protocol: str | None = None,
        signed_key: str | None = None,
        intermediate_expires_ms: int | None = None,
        signed_message: str | None = None,
        key_signer: ec.EllipticCurvePrivateKey | None = None,
        message_signer: ec.EllipticCurvePrivateKey | None = None,
        tamper_key_signature: bool = False,
        tamper_message_signature: bool = False,
        tamper_signed_message: bool = False,
        **message: Any,
    ) -> dict[str, Any]:
        """The callback as a dict (to break its shape further in a test). Knobs:
        sender_id / recipient_id: sign for another sender or recipient (issuer);
        protocol: the protocolVersion field; signed_protocol: the one inside the signed strings
        (defaults to `protocol`); signed_key / signed_message: these exact strings, signed;
        intermediate_expires_ms: the intermediate key's expiry;
        key_signer / message_signer: sign with another root / intermediate key;
        tamper_*: flip a byte after signing (the key signature, the message signature, or the
        signedMessage itself); other keywords go to signed_message()."""
        inner_protocol = signed_protocol if signed_protocol is not None else protocol
        key_string = signed_key if signed_key is not None else self.signed_key(expires_ms=intermediate_expires_ms)
        message_string = signed_message if signed_message is not None else self.signed_message(**message)
        key_signature = self.sign_key(key_string, sender_id=sender_id, protocol=inner_protocol, root=key_signer)
        message_signature = self.sign_message(
            message_string, sender_id=sender_id, recipient_id=recipient_id, protocol=inner_protocol, key=message_signer
        )
        if tamper_key_signature:
            key_signature = _flip(key_signature)
        if tamper_message_signature:
            message_signature = _flip(message_signature)
        if tamper_signed_message:
            message_string = message_string.replace('"count":1', '"count":2')
        return {
            "signature": message_signature,
            "intermediateSigningKey": {"signedKey": key_string, "signatures": [key_signature]},
            "protocolVersion": protocol,
            "signedMessage": message_string,
        }

    def callback(self, **knobs: Any) -> bytes:
        """The callback body as Google POSTs it (compact JSON); knobs as callback_dict."""
        return encode(self.callback_dict(**knobs))


def encode(body: dict[str, Any], **dumps: Any) -> bytes:
    """A callback dict as a request body (json.dumps options, e.g. indent=2, pass through)."""
    if not dumps:
        dumps = {"separators": (",", ":")}
    return json.dumps(body, **dumps).encode()


def _flip(signature_b64: str) -> str:
    """The signature with one bit of its last byte (inside the DER s value) flipped."""
    raw = bytearray(base64.b64decode(signature_b64))
    raw[-1] ^= 0x01
    return _b64(bytes(raw))
