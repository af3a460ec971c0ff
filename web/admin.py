"""Admin views: device logs sent by Wallet, the push journal (dry runs and deliveries), dead letters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.bounds import decimal
from push.results import token_hint
from web.auth import require_role
from web.errors import ApiError


def _limit(request: Request, default: int = 100, maximum: int = 10_000) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return default
    value = decimal(text, 9)  # longer is out of range whatever it says
    if value is None or not 1 <= value <= maximum:
        raise ApiError(400, "invalid_query", f"limit must be 1 to {maximum}")
    return value


async def device_logs(request: Request) -> Response:
    require_role(request, "admin")
    rows = await request.app.state.services.store.list_device_logs(_limit(request))
    return JSONResponse({"logs": [{"at": at, "message": message} for at, message in rows]})


async def pushes(request: Request) -> Response:
    require_role(request, "admin")
    return JSONResponse({"pushes": await request.app.state.services.store.list_pushes(_limit(request))})


async def dead_letters(request: Request) -> Response:
    require_role(request, "admin")
    rows = await request.app.state.services.store.list_dead_letters(_limit(request))
    return JSONResponse(
        {
            "dead_letters": [
                {
                    "id": d.entry.id,
                    "kind": d.entry.kind,
                    "attempts": d.entry.attempts,
                    "error": d.error,
                    "failed_at": d.failed_at,
                    "fields": _redacted(d.entry.fields),
                }
                for d in rows
            ]
        }
    )


def _redacted(fields: dict[str, str]) -> dict[str, str]:
    # push tokens are credentials of a sort: show only a hint
    return {k: (token_hint(v) if k in ("token", "push_token") else v) for k, v in fields.items()}
