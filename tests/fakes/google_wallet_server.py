"""A fake Google Wallet REST API (loyalty classes and objects) and its OAuth2 token endpoint,
served by uvicorn on loopback in a background thread.

- `POST /token`: the JWT-bearer grant google-auth sends for a service account
  (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). The assertion must be RS256-signed
  by a registered service account's key, its `iss` that account's e-mail, its `scope` include
  `wallet_object.issuer`. Its `aud` is recorded but not checked: google-auth always sends Google's
  own token URL whatever `token_uri` says (facts google-wallet.md §2). Answers `access_token` and
  `expires_in` (`token_ttl`, short for refresh tests).
- `/walletobjects/v1/loyaltyClass[/{id}[/addMessage]]` and the same for `loyaltyObject`: insert
  (`POST`, 409 on an existing id), get (404), patch (merge: objects merge recursively, arrays and
  scalars replace), update (`PUT`, replace), addMessage (appends to `messages`, answers
  `{"resource": ...}`). `notifyPreference` is ephemeral: recorded with the request, not stored.
  Every call needs `Authorization: Bearer <token issued here, unexpired>`, else 401.
- Google's 3 `TEXT_AND_NOTIFY` messages per object per 24 h: the 4th gets 403 `quotaExceeded`
  (domain walletobjects), the error edutap-eu/edutap.wallet_google #3 observed. `notify_quota=None`
  lifts it.
- Scriptable replies per method and path (`fnmatch` patterns), queued or standing, answered after
  the bearer check and instead of the store: `script("PATCH", "*/loyaltyObject/*", WalletReply.rate_limited("7"))`.

Every API request is recorded (method, path, query, JSON body, bearer token, status)::

    with FakeGoogleWalletServer() as wallet:
        info = wallet.service_account()        # dict, token_uri pointing here
        client = GoogleWalletClient(wallet.url, info)
"""

from __future__ import annotations

import copy
import fnmatch
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer
from tests.pii_guard import sensitive

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
API_PREFIX = "/walletobjects/v1"
NOTIFY_WINDOW = 24 * 3600.0
_CANONICAL = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
_REASONS = {
    400: "badRequest",
    401: "authError",
    403: "permissionDenied",
    404: "notFound",
    409: "alreadyExists",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


def make_service_account(
    token_uri: str, *, project_id: str = "wallet-test", client_email: str | None = None, key_size: int = 2048
) -> dict[str, str]:
    """A throw-away service-account key JSON (as a dict) with a fresh RSA key, `token_uri` as given."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    email = client_email or f"wallet-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    base = token_uri.rsplit("/", 1)[0]
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": sensitive(secrets.token_hex(20), "private key id"),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": f"{base}/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": f"{base}/certs",
        "client_x509_cert_url": f"{base}/certs/{email}",
        "universe_domain": "googleapis.com",
    }


def public_pem_of(info: dict[str, str]) -> bytes:
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class WalletReply:
    """A programmed answer: a Google API error (or, with `body`, any JSON answer)."""

    status: int
    reason: str | None = None  # error.errors[].reason; defaults by status
    message: str = ""
    retry_after: str | None = None
    body: Any = None  # the whole answer instead of a Google error body

    @classmethod
    def not_found(cls) -> WalletReply:
        return cls(404, "resourceNotFound", "Resource not found.")

    @classmethod
    def conflict(cls) -> WalletReply:
        return cls(409, "duplicate", "Resource already exists.")

    @classmethod
    def quota_exceeded(cls) -> WalletReply:
        return cls(403, "quotaExceeded", "Quota exceeded for issuer when adding TEXT_AND_NOTIFY message.")

    @classmethod
    def permission_denied(cls) -> WalletReply:
        return cls(403, "permissionDenied", "The caller does not have permission")

    @classmethod
    def unauthenticated(cls) -> WalletReply:
        return cls(401, "authError", "Request had invalid authentication credentials.")

    @classmethod
    def rate_limited(cls, retry_after: str | None = "5") -> WalletReply:
        return cls(429, "rateLimitExceeded", "Rate limit exceeded.", retry_after)

    @classmethod
    def server_error(cls, status: int = 503, retry_after: str | None = None) -> WalletReply:
        return cls(status, "backendError", "The service is currently unavailable.", retry_after)

    @classmethod
    def bad_request(cls, message: str = "Invalid resource ID") -> WalletReply:
        return cls(400, "invalidResource", message)


@dataclass(frozen=True)
class WalletRequest:
    method: str
    path: str  # as received, e.g. /walletobjects/v1/loyaltyObject/3388.card-1
    query: dict[str, str]
    body: Any  # parsed JSON, None when absent or not JSON
    token: str | None  # the bearer token sent
    headers: dict[str, str]
    status: int
    at: float
    peer: str | None = None  # the client's host:port (one per connection: shows keep-alive)


@dataclass(frozen=True)
class TokenRequest:
    client_email: str | None
    scope: str | None
    audience: str | None
    status: int
    at: float


@dataclass
class _AccessToken:
    client_email: str
    expires_at: float


def _error(status: int, message: str, reason: str | None = None, retry_after: str | None = None) -> JSONResponse:
    """A Google API error body: `{"error": {"code", "message", "errors": [{domain, reason}], "status"}}`."""
    reason = reason or _REASONS.get(status, "unknown")
    domain = "walletobjects" if reason == "quotaExceeded" else "global"
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": _CANONICAL.get(status, "UNKNOWN"),
        }
    }
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeGoogleWalletServer(LoopbackServer):
    """Wallet REST API + OAuth token endpoint on 127.0.0.1:<ephemeral>, in a background thread."""

    thread_name = "fake-google-wallet"

    def __init__(self, host: str = "127.0.0.1", token_ttl: int = 3600, notify_quota: int | None = 3) -> None:
        super().__init__(host)
        self.token_ttl = token_ttl
        self.notify_quota = notify_quota
        self.require_class = True  # an object insert naming an unknown class: 404, like Google
        self.requests: list[WalletRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.classes: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self._accounts: dict[str, bytes] = {}  # client_email -> public key PEM
        self._tokens: dict[str, _AccessToken] = {}
        self._notified: dict[str, list[float]] = {}  # object id -> TEXT_AND_NOTIFY times
        self._scripts: list[tuple[str, str, deque[WalletReply]]] = []
        self._always: list[tuple[str, str, WalletReply]] = []
        self._lock = threading.Lock()
        routes = [Route("/token", self._token, methods=["POST"])]
        for kind in ("loyaltyClass", "loyaltyObject"):
            routes += [
                Route(f"{API_PREFIX}/{kind}", self._collection(kind), methods=["POST"]),
                Route(f"{API_PREFIX}/{kind}/{{rid}}", self._resource(kind), methods=["GET", "PATCH", "PUT"]),
                Route(f"{API_PREFIX}/{kind}/{{rid}}/addMessage", self._add_message(kind), methods=["POST"]),
            ]
        self.app = Starlette(routes=routes)

    # -- configuration -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API root, what WALLET_GOOGLE_API_URL holds (`https://walletobjects.googleapis.com`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def add_service_account(self, info: dict[str, str]) -> None:
        """Accept token grants signed by this service account's key."""
        self._accounts[info["client_email"]] = public_pem_of(info)

    def service_account(self, **kwargs: Any) -> dict[str, str]:
        """A fresh service-account dict whose token_uri points here, already accepted."""
        info = make_service_account(self.token_uri, **kwargs)
        self.add_service_account(info)
        return info

    def script(self, method: str, path: str, *replies: WalletReply) -> None:
        """Answer the next calls matching `method` and the `path` pattern (fnmatch, relative to the
        host, e.g. `*/loyaltyObject/3388.card-1`) with `replies`, one each; then normally again."""
        with self._lock:
            self._scripts.append((method.upper(), path, deque(replies)))

    def script_always(self, method: str, path: str, reply: WalletReply) -> None:
        with self._lock:
            self._always.append((method.upper(), path, reply))

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._always.clear()

    def expire_access_tokens(self) -> None:
        """Every issued access token is refused (401) from now on."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def set_has_users(self, object_id: str, value: bool = True) -> None:
        with self._lock:
            self.objects[object_id]["hasUsers"] = value

    def requests_to(self, method: str, path: str = "*") -> list[WalletRequest]:
        return [r for r in self.requests if r.method == method.upper() and fnmatch.fnmatchcase(r.path, path)]

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    # -- lifecycle ---------------------------------------------------------------------------

    # -- OAuth token endpoint ----------------------------------------------------------------
    async def _token(self, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}

        def refuse(description: str, email: str | None = None, scope: str | None = None, aud: Any = None):
            self.token_requests.append(TokenRequest(email, scope, aud, 400, time.time()))
            return JSONResponse({"error": "invalid_grant", "error_description": description}, 400)

        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return refuse("unsupported grant")
        assertion = form["assertion"]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return refuse("malformed assertion")
        email = unverified.get("iss")
        public_pem = self._accounts.get(email) if isinstance(email, str) else None
        if public_pem is None:
            return refuse("Invalid grant: account not found", email)
        assert isinstance(email, str)
        try:
            claims = jwt.decode(
                assertion,
                public_pem,
                algorithms=["RS256"],
                # aud: google-auth sends https://oauth2.googleapis.com/token whatever token_uri is
                options={"require": ["iss", "aud", "iat", "exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            return refuse(f"Invalid JWT: {type(exc).__name__}", email)
        scope = claims.get("scope", "")
        if not isinstance(scope, str) or WALLET_SCOPE not in scope.split():
            return refuse("scope does not allow Google Wallet", email, str(scope), claims.get("aud"))
        access = sensitive("ya29.fake-wallet-" + secrets.token_urlsafe(24), "access token")
        with self._lock:
            self._tokens[access] = _AccessToken(email, time.time() + self.token_ttl)
        self.token_requests.append(TokenRequest(email, scope, claims.get("aud"), 200, time.time()))
        return JSONResponse({"access_token": access, "expires_in": self.token_ttl, "token_type": "Bearer"})

    # -- the API -----------------------------------------------------------------------------
    def _collection(self, kind: str) -> Any:
        async def handle(request: Request) -> JSONResponse:
            return await self._handle(request, kind, None, "insert")

        return handle

    def _resource(self, kind: str) -> Any:
        async def handle(request: Request) -> JSONResponse:
            action = {"GET": "get", "PATCH": "patch", "PUT": "update"}[request.method]
            return await self._handle(request, kind, request.path_params["rid"], action)

        return handle

    def _add_message(self, kind: str) -> Any:
        async def handle(request: Request) -> JSONResponse:
            return await self._handle(request, kind, request.path_params["rid"], "addMessage")

        return handle

    async def _handle(self, request: Request, kind: str, rid: str | None, action: str) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        token = credential if scheme.lower() == "bearer" and credential else None
        response = self._answer(request.method, request.url.path, kind, rid, action, token, body)
        with self._lock:
            self.requests.append(
                WalletRequest(
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    body=body,
                    token=token,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    status=response.status_code,
                    at=time.time(),
                    peer=f"{request.client.host}:{request.client.port}" if request.client else None,
                )
            )
        return response

    def _scripted(self, method: str, path: str) -> WalletReply | None:
        with self._lock:
            for m, pattern, queue in self._scripts:
                if queue and m == method and fnmatch.fnmatchcase(path, pattern):
                    return queue.popleft()
            for m, pattern, reply in self._always:
                if m == method and fnmatch.fnmatchcase(path, pattern):
                    return reply
        return None

    def _answer(
        self, method: str, path: str, kind: str, rid: str | None, action: str, token: str | None, body: Any
    ) -> JSONResponse:
        with self._lock:
            access = self._tokens.get(token) if token else None
        if access is None:
            return _error(401, "Request is missing required authentication credential.", "required")
        if access.expires_at < time.time():
            return _error(401, "Request had invalid authentication credentials.", "authError")
        reply = self._scripted(method, path)
        if reply is not None:
            if reply.body is not None:
                headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
                return JSONResponse(reply.body, status_code=reply.status, headers=headers)
            return _error(reply.status, reply.message, reply.reason, reply.retry_after)
        if action != "get" and not isinstance(body, dict):
            return _error(400, "Invalid JSON payload received.")
        store = self.classes if kind == "loyaltyClass" else self.objects
        with self._lock:
            return self._apply(store, kind, rid, action, body)

    def _apply(
        self, store: dict[str, dict[str, Any]], kind: str, rid: str | None, action: str, body: Any
    ) -> JSONResponse:
        label = "class" if kind == "loyaltyClass" else "object"
        if action == "insert":
            rid = body.get("id")
            if not isinstance(rid, str) or not rid:
                return _error(400, f"Missing {label} id.")
            if rid in store:
                return _error(409, f"Resource {label} with id {rid} already exists.", "duplicate")
            if kind == "loyaltyObject" and self.require_class:
                class_id = body.get("classId")
                if not isinstance(class_id, str) or class_id not in self.classes:
                    return _error(404, f"Class {class_id} not found (IssuerClassNotFound).", "classNotFound")
            stored = {k: copy.deepcopy(v) for k, v in body.items() if k != "notifyPreference"}
            if kind == "loyaltyObject":
                stored.setdefault("hasUsers", False)
            stored.setdefault("kind", f"walletobjects#{kind}")
            store[rid] = stored
            return JSONResponse(copy.deepcopy(stored))
        assert rid is not None
        existing = store.get(rid)
        if existing is None:
            return _error(404, f"Resource {label} {rid} not found.", "resourceNotFound")
        if action == "get":
            return JSONResponse(copy.deepcopy(existing))
        if action in ("patch", "update"):
            if body.get("id", rid) != rid:
                return _error(400, f"Resource id in body does not match {rid}.")
            change = {k: v for k, v in body.items() if k != "notifyPreference"}
            if action == "update":
                kept: dict[str, Any] = {k: existing[k] for k in ("kind", "hasUsers") if k in existing}
                existing.clear()
                existing.update(kept)
            _merge(existing, change)
            existing["id"] = rid
            return JSONResponse(copy.deepcopy(existing))
        # addMessage
        message = body.get("message")
        if not isinstance(message, dict):
            return _error(400, "Missing message.")
        if message.get("messageType") == "TEXT_AND_NOTIFY" and self.notify_quota is not None:
            now = time.time()
            recent = [t for t in self._notified.get(rid, []) if now - t < NOTIFY_WINDOW]
            if len(recent) >= self.notify_quota:
                return _error(
                    403,
                    f"Quota exceeded for issuer when adding TEXT_AND_NOTIFY message to {label} {rid}.",
                    "quotaExceeded",
                )
            self._notified[rid] = [*recent, now]
        message = copy.deepcopy(message)
        message.setdefault("id", secrets.token_hex(8))
        existing.setdefault("messages", []).append(message)
        return JSONResponse({"resource": copy.deepcopy(existing)})
