"""Push history and the reports page. The charts are SVG drawn on the server (stacked bars: pushes per
day by result from the push journal, and each campaign's reach by tier); every chart has its numbers
as a table beside it, for screen readers and for copying."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from geo.campaigns import campaign_from_dict
from web.campaigns import campaign_reach
from web.console.common import Console, console_route, day_of, page, time_of

HISTORY = 200
# the journal keeps a bounded tail (push/worker.py JOURNAL_KEEP); the chart counts what is kept
JOURNAL_READ = 10_000
DAYS = 14
CAMPAIGNS_CHARTED = 20
# distinct on white and for the common colour blindnesses (Okabe-Ito)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass
class Chart:
    """A stacked bar chart, laid out: the template only draws what is here."""

    label: str
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, category label)
    grid: list[tuple[float, str]] = field(default_factory=list)  # (y, value label)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, series name)
    categories: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> series -> value

    @property
    def empty(self) -> bool:
        return not any(v for row in self.values.values() for v in row.values())


LEFT, TOP, BOTTOM = 48, 12, 40


def stacked(
    label: str, categories: Sequence[str], series: Sequence[str], values: Mapping[str, Mapping[str, int]]
) -> Chart:
    width, height = max(320, LEFT + 56 * len(categories) + 16), 260
    chart = Chart(label, width, height, categories=list(categories), series=list(series))
    chart.values = {c: {s: int(values.get(c, {}).get(s, 0)) for s in series} for c in categories}
    top = max([sum(row.values()) for row in chart.values.values()] + [1])
    step = _nice_step(top)
    ceiling = step * -(-top // step)
    plot_h = height - TOP - BOTTOM
    for k in range(0, ceiling + 1, step):
        chart.grid.append((TOP + plot_h - plot_h * k / ceiling, str(k)))
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    chart.legend = [(colour[s], s) for s in series]
    slot = (width - LEFT - 16) / max(1, len(categories))
    for i, category in enumerate(categories):
        x = LEFT + i * slot + slot * 0.15
        y: float = TOP + plot_h
        for s in series:
            value = chart.values[category][s]
            if value <= 0:
                continue
            h = plot_h * value / ceiling
            y -= h
            chart.bars.append(
                Bar(round(x, 1), round(y, 1), round(slot * 0.7, 1), round(h, 1), colour[s], f"{category}: {s} {value}")
            )
        chart.ticks.append((round(x + slot * 0.35, 1), category))
    return chart


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000):
        if top / step <= 5:
            return step
    return 10 ** len(str(top))


def pushes_per_day(records: Sequence[Mapping[str, Any]], now: float, days: int = DAYS) -> Chart:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        at = record.get("at")
        if isinstance(at, int | float):
            counts[day_of(at)][str(record.get("outcome") or "?")] += 1
    categories = [day_of(now - 86400 * k) for k in range(days - 1, -1, -1)]
    series = sorted({s for c in categories for s in counts.get(c, {})})
    short = {c: c[5:] for c in categories}  # MM-DD under the bars; the table has the full date
    chart = stacked("pushes", [short[c] for c in categories], series, {short[c]: counts.get(c, {}) for c in categories})
    return chart


@console_route
async def console_pushes(console: Console) -> Response:
    records = await console.services.store.list_pushes(HISTORY)
    rows = [
        {
            "at": time_of(r["at"]) if isinstance(r.get("at"), int | float) else "",
            "kind": r.get("kind", ""),
            "channel": r.get("channel", ""),
            "outcome": r.get("outcome", ""),
            "reason": r.get("reason") or r.get("error") or "",
            "dry_run": bool(r.get("dry_run")),
        }
        for r in records
    ]
    return page(
        console.request,
        "console/pushes.html",
        {"pushes": rows},
        language=console.language,
        role=console.role,
        section="pushes",
    )


@console_route
async def console_reports(console: Console) -> Response:
    services = console.services
    now = time.time()
    pushes = pushes_per_day(await services.store.list_pushes(JOURNAL_READ), now)
    reach: dict[str, dict[str, int]] = {}
    tiers: list[str] = []
    for stored in (await services.store.list_campaigns(None))[:CAMPAIGNS_CHARTED]:
        campaign = campaign_from_dict(stored)
        result = await campaign_reach(services, campaign)
        name = f"{campaign.name} ({campaign.id[:6]})"
        reach[name] = dict(result["by_tier"])
        tiers.extend(t for t in result["by_tier"] if t not in tiers)
    reach_chart = stacked("reach", list(reach), tiers, reach)
    return page(
        console.request,
        "console/reports.html",
        {"pushes_chart": pushes, "reach_chart": reach_chart},
        language=console.language,
        role=console.role,
        section="reports",
    )
