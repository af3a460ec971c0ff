"""geo/area.py: a ping's position coarsened to a ~1 km cell."""

from __future__ import annotations

import math

import pytest

from geo.area import LAT_STEP_DEG, coarsen, lon_step_deg
from geo.distance import haversine_m


@pytest.mark.parametrize("lat", [0.0, 35.0, 55.75, -33.9, 70.0, 85.0])
def test_a_cell_is_about_a_kilometre_each_way_at_any_latitude(lat: float) -> None:
    tall = haversine_m(lat, 10.0, lat + LAT_STEP_DEG, 10.0)
    wide = haversine_m(lat, 10.0, lat, 10.0 + lon_step_deg(lat))
    assert 1000 < tall < 1200
    assert 1000 < wide < 1200


def test_positions_in_one_cell_give_the_same_area_and_the_raw_position_is_gone() -> None:
    a = coarsen(55.7521, 37.6173)
    b = coarsen(55.7479, 37.6100)
    assert a == b
    assert a != (55.7521, 37.6173)
    # the centre is never farther than half a cell's diagonal from the position
    assert haversine_m(55.7521, 37.6173, *a) < 800


def test_a_position_a_couple_of_kilometres_away_gives_another_area() -> None:
    assert coarsen(55.7558, 37.6173) != coarsen(55.7758, 37.6173)
    assert coarsen(55.7558, 37.6173) != coarsen(55.7558, 37.6573)


def test_the_area_is_stable_floats_without_negative_zero() -> None:
    lat, lon = coarsen(-0.001, -0.001)
    assert (lat, lon) == (0.0, 0.0) and math.copysign(1, lat) == 1 and math.copysign(1, lon) == 1
    assert coarsen(*coarsen(12.345, 67.891)) == coarsen(12.345, 67.891)


def test_edges_stay_within_range() -> None:
    for lat, lon in [(90.0, 180.0), (-90.0, -180.0), (89.999, 179.999), (0.0, 180.0)]:
        cell_lat, cell_lon = coarsen(lat, lon)
        assert -90 <= cell_lat <= 90 and -180 <= cell_lon <= 180


@pytest.mark.parametrize("lat, lon", [(91.0, 0.0), (0.0, 181.0), (math.nan, 0.0), (0.0, math.inf)])
def test_not_a_position_is_refused(lat: float, lon: float) -> None:
    with pytest.raises(ValueError):
        coarsen(lat, lon)
