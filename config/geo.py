"""Geo settings: how campaign jobs page through cards, how often schedules are looked at, the
pass's default relevance radius. Read once by config/settings.py, which owns the problem list.

Facts: ../shared/facts/apple-wallet.md §1.5. Apple's default relevance radius of a store card is
UNCONFIRMED (third parties say 100 m); `maxDistance` can only shrink it, so it is written only for
campaigns asking for less than WALLET_PASS_DEFAULT_DISTANCE_M.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Get = Callable[..., str]


@dataclass(frozen=True)
class GeoSettings:
    # cards a campaign or message job re-evaluates per atomic commit
    batch_size: int = 500
    # how often the sweeper looks for campaigns whose start or end passed (seconds)
    schedule_tick_seconds: float = 5.0
    # how long a claimed geo job stays with its process before another may take it over
    lease_seconds: float = 60.0
    # Apple's default relevance radius for store cards (UNCONFIRMED): below it, maxDistance
    default_distance_m: int = 100
    # pings per card ("<count>/<second|minute|hour|day>")
    ping_rate: str = "30/minute"


def _number(get: Get, name: str, default: str, low: float, high: float, problems: list[str]) -> float:
    text = get(name, default)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        problems.append(f"{name} must be a number from {low:g} to {high:g}")
        return float(default)
    return value


def load_geo_settings(get: Get, problems: list[str]) -> GeoSettings:
    """GeoSettings from the variables `get` reads; each unusable one adds a problem naming it."""
    rate = get("WALLET_RATE_GEO_PING", "30/minute")
    parts = rate.split("/")
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in ("second", "minute", "hour", "day"):
        problems.append("WALLET_RATE_GEO_PING must look like 30/minute (per second, minute, hour or day)")
        rate = "30/minute"
    return GeoSettings(
        batch_size=int(_number(get, "WALLET_GEO_BATCH_SIZE", "500", 1, 10_000, problems)),
        schedule_tick_seconds=_number(get, "WALLET_GEO_SCHEDULE_TICK_SECONDS", "5", 0.05, 3600, problems),
        lease_seconds=_number(get, "WALLET_GEO_LEASE_SECONDS", "60", 1, 3600, problems),
        default_distance_m=int(_number(get, "WALLET_PASS_DEFAULT_DISTANCE_M", "100", 1, 100_000, problems)),
        ping_rate=rate,
    )
