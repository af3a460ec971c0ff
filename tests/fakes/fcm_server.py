"""A fake FCM HTTP v1 API and its OAuth2 token endpoint, served by uvicorn on loopback.

- `POST /token`: the JWT-bearer grant google-auth sends for a service account. The assertion
  must be RS256-signed by a known service account's key, with `aud` = Google's token URL (what
  google-auth sends, per Google's docs) or this fake's token URI.
- `POST /v1/projects/{project}/messages:send`: requires `Authorization: Bearer <issued token>`
  of a service account of that project, checks the message shape (one target, string data
  values), answers like FCM including `error.details[].errorCode` (FcmError) and `Retry-After`.

Replies are scriptable per registration token and every request is recorded. The server runs
in a background thread so blocking clients (pyfcm/requests) and async tests can both use it::

    with FakeFcmServer() as fcm:
        sa = fcm.service_account("demo-project")   # dict; write it to a file for pyfcm
"""

from __future__ import annotations

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
# Google documents the grant assertion's `aud` as always this URL, and google-auth 2.x sends it
# whatever the service account's token_uri says; the fake also accepts its own token URI.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPES = {
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
}
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_CANONICAL = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class FcmReply:
    """A programmed answer. `error_code` is the FcmError code (UNREGISTERED, ...)."""

    status: int = 200
    error_code: str | None = None
    message: str = ""
    retry_after: str | None = None

    # Common FCM answers, as documented at firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
    @classmethod
    def unregistered(cls) -> FcmReply:
        return cls(404, "UNREGISTERED", "Requested entity was not found.")

    @classmethod
    def quota_exceeded(cls, retry_after: str | None = "30") -> FcmReply:
        return cls(429, "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'.", retry_after)

    @classmethod
    def unavailable(cls, retry_after: str | None = None) -> FcmReply:
        return cls(503, "UNAVAILABLE", "The service is currently unavailable.", retry_after)

    @classmethod
    def internal(cls) -> FcmReply:
        return cls(500, "INTERNAL", "Internal error encountered.")

    @classmethod
    def invalid_argument(cls, message: str = "Request contains an invalid argument.") -> FcmReply:
        return cls(400, "INVALID_ARGUMENT", message)

    @classmethod
    def sender_id_mismatch(cls) -> FcmReply:
        return cls(403, "SENDER_ID_MISMATCH", "SenderId mismatch")

    @classmethod
    def third_party_auth_error(cls) -> FcmReply:
        return cls(401, "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service")


@dataclass(frozen=True)
class FcmRequest:
    project: str
    token: str | None
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int


@dataclass(frozen=True)
class TokenRequest:
    client_email: str | None
    scope: str | None
    at: float
    status: int


@dataclass
class _Account:
    project_id: str
    public_pem: bytes


@dataclass
class _AccessToken:
    client_email: str
    project_id: str
    expires_at: float


def _error(status: int, message: str, error_code: str | None = None, **extra: Any) -> JSONResponse:
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": error_code})
    if extra.get("reason"):
        details.append(
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": extra["reason"], "domain": "googleapis.com"}
        )
    body = {
        "error": {"code": status, "message": message, "status": _CANONICAL.get(status, "UNKNOWN"), "details": details}
    }
    headers = {"Retry-After": extra["retry_after"]} if extra.get("retry_after") else None
    return JSONResponse(body, status_code=status, headers=headers)


class FakeFcmServer(LoopbackServer):
    """FCM v1 + OAuth token endpoint on 127.0.0.1:<ephemeral>, in a background thread."""

    thread_name = "fake-fcm"

    def __init__(self, host: str = "127.0.0.1", token_ttl: int = 3600) -> None:
        super().__init__(host)
        self.token_ttl = token_ttl
        self.requests: list[FcmRequest] = []
        self.token_requests: list[TokenRequest] = []
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, _AccessToken] = {}
        self._scripts: dict[str, deque[FcmReply]] = {}
        self._always: dict[str, FcmReply] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )

    # -- configuration -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def endpoint_base(self) -> str:
        """What to use as pyfcm's FCM_END_POINT_BASE."""
        return f"{self.url}/v1/projects"

    def service_account(self, project_id: str = "demo-project", client_email: str | None = None) -> dict[str, str]:
        """A fresh service-account JSON (as a dict) whose token_uri points here."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = client_email or f"fcm-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
        self._accounts[email] = _Account(
            project_id,
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": sensitive(secrets.token_hex(20), "private key id"),
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": f"{self.url}/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": f"{self.url}/certs",
            "client_x509_cert_url": f"{self.url}/certs/{email}",
            "universe_domain": "googleapis.com",
        }

    def program(self, token: str, *replies: FcmReply) -> None:
        """Queue replies for `token`, one per send; afterwards it succeeds again."""
        with self._lock:
            self._scripts.setdefault(token, deque()).extend(replies)

    def program_always(self, token: str, reply: FcmReply) -> None:
        with self._lock:
            self._always[token] = reply

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (401 ACCESS_TOKEN_EXPIRED on next use)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def requests_for(self, token: str) -> list[FcmRequest]:
        return [r for r in self.requests if r.token == token]

    # -- lifecycle ---------------------------------------------------------------------------

    # -- endpoints ---------------------------------------------------------------------------
    async def _token(self, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}

        def refuse(description: str, email: str | None = None, scope: str | None = None) -> JSONResponse:
            self.token_requests.append(TokenRequest(email, scope, time.time(), 400))
            return JSONResponse({"error": "invalid_grant", "error_description": description}, 400)

        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return refuse("unsupported grant")
        assertion = form["assertion"]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return refuse("malformed assertion")
        email: str | None = unverified.get("iss")
        account = self._accounts.get(email or "")
        if account is None:
            return refuse("Invalid grant: account not found", email)
        assert email is not None  # it is the key the account was found under
        try:
            claims = jwt.decode(
                assertion,
                account.public_pem,
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return refuse(f"Invalid JWT: {type(exc).__name__}", email)
        scope = claims.get("scope", "")
        if not FCM_SCOPES & set(scope.split()):
            return refuse("scope does not allow FCM", email, scope)
        access = sensitive("ya29.fake-" + secrets.token_urlsafe(24), "access token")
        with self._lock:
            self._tokens[access] = _AccessToken(email, account.project_id, time.time() + self.token_ttl)
        self.token_requests.append(TokenRequest(email, scope, time.time(), 200))
        return JSONResponse({"access_token": access, "expires_in": self.token_ttl, "token_type": "Bearer"})

    async def _send(self, request: Request) -> JSONResponse:
        project = request.path_params["project"]
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        token = message.get("token") if isinstance(message, dict) else None
        response = self._answer(project, request.headers.get("authorization", ""), body, message)
        self.requests.append(
            FcmRequest(
                project=project,
                token=token if isinstance(token, str) else None,
                body=body if isinstance(body, dict) else {},
                headers=dict(request.headers),
                at=time.time(),
                status=response.status_code,
            )
        )
        return response

    def _answer(self, project: str, authorization: str, body: Any, message: Any) -> JSONResponse:
        scheme, _, credential = authorization.partition(" ")
        with self._lock:
            access = self._tokens.get(credential) if scheme.lower() == "bearer" else None
        if access is None:
            return _error(401, "Request is missing required authentication credential.")
        if access.expires_at < time.time():
            return _error(401, "Request had invalid authentication credentials.", reason="ACCESS_TOKEN_EXPIRED")
        if access.project_id != project:
            return _error(
                403,
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project}'",
            )
        if not isinstance(message, dict):
            return _error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        targets = [k for k in ("token", "topic", "condition") if k in message]
        if len(targets) != 1:
            return _error(400, "Exactly one of token, topic or condition is required.", "INVALID_ARGUMENT")
        token = message.get("token")
        if "token" in message and (not isinstance(token, str) or not token):
            return _error(400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")
        data = message.get("data", {})
        if not isinstance(data, dict):
            return _error(400, "Invalid value at 'message.data'", "INVALID_ARGUMENT")
        for i, value in enumerate(data.values()):
            if not isinstance(value, str):
                return _error(400, f"Invalid value at 'message.data[{i}].value' (TYPE_STRING), 12", "INVALID_ARGUMENT")
        reply = self._next_reply(token) if isinstance(token, str) else FcmReply()
        if reply.status != 200:
            return _error(reply.status, reply.message, reply.error_code, retry_after=reply.retry_after)
        return JSONResponse({"name": f"projects/{project}/messages/0:{secrets.token_hex(8)}"})

    def _next_reply(self, token: str) -> FcmReply:
        with self._lock:
            queue = self._scripts.get(token)
            if queue:
                return queue.popleft()
            return self._always.get(token, FcmReply())
