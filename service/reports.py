"""Reports (GET /v1/reports/*) as pure functions of recorded facts: the store's daily counts
(store/port.py FACT_INSTALLS, FACT_PUSHES, FACT_ALERTS, counted in the same commit as what they
count) and, for campaigns, the cards as stored now. Nothing here estimates: a row is a sum of
counted facts, or a count of stored cards.

- installs: per UTC day, program, platform and tier, the registrations made ("installs": a new
  PassKit registration, a Google Wallet "save" callback) and removed ("removals": an unregistration,
  a registration dropped as stale or evicted, a Google "del" callback).
- pushes: per UTC day, channel and result, the push journal records.
- campaigns: per campaign of a program, the cards meeting its conditions now, the passes whose
  stored content carries it now (`carried_campaigns`), and the alerts its geo pings decided over
  the period (sent, capped, cooldown, quiet hours).

Every report is a list of flat rows with a fixed column order, written as JSON or CSV (`to_csv`).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cards.model import Card, Spot
from geo.campaigns import Campaign, active, meets, render
from geo.evaluate import ProgramGeo, choose_spots
from geo.locations import StoreLocation, campaign_stores
from push import clients
from store.port import FactCount

DEFAULT_DAYS = 30  # without `from`: the 30 days up to `to`, both included
MAX_DAYS = 400  # the longest period one request may cover (days, both ends included)
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
FORMATS = ("json", "csv")

# The client FACT_INSTALLS names Google Wallet with (store/port.py).
GOOGLE = "google"
# Platform labels, in report order: Apple Wallet, each Android app (push/clients.py order; the
# names are the card page's, web/wallet_apps.py), Google Wallet. A client not listed (a future app)
# is shown by its key, after these.
PLATFORMS: dict[str, str] = {
    clients.APPLE: "Apple Wallet",
    clients.WALLETUNION_FCM: "WalletUnion",
    clients.WALLETUNION_HMS: "WalletUnion (Huawei)",
    clients.WALLETPASSES: "Wallet Passes",
    clients.PASS2U: "Pass2U Wallet",
    clients.PASSWALLET: "PassWallet",
    clients.PASSHUB: "PassHub for Telegram",
    GOOGLE: "Google Wallet",
}
_PLATFORM_ORDER = {client: i for i, client in enumerate(PLATFORMS)}

# FACT_ALERTS decisions (store/port.py) and the geo ping results they record (geo/alerts.py);
# `none_near` is about no campaign and is not recorded.
ALERT_DECISIONS: dict[str, str] = {"sent": "sent", "capped": "capped", "cooldown": "cooldown", "quiet_hours": "quiet"}

INSTALL_COLUMNS = ("day", "program", "platform", "client", "tier", "installs", "removals")
PUSH_COLUMNS = ("day", "channel", "result", "count")
CAMPAIGN_COLUMNS = (
    "campaign",
    "name",
    "program",
    "active",
    "deleted",
    "qualifying",
    "carrying",
    "alerts_sent",
    "alerts_capped",
    "alerts_cooldown",
    "alerts_quiet_hours",
)


class ReportQueryError(ValueError):
    """A query parameter a report cannot take: `name` is the parameter, the message says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Period:
    """UTC days from `first` to `last`, both included (YYYY-MM-DD, as fact_day writes them)."""

    first: str
    last: str


def _day(name: str, text: str) -> date:
    if not _DAY_RE.fullmatch(text):
        raise ReportQueryError(name, "a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportQueryError(name, f"not a calendar date: {text}") from None


def parse_period(from_text: str | None, to_text: str | None, today: date) -> Period:
    """The period of `from`/`to` (YYYY-MM-DD, UTC days, both included). Without `to`: today; without
    `from`: the DEFAULT_DAYS days up to `to`. `to` may not be before `from`, and the period is at
    most MAX_DAYS days."""
    last = _day("to", to_text) if to_text else today
    # without `from`, a `to` in year 1's first days starts the period at date.min: there is no day before it
    # (subtracting a timedelta raised OverflowError there, a 500)
    first = _day("from", from_text) if from_text else date.fromordinal(max(1, last.toordinal() - (DEFAULT_DAYS - 1)))
    if last < first:
        raise ReportQueryError("to", "must not be before from (without to: today)")
    if (last - first).days + 1 > MAX_DAYS:
        raise ReportQueryError("from", f"the period is at most {MAX_DAYS} days")
    return Period(first.isoformat(), last.isoformat())


def parse_format(text: str | None) -> str:
    value = text or "json"
    if value not in FORMATS:
        raise ReportQueryError("format", "json or csv")
    return value


def platform_label(client: str) -> str:
    return PLATFORMS.get(client, client)


# -- installs -------------------------------------------------------------------------------------


def install_rows(facts: Iterable[FactCount], program: str | None = None) -> list[dict[str, Any]]:
    """FACT_INSTALLS counts as rows per day, program, platform and tier (of `program` only when
    given), each with its installs and removals; ordered by day, program, platform (PLATFORMS
    order), tier. A group with neither is absent."""
    sums: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
    for fact in facts:
        if len(fact.dims) != 4:
            continue
        fact_program, client, tier, action = fact.dims
        if program is not None and fact_program != program:
            continue
        if action in ("install", "remove"):
            sums[(fact.day, fact_program, client, tier)][action] += fact.count
    keys = sorted(sums, key=lambda k: (k[0], k[1], _PLATFORM_ORDER.get(k[2], len(_PLATFORM_ORDER)), k[2], k[3]))
    return [
        {
            "day": day,
            "program": fact_program,
            "platform": platform_label(client),
            "client": client,
            "tier": tier,
            "installs": sums[(day, fact_program, client, tier)]["install"],
            "removals": sums[(day, fact_program, client, tier)]["remove"],
        }
        for day, fact_program, client, tier in keys
    ]


# -- pushes ---------------------------------------------------------------------------------------


def push_rows(facts: Iterable[FactCount]) -> list[dict[str, Any]]:
    """FACT_PUSHES counts as rows per day, channel and result, in that order."""
    sums: Counter[tuple[str, str, str]] = Counter()
    for fact in facts:
        if len(fact.dims) != 2:
            continue
        channel, outcome = fact.dims
        sums[(fact.day, channel, outcome)] += fact.count
    return [
        {"day": day, "channel": channel, "result": outcome, "count": sums[(day, channel, outcome)]}
        for day, channel, outcome in sorted(sums)
    ]


# -- campaigns ------------------------------------------------------------------------------------


@dataclass
class CampaignTally:
    """Per campaign id: the cards meeting its conditions, and the passes carrying it."""

    qualifying: Counter[str] = field(default_factory=Counter)
    carrying: Counter[str] = field(default_factory=Counter)
    cards: int = 0  # cards looked at


@dataclass(frozen=True)
class SpotIndex:
    """A program's stores by coordinates, each with the campaigns whose store set holds it: what a
    stored pass location (latitude, longitude, text, radius; no ids) can have come from."""

    by_point: Mapping[tuple[float, float], tuple[tuple[StoreLocation, Campaign], ...]]


def _stores_of(campaign: Campaign, stores: Mapping[str, StoreLocation]) -> Iterable[StoreLocation]:
    # as geo/locations.py resolves them: unknown ids and other programs' stores are skipped
    if campaign.stores is None:
        return (s for s in stores.values() if s.program == campaign.program)
    found = (stores.get(store_id) for store_id in campaign.stores)
    return (s for s in found if s is not None and s.program == campaign.program and s.id in stores)


def spot_index(geo: ProgramGeo) -> SpotIndex:
    by_point: dict[tuple[float, float], list[tuple[StoreLocation, Campaign]]] = defaultdict(list)
    for campaign in geo.campaigns:
        for store in _stores_of(campaign, geo.stores):
            by_point[(store.lat, store.lon)].append((store, campaign))
    return SpotIndex({point: tuple(pairs) for point, pairs in by_point.items()})


def _spot_campaigns(
    spot: Spot, card: Card, index: SpotIndex, tier_name: str | None, winners: Mapping[str, Campaign] | None = None
) -> set[str]:
    """The campaigns that would write exactly this spot for this card: a store at its coordinates in
    the campaign's stores, the campaign's radius, and its text rendered for the card at that store.
    With `winners` (store id -> the campaign that wins it now), only a store's winner."""
    lat, lon, text, radius = spot
    found = set()
    for store, campaign in index.by_point.get((lat, lon), ()):
        if winners is not None and (store.id not in winners or winners[store.id].id != campaign.id):
            continue
        if campaign.radius_m == radius and render(campaign.text, card, store.name, tier_name) == text:
            found.add(campaign.id)
    return found


def carried_campaigns(
    card: Card, geo: ProgramGeo, index: SpotIndex, now: float, today: date, tier_name: str | None
) -> set[str]:
    """The campaigns the card's stored pass content carries now.

    - `notice_id` "campaign:<ids>": the announces of those campaigns are the pass's notice;
    - each stored location whose coordinates, radius and text only one campaign can have written
      (`_spot_campaigns`) is that campaign's;
    - a location several campaigns or none could have written is attributed only when the card's
      stored locations are exactly what geo/evaluate.py derives from the current snapshot: then to the
      campaign that wins its store now (as choose_locations decides); otherwise to none.
    Only campaigns of the snapshot (existing now) are named."""
    known = {c.id for c in geo.campaigns}
    found: set[str] = set()
    if card.notice_id and card.notice_id.startswith("campaign:"):
        found.update(i for i in card.notice_id.removeprefix("campaign:").split(",") if i in known)
    unsure: list[Spot] = []
    for spot in card.locations:
        candidates = _spot_campaigns(spot, card, index, tier_name)
        if len(candidates) == 1:
            found.update(candidates)
        else:
            unsure.append(spot)
    if unsure and choose_spots(card, geo, now, today, tier_name) == card.locations:
        winners = campaign_stores(card, geo.campaigns, geo.stores, now, today)
        for spot in unsure:
            candidates = _spot_campaigns(spot, card, index, tier_name, winners)
            if len(candidates) == 1:
                found.update(candidates)
    return found


def tally_cards(
    tally: CampaignTally,
    cards: Sequence[Card],
    geo: ProgramGeo,
    index: SpotIndex,
    now: float,
    today: date,
    tier_name: Callable[[Card], str | None],
) -> None:
    """Add a page of the program's cards to `tally`. A card of another program, or erased (its passes
    are void), is not counted. Qualifying is `meets` (the conditions, the schedule aside), as the
    campaign preview counts it; `active` is a column of its own."""
    for card in cards:
        if card.program != geo.program or card.erased_at:
            continue
        tally.cards += 1
        for campaign in geo.campaigns:
            if meets(card, campaign.when, today):
                tally.qualifying[campaign.id] += 1
        for campaign_id in carried_campaigns(card, geo, index, now, today, tier_name(card)):
            tally.carrying[campaign_id] += 1


def alert_counts(facts: Iterable[FactCount], program: str) -> dict[str, Counter[str]]:
    """FACT_ALERTS of `program` summed over the days: campaign id -> decision -> count."""
    sums: dict[str, Counter[str]] = defaultdict(Counter)
    for fact in facts:
        if len(fact.dims) != 3 or fact.dims[0] != program:
            continue
        sums[fact.dims[1]][fact.dims[2]] += fact.count
    return sums


def campaign_rows(
    campaigns: Sequence[Campaign],
    tally: CampaignTally,
    alerts: Mapping[str, Counter[str]],
    program: str,
    now: float,
) -> list[dict[str, Any]]:
    """One row per campaign of the program, by id; then, by id, campaigns deleted since that have
    alerts in the period (`deleted` true, no name, nothing qualifying or carried)."""
    rows = []
    mine = sorted((c for c in campaigns if c.program == program), key=lambda c: c.id)
    for campaign in mine:
        rows.append(_campaign_row(campaign.id, campaign.name, program, active(campaign, now), False, tally, alerts))
    existing = {c.id for c in mine}
    for campaign_id in sorted(set(alerts) - existing):
        rows.append(_campaign_row(campaign_id, "", program, False, True, tally, alerts))
    return rows


def _campaign_row(
    campaign_id: str,
    name: str,
    program: str,
    is_active: bool,
    deleted: bool,
    tally: CampaignTally,
    alerts: Mapping[str, Counter[str]],
) -> dict[str, Any]:
    decided = alerts.get(campaign_id, Counter())
    return {
        "campaign": campaign_id,
        "name": name,
        "program": program,
        "active": is_active,
        "deleted": deleted,
        "qualifying": tally.qualifying[campaign_id],
        "carrying": tally.carrying[campaign_id],
        "alerts_sent": decided["sent"],
        "alerts_capped": decided["capped"],
        "alerts_cooldown": decided["cooldown"],
        "alerts_quiet_hours": decided["quiet"],
    }


# -- CSV ------------------------------------------------------------------------------------------

# a cell a spreadsheet would run as a formula (OWASP "CSV injection"): campaign names are typed by people
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]*$")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _SAFE_TOKEN.fullmatch(text):
        return "'" + text
    return text


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header row of `columns`, then each row's values in that order (true/false for booleans)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()
