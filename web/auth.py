"""API-key roles (`Authorization: Bearer <key>`) and constant-time secret comparison."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from web.errors import ApiError


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def role_of(api_keys: dict[str, str], presented: str) -> str | None:
    # Compare against every key so the time taken says nothing about which key came close.
    found: str | None = None
    for key, role in api_keys.items():
        if constant_time_equal(key, presented):
            found = role
    return found


def require_role(request: Request, *roles: str) -> str:
    """The caller's role; 401 without a valid key, 403 for a valid key of another role.
    `admin` may do everything."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401, "unauthorized", "an API key is required: Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"}
        )
    role = role_of(request.app.state.services.settings.api_keys, key.strip())
    if role is None:
        raise ApiError(401, "unauthorized", "unknown API key", {"WWW-Authenticate": "Bearer"})
    if role != "admin" and role not in roles:
        raise ApiError(403, "forbidden", f"this key's role ({role}) may not do this")
    return role
