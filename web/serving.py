"""How the web process listens: uvicorn's options in one place for `python -m cli serve`
(and so `make run` and the Procfile), with a bound on request heads.

uvicorn's default parser (httptools) keeps whatever header bytes a client sends; six requests
of 32 MiB of headers took the process from 57 to 363 MB. h11 buffers at most a set number of
bytes of an unfinished request head; `HeaderLimitedH11Protocol` sets that bound and answers
what goes past it with 431 (Request Header Fields Too Large) instead of uvicorn's plain 400.
"""

from __future__ import annotations

from typing import Any

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from config.settings import Settings

MAX_HEADER_BYTES = 16 * 1024  # request line and headers together


class HeaderLimitedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.conn._max_incomplete_event_size > MAX_HEADER_BYTES:
            self.conn._max_incomplete_event_size = MAX_HEADER_BYTES

    def send_400_response(self, msg: str) -> None:
        # h11 refuses a head over the bound as a protocol error; what it has buffered then is
        # more than the bound (trailing_data is h11's public view of that buffer).
        if len(self.conn.trailing_data[0]) > MAX_HEADER_BYTES:
            self._send_plain(431, b"Request Header Fields Too Large")
        else:
            super().send_400_response(msg)

    def _send_plain(self, status: int, body: bytes) -> None:
        # As uvicorn's own 400: h11 still lets us answer after the client's protocol error.
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class HeaderLimitMiddleware:
    """431 for a request whose line and headers together pass MAX_HEADER_BYTES. h11 bounds what
    it buffers of an unfinished head; a head that arrived whole in one read is bounded here."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                response = JSONResponse(
                    {
                        "error": {
                            "code": "headers_too_large",
                            "message": f"request line and headers over {self.limit} bytes",
                        }
                    },
                    status_code=431,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def uvicorn_options(settings: Settings, log_level: str) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for the web process."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "log_config": None,  # logging is configured once, by config/logging.py
        "access_log": False,
        "http": HeaderLimitedH11Protocol,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        # Beyond this many connections and tasks at once uvicorn answers 503 at once, so a flood
        # of connections cannot take the memory of the ones being served.
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,
        # request.client is the direct peer: whose X-Forwarded-For counts is WALLET_TRUSTED_PROXIES's
        # business (web/ratelimit.py client_address), not uvicorn's default trust of 127.0.0.1
        "proxy_headers": False,
    }
