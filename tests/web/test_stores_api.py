"""Stores over HTTP (web/stores.py) on both stores: CRUD, near queries, derived time zones, imports
(CSV with `;` and `,`, GeoJSON) all or nothing with every bad row named, roles, and the document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from geo.distance import haversine_m
from tests.web.conftest import LiveServer
from tests.web.test_openapi import check_answer

MOSCOW = (55.7558, 37.6173)
CENTRE = (55.7500, 37.6200)


def store(**fields: Any) -> dict[str, Any]:
    return {"program": "coffee", "name": "Coffee Point", "lat": MOSCOW[0], "lon": MOSCOW[1], **fields}


class Checked:
    """A marketing client whose every answer is held to /openapi.json."""

    def __init__(self, server: LiveServer, role: str = "marketing") -> None:
        self.http = server.api(role)
        self.document = server.client().get("/openapi.json").json()

    def __call__(self, method: str, template: str, url: str, status: int, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        check_answer(self.document, method, template, response)
        return response


ONE = "/v1/stores/{id}"
LIST = "/v1/stores"
IMPORT = "/v1/stores/import"


@pytest.fixture
def api(live_server: LiveServer) -> Checked:
    return Checked(live_server)


def test_crud_with_a_derived_time_zone(api: Checked):
    created = api("PUT", ONE, "/v1/stores/moscow-1", 201, json=store(address="Tverskaya 1")).json()
    assert created == {
        "id": "moscow-1",
        "program": "coffee",
        "name": "Coffee Point",
        "lat": MOSCOW[0],
        "lon": MOSCOW[1],
        "address": "Tverskaya 1",
        "timezone": "Europe/Moscow",
    }
    replaced = api("PUT", ONE, "/v1/stores/moscow-1", 200, json=store(name="Moved", lat=59.93, lon=30.31)).json()
    assert replaced["name"] == "Moved" and replaced["address"] == "" and replaced["timezone"] == "Europe/Moscow"
    api("PUT", ONE, "/v1/stores/tokyo", 201, json=store(lat=35.68, lon=139.69))
    given = api("PUT", ONE, "/v1/stores/given", 201, json=store(timezone="Asia/Yekaterinburg")).json()
    assert given["timezone"] == "Asia/Yekaterinburg"
    listed = api("GET", LIST, "/v1/stores", 200).json()["stores"]
    assert [s["id"] for s in listed] == ["given", "moscow-1", "tokyo"]
    assert next(s for s in listed if s["id"] == "tokyo")["timezone"] == "Asia/Tokyo"
    assert api("GET", LIST, "/v1/stores", 200, params={"program": "tea"}).json() == {"stores": []}
    assert len(api("GET", LIST, "/v1/stores", 200, params={"program": "coffee"}).json()["stores"]) == 3
    assert api("DELETE", ONE, "/v1/stores/tokyo", 200).json() == {"deleted": "tokyo"}
    api("DELETE", ONE, "/v1/stores/tokyo", 404)
    assert [s["id"] for s in api("GET", LIST, "/v1/stores", 200).json()["stores"]] == ["given", "moscow-1"]


def test_near_is_nearest_first_with_distances_within_the_radius(api: Checked):
    points = {"a": (55.7510, 37.6200), "b": (55.7600, 37.6200), "c": (55.7700, 37.6300), "far": (59.93, 30.31)}
    for name, (lat, lon) in points.items():
        api("PUT", ONE, f"/v1/stores/{name}", 201, json=store(lat=lat, lon=lon))
    near = f"{CENTRE[0]},{CENTRE[1]}"
    found = api("GET", LIST, "/v1/stores", 200, params={"near": near}).json()["stores"]
    assert [s["id"] for s in found] == ["a", "b", "c"]
    for entry in found:
        expected = haversine_m(*CENTRE, *points[entry["id"]])
        assert entry["distance_m"] == pytest.approx(expected, abs=0.1)
    small = api("GET", LIST, "/v1/stores", 200, params={"near": near, "radius_m": "1500"}).json()["stores"]
    assert [s["id"] for s in small] == ["a", "b"]
    wide = api("GET", LIST, "/v1/stores", 200, params={"near": near, "radius_m": "100000"}).json()["stores"]
    assert [s["id"] for s in wide] == ["a", "b", "c"]
    for bad in ({"near": "55.75"}, {"near": "x,37"}, {"near": "95,37"}, {"near": "nan,1"}):
        api("GET", LIST, "/v1/stores", 400, params=bad)
    for radius in ("0", "-5", "100001", "inf", "many"):
        api("GET", LIST, "/v1/stores", 400, params={"near": near, "radius_m": radius})
    api("GET", LIST, "/v1/stores", 400, params={"radius_m": "10"})


BAD_BODIES = [
    (store(program="tea"), 404, "unknown_program"),
    (store(lat=91), 400, "invalid_field"),
    (store(lat=-86), 400, "invalid_field"),
    (store(lon=180.5), 400, "invalid_field"),
    (store(lat="55.7"), 400, "invalid_field"),
    (store(lat=True), 400, "invalid_field"),
    (store(timezone="Mars/Olympus"), 400, "invalid_field"),
    (store(timezone="../etc"), 400, "invalid_field"),
    (store(name=""), 400, "invalid_field"),
    (store(name="x" * 101), 400, "invalid_field"),
    (store(extra=1), 400, "invalid_field"),
    ({"program": "coffee", "name": "x", "lat": 1}, 400, "invalid_field"),
]


def test_bad_inputs_are_refused_and_nothing_is_stored(api: Checked):
    for body, status, code in BAD_BODIES:
        answer = api("PUT", ONE, "/v1/stores/s1", status, json=body)
        assert answer.json()["error"]["code"] == code, body
    api("PUT", ONE, "/v1/stores/s1", 400, content=b'{"lat": NaN}', headers={"Content-Type": "application/json"})
    api("PUT", ONE, "/v1/stores/bad%20id", 400, json=store())
    api("PUT", ONE, "/v1/stores/" + "x" * 65, 400, json=store())
    assert api("GET", LIST, "/v1/stores", 200).json() == {"stores": []}


def test_roles(live_server: LiveServer):
    document = Checked(live_server).document
    for role, status in (("issuer", 403), ("marketing", 201), ("admin", 200)):
        answer = live_server.api(role).put("/v1/stores/r1", json=store())
        assert answer.status_code == status, (role, answer.text)
        check_answer(document, "PUT", ONE, answer)
    for method, url in (("GET", "/v1/stores"), ("DELETE", "/v1/stores/r1"), ("POST", "/v1/stores/import")):
        assert live_server.api("issuer").request(method, url).status_code == 403
        assert live_server.client().request(method, url).status_code == 401
    assert live_server.api("admin").get("/v1/stores").status_code == 200


CSV_SEMICOLON = (
    "id;program;name;lat;lon;address;timezone\n"
    "m1;coffee;Кофе Поинт;55.7558;37.6173;Тверская, 1;\n"
    "m2;coffee;Second;55.76;37.62;;Europe/Moscow\n"
)
CSV_COMMA = 'id,name,program,lon,lat,address\nt1,Tokyo,coffee,139.69,35.68,"Chiyoda, 1"\nt2,Other,coffee,139.7,35.69,\n'


def test_import_csv_with_semicolons_and_commas_and_geojson(api: Checked):
    csv_type = {"Content-Type": "text/csv; charset=utf-8"}
    done = api("POST", IMPORT, "/v1/stores/import", 200, content=CSV_SEMICOLON.encode(), headers=csv_type)
    assert done.json() == {"imported": 2}
    done = api("POST", IMPORT, "/v1/stores/import", 200, content=CSV_COMMA.encode(), headers=csv_type)
    assert done.json() == {"imported": 2}
    features = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [30.31, 59.93]},
                "properties": {"id": "p1", "program": "coffee", "name": "Piter", "address": "Nevsky 1"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.6173, 55.7558]},
                "properties": {"id": "m1", "program": "coffee", "name": "Replaced", "timezone": "Europe/Samara"},
            },
        ],
    }
    for media_type in ("application/geo+json", "application/json"):
        done = api(
            "POST",
            IMPORT,
            "/v1/stores/import",
            200,
            content=json.dumps(features).encode(),
            headers={"Content-Type": media_type},
        )
        assert done.json() == {"imported": 2}
    stores = {s["id"]: s for s in api("GET", LIST, "/v1/stores", 200).json()["stores"]}
    assert sorted(stores) == ["m1", "m2", "p1", "t1", "t2"]
    assert stores["m1"]["name"] == "Replaced" and stores["m1"]["timezone"] == "Europe/Samara"
    assert stores["m2"]["timezone"] == "Europe/Moscow"
    assert stores["t1"] == {
        "id": "t1",
        "program": "coffee",
        "name": "Tokyo",
        "lat": 35.68,
        "lon": 139.69,
        "address": "Chiyoda, 1",
        "timezone": "Asia/Tokyo",
    }
    assert stores["p1"]["address"] == "Nevsky 1" and stores["p1"]["timezone"] == "Europe/Moscow"


BAD_CSV = (
    "id;program;name;lat;lon;timezone\n"
    "ok1;coffee;Fine;55.75;37.61;\n"
    "bad1;coffee;Lat;91;37.61;\n"
    "bad2;tea;Program;55.75;37.61;\n"
    "ok1;coffee;Twice;55.75;37.61;\n"
    "bad3;coffee;Zone;55.75;37.61;Mars/Olympus\n"
    "bad4;coffee;Lon;55.75;abc;\n"
    "bad5;coffee\n"
)


def test_import_reports_every_bad_row_with_its_line_and_stores_nothing(api: Checked):
    csv_type = {"Content-Type": "text/csv"}
    answer = api("POST", IMPORT, "/v1/stores/import", 400, content=BAD_CSV.encode(), headers=csv_type).json()
    assert answer["error"]["code"] == "invalid_rows"
    lines = {e["line"]: e["reason"] for e in answer["errors"]}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8]
    assert "lat" in lines[3]
    assert "unknown program" in lines[4]
    assert "twice" in lines[5] and "line 2" in lines[5]
    assert "IANA" in lines[6]
    assert "lon" in lines[7]
    assert "values" in lines[8]
    missing = "id,program,name,lat\nx,coffee,X,55\n"
    answer = api("POST", IMPORT, "/v1/stores/import", 400, content=missing.encode(), headers=csv_type).json()
    assert answer["errors"] == [{"line": 1, "reason": "missing column lon"}]
    api("POST", IMPORT, "/v1/stores/import", 400, content=b"\xff\xfe;;", headers=csv_type)
    api("POST", IMPORT, "/v1/stores/import", 400, content=b"id;program;name;lat;lon\n", headers=csv_type)

    geo = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.6, 55.7]},
                "properties": {"id": "g1", "program": "coffee", "name": "Fine"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.6, 95]},
                "properties": {"id": "g2", "program": "coffee", "name": "Lat"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                "properties": {"id": "g3", "program": "coffee", "name": "Line"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.6, 55.7]},
                "properties": {"id": "g1", "program": "tea", "name": "Twice", "timezone": "Nowhere/Else"},
            },
        ],
    }
    geo_type = {"Content-Type": "application/geo+json"}
    answer = api("POST", IMPORT, "/v1/stores/import", 400, content=json.dumps(geo).encode(), headers=geo_type).json()
    lines = {e["line"]: e["reason"] for e in answer["errors"]}
    assert sorted(lines) == [2, 3, 4]
    assert "lat" in lines[2] and "Point" in lines[3]
    assert "unknown program" in lines[4] and "twice" in lines[4] and "IANA" in lines[4]
    api("POST", IMPORT, "/v1/stores/import", 400, content=b'{"type": "Feature"}', headers=geo_type)
    api("POST", IMPORT, "/v1/stores/import", 400, content=b"{nope", headers=geo_type)
    api("POST", IMPORT, "/v1/stores/import", 415, content=b"id", headers={"Content-Type": "text/plain"})
    api("POST", IMPORT, "/v1/stores/import", 413, content=b"x" * (1024 * 1024 + 1), headers=csv_type)
    assert api("GET", LIST, "/v1/stores", 200).json() == {"stores": []}
