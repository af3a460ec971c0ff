"""What every page shares for safety: the Content-Security-Policy and other headers, CSRF tokens,
and the console's signed session cookie.

- CSP: scripts, styles and images only from this service (no inline scripts), map tiles from the
  configured tile host, frames refused, forms posting only here.
- CSRF: a token is an HMAC (WALLET_SESSION_SECRET) of a per-browser random value that lives in a
  cookie (`wallet_csrf`, HttpOnly, SameSite=Lax): a form carries the token, the POST is accepted
  only when the token matches the cookie's value. A cross-site form can neither read the cookie nor
  forge the HMAC.
- Sessions (console): `itsdangerous` signs {role, issued} into the `wallet_console` cookie (HttpOnly,
  SameSite=Lax, Secure when WALLET_PUBLIC_URL is https), valid for SESSION_SECONDS; the API key the
  person logged in with is never stored in it or shown in a page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from config.settings import Settings

CSRF_COOKIE = "wallet_csrf"
CSRF_FIELD = "csrf"
SESSION_COOKIE = "wallet_console"
SESSION_SECONDS = 8 * 3600


def _tile_origin(settings: Settings) -> str:
    if not settings.tiles_url:
        return ""
    parts = urlsplit(settings.tiles_url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def content_security_policy(settings: Settings) -> str:
    tiles = _tile_origin(settings)
    img = "'self' data:" + (f" {tiles}" if tiles else "")
    return (
        "default-src 'self'; "
        "script-src 'self'; "
        "style-src 'self'; "
        f"img-src {img}; "
        "connect-src 'self'; "
        "font-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'; "
        "form-action 'self'"
    )


def page_headers(settings: Settings) -> Mapping[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # pages carry signed links and balances: never kept by a shared cache
        "Cache-Control": "no-store",
    }


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


# -- CSRF -----------------------------------------------------------------------------------------


def _csrf_token(settings: Settings, nonce: str) -> str:
    return hmac.new(settings.session_secret.encode(), b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF nonce, and whether it is new (then the response must set the cookie)."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if 16 <= len(nonce) <= 64 and nonce.isalnum():
        return nonce, False
    return secrets.token_hex(16), True


def csrf_token_for(request: Request, settings: Settings) -> tuple[str, str | None]:
    """(token for the form, nonce to set as cookie or None when the browser has one)."""
    nonce, new = csrf_nonce(request)
    return _csrf_token(settings, nonce), nonce if new else None


def set_csrf_cookie(response: Response, nonce: str | None, settings: Settings) -> None:
    if nonce is not None:
        response.set_cookie(
            CSRF_COOKIE, nonce, httponly=True, samesite="lax", secure=secure_cookies(settings), path="/"
        )


def csrf_valid(request: Request, settings: Settings, token: str | None) -> bool:
    """Whether a posted form's token matches this browser's cookie."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not nonce or not token:
        return False
    return hmac.compare_digest(_csrf_token(settings, nonce), token)


async def read_form(
    request: Request, *, max_files: int, max_fields: int, max_part_size: int = 1024 * 1024
) -> FormData | None:
    """The posted form, or None when it cannot be a form of our pages (more fields or files than the limits,
    a part over `max_part_size`, broken multipart). The page then refuses it as one without a valid CSRF
    token, in HTML: left to Starlette, the same form got a JSON 400 `bad_request` no page documents."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
    except (HTTPException, MultiPartException):
        return None


# -- console sessions -----------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret, salt="wallet-console-session")


def session_cookie_value(settings: Settings, role: str) -> str:
    return _serializer(settings).dumps({"role": role, "sid": secrets.token_hex(8)})


def session_role(request: Request, settings: Settings) -> str | None:
    """The role of the console session, or None without a valid one."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    role = data.get("role") if isinstance(data, dict) else None
    return role if role in ("marketing", "admin") else None


def set_session_cookie(response: Response, settings: Settings, role: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie_value(settings, role),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
        path="/console",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/console", httponly=True, samesite="lax", secure=secure_cookies(settings)
    )
