"""What a route tells the OpenAPI document about itself.

`ApiRoute` is a Starlette `Route` for one method that also carries an `Operation`: its summary, the
parameters beyond the path, the body model, the answers, the security and the route's own error codes.
The path, the names of its parameters and the method stay the Route's, so the document is written from
what Starlette routes and cannot disagree with it. Error answers that follow from the security or from
taking a JSON body are added by the document (web/openapi.py), not restated per route."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from starlette.routing import Route

from ledger.events import MAX_EVENTS
from web.body import MAX_BODY
from web.validation import Choices


class Model(Protocol):
    """A body as the document needs it: a components/schemas name and its JSON Schema."""

    @property
    def name(self) -> str: ...

    def schema(self, choices: Choices) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Param:
    """A query or header parameter, or what a path parameter's value looks like (the Route names it)."""

    name: str
    schema: dict[str, Any]
    where: Literal["path", "query", "header"] = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Reply:
    """A non-error answer. `media_type=None` is an answer without a body."""

    description: str
    model: Model | None = None
    media_type: str | None = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> what it says
    # other media types of the same answer, chosen by the request (a report's `?format=csv`): as text
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Security:
    """How a route is authorized (`scheme` is a key of SECURITY_SCHEMES) and the errors that follow."""

    scheme: str
    roles: tuple[str, ...] = ()
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


def bearer(*roles: str) -> Security:
    # web/auth.require_role lets `admin` do everything, so it is listed on every Bearer route
    accepted = tuple(dict.fromkeys((*roles, "admin")))
    return Security("bearer", accepted, {401: ("unauthorized",), 403: ("forbidden",)})


APPLE_PASS = Security("applePass", (), {401: ("unauthorized",)})
LEDGER_SIGNATURE = Security("ledgerSignature", (), {401: ("bad_signature",)})

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from WALLET_API_KEYS (`role:key`). Each route lists the roles whose keys "
        "it takes; any one of them will do.",
    },
    "applePass": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`ApplePass <authenticationToken>`: the token written into the pass. The Android pass "
        "apps use their own word in place of `ApplePass`: `WalletUnionPass`, `WalletUnionHMSPass`, `AndroidPass` "
        "(Wallet Passes), `TelegramPass` (PassHub), `AttidoPass` (PassWallet, on `registrations_attido`); Pass2U "
        "sends `ApplePass` with `X-Pass-Client: Passes`. Register tells the app apart; the other calls take any "
        "of these words with the right token.",
    },
    "cardApp": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Card <card number>:<app_token>`: the companion app's secret for the card, returned by "
        "POST /v1/cards. A card issued before app tokens existed has none and no app access.",
    },
    "ledgerSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Wallet-Signature",
        "description": '`t=<unix seconds>,v1=<hex HMAC-SHA256(WALLET_LEDGER_SECRET, "<t>.<raw body>")>`; '
        "`t` may be at most 300 s away.",
    },
}

# Every error code a route may document, with what it means to the caller.
ERROR_CODES: dict[str, str] = {
    "invalid_json": "the body is not JSON, or not the object this route takes",
    "invalid_field": "a field is missing, malformed or unknown; the message names it",
    "invalid_path": "a path parameter is malformed; the message names it",
    "invalid_query": "a query parameter is out of range; the message names it",
    "payload_too_large": f"the body is over {MAX_BODY} bytes (or the larger limit its route states)",
    "too_many_events": f"more than {MAX_EVENTS} events in one post",
    "unauthorized": "no credentials, or wrong ones",
    "forbidden": "the API key's role may not call this route",
    "bad_signature": "X-Wallet-Signature is missing or wrong, or its time is more than 300 s away",
    "unknown_program": "no such program",
    "unknown_card": "no such card",
    "invalid_link": "the signed link is invalid or has expired (an unknown serial looks the same)",
    "account_in_other_program": "this account already has a card in another program",
    "unavailable": "no card number could be allocated; try again",
    "unknown_asset": "the program has no such image",
    "invalid_callback": "the body is not a Google Wallet callback (ECv2SigningOnly JSON); the message names the reason",
    "unverified_callback": "the callback does not verify for this issuer now (signature, intermediate key expiry, "
    "sender id, issuer id or message expiry); the message names the reason",
    "google_wallet_off": "Google Wallet is off on this service (no issuer configured)",
    "keys_unavailable": "Google's root signing keys cannot be fetched now; retry after Retry-After seconds",
    "unknown_store": "no such store",
    "invalid_rows": "an import with bad rows (nothing imported): `errors` lists each with its `line` and `reason`",
    "unknown_job": "no such job",
    "job_not_done": "the job has not finished (or it failed): see GET /v1/jobs/{id}",
    "unsupported_media_type": "the body's Content-Type is not one this route takes",
    "unknown_campaign": "no such campaign",
    "unknown_message": "no such message",
    "unknown_voucher": "no such gift certificate",
    "no_app_device": "the card has no companion-app install registered (POST /v1/apps/devices first)",
    "rate_limited": "too many requests (per card, pass, device or client address, as the route says); retry "
    "after Retry-After seconds",
}

# Headers an error answer with one of these codes carries, with what they say (the document lists them)
ERROR_HEADERS: dict[str, dict[str, str]] = {
    "rate_limited": {"Retry-After": "seconds until the limit lets a request through again"},
    "keys_unavailable": {"Retry-After": "seconds until the root keys are fetched again"},
}


@dataclass(frozen=True)
class Operation:
    summary: str
    replies: Mapping[int, Reply]
    description: str = ""
    body: Model | None = None
    # 400 codes a body of this route can get besides invalid_json
    body_errors: tuple[str, ...] = ()
    security: Security | None = None
    params: tuple[Param, ...] = ()
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


class ApiRoute(Route):
    """A Route for one method, with its Operation. One method per route gives each its own description."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, method: str, operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        described = {p.name for p in operation.params if p.where == "path"}
        if not described <= set(self.param_convertors):
            raise ValueError(f"{method} {path} has no path parameter {sorted(described - set(self.param_convertors))}")
        unknown = {code for codes in self._codes(operation) for code in codes} - set(ERROR_CODES)
        if unknown:
            raise ValueError(f"{method} {path}: error codes {sorted(unknown)} are not in ERROR_CODES")
        self.operation = operation

    @staticmethod
    def _codes(operation: Operation) -> list[tuple[str, ...]]:
        codes = [operation.body_errors, *operation.errors.values()]
        if operation.security is not None:
            codes.extend(operation.security.errors.values())
        return codes
