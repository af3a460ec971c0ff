"""Marketing messages (role `marketing`): a text shown on the passes of the cards a segment picks, as a change
message and a Google Wallet message, delivered by the geo job runner (service/geo.py) card page by card page."""

from __future__ import annotations

import string
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from geo.campaigns import template_problem, worst_case_length
from web.auth import require_role
from web.body import read_json_object
from web.campaigns import (
    CONDITIONS,
    ROLES,
    STORE_ID_RE,
    Names,
    conditions,
    known_stores,
    new_id,
    path_id,
    program_of,
    tier_names,
)
from web.errors import ApiError
from web.services import services_of
from web.validation import Body, Obj, Text, invalid

# a pass's back field and change message carry more than a lock screen, Google's message body too
MESSAGE_MAX = 150
JOB_KIND = "message"
# no store is at hand when a message is shown: it goes to cards, not to a place
REFUSED_PLACEHOLDERS = ("store",)

MESSAGE = Body(
    "NewMessage",
    {
        "program": Text(max_len=64, one_of="programs", description="a program of GET /v1/programs (another: 400)"),
        "text": Text(
            max_len=MESSAGE_MAX,
            description="plain text with {balance} {tier} {name} ({{ and }} for braces; {store} is refused); "
            f"rendered with the longest values ({{balance}} 13, {{name}} 16, {{tier}} the longest tier name) it "
            f"must fit {MESSAGE_MAX} characters",
        ),
        "when": Obj(CONDITIONS, required=False),
        "stores": Names(
            pattern=STORE_ID_RE,
            description="ids of the program's stores the message is about; null: all of them",
        ),
    },
)


def message_length_problem(template: str, tiers: Iterable[str] = ()) -> str | None:
    """None when `template` renders within MESSAGE_MAX for every card, else why not (as length_problem)."""
    try:
        worst = worst_case_length(template, tiers)
    except ValueError as exc:
        return str(exc)
    if worst <= MESSAGE_MAX:
        return None
    return f"renders to up to {worst} characters, at most {MESSAGE_MAX} allowed (counting {{balance}} as 13, " + (
        "{name} as 16, {tier} as the longest tier name)"
    )


def _text_problem(template: str, tiers: Iterable[str]) -> str | None:
    problem = template_problem(template)
    if problem is not None:
        return problem
    # template_problem allows every campaign placeholder; a message has no store to name
    used = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    for name in REFUSED_PLACEHOLDERS:
        if name in used:
            return f"placeholder {{{name}}} is not available in a message; allowed: {{balance}} {{tier}} {{name}}"
    return message_length_problem(template, tiers)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _job_id(message_id: str) -> str:
    return f"{JOB_KIND}:{message_id}"


async def send_message(request: Request) -> Response:
    require_role(request, *ROLES)
    services = services_of(request)
    data = await read_json_object(request)
    MESSAGE.refuse_unknown(data)
    program = program_of(services.programs, MESSAGE.value(data, "program"))
    text = MESSAGE.value(data, "text")
    problem = _text_problem(text, tier_names(program))
    if problem is not None:
        raise invalid("text", problem)
    when = conditions(program, MESSAGE.value(data, "when"))
    stores = await known_stores(services.store, program, MESSAGE.value(data, "stores"))
    message_id = new_id()
    now = time.time()
    payload: dict[str, Any] = {
        "id": message_id,
        "text": text,
        "when": when,
        "stores": stores,
        "created_at": _iso(now),
    }
    if not await services.store.add_geo_job(_job_id(message_id), program.program, JOB_KIND, payload, now):
        # 128 random bits: a clash is a bug, never the caller's doing
        raise RuntimeError("a new message id is taken")
    services.geo_wakeup.set()
    return JSONResponse({"id": message_id, "job": _job_id(message_id), "state": "queued"}, status_code=202)


async def get_message(request: Request) -> Response:
    require_role(request, *ROLES)
    message_id = path_id(request)
    job = await services_of(request).store.get_geo_job(_job_id(message_id))
    if job is None or job.kind != JOB_KIND:
        raise ApiError(404, "unknown_message", "no such message")
    payload = job.payload
    # the store keeps no lease holder we could show: a job not done has either started (a cursor) or not
    state = "done" if job.done else ("running" if job.cursor else "queued")
    return JSONResponse(
        {
            "id": message_id,
            "job": job.id,
            "program": job.program,
            "text": payload.get("text"),
            "when": payload.get("when"),
            "stores": payload.get("stores"),
            "created_at": payload.get("created_at") or _iso(job.created_at),
            "state": state,
            "cursor": job.cursor[-4:] if job.cursor else None,
        }
    )
