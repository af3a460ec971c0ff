"""Small, strict readers for JSON request fields: each failure is a 400 naming the field."""

from __future__ import annotations

import re
from typing import Any

from web.errors import ApiError

PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {message}")


def reject_unknown(data: dict[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(where + unknown[0], "unknown field")


def text(data: dict[str, Any], field: str, *, required: bool = True, max_len: int = 200,
         pattern: re.Pattern[str] | None = None, where: str = "") -> str | None:
    value = data.get(field)
    name = where + field
    if value is None:
        if required:
            raise invalid(name, "required")
        return None
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    value = value.strip()
    if not value:
        raise invalid(name, "must not be empty")
    if len(value) > max_len:
        raise invalid(name, f"at most {max_len} characters")
    if _CONTROL_RE.search(value):
        raise invalid(name, "control characters are not allowed")
    if pattern is not None and not pattern.match(value):
        raise invalid(name, "malformed")
    return value


def integer(data: dict[str, Any], field: str, *, required: bool = True, default: int | None = None,
            minimum: int | None = None, maximum: int = 2**53, where: str = "") -> int | None:
    value = data.get(field)
    name = where + field
    if value is None:
        if required:
            raise invalid(name, "required")
        return default
    # bool is an int in Python but never a count of points
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, "must be an integer")
    if minimum is not None and value < minimum:
        raise invalid(name, f"must be at least {minimum}")
    if value > maximum:
        raise invalid(name, f"must be at most {maximum}")
    return value


def obj(data: dict[str, Any], field: str, *, required: bool = True) -> dict[str, Any] | None:
    value = data.get(field)
    if value is None:
        if required:
            raise invalid(field, "required")
        return None
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    return value
