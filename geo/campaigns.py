"""Geo-campaigns as pure decisions: when a campaign runs, which cards qualify, and its lock-screen text.

Texts and the 80-character rule
-------------------------------
A campaign's text is a template with the placeholders `{balance}` `{tier}` `{store}` `{name}` (and
`{{`/`}}` for literal braces). Nothing else is a placeholder: no attribute access, index, conversion
or format spec (`{name.x}`, `{balance:>9}`, `{tier!r}` are all refused), so a template can never reach
into objects or pad a text.

The lock screen shows about 80 characters (TEXT_MAX), and a campaign's text must fit for every card,
also for cards and stores that do not exist yet. So every value has a budget, and `render` cuts a
longer value to it (ending with "…"):

    {balance}  BALANCE_SHOWN_MAX (13): the digits of cards.bounds.POINTS_MAX, never cut in practice
    {name}     NAME_SHOWN_MAX (16)   : member names may be 100 characters long
    {store}    STORE_SHOWN_MAX (20)
    {tier}     TIER_SHOWN_MAX (16), or the longest of the program's tier names when the caller gives them

`worst_case_length` renders the template with a value of full budget for each placeholder, so the API
refuses at campaign creation (and on PATCH of the text) any template for which that exceeds TEXT_MAX
(`rendered_length_ok` / `length_problem`), and a template accepted there renders within TEXT_MAX for
every card and store. `render` also cuts the whole text to TEXT_MAX as a last guard (for templates that
were stored without that check), so at pass time a text never exceeds 80 characters.

Characters are Python code points (what `len` counts). `{balance}` is the plain decimal number
(no grouping), the same on every locale.
"""

from __future__ import annotations

import datetime as _dt
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cards.bounds import POINTS_MAX
from cards.model import Card
from cards.text import forbidden_class, text_problem

TEXT_MAX = 80
BALANCE_SHOWN_MAX = len(str(POINTS_MAX))
NAME_SHOWN_MAX = 16
STORE_SHOWN_MAX = 20
TIER_SHOWN_MAX = 16
ELLIPSIS = "…"

PLACEHOLDERS = ("balance", "tier", "store", "name")

_FORBIDDEN = re.compile(f"[{forbidden_class(multiline=False)}]")


@dataclass(frozen=True)
class Conditions:
    """Conditions on the card's ledger state; None means "no condition" for each."""

    min_balance: int | None = None
    tiers: frozenset[str] | None = None
    expiring_within_days: int | None = None


@dataclass(frozen=True)
class Campaign:
    id: str
    program: str
    name: str
    text: str
    stores: tuple[str, ...] | None  # None: all of the program's stores
    when: Conditions
    starts_at: float | None  # unix seconds, inclusive
    ends_at: float | None  # unix seconds, exclusive
    max_per_day: int
    radius_m: int
    announce: str | None = None
    # paused by marketing (the console's pause): not active whatever its times, until resumed
    paused: bool = False


# -- schedule and conditions ------------------------------------------------------------------


def active(campaign: Campaign, now: float) -> bool:
    """Whether the campaign runs at `now`: not paused, and starts_at <= now < ends_at (a missing bound is open)."""
    if campaign.paused:
        return False
    if campaign.starts_at is not None and now < campaign.starts_at:
        return False
    if campaign.ends_at is not None and now >= campaign.ends_at:
        return False
    return True


def meets(card: Card, when: Conditions, today: date) -> bool:
    """Whether the card's ledger state meets the conditions (schedule and program not considered)."""
    if when.min_balance is not None and card.balance < when.min_balance:
        return False
    if when.tiers is not None and card.tier not in when.tiers:
        return False
    if when.expiring_within_days is not None:
        if not card.expiring_points or card.expiring_points <= 0 or not card.expiring_date:
            return False
        try:
            expiring = date.fromisoformat(card.expiring_date)
        except ValueError:
            return False
        # Points that expired before today are gone; "within N days" includes today and today + N.
        if not today <= expiring <= today + timedelta(days=when.expiring_within_days):
            return False
    return True


def qualifies(card: Card, campaign: Campaign, now: float, today: date) -> bool:
    """Whether `card` qualifies for `campaign` at `now`: same program, campaign active, conditions met.

    `today` is the date the expiry window counts from (the caller's, in the program's zone)."""
    return card.program == campaign.program and active(campaign, now) and meets(card, campaign.when, today)


# -- templates --------------------------------------------------------------------------------

_Part = tuple[str, str | None]  # literal text, then a placeholder name or None


def _parse(template: str) -> list[_Part]:
    """The template's parts; ValueError with a human reason when it is not a valid template."""
    parts: list[_Part] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed braces: {exc}") from None
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None))
            continue
        if field == "":
            raise ValueError("empty placeholder {}; use {{ and }} for literal braces")
        if field not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{field}}}; allowed: " + " ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        if conversion is not None or spec:
            raise ValueError(f"placeholder {{{field}}} takes no conversion or format spec")
        parts.append((literal, field))
    return parts


def template_problem(template: str) -> str | None:
    """None when `template` is a valid campaign text, else why not (names an unknown placeholder)."""
    if not template.strip():
        return "must not be empty"
    problem = text_problem(template)
    if problem is not None:
        return problem
    try:
        _parse(template)
    except ValueError as exc:
        return str(exc)
    return None


def cut(value: str, limit: int) -> str:
    """`value` within `limit` characters, ending with "…" when it had to be cut."""
    if len(value) <= limit:
        return value
    if limit <= 0:
        return ""
    return value[: limit - 1].rstrip() + ELLIPSIS


def _clean(value: str) -> str:
    # Values are validated where they come in (cards/text.py); this only keeps a lock-screen text on one
    # line and free of direction overrides whatever got stored.
    return _FORBIDDEN.sub("", value)


def _substitute(parts: list[_Part], values: dict[str, str]) -> str:
    return "".join(literal + (values[field] if field is not None else "") for literal, field in parts)


def render(template: str, card: Card, store_name: str, tier_name: str | None = None, *, limit: int = TEXT_MAX) -> str:
    """The lock-screen text of `template` for `card` at the store `store_name` (at most `limit`).

    `tier_name` is the tier's display name (the caller's, by the card's locale); None shows the tier key.
    Each value is cut to its budget (module doc). The API refuses invalid templates at creation; should
    one be stored anyway, it renders as written (no substitution), cut to TEXT_MAX, instead of failing."""
    values = {
        "balance": cut(str(card.balance), BALANCE_SHOWN_MAX),
        "tier": cut(_clean(tier_name if tier_name is not None else card.tier), TIER_SHOWN_MAX),
        "store": cut(_clean(store_name), STORE_SHOWN_MAX),
        "name": cut(_clean(card.member.name), NAME_SHOWN_MAX),
    }
    try:
        parts = _parse(template)
    except ValueError:
        return cut(_clean(template), limit)
    return cut(_clean(_substitute(parts, values)), limit)


def worst_case_length(template: str, tier_names: Iterable[str] = ()) -> int:
    """The length of `template` rendered with the longest values `render` can put in it.

    `tier_names`: the program's tier display names (all locales); when empty, TIER_SHOWN_MAX is assumed.
    ValueError when the template is not valid (see `template_problem`)."""
    parts = _parse(template)
    tiers = [len(cut(t, TIER_SHOWN_MAX)) for t in tier_names]
    values = {
        "balance": "9" * BALANCE_SHOWN_MAX,
        "tier": "W" * (max(tiers) if tiers else TIER_SHOWN_MAX),
        "store": "W" * STORE_SHOWN_MAX,
        "name": "W" * NAME_SHOWN_MAX,
    }
    return len(_substitute(parts, values))


def rendered_length_ok(template: str, tier_names: Iterable[str] = ()) -> bool:
    """Whether every rendering of `template` fits the lock screen (<= TEXT_MAX characters).

    False also for an invalid template."""
    try:
        return worst_case_length(template, tier_names) <= TEXT_MAX
    except ValueError:
        return False


def length_problem(template: str, tier_names: Iterable[str] = ()) -> str | None:
    """None when the rendered text always fits, else a reason for the 400 with the worst-case length."""
    try:
        worst = worst_case_length(template, tier_names)
    except ValueError as exc:
        return str(exc)
    if worst <= TEXT_MAX:
        return None
    return (
        f"renders to up to {worst} characters, at most {TEXT_MAX} allowed "
        f"(counting {{balance}} as {BALANCE_SHOWN_MAX}, {{name}} as {NAME_SHOWN_MAX}, "
        f"{{store}} as {STORE_SHOWN_MAX}, {{tier}} as the longest tier name)"
    )


# -- stored form --------------------------------------------------------------------------------
# Campaigns are stored as the JSON the API shows (store.put_campaign keeps a mapping): times as
# RFC 3339 strings, conditions under "when". These two functions are the only translation.


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat().replace("+00:00", "Z")


def _unix(text: str | None) -> float | None:
    if text is None:
        return None
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def campaign_to_dict(campaign: Campaign) -> dict[str, Any]:
    when = campaign.when
    return {
        "id": campaign.id,
        "program": campaign.program,
        "name": campaign.name,
        "text": campaign.text,
        "stores": list(campaign.stores) if campaign.stores is not None else None,
        "when": {
            "min_balance": when.min_balance,
            "tiers": sorted(when.tiers) if when.tiers is not None else None,
            "expiring_within_days": when.expiring_within_days,
        },
        "starts_at": _iso(campaign.starts_at),
        "ends_at": _iso(campaign.ends_at),
        "max_per_day": campaign.max_per_day,
        "radius_m": campaign.radius_m,
        "announce": campaign.announce,
        "paused": campaign.paused,
    }


def campaign_from_dict(data: Mapping[str, Any]) -> Campaign:
    """The Campaign of a stored mapping (as campaign_to_dict writes it; extra keys are ignored)."""
    when = data.get("when") or {}
    tiers = when.get("tiers")
    stores = data.get("stores")
    return Campaign(
        id=str(data["id"]),
        program=str(data["program"]),
        name=str(data.get("name") or ""),
        text=str(data["text"]),
        stores=tuple(str(s) for s in stores) if stores is not None else None,
        when=Conditions(
            min_balance=when.get("min_balance"),
            tiers=frozenset(tiers) if tiers is not None else None,
            expiring_within_days=when.get("expiring_within_days"),
        ),
        starts_at=_unix(data.get("starts_at")),
        ends_at=_unix(data.get("ends_at")),
        max_per_day=int(data.get("max_per_day") or 1),
        radius_m=int(data.get("radius_m") or 100),
        announce=data.get("announce") or None,
        paused=bool(data.get("paused", False)),
    )
