"""Geo-campaigns (role `marketing`): lock-screen texts shown near a program's stores to the cards that qualify.

Every write is checked whole (the merged result on PATCH) before anything is stored, and then wakes the
geo job runner (service/geo.py) so that passes follow at once."""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.bounds import POINTS_MAX
from cards.model import Card
from geo.campaigns import (
    Campaign,
    Conditions,
    active,
    campaign_from_dict,
    campaign_to_dict,
    length_problem,
    meets,
    render,
    template_problem,
)
from passes.programs import Program
from store.port import Store
from web.auth import require_role
from web.body import read_json_object
from web.errors import ApiError
from web.services import Services, services_of
from web.validation import Body, Choices, Integer, Obj, Text, invalid

ROLES = ("marketing", "admin")
# ids are generated here (secrets.token_urlsafe); the path accepts only what could be one
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ID_BYTES = 16
NAME_MAX = 100
# the template as written; what it renders to is bounded by length_problem (geo/campaigns.py)
TEXT_MAX = 200
ANNOUNCE_MAX = 120
STORES_MAX = 1000
EXPIRING_DAYS_MAX = 3650
MAX_PER_DAY = (1, 24)
MAX_PER_DAY_DEFAULT = 1
RADIUS_M = (10, 5000)
RADIUS_DEFAULT_M = 100
PREVIEW_PAGE = 1000
PREVIEW_SAMPLES = 5
# RFC 3339 date-time with its offset; fromisoformat alone also takes dates, week dates and naive times
TIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")


# -- field declarations beyond web/validation.py ---------------------------------------------------


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    schema["type"] = [schema["type"], "null"]
    if description:
        schema["description"] = description
    return schema


@dataclass(frozen=True)
class Names:
    """A list of distinct non-empty strings (or null); `one_of` as for Text: checked by the handler."""

    pattern: re.Pattern[str] | None = None
    max_items: int = STORES_MAX
    min_items: int = 0
    one_of: str | None = None
    description: str = ""
    required: bool = False

    def read(self, data: dict[str, Any], name: str, where: str = "") -> list[str] | None:
        value = data.get(name)
        field = where + name
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid(field, "must be a list of strings or null")
        if len(value) < self.min_items:
            raise invalid(field, f"at least {self.min_items} entries")
        if len(value) > self.max_items:
            raise invalid(field, f"at most {self.max_items} entries")
        for item in value:
            if not isinstance(item, str) or not item or (self.pattern is not None and not self.pattern.fullmatch(item)):
                raise invalid(field, "each entry must be a non-empty id string")
        twice = sorted(item for item, n in Counter(value).items() if n > 1)
        if twice:
            raise invalid(field, "listed more than once: " + ", ".join(twice))
        return list(value)

    def schema(self, choices: Choices) -> dict[str, Any]:
        items: dict[str, Any] = {"type": "string", "minLength": 1}
        if self.pattern is not None:
            items["pattern"] = self.pattern.pattern
        if self.one_of is not None and choices[self.one_of]:
            items["enum"] = sorted(choices[self.one_of])
        schema: dict[str, Any] = {"type": "array", "items": items, "uniqueItems": True, "maxItems": self.max_items}
        if self.min_items:
            schema["minItems"] = self.min_items
        return _nullable(schema, self.description)


@dataclass(frozen=True)
class Instant:
    """An RFC 3339 date-time with its offset (or null), as unix seconds."""

    description: str = ""
    required: bool = False

    def read(self, data: dict[str, Any], name: str, where: str = "") -> float | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not TIME_RE.fullmatch(value):
            raise invalid(where + name, "must be an RFC 3339 date-time with its offset, e.g. 2026-12-01T09:00:00+03:00")
        try:
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            raise invalid(where + name, "not a valid date or time") from None
        # campaign_to_dict writes UTC; an offset that would leave year 1..9999 there cannot be stored
        if not 2000 <= moment.year <= 9998:
            raise invalid(where + name, "the year must be from 2000 to 9998")
        return moment.timestamp()

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema = {"type": "string", "format": "date-time", "pattern": TIME_RE.pattern}
        return _nullable(schema, self.description)


@dataclass(frozen=True)
class Flag:
    """A JSON boolean (absent or null: `default`)."""

    default: bool = False
    description: str = ""
    required: bool = False

    def read(self, data: dict[str, Any], name: str, where: str = "") -> bool:
        value = data.get(name)
        if value is None:
            return self.default
        if not isinstance(value, bool):
            raise invalid(where + name, "must be true or false")
        return value

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "boolean", "default": self.default}
        if self.description:
            schema["description"] = self.description
        return schema


STORE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # web/stores.py's ids

CONDITIONS = Body(
    "CampaignConditions",
    {
        "min_balance": Integer(required=False, minimum=0, maximum=POINTS_MAX, description="balance at least this"),
        "tiers": Names(
            max_items=100,
            min_items=1,
            one_of="tiers",
            description="tier keys of the program; the card's tier is one of them",
        ),
        "expiring_within_days": Integer(
            required=False,
            minimum=0,
            maximum=EXPIRING_DAYS_MAX,
            description="the card has points expiring from today to today + this many days",
        ),
    },
    description="Conditions on the card, all of those given must hold; null or absent: no condition.",
)

_PROGRAM = Text(max_len=64, one_of="programs", description="a program of GET /v1/programs (another: 400)")
_STORES = Names(
    pattern=STORE_ID_RE,
    description="ids of the program's stores (GET /v1/stores); null: all of them",
)
_WHEN = Obj(CONDITIONS, required=False)

CAMPAIGN_FIELDS: dict[str, Any] = {
    "program": _PROGRAM,
    "name": Text(max_len=NAME_MAX),
    "text": Text(
        max_len=TEXT_MAX,
        description="the lock-screen text: plain text with {balance} {tier} {store} {name} ({{ and }} for braces); "
        "rendered with the longest values it can get ({balance} 13, {name} 16, {store} 20, {tier} the longest "
        "tier name of the program) it must fit 80 characters",
    ),
    "stores": _STORES,
    "when": _WHEN,
    "starts_at": Instant(description="RFC 3339 with offset; null: from now on"),
    "ends_at": Instant(description="RFC 3339 with offset, after starts_at; null: no end"),
    "max_per_day": Integer(
        required=False,
        default=MAX_PER_DAY_DEFAULT,
        minimum=MAX_PER_DAY[0],
        maximum=MAX_PER_DAY[1],
        description="app alerts per card and day at most",
    ),
    "radius_m": Integer(
        required=False,
        default=RADIUS_DEFAULT_M,
        minimum=RADIUS_M[0],
        maximum=RADIUS_M[1],
        description="metres around a store within which it is relevant",
    ),
    "announce": Text(
        required=False,
        max_len=ANNOUNCE_MAX,
        description="plain text (no placeholders), shown once as a change message when a card starts to qualify",
    ),
    "paused": Flag(description="true: not active whatever its times (the console's pause), until set false again"),
}

NEW_CAMPAIGN = Body("NewCampaign", CAMPAIGN_FIELDS)


@dataclass(frozen=True)
class _Optional:
    """A field of a PATCH body: the same value, never required (absent: kept)."""

    inner: Any
    required: bool = False

    def read(self, data: dict[str, Any], name: str, where: str = "") -> Any:
        return self.inner.read(data, name, where)

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema = dict(self.inner.schema(choices))
        if self.inner.required:
            schema.pop("default", None)
            schema["type"] = [schema["type"], "null"] if isinstance(schema["type"], str) else schema["type"]
        return schema


CAMPAIGN_PATCH = Body(
    "CampaignPatch",
    {name: _Optional(spec) for name, spec in CAMPAIGN_FIELDS.items()},
    description="A JSON merge patch (RFC 7396): fields given replace the stored ones, `when` is merged key by key, "
    "null clears a field (a required one cannot be cleared); the result is checked as a whole. `program` may "
    "not change.",
)


# -- checks shared with web/messages.py -----------------------------------------------------------


def program_of(programs: Mapping[str, Program], name: str) -> Program:
    program = programs.get(name)
    if program is None:
        raise ApiError(400, "unknown_program", f"program {name!r} does not exist")
    return program


def tier_names(program: Program) -> list[str]:
    """Every display name of every tier, in every locale: {tier} may render as any of them."""
    return [name for tier in program.tiers for name in tier.names.values()]


def conditions(program: Program, when: dict[str, Any] | None) -> dict[str, Any]:
    """The `when` object as stored: every key present, null for no condition."""
    when = when or {}
    tiers = when.get("tiers")
    if tiers is not None:
        unknown = [t for t in tiers if program.tier(t) is None]
        if unknown:
            raise invalid(
                "when.tiers",
                f"not tiers of {program.program}: {', '.join(unknown)} (it has {', '.join(program.tier_keys)})",
            )
    return {
        "min_balance": when.get("min_balance"),
        "tiers": sorted(tiers) if tiers is not None else None,
        "expiring_within_days": when.get("expiring_within_days"),
    }


async def known_stores(store: Store, program: Program, ids: Sequence[str] | None) -> list[str] | None:
    if ids is None:
        return None
    if not ids:
        raise invalid("stores", "an empty list matches no store; null means all of the program's stores")
    theirs = {loc.id for loc in await store.list_store_locations(program.program)}
    unknown = [i for i in ids if i not in theirs]
    if unknown:
        raise invalid("stores", f"not stores of {program.program}: {', '.join(unknown)}")
    return list(ids)


def placeholder_free(value: str | None, field: str) -> None:
    if value is not None and _PLACEHOLDER_RE.search(value):
        raise invalid(field, "plain text only: placeholders such as {balance} are not filled in here")


def new_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def path_id(request: Request) -> str:
    value: str = request.path_params["id"]
    if not ID_RE.fullmatch(value):
        raise ApiError(400, "invalid_path", "id: 1 to 64 of A-Z a-z 0-9 _ -")
    return value


# -- campaigns --------------------------------------------------------------------------------------


async def _campaign(campaign_id: str, data: dict[str, Any], services: Services) -> Campaign:
    """The campaign of a whole body (a new one, or a stored one merged with a patch), or a 400."""
    NEW_CAMPAIGN.refuse_unknown(data)
    program = program_of(services.programs, NEW_CAMPAIGN.value(data, "program"))
    fields = {name: NEW_CAMPAIGN.value(data, name) for name in CAMPAIGN_FIELDS if name != "program"}
    text = fields["text"]
    problem = template_problem(text) or length_problem(text, tier_names(program))
    if problem is not None:
        raise invalid("text", problem)
    placeholder_free(fields["announce"], "announce")
    starts, ends = fields["starts_at"], fields["ends_at"]
    if starts is not None and ends is not None and ends <= starts:
        raise invalid("ends_at", "must be after starts_at")
    when = conditions(program, fields["when"])
    stores = await known_stores(services.store, program, fields["stores"])
    return Campaign(
        id=campaign_id,
        program=program.program,
        name=fields["name"],
        text=text,
        stores=tuple(stores) if stores is not None else None,
        when=Conditions(
            min_balance=when["min_balance"],
            tiers=frozenset(when["tiers"]) if when["tiers"] is not None else None,
            expiring_within_days=when["expiring_within_days"],
        ),
        starts_at=starts,
        ends_at=ends,
        max_per_day=fields["max_per_day"],
        radius_m=fields["radius_m"],
        announce=fields["announce"],
        paused=fields["paused"],
    )


async def _stored(store: Store, campaign_id: str) -> dict[str, Any]:
    found = await store.get_campaign(campaign_id)
    if found is None:
        raise ApiError(404, "unknown_campaign", "no such campaign")
    return found


async def _save(services: Services, campaign: Campaign) -> dict[str, Any]:
    body = campaign_to_dict(campaign)
    await services.store.put_campaign(body, time.time())
    services.geo_wakeup.set()
    return body


async def create_campaign(request: Request) -> Response:
    require_role(request, *ROLES)
    services = services_of(request)
    campaign = await _campaign(new_id(), await read_json_object(request), services)
    return JSONResponse(await _save(services, campaign), status_code=201)


async def list_campaigns(request: Request) -> Response:
    require_role(request, *ROLES)
    program = request.query_params.get("program") or None
    return JSONResponse({"campaigns": await services_of(request).store.list_campaigns(program)})


async def get_campaign(request: Request) -> Response:
    require_role(request, *ROLES)
    campaign_id = path_id(request)
    return JSONResponse(await _stored(services_of(request).store, campaign_id))


async def patch_campaign(request: Request) -> Response:
    require_role(request, *ROLES)
    campaign_id = path_id(request)
    services = services_of(request)
    patch = await read_json_object(request)
    CAMPAIGN_PATCH.refuse_unknown(patch)
    stored = await _stored(services.store, campaign_id)
    if "program" in patch and patch["program"] != stored["program"]:
        raise invalid("program", "may not change; create a campaign in the other program")
    if "when" in patch and patch["when"] is not None and not isinstance(patch["when"], dict):
        raise invalid("when", "must be an object")
    merged = {name: stored.get(name) for name in CAMPAIGN_FIELDS}
    for name, value in patch.items():
        if name == "when" and value is not None:
            merged["when"] = {**(stored.get("when") or {}), **value}
        else:
            merged[name] = value
    campaign = await _campaign(campaign_id, merged, services)
    return JSONResponse(await _save(services, campaign))


async def delete_campaign(request: Request) -> Response:
    require_role(request, *ROLES)
    campaign_id = path_id(request)
    services = services_of(request)
    if not await services.store.delete_campaign(campaign_id, time.time()):
        raise ApiError(404, "unknown_campaign", "no such campaign")
    services.geo_wakeup.set()
    return JSONResponse({"deleted": campaign_id})


async def _store_name(store: Store, campaign: Campaign) -> str:
    if campaign.stores:
        first = await store.get_store_location(campaign.stores[0])
        if first is not None:
            return first.name
    program_stores = await store.list_store_locations(campaign.program)
    return program_stores[0].name if program_stores else ""


def _tier_name(program: Program, card: Card) -> str:
    tier = program.tier(card.tier)
    return tier.name(card.locale) if tier is not None else card.tier


async def preview_campaign(request: Request) -> Response:
    require_role(request, *ROLES)
    campaign_id = path_id(request)
    services = services_of(request)
    campaign = campaign_from_dict(await _stored(services.store, campaign_id))
    return JSONResponse(await campaign_reach(services, campaign))


async def campaign_reach(services: Services, campaign: Campaign) -> dict[str, Any]:
    """The preview of POST /v1/campaigns/{id}/preview (the console shows the same)."""
    program = services.programs.get(campaign.program)
    now = time.time()
    # the day the expiry window counts from, as the ledger's `expiring.date` is written: a calendar date (UTC)
    today: date = datetime.fromtimestamp(now, UTC).date()
    by_tier: dict[str, int] = dict.fromkeys(program.tier_keys if program is not None else (), 0)
    qualifying = 0
    samples: list[Card] = []
    after = ""
    while True:
        page = await services.store.cards_page(campaign.program, after, PREVIEW_PAGE)
        for card in page:
            # the schedule is told apart (`active`): a preview before the start still counts who would qualify
            if card.program == campaign.program and meets(card, campaign.when, today):
                qualifying += 1
                by_tier[card.tier] = by_tier.get(card.tier, 0) + 1
                if len(samples) < PREVIEW_SAMPLES:
                    samples.append(card)
        if len(page) < PREVIEW_PAGE:
            break
        after = page[-1].number
    store_name = await _store_name(services.store, campaign)
    rendered = [
        {
            "card": card.number[-4:],
            "text": render(campaign.text, card, store_name, _tier_name(program, card) if program is not None else None),
        }
        for card in samples
    ]
    return {"qualifying": qualifying, "by_tier": by_tier, "samples": rendered, "active": active(campaign, now)}
