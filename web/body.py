"""Request bodies: the 1 MiB limit and JSON parsing with clear 4xx errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cards.bounds import decimal
from service.imports import MAX_BYTES as IMPORT_MAX_BYTES
from web.errors import ApiError, error_response

MAX_BODY = 1024 * 1024
# The routes allowed more than MAX_BODY, by (method, path): an upload, not a JSON request. Each reads
# its body with read_body(request, its limit), which counts the bytes of a body without a length.
ROUTE_LIMITS: dict[tuple[str, str], int] = {("POST", "/v1/cards/import"): IMPORT_MAX_BYTES}
# 18 digits hold any length a client can send; a longer Content-Length is malformed, not a number to read
_LENGTH_DIGITS = 18


class BodyLimitMiddleware:
    """Refuses a declared oversize body before any handler reads it; bodies without a
    Content-Length are counted as they are read (read_body)."""

    def __init__(
        self, app: ASGIApp, limit: int = MAX_BODY, routes: Mapping[tuple[str, str], int] = ROUTE_LIMITS
    ) -> None:
        self.app = app
        self.limit = limit
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            limit = self.routes.get((scope["method"], scope["path"]), self.limit)
            for name, value in scope["headers"]:
                if name == b"content-length":
                    size = decimal(value, _LENGTH_DIGITS)
                    if size is None or size > limit:
                        response = (
                            error_response(400, "bad_request", "bad Content-Length")
                            if size is None
                            else error_response(413, "payload_too_large", f"request body over {limit} bytes")
                        )
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"request body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # the client went away mid-body: its fault, and nobody reads the answer; a 4xx, not a traceback
        raise ApiError(400, "invalid_json", "the body ended early: the client disconnected") from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The body as JSON. orjson refuses what the standard parser lets through and a store then fails on:
    lone UTF-16 surrogates (`"\\ud800"`), nesting deeper than 1024, invalid UTF-8, NaN and Infinity. Its
    message names the problem and its position, never a piece of the body. (Integers beyond 64 bits come
    back as floats, which every integer field refuses.)"""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid UTF-8 JSON: {exc}") from None


async def read_json_object(request: Request) -> dict[str, Any]:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data
