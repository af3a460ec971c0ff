"""The messages page: compose a message, segment it by conditions and stores, preview its text on sample
cards with the segment's reach, send it (queued as POST /v1/messages queues it, with the same checks),
and the history of messages sent (the store's message jobs, newest first)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from geo.campaigns import Conditions, meets, render
from geo.evaluate import NOTICE_MAX
from web import messages as api
from web.campaigns import PREVIEW_PAGE, PREVIEW_SAMPLES, conditions, known_stores, new_id, program_of, tier_names
from web.console.common import Console, console_route, form_int, page, see_other
from web.errors import ApiError
from web.validation import invalid

PATH = "/console/messages"
HISTORY = 50
EMPTY: dict[str, Any] = {
    "program": "",
    "text": "",
    "min_balance": "",
    "expiring_within_days": "",
    "tiers": [],
    "stores": [],
}


def _posted(console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {
        name: console.field(name) for name in ("program", "text", "min_balance", "expiring_within_days")
    }
    values["tiers"] = console.fields("tiers")
    values["stores"] = console.fields("stores")
    body = {
        "program": values["program"],
        "text": values["text"],
        "when": {
            "min_balance": form_int(values["min_balance"]),
            "tiers": values["tiers"] or None,
            "expiring_within_days": form_int(values["expiring_within_days"]),
        },
        "stores": values["stores"] or None,
    }
    return values, body


async def _checked(console: Console, body: dict[str, Any]) -> tuple[str, str, dict[str, Any], list[str] | None]:
    """(program, text, when, stores) as POST /v1/messages checks them, or ApiError."""
    api.MESSAGE.refuse_unknown(body)
    program = program_of(console.services.programs, api.MESSAGE.value(body, "program"))
    text = api.MESSAGE.value(body, "text")
    problem = api._text_problem(text, tier_names(program))
    if problem is not None:
        raise invalid("text", problem)
    when = conditions(program, api.MESSAGE.value(body, "when"))
    stores = await known_stores(console.services.store, program, api.MESSAGE.value(body, "stores"))
    return program.program, text, when, stores


async def _preview(console: Console, program_key: str, text: str, when: dict[str, Any]) -> dict[str, Any]:
    """The cards meeting the conditions now (the store part of a segment is decided at delivery, from each
    member's area), and the text as the first few of them will show it."""
    program = console.services.programs[program_key]
    segment = Conditions(
        min_balance=when["min_balance"],
        tiers=frozenset(when["tiers"]) if when["tiers"] is not None else None,
        expiring_within_days=when["expiring_within_days"],
    )
    today = datetime.now(UTC).date()
    count, after = 0, ""
    samples: list[dict[str, str]] = []
    while True:
        cards = await console.services.store.cards_page(program_key, after, PREVIEW_PAGE)
        for card in cards:
            if meets(card, segment, today):
                count += 1
                if len(samples) < PREVIEW_SAMPLES:
                    tier = program.tier(card.tier)
                    name = tier.name(card.locale) if tier is not None else card.tier
                    samples.append({"card": card.number[-4:], "text": render(text, card, "", name, limit=NOTICE_MAX)})
        if len(cards) < PREVIEW_PAGE:
            break
        after = cards[-1].number
    return {"qualifying": count, "samples": samples}


async def _page(
    console: Console,
    *,
    values: dict[str, Any] | None = None,
    error: str = "",
    preview: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    services = console.services
    jobs = await services.store.list_geo_jobs(kind=api.JOB_KIND, limit=HISTORY)
    history = [
        {
            "id": job.payload.get("id") or job.id,
            "program": job.program,
            "text": job.payload.get("text") or "",
            "created": str(job.payload.get("created_at") or "").replace("T", " ").replace("Z", ""),
            "state": "done" if job.done else ("running" if job.cursor else "queued"),
        }
        for job in jobs
    ]
    programs = services.programs
    return page(
        console.request,
        "console/messages.html",
        {
            "values": values or {**EMPTY, "program": next(iter(sorted(programs)), "")},
            "error": error,
            "preview": preview,
            "notice": console.request.query_params.get("done", "") == "queued",
            "history": history,
            "programs": [
                {"key": key, "tiers": [(t.key, t.name(console.language)) for t in program.tiers]}
                for key, program in sorted(programs.items())
            ],
            "all_stores": await services.store.list_store_locations(None),
        },
        language=console.language,
        role=console.role,
        section="messages",
        status_code=status_code,
    )


@console_route
async def console_messages(console: Console) -> Response:
    return await _page(console)


@console_route
async def console_send_message(console: Console) -> Response:
    values, body = _posted(console)
    try:
        program, text, when, stores = await _checked(console, body)
    except ApiError as exc:
        return await _page(console, values=values, error=exc.message, status_code=400)
    if console.field("action") != "send":
        return await _page(console, values=values, preview=await _preview(console, program, text, when))
    message_id = new_id()
    now = time.time()
    payload = {
        "id": message_id,
        "text": text,
        "when": when,
        "stores": stores,
        "created_at": api._iso(now),
    }
    if not await console.services.store.add_geo_job(api._job_id(message_id), program, api.JOB_KIND, payload, now):
        raise RuntimeError("a new message id is taken")
    console.services.geo_wakeup.set()
    return see_other(f"{PATH}?done=queued")
