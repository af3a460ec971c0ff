"""The campaigns pages: the list with pause/resume and delete, the create/edit form (schedule, conditions,
stores, radius), and each campaign's preview: the lock-screen text on sample cards, the pass front per
tier as an image, reach by tier, and a map of its stores with their radii. Bodies go through
web/campaigns.py's own checks and store calls, so a form saves exactly what the API would."""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from geo.campaigns import active, campaign_from_dict
from web import campaigns as api
from web.console.common import (
    Console,
    console_route,
    form_instant,
    form_int,
    page,
    see_other,
    to_login,
    utc_text,
)
from web.console.stores import map_data
from web.errors import ApiError
from web.pages.security import session_role
from web.services import services_of

PATH = "/console/campaigns"
PNG_TYPE = "image/png"


def status_of(campaign: dict[str, Any], now: float) -> str:
    if campaign.get("paused"):
        return "paused"
    return "running" if active(campaign_from_dict(campaign), now) else "scheduled"


def _values(campaign: dict[str, Any]) -> dict[str, Any]:
    """A stored campaign as the form shows it."""
    when = campaign.get("when") or {}
    return {
        "program": campaign.get("program", ""),
        "name": campaign.get("name", ""),
        "text": campaign.get("text", ""),
        "announce": campaign.get("announce") or "",
        "stores": list(campaign.get("stores") or []),
        "min_balance": "" if when.get("min_balance") is None else str(when["min_balance"]),
        "tiers": list(when.get("tiers") or []),
        "expiring_within_days": "" if when.get("expiring_within_days") is None else str(when["expiring_within_days"]),
        "starts_at": utc_text(campaign.get("starts_at")),
        "ends_at": utc_text(campaign.get("ends_at")),
        "max_per_day": str(campaign.get("max_per_day", api.MAX_PER_DAY_DEFAULT)),
        "radius_m": str(campaign.get("radius_m", api.RADIUS_DEFAULT_M)),
    }


def _posted(console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the form's values to show again, the API body they make)."""
    values: dict[str, Any] = {
        name: console.field(name)
        for name in (
            "program",
            "name",
            "text",
            "announce",
            "min_balance",
            "expiring_within_days",
            "starts_at",
            "ends_at",
            "max_per_day",
            "radius_m",
        )
    }
    values["stores"] = console.fields("stores")
    values["tiers"] = console.fields("tiers")
    body = {
        "program": values["program"],
        "name": values["name"],
        "text": values["text"],
        "announce": values["announce"] or None,
        "stores": values["stores"] or None,
        "when": {
            "min_balance": form_int(values["min_balance"]),
            "tiers": values["tiers"] or None,
            "expiring_within_days": form_int(values["expiring_within_days"]),
        },
        "starts_at": form_instant(values["starts_at"]),
        "ends_at": form_instant(values["ends_at"]),
        "max_per_day": form_int(values["max_per_day"]),
        "radius_m": form_int(values["radius_m"]),
    }
    return values, body


async def _form_context(console: Console) -> dict[str, Any]:
    programs = console.services.programs
    return {
        "programs": [
            {"key": key, "tiers": [(t.key, t.name(console.language)) for t in program.tiers]}
            for key, program in sorted(programs.items())
        ],
        "all_stores": await console.services.store.list_store_locations(None),
    }


async def _list_page(
    console: Console, *, values: dict[str, Any] | None = None, error: str = "", status_code: int = 200
) -> Response:
    now = time.time()
    campaigns = await console.services.store.list_campaigns(None)
    rows = [{**c, "status": status_of(c, now)} for c in campaigns]
    default_program = next(iter(sorted(console.services.programs)), "")
    return page(
        console.request,
        "console/campaigns.html",
        {
            "campaigns": rows,
            "values": values or _values({"program": default_program}),
            "error": error,
            "notice": console.request.query_params.get("done", "") in ("saved", "deleted"),
            **await _form_context(console),
        },
        language=console.language,
        role=console.role,
        section="campaigns",
        status_code=status_code,
    )


@console_route
async def console_campaigns(console: Console) -> Response:
    return await _list_page(console)


@console_route
async def console_create_campaign(console: Console) -> Response:
    values, body = _posted(console)
    services = console.services
    try:
        campaign = await api._campaign(api.new_id(), body, services)
    except ApiError as exc:
        return await _list_page(console, values=values, error=exc.message, status_code=400)
    saved = await api._save(services, campaign)
    return see_other(f"{PATH}/{saved['id']}?done=saved")


async def _stored(console: Console) -> dict[str, Any] | None:
    campaign_id = console.request.path_params["id"]
    if not api.ID_RE.fullmatch(campaign_id):
        return None
    return await console.services.store.get_campaign(campaign_id)


async def _campaign_page(
    console: Console,
    stored: dict[str, Any],
    *,
    values: dict[str, Any] | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    services = console.services
    campaign = campaign_from_dict(stored)
    reach = await api.campaign_reach(services, campaign)
    program = services.programs.get(campaign.program)
    every = await services.store.list_store_locations(campaign.program)
    chosen = [s for s in every if campaign.stores is None or s.id in campaign.stores]
    tiers = [(t.key, t.name(console.language)) for t in program.tiers] if program is not None else []
    locale = console.language if program is not None and console.language in program.locales else ""
    if program is not None and not locale:
        locale = program.default_locale
    return page(
        console.request,
        "console/campaign.html",
        {
            "campaign": {**stored, "status": status_of(stored, time.time())},
            "values": values or _values(stored),
            "error": error,
            "notice": console.request.query_params.get("done", "") == "saved",
            "reach": reach,
            "tiers": tiers,
            "locale": locale,
            "map": map_data(console, chosen, campaign.radius_m),
            **await _form_context(console),
        },
        language=console.language,
        role=console.role,
        section="campaigns",
        status_code=status_code,
    )


@console_route
async def console_campaign(console: Console) -> Response:
    stored = await _stored(console)
    if stored is None:
        return see_other(PATH)
    return await _campaign_page(console, stored)


@console_route
async def console_update_campaign(console: Console) -> Response:
    stored = await _stored(console)
    if stored is None:
        return see_other(PATH)
    values, body = _posted(console)
    # the form edits every field but the program and the pause, which stay as stored
    body["program"] = stored["program"]
    body["paused"] = bool(stored.get("paused"))
    try:
        campaign = await api._campaign(stored["id"], body, console.services)
    except ApiError as exc:
        return await _campaign_page(console, stored, values=values, error=exc.message, status_code=400)
    await api._save(console.services, campaign)
    return see_other(f"{PATH}/{stored['id']}?done=saved")


@console_route
async def console_pause_campaign(console: Console) -> Response:
    stored = await _stored(console)
    if stored is None:
        return see_other(PATH)
    body = {name: stored.get(name) for name in api.CAMPAIGN_FIELDS}
    body["paused"] = console.field("paused") == "1"
    try:
        campaign = await api._campaign(stored["id"], body, console.services)
    except ApiError as exc:  # stored before a rule it breaks existed: shown, nothing changed
        return await _campaign_page(console, stored, error=exc.message, status_code=400)
    await api._save(console.services, campaign)
    back = console.field("back")
    return see_other(f"{PATH}/{stored['id']}" if back == "campaign" else PATH)


@console_route
async def console_delete_campaign(console: Console) -> Response:
    stored = await _stored(console)
    if stored is not None:
        await console.services.store.delete_campaign(stored["id"], time.time())
        console.services.geo_wakeup.set()
    return see_other(f"{PATH}?done=deleted")


async def console_pass_front(request: Request) -> Response:
    """GET /console/preview/{program}.png?tier=&locale=: the pass front of a tier (passes/preview.py)."""
    services = services_of(request)
    if session_role(request, services.settings) is None:
        return to_login()
    program = services.programs.get(request.path_params["program"])
    tier = request.query_params.get("tier", "")
    if program is None or program.tier(tier) is None:
        return Response(status_code=404)
    locale = request.query_params.get("locale", "")
    if locale not in program.locales:
        locale = program.default_locale
    try:
        from passes.preview import pass_front_png
    except ImportError:  # the renderer is not there yet: no image, the page says so in its alt text
        return Response(status_code=404)
    png = await anyio.to_thread.run_sync(lambda: pass_front_png(program, tier, locale))
    return Response(png, media_type=PNG_TYPE, headers={"Cache-Control": "private, max-age=300"})
