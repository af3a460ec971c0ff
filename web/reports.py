"""Reports (roles `marketing`, `admin`): installs, pushes and campaigns per day from recorded facts,
as JSON or, with `?format=csv`, CSV.

The rows are service/reports.py's; this module reads the query, the facts and (for campaigns) the
program's cards, page by page, the pure tally of each page in a worker thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.model import Card
from geo.evaluate import ProgramGeo
from service import reports
from service.geo import utc_today
from service.reports import Period, ReportQueryError
from store.port import FACT_ALERTS, FACT_INSTALLS, FACT_PUSHES, Store
from web.auth import require_role
from web.errors import ApiError
from web.services import Services, services_of

ROLES = ("marketing", "admin")
CARDS_PAGE = 1000
# The campaign report reads the program's cards; beyond this many it stops, counts what it read
# (the first cards in number order) and says so (`complete` false, header X-Report-Complete).
CARDS_MAX = 200_000
CSV_TYPE = "text/csv; charset=utf-8"


def _period(request: Request, now: float) -> Period:
    query = request.query_params
    try:
        return reports.parse_period(query.get("from"), query.get("to"), utc_today(now))
    except ReportQueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None


def _format(request: Request) -> str:
    try:
        return reports.parse_format(request.query_params.get("format"))
    except ReportQueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None


def _program(request: Request, services: Services, *, required: bool) -> str | None:
    name = request.query_params.get("program") or None
    if name is None:
        if required:
            raise ApiError(400, "invalid_query", "program: required (the report reads the program's cards)")
        return None
    if name not in services.programs:
        raise ApiError(400, "unknown_program", f"program {name!r} does not exist")
    return name


def _answer(
    name: str,
    form: str,
    period: Period,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = {"Cache-Control": "no-store", **(headers or {})}
    if form == "csv":
        filename = f"{name}-{period.first}-{period.last}.csv"
        return Response(
            reports.to_csv(columns, rows),
            media_type=CSV_TYPE,
            headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
        )
    body = {"report": name, "from": period.first, "to": period.last, **(extra or {}), "rows": rows}
    return JSONResponse(body, headers=headers)


async def installs_report(request: Request) -> Response:
    require_role(request, *ROLES)
    services = services_of(request)
    period, form = _period(request, time.time()), _format(request)
    program = _program(request, services, required=False)
    facts = await services.store.fact_counts(FACT_INSTALLS, period.first, period.last)
    rows = reports.install_rows(facts, program)
    return _answer("installs", form, period, reports.INSTALL_COLUMNS, rows, {"program": program})


async def pushes_report(request: Request) -> Response:
    require_role(request, *ROLES)
    services = services_of(request)
    period, form = _period(request, time.time()), _format(request)
    if request.query_params.get("program"):
        raise ApiError(400, "invalid_query", "program: pushes are counted per channel, not per program")
    facts = await services.store.fact_counts(FACT_PUSHES, period.first, period.last)
    return _answer("pushes", form, period, reports.PUSH_COLUMNS, reports.push_rows(facts))


async def tally_program(
    store: Store,
    geo: ProgramGeo,
    now: float,
    today: date,
    tier_name: Callable[[Card], str | None],
    *,
    page_size: int = CARDS_PAGE,
    limit: int = CARDS_MAX,
) -> tuple[reports.CampaignTally, bool]:
    """The campaign tally of the program's cards, read a page at a time in number order (each page's
    tally in a worker thread), at most about `limit` of them; and whether every card was read."""
    index = reports.spot_index(geo)
    tally = reports.CampaignTally()
    after, read = "", 0
    while True:
        page = await store.cards_page(geo.program, after, page_size)
        read += len(page)
        await anyio.to_thread.run_sync(reports.tally_cards, tally, page, geo, index, now, today, tier_name)
        if len(page) < page_size:
            return tally, True
        after = page[-1].number
        if read >= limit:
            # a card beyond means the count stopped short
            return tally, not await store.cards_page(geo.program, after, 1)


async def campaigns_report(request: Request) -> Response:
    require_role(request, *ROLES)
    services = services_of(request)
    now = time.time()
    period, form = _period(request, now), _format(request)
    program = _program(request, services, required=True)
    assert program is not None
    store, geo_service = services.store, services.core.geo
    snapshot = await geo_service.snapshot()
    geo = snapshot.program(program)
    tally, complete = await tally_program(store, geo, now, utc_today(now), geo_service.tier_name)
    facts = await store.fact_counts(FACT_ALERTS, period.first, period.last)
    rows = reports.campaign_rows(geo.campaigns, tally, reports.alert_counts(facts, program), program, now)
    extra = {"program": program, "cards": tally.cards, "complete": complete}
    return _answer(
        "campaigns",
        form,
        period,
        reports.CAMPAIGN_COLUMNS,
        rows,
        extra,
        {"X-Report-Complete": "true" if complete else "false"},
    )
