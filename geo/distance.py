"""Great-circle distance, one formula for every adapter and decision (so a store "within
radius_m" means the same in SQLite, Redis and the pure core)."""

from __future__ import annotations

import math

# The mean Earth radius Redis uses for GEO commands (geohelper.c), so both adapters agree.
EARTH_RADIUS_M = 6372797.560856


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
