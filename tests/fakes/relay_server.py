"""Fake Android pass-app relays (WalletUnion, Wallet Passes, Pass2U, PassHub, PassWallet) on
loopback, served by uvicorn in a background thread.

Each protocol has its own path (`url_for(protocol)`), checks its key header and body shape
(400 on a wrong shape, 401 on a wrong key), answers `413` over its per-call limit, records
every call, and can be scripted: `unknown`/`expired` tokens (WalletUnion's lists), queued
replies (`script(protocol, Reply(429, {"Retry-After": "30"}))`), a lower `limits[protocol]`::

    with FakeRelayServer(keys={"walletunion": "k"}) as relays:
        url = relays.url_for("walletunion")
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

PATHS = {
    "walletunion": "/walletunion/send",
    "walletpasses": "/walletpasses/api/v1/push",
    "pass2u": "/pass2u/v2/registrations/{passTypeIdentifier}/push",
    "passhub": "/passhub/v1/push",
    "passwallet": "/passwallet/v1/pushUpdates",
}
# per-call maxima the makers state; Wallet Passes, PassHub and PassWallet state none
LIMITS = {"walletunion": 50, "walletunion_hms": 1000, "pass2u": 1000}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class RelayCall:
    protocol: str
    path: str
    headers: dict[str, str]
    body: Any
    tokens: list[str]
    status: int


class FakeRelayServer(LoopbackServer):
    thread_name = "fake-relays"

    def __init__(self, keys: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.keys = dict(keys or {})  # protocol -> the key it requires (absent: no key checked)
        self.limits = dict(LIMITS)
        self.unknown: set[str] = set()
        self.expired: set[str] = set()
        self.fcm_failed = False
        self.calls: list[RelayCall] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route(path, self._endpoint(protocol), methods=["POST"], name=protocol)
                for protocol, path in PATHS.items()
            ]
        )

    # -- configuration -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, protocol: str) -> str:
        """The endpoint as the relay's setting holds it (Pass2U's keeps `{passTypeIdentifier}`;
        PassWallet's is the pushServiceUrl, without `/v1/pushUpdates`)."""
        if protocol == "passwallet":
            return f"{self.url}/passwallet"
        return self.url + PATHS[protocol]

    def script(self, protocol: str, *replies: Reply) -> None:
        """Answer the next calls of `protocol` with `replies`, one each, then normally again."""
        with self._lock:
            self._scripts.setdefault(protocol, deque()).extend(replies)

    def calls_of(self, protocol: str) -> list[RelayCall]:
        return [c for c in self.calls if c.protocol == protocol]

    # -- lifecycle ---------------------------------------------------------------------------

    # -- the relays --------------------------------------------------------------------------
    def _key_ok(self, protocol: str, headers: dict[str, str]) -> bool:
        key = self.keys.get(protocol)
        if key is None:
            return True
        sent = {
            "pass2u": headers.get("x-api-key"),
            "passhub": headers.get("authorization", "").removeprefix("Bearer ") or None,
        }.get(protocol, headers.get("authorization"))
        if protocol == "passhub" and not headers.get("authorization", "").startswith("Bearer "):
            return False
        return sent == key

    @staticmethod
    def _tokens(protocol: str, body: Any, path_params: dict[str, str]) -> tuple[list[str], str] | None:
        """The tokens and pass type id of a well-shaped body, else None."""
        if not isinstance(body, dict):
            return None
        names = {
            "walletunion": ("pushTokens", "passTypeIdentifier"),
            "walletpasses": ("pushTokens", "passTypeIdentifier"),
            "pass2u": ("registrationIds", None),
            "passhub": ("push_tokens", "pass_type_id"),
            "passwallet": ("pushTokens", "passTypeID"),
        }[protocol]
        tokens = body.get(names[0])
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
            return None
        pass_type = path_params.get("passTypeIdentifier") if names[1] is None else body.get(names[1])
        if not isinstance(pass_type, str) or not pass_type.startswith("pass."):
            return None
        if protocol == "walletunion" and not isinstance(body.get("hms", False), bool):
            return None
        return tokens, pass_type

    def _endpoint(self, protocol: str) -> Any:
        async def handle(request: Request) -> JSONResponse:
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                body = await request.json()
            except ValueError:
                body = None
            parsed = self._tokens(protocol, body, dict(request.path_params))
            tokens = parsed[0] if parsed else []
            reply = self._answer(protocol, headers, body, parsed)
            with self._lock:
                self.calls.append(RelayCall(protocol, request.url.path, headers, body, tokens, reply.status))
            return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

        return handle

    def _answer(self, protocol: str, headers: dict[str, str], body: Any, parsed: Any) -> Reply:
        if not self._key_ok(protocol, headers):
            return Reply(401, body={"error": "bad key"})
        if parsed is None or headers.get("content-type", "").split(";")[0] != "application/json":
            return Reply(400, body={"error": "bad body"})
        tokens: list[str] = parsed[0]
        with self._lock:
            queued = self._scripts.get(protocol)
            if queued:
                return queued.popleft()
        hms = protocol == "walletunion" and body.get("hms") is True
        limit = self.limits.get("walletunion_hms" if hms else protocol)
        if limit is not None and len(tokens) > limit:
            return Reply(413, body={"error": f"Too many pushTokens, max={limit}"})
        if protocol != "walletunion":
            return Reply(200, body={"status": "OK"})
        unknown = [t for t in tokens if t in self.unknown]
        expired = [t for t in tokens if t in self.expired]
        status = "FCM_FAILED" if self.fcm_failed else ("ERROR" if unknown or expired else "OK")
        return Reply(200, body={"status": status, "unknown_push_tokens": unknown, "expired_push_tokens": expired})
