"""Stores (role `marketing`): the shops of a program, with coordinates and time zone, one by one or imported."""

from __future__ import annotations

import csv
import io
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.text import text_problem
from geo.locations import StoreLocation
from store.port import GEO_MAX_LAT, InvalidStoreLocation, check_geo_point
from web.auth import require_role
from web.body import MAX_BODY, parse_json, read_body, read_json_object
from web.errors import ApiError
from web.validation import Body, Choices, Text, invalid

ROLES = ("marketing", "admin")
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NAME_MAX = 100
ADDRESS_MAX = 200
ZONE_MAX = 64
RADIUS_DEFAULT_M = 5000
RADIUS_MAX_M = 100_000
NEAR_LIMIT = 100
# the whole request body is bounded by web/body.py (MAX_BODY, before any handler reads it)
IMPORT_MAX_BYTES = MAX_BODY
IMPORT_MAX_ROWS = 10_000
CSV_COLUMNS = ("id", "program", "name", "lat", "lon", "address", "timezone")
CSV_REQUIRED = ("id", "program", "name", "lat", "lon")

_finder: Any = None
_finder_lock = threading.Lock()


def derived_zone(lat: float, lon: float) -> str:
    """The IANA zone at the point, offline (timezonefinder; one finder per process, built on first use)."""
    global _finder
    with _finder_lock:
        if _finder is None:
            from timezonefinder import TimezoneFinder

            _finder = TimezoneFinder()
        zone = _finder.timezone_at(lat=lat, lng=lon)
    return zone if isinstance(zone, str) and zone else "UTC"


_ZONES: frozenset[str] | None = None


def zone_problem(zone: str) -> str | None:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if zone not in _ZONES:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"not an IANA time zone: {zone!r}"
    return None


@dataclass(frozen=True)
class Number:
    """A finite JSON number (never a boolean) within bounds."""

    minimum: float
    maximum: float
    required: bool = True
    description: str = ""

    def read(self, data: dict[str, Any], name: str, where: str = "") -> float | None:
        value = data.get(name)
        if value is None:
            if self.required:
                raise invalid(where + name, "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise invalid(where + name, "must be a number")
        if not self.minimum <= value <= self.maximum:
            raise invalid(where + name, f"must be between {self.minimum} and {self.maximum}")
        return float(value)

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number", "minimum": self.minimum, "maximum": self.maximum}
        if self.description:
            schema["description"] = self.description
        return schema


STORE = Body(
    "Store",
    {
        "program": Text(max_len=64, one_of="programs", description="a program of GET /v1/programs (another: 404)"),
        "name": Text(max_len=NAME_MAX),
        "lat": Number(-GEO_MAX_LAT, GEO_MAX_LAT, description="latitude, degrees (the band a geo index holds)"),
        "lon": Number(-180.0, 180.0, description="longitude, degrees"),
        "address": Text(required=False, max_len=ADDRESS_MAX),
        "timezone": Text(
            required=False,
            max_len=ZONE_MAX,
            description="an IANA time zone, e.g. Europe/Moscow; by default the zone at the coordinates",
        ),
    },
)


def _services(request: Request) -> Any:
    return request.app.state.services


def store_json(loc: StoreLocation, distance_m: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = asdict(loc)
    if distance_m is not None:
        body["distance_m"] = round(distance_m, 1)
    return body


async def _location(location_id: str, data: dict[str, Any], programs: Mapping[str, Any]) -> StoreLocation:
    STORE.refuse_unknown(data)
    program = STORE.value(data, "program")
    if program not in programs:
        raise ApiError(404, "unknown_program", f"program {program!r} does not exist")
    fields = {name: STORE.value(data, name) for name in ("name", "lat", "lon", "address", "timezone")}
    zone = fields["timezone"]
    if zone is not None:
        problem = zone_problem(zone)
        if problem is not None:
            raise invalid("timezone", problem)
    else:
        zone = await anyio.to_thread.run_sync(derived_zone, fields["lat"], fields["lon"])
    return StoreLocation(
        id=location_id,
        program=program,
        name=fields["name"],
        lat=fields["lat"],
        lon=fields["lon"],
        address=fields["address"] or "",
        timezone=zone,
    )


def _path_id(request: Request) -> str:
    location_id = request.path_params["id"]
    if not ID_RE.fullmatch(location_id):
        raise ApiError(400, "invalid_path", "id: 1 to 64 of A-Z a-z 0-9 . _ -")
    return location_id


async def put_store(request: Request) -> Response:
    require_role(request, *ROLES)
    location_id = _path_id(request)
    services = _services(request)
    loc = await _location(location_id, await read_json_object(request), services.programs)
    created = await services.store.put_store_location(loc)
    return JSONResponse(store_json(loc), status_code=201 if created else 200)


async def delete_store(request: Request) -> Response:
    require_role(request, *ROLES)
    location_id = _path_id(request)
    if not await _services(request).store.delete_store_location(location_id):
        raise ApiError(404, "unknown_store", "no such store")
    return JSONResponse({"deleted": location_id})


def _query_float(request: Request, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name}: not a number") from None
    if not math.isfinite(value):
        raise ApiError(400, "invalid_query", f"{name}: not a number")
    return value


async def list_stores(request: Request) -> Response:
    require_role(request, *ROLES)
    store = _services(request).store
    query = request.query_params
    program = query.get("program") or None
    near = query.get("near")
    radius_text = query.get("radius_m")
    if near is None:
        if radius_text is not None:
            raise ApiError(400, "invalid_query", "radius_m: only with near")
        return JSONResponse({"stores": [store_json(loc) for loc in await store.list_store_locations(program)]})
    parts = near.split(",")
    if len(parts) != 2:
        raise ApiError(400, "invalid_query", "near: lat,lon")
    lat, lon = (_query_float(request, "near", part.strip()) for part in parts)
    try:
        check_geo_point(lat, lon)
    except InvalidStoreLocation as exc:
        raise ApiError(400, "invalid_query", f"near: {exc}") from None
    radius = RADIUS_DEFAULT_M if radius_text is None else _query_float(request, "radius_m", radius_text)
    if not 0 < radius <= RADIUS_MAX_M:
        raise ApiError(400, "invalid_query", f"radius_m: above 0, at most {RADIUS_MAX_M}")
    found = await store.store_locations_near(lat, lon, radius, program=program, limit=NEAR_LIMIT)
    return JSONResponse({"stores": [store_json(loc, distance) for loc, distance in found]})


# -- import -----------------------------------------------------------------------------------


class _Rows:
    """Import rows checked one by one; every problem kept with its line."""

    def __init__(self, programs: Mapping[str, Any]) -> None:
        self.programs = programs
        self.errors: list[dict[str, Any]] = []
        self.locations: list[StoreLocation] = []
        self.seen: dict[str, int] = {}

    def fail(self, line: int, reason: str) -> None:
        self.errors.append({"line": line, "reason": reason})

    def add(self, line: int, raw: Mapping[str, Any]) -> None:
        problems: list[str] = []

        def text(name: str, max_len: int, required: bool) -> str:
            value = raw.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if required:
                    problems.append(f"{name}: required")
                return ""
            if not isinstance(value, str):
                problems.append(f"{name}: must be a string")
                return ""
            value = value.strip()
            if len(value) > max_len:
                problems.append(f"{name}: at most {max_len} characters")
            elif (problem := text_problem(value, multiline=False)) is not None:
                problems.append(f"{name}: {problem}")
            return value

        def number(name: str) -> float | None:
            value = raw.get(name)
            if isinstance(value, str):
                try:
                    value = float(value.strip()) if value.strip() else None
                except ValueError:
                    problems.append(f"{name}: not a number")
                    return None
            if value is None:
                problems.append(f"{name}: required")
                return None
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"{name}: not a number")
                return None
            return float(value)

        location_id = text("id", 64, True)
        if location_id and not ID_RE.fullmatch(location_id):
            problems.append("id: 1 to 64 of A-Z a-z 0-9 . _ -")
        program = text("program", 64, True)
        if program and program not in self.programs:
            problems.append(f"program: unknown program {program!r}")
        name = text("name", NAME_MAX, True)
        lat, lon = number("lat"), number("lon")
        if lat is not None and not -GEO_MAX_LAT <= lat <= GEO_MAX_LAT:
            problems.append(f"lat: must be between {-GEO_MAX_LAT} and {GEO_MAX_LAT}")
        if lon is not None and not -180 <= lon <= 180:
            problems.append("lon: must be between -180 and 180")
        address = text("address", ADDRESS_MAX, False)
        zone = text("timezone", ZONE_MAX, False)
        if zone and (problem := zone_problem(zone)) is not None:
            problems.append(f"timezone: {problem}")
        if location_id in self.seen:
            problems.append(f"id: {location_id!r} twice in the file (first on line {self.seen[location_id]})")
        elif location_id:
            self.seen[location_id] = line
        if problems:
            self.fail(line, "; ".join(problems))
            return
        assert lat is not None and lon is not None
        self.locations.append(
            StoreLocation(location_id, program, name, lat, lon, address, zone or derived_zone(lat, lon))
        )


def _csv_rows(raw: bytes, rows: _Rows) -> None:
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        rows.fail(0, f"not UTF-8: {exc.reason} at byte {exc.start}")
        return
    lines = content.splitlines()
    if not lines or not lines[0].strip():
        rows.fail(1, "no header row")
        return
    header_line = lines[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
        missing = [name for name in CSV_REQUIRED if name not in header]
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            reason = []
            if missing:
                reason.append("missing column " + ", ".join(missing))
            if unknown:
                reason.append("unknown column " + ", ".join(unknown))
            if len(set(header)) != len(header):
                reason.append("a column twice")
            rows.fail(1, "; ".join(reason))
            return
        count = 0
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            count += 1
            if count > IMPORT_MAX_ROWS:
                rows.fail(line, f"more than {IMPORT_MAX_ROWS} rows")
                return
            if len(values) != len(header):
                rows.fail(line, f"{len(values)} values, the header has {len(header)} columns")
                continue
            rows.add(line, dict(zip(header, values, strict=True)))
    except csv.Error as exc:
        rows.fail(reader.line_num, f"malformed CSV: {exc}")
        return
    if count == 0:
        rows.fail(1, "no rows after the header")


def _geojson_rows(raw: bytes, rows: _Rows) -> None:
    data = parse_json(raw)
    if (
        not isinstance(data, dict)
        or data.get("type") != "FeatureCollection"
        or not isinstance(data.get("features"), list)
    ):
        rows.fail(0, "not a GeoJSON FeatureCollection")
        return
    features = data["features"]
    if not features:
        rows.fail(0, "no features")
        return
    if len(features) > IMPORT_MAX_ROWS:
        rows.fail(IMPORT_MAX_ROWS + 1, f"more than {IMPORT_MAX_ROWS} features")
        return
    for number, feature in enumerate(features, start=1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            rows.fail(number, "not a Feature")
            continue
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            rows.fail(number, "geometry: must be a Point")
            continue
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list) or len(coordinates) not in (2, 3):
            rows.fail(number, "geometry: coordinates must be [lon, lat]")
            continue
        if not isinstance(properties, dict):
            rows.fail(number, "properties: must be an object")
            continue
        extra = sorted(set(properties) - {"id", "program", "name", "address", "timezone"})
        if extra:
            rows.fail(number, f"properties: unknown field {extra[0]}")
            continue
        rows.add(number, {**properties, "lon": coordinates[0], "lat": coordinates[1]})


async def import_stores(request: Request) -> Response:
    require_role(request, *ROLES)
    services = _services(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("text/csv", "application/geo+json", "application/json"):
        raise ApiError(
            415, "unsupported_media_type", "Content-Type must be text/csv, application/geo+json or application/json"
        )
    raw = await read_body(request, IMPORT_MAX_BYTES)
    rows = _Rows(services.programs)
    # up to IMPORT_MAX_ROWS zone look-ups: in a worker thread, so the event loop keeps serving
    parse = _csv_rows if media_type == "text/csv" else _geojson_rows
    await anyio.to_thread.run_sync(parse, raw, rows)
    if rows.errors:
        return JSONResponse(
            {
                "error": {"code": "invalid_rows", "message": f"{len(rows.errors)} bad rows; nothing imported"},
                "errors": rows.errors,
            },
            status_code=400,
        )
    await services.store.put_store_locations(rows.locations)
    return JSONResponse({"imported": len(rows.locations)})
