"""Request bodies: the 1 MiB limit and JSON parsing with clear 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import ApiError, error_response

MAX_BODY = 1024 * 1024


class BodyLimitMiddleware:
    """Refuses a declared oversize body before any handler reads it; bodies without a
    Content-Length are counted as they are read (read_body)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if not value.isdigit() or int(value) > self.limit:
                        status, code = (413, "payload_too_large") if value.isdigit() else (400, "bad_request")
                        response = error_response(
                            status,
                            code,
                            f"request body over {self.limit} bytes" if status == 413 else "bad Content-Length",
                        )
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8 JSON") from None


async def read_json_object(request: Request) -> dict[str, Any]:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data
