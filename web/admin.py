"""Admin views: device logs sent by Wallet, the push journal (dry runs and deliveries), dead letters
(listed, and put back into the outbox once what failed them is fixed)."""

from __future__ import annotations

import logging
import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.bounds import decimal
from push.results import token_hint
from web.auth import require_role
from web.errors import ApiError

log = logging.getLogger(__name__)

# a dead letter's id as the adapters make them (SQLite row ids, Redis counters or stream ids)
DEAD_LETTER_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_REQUEUE = 1000
MAX_REQUEUE_IDS = 100  # named in the query string: more would not fit a request line


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
    store = request.app.state.services.store
    before = request.query_params.get("before")
    if before is not None and not DEAD_LETTER_ID_RE.match(before):
        raise ApiError(400, "invalid_query", "before must be a dead letter's id")
    rows = await store.list_dead_letters(_limit(request), before=before)
    return JSONResponse(
        {
            "total": await store.count_dead_letters(),
            "dead_letters": [
                {
                    "id": d.id,
                    "entry": d.entry.id,
                    "kind": d.entry.kind,
                    "attempts": d.entry.attempts,
                    "error": d.error,
                    "failed_at": d.failed_at,
                    "fields": _redacted(d.entry.fields),
                }
                for d in rows
            ],
        }
    )


async def requeue_dead_letters(request: Request) -> Response:
    """`?id=` (repeatable) names the dead letters to put back; without it the oldest `limit` go back."""
    require_role(request, "admin")
    services = request.app.state.services
    ids = request.query_params.getlist("id")
    if len(ids) > MAX_REQUEUE_IDS or not all(DEAD_LETTER_ID_RE.match(i) for i in ids):
        raise ApiError(400, "invalid_query", f"id must be up to {MAX_REQUEUE_IDS} dead letter ids")
    if ids and "limit" in request.query_params:
        raise ApiError(400, "invalid_query", "give either id or limit")
    limit = _limit(request, default=100, maximum=_MAX_REQUEUE)
    moved = await services.store.requeue_dead_letters(ids or None, time.time(), limit)
    if moved:
        services.outbox_wakeup.set()
        log.info("requeued %d dead letter(s)", len(moved))
    return JSONResponse({"requeued": moved})


def _redacted(fields: dict[str, str]) -> dict[str, str]:
    # push tokens are credentials of a sort: show only a hint
    return {k: (token_hint(v) if k in ("token", "push_token") else v) for k, v in fields.items()}
