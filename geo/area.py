"""The member's area: an app ping's position coarsened to a cell of about 1 km (pure).

Only the area is ever stored (spec: the raw position of a ping is not kept). Latitude is rounded to
LAT_STEP_DEG (0.01°, about 1.11 km); longitude to a step widened by 1/cos(latitude of the cell), so a
cell is about as wide as it is tall wherever it is, instead of shrinking to a few metres near the
poles. The result is the cell's centre, so every position inside one cell gives the same area and a
member moving within it changes nothing on their card (no new pass, no push).

The step is taken from the already rounded latitude, so the longitude grid is one per latitude row and
does not wobble with the exact latitude of the ping.
"""

from __future__ import annotations

import math

LAT_STEP_DEG = 0.01
# The widening stops here (cos(89.9°)): a pole cell spans all longitudes rather than dividing by ~0.
_MIN_COS = math.cos(math.radians(89.9))
# Cell centres are rounded to this many decimals, so the same cell is the same pair of floats
# (a card's area is compared for equality to decide whether to write it).
_DECIMALS = 6


def lon_step_deg(lat: float) -> float:
    """The longitude step of the cell row at latitude `lat` (degrees)."""
    return min(360.0, LAT_STEP_DEG / max(math.cos(math.radians(lat)), _MIN_COS))


def coarsen(lat: float, lon: float) -> tuple[float, float]:
    """The centre of the ~1 km cell holding (lat, lon); latitude within ±90, longitude within ±180.

    ValueError for a point that is not finite or out of range (the caller validated it already)."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError("not a position: latitude within ±90, longitude within ±180, finite")
    cell_lat = max(-90.0, min(90.0, round(lat / LAT_STEP_DEG) * LAT_STEP_DEG))
    step = lon_step_deg(cell_lat)
    cell_lon = round(lon / step) * step
    # the last cell of a row may reach past the antimeridian; ±180 is the same meridian
    cell_lon = max(-180.0, min(180.0, cell_lon))
    return round(cell_lat, _DECIMALS) + 0.0, round(cell_lon, _DECIMALS) + 0.0
