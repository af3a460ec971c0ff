"""Bounding boxes of a circle on the sphere of geo/distance.py, for an index's candidate query
(SQLite's R*Tree; Redis for circles its own search gets wrong). Exact distances are checked after."""

from __future__ import annotations

import math

from geo.distance import EARTH_RADIUS_M

# The near query's boxes are drawn for a radius this much larger than asked: a margin over
# floating-point error in the box (the R*Tree's own 32-bit rounding is outwards); candidates
# are then filtered exactly with haversine_m.
_BOX_PAD_M = 1.0

# (min_lat, max_lat, min_lon, max_lon)
Box = tuple[float, float, float, float]


def search_boxes(lat: float, lon: float, radius_m: float) -> list[Box]:
    """Latitude/longitude boxes that together hold every point within `radius_m` of (lat, lon)
    on the sphere of haversine_m: one box, or two when the circle crosses the antimeridian
    (split at ±180), or a band of every longitude when it reaches a pole (or the whole globe)."""
    delta = (radius_m + _BOX_PAD_M) / EARTH_RADIUS_M  # angular radius, radians
    if delta >= math.pi:
        return [(-90.0, 90.0, -180.0, 180.0)]
    dlat = math.degrees(delta)
    south, north = lat - dlat, lat + dlat
    if south <= -90.0 or north >= 90.0:  # the circle holds a pole: every longitude
        return [(max(south, -90.0), min(north, 90.0), -180.0, 180.0)]
    # The circle's widest longitude offset (a spherical cap not holding a pole).
    reach = math.sin(delta) / math.cos(math.radians(lat))
    if reach >= 1.0:
        return [(south, north, -180.0, 180.0)]
    dlon = math.degrees(math.asin(reach))
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        return [(south, north, west + 360.0, 180.0), (south, north, -180.0, east)]
    if east > 180.0:
        return [(south, north, west, 180.0), (south, north, -180.0, east - 360.0)]
    return [(south, north, west, east)]
