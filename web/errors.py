"""JSON errors: one shape for every failure, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


SERVER_ERRORS = "wallet_http_server_errors_total"


def _route(request: Request) -> str:
    # the route's template, not the path: paths hold card numbers and serials, which logs never show
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(no route)"


def _count_server_error(request: Request, status: int) -> None:
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.inc(SERVER_ERRORS, help="Answers with a 5xx status", status=str(status))


def _answered(request: Request, status: int, code: str) -> None:
    """One log line per error answer; a client's mistake is never a traceback."""
    if status >= 500:
        _count_server_error(request, status)
        log.warning("server error %d %s on %s %s", status, code, request.method, _route(request))
    else:
        log.info("client error %d %s on %s %s", status, code, request.method, _route(request))


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    _answered(request, exc.status, exc.code)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    _answered(request, exc.status_code, code)
    return error_response(exc.status_code, code, message, exc.headers)


async def store_error_handler(request: Request, exc: Exception) -> Response:
    # The store is down or did not confirm a write (e.g. Redis WAIT short of replicas): nothing was
    # promised, the client may retry. One line, no traceback: it is an outage, not a bug.
    _count_server_error(request, 503)
    log.error("store unavailable on %s %s: %s", request.method, _route(request), type(exc).__name__)
    return error_response(503, "unavailable", "the service cannot reach its store; retry shortly", {"Retry-After": "1"})


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    # A bug of ours, never bad input (that is a 4xx above): the traceback goes to the server log (it holds
    # no request data), the client sees nothing of it, and /metrics counts it so that it is noticed.
    _count_server_error(request, 500)
    log.exception("unhandled error on %s %s", request.method, _route(request))
    return error_response(500, "internal", "internal error")
