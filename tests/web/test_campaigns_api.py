"""Campaigns over HTTP (web/campaigns.py) on both stores: CRUD with generated ids, every refused body with
nothing stored, PATCH as a merge checked whole, the preview's counts per tier and sample texts, roles, and
every answer held to /openapi.json."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer
from tests.web.test_openapi import check_answer

LIST = "/v1/campaigns"
ONE = "/v1/campaigns/{id}"
PREVIEW = "/v1/campaigns/{id}/preview"
MOSCOW = (55.7558, 37.6173)


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


def campaign(**fields: Any) -> dict[str, Any]:
    return {
        "program": "coffee",
        "name": "Morning coffee",
        "text": "{name}, a coffee at {store}?",
        "stores": ["s1"],
        "when": {"min_balance": 100},
        "starts_at": "2026-01-01T09:00:00+03:00",
        "ends_at": "2099-01-01T00:00:00Z",
        **fields,
    }


@pytest.fixture
def api(live_server: LiveServer) -> Checked:
    checked = Checked(live_server)
    for store_id, name in (("s1", "Tverskaya"), ("s2", "Arbat")):
        store = {"program": "coffee", "name": name, "lat": MOSCOW[0], "lon": MOSCOW[1], "timezone": "Europe/Moscow"}
        live_server.api("marketing").put(f"/v1/stores/{store_id}", json=store).raise_for_status()
    return checked


def listed(api: Checked, **params: str) -> list[dict[str, Any]]:
    campaigns: list[dict[str, Any]] = api("GET", LIST, LIST, 200, params=params).json()["campaigns"]
    return campaigns


def test_crud_with_generated_ids(api: Checked):
    created = api("POST", LIST, LIST, 201, json=campaign(announce="New: morning coffee")).json()
    first = created.pop("id")
    assert len(first) >= 22 and all(c.isalnum() or c in "-_" for c in first)
    assert created == {
        "program": "coffee",
        "name": "Morning coffee",
        "text": "{name}, a coffee at {store}?",
        "stores": ["s1"],
        "when": {"min_balance": 100, "tiers": None, "expiring_within_days": None},
        "starts_at": "2026-01-01T06:00:00Z",
        "ends_at": "2099-01-01T00:00:00Z",
        "max_per_day": 1,
        "radius_m": 100,
        "announce": "New: morning coffee",
        "paused": False,
    }
    second = api("POST", LIST, LIST, 201, json=campaign(stores=None, when=None, max_per_day=3, radius_m=250)).json()
    assert second["id"] != first
    assert second["stores"] is None and second["max_per_day"] == 3 and second["radius_m"] == 250
    assert second["when"] == {"min_balance": None, "tiers": None, "expiring_within_days": None}
    got = api("GET", ONE, f"/v1/campaigns/{first}", 200).json()
    assert got == {**created, "id": first}
    assert [c["id"] for c in listed(api)] == sorted([first, second["id"]])
    assert len(listed(api, program="coffee")) == 2
    assert listed(api, program="tea") == []
    assert api("DELETE", ONE, f"/v1/campaigns/{first}", 200).json() == {"deleted": first}
    api("DELETE", ONE, f"/v1/campaigns/{first}", 404)
    assert api("GET", ONE, f"/v1/campaigns/{first}", 404).json()["error"]["code"] == "unknown_campaign"
    api("GET", ONE, "/v1/campaigns/bad.id", 400)
    api("POST", PREVIEW, f"/v1/campaigns/{first}/preview", 404)
    assert [c["id"] for c in listed(api)] == [second["id"]]


BAD = [
    (campaign(program="tea"), "unknown_program", "tea"),
    (campaign(text="Hi {nickname}"), "invalid_field", "{nickname}"),
    (campaign(text="{balance:>9} points"), "invalid_field", "text"),
    (campaign(text="one { brace"), "invalid_field", "text"),
    (campaign(text="x" * 70 + " {store}"), "invalid_field", "renders to up to"),
    (campaign(text="{name} {name} {name} {name} {name}"), "invalid_field", "renders to up to"),
    (campaign(text="line\nbreak"), "invalid_field", "text"),
    (campaign(text=""), "invalid_field", "text"),
    (campaign(text=None), "invalid_field", "text: required"),
    (campaign(name=None), "invalid_field", "name: required"),
    (campaign(announce="x" * 121), "invalid_field", "announce"),
    (campaign(announce="You have {balance}"), "invalid_field", "announce"),
    (campaign(announce="bidi \u202e"), "invalid_field", "announce"),
    (campaign(stores=["s1", "nope", "other"]), "invalid_field", "nope, other"),
    (campaign(stores=["s1", "s1"]), "invalid_field", "s1"),
    (campaign(stores=[]), "invalid_field", "stores"),
    (campaign(stores="s1"), "invalid_field", "stores"),
    (campaign(stores=[1]), "invalid_field", "stores"),
    (campaign(when={"min_balance": -1}), "invalid_field", "when.min_balance"),
    (campaign(when={"min_balance": 1.5}), "invalid_field", "when.min_balance"),
    (campaign(when={"min_balance": True}), "invalid_field", "when.min_balance"),
    (campaign(when={"tiers": []}), "invalid_field", "when.tiers"),
    (campaign(when={"tiers": ["gold", "diamond"]}), "invalid_field", "diamond"),
    (campaign(when={"tiers": "gold"}), "invalid_field", "when.tiers"),
    (campaign(when={"expiring_within_days": 3651}), "invalid_field", "when.expiring_within_days"),
    (campaign(when={"expiring_within_days": -1}), "invalid_field", "when.expiring_within_days"),
    (campaign(when={"balance": 1}), "invalid_field", "when.balance"),
    (campaign(when=[1]), "invalid_field", "when"),
    (campaign(starts_at="2026-01-01T09:00:00"), "invalid_field", "starts_at"),
    (campaign(starts_at="2026-01-01"), "invalid_field", "starts_at"),
    (campaign(starts_at="2026-02-30T09:00:00Z"), "invalid_field", "starts_at"),
    (campaign(ends_at=1767250800), "invalid_field", "ends_at"),
    (campaign(ends_at="2026-01-01T06:00:00Z"), "invalid_field", "ends_at: must be after"),
    (campaign(ends_at="2025-12-31T00:00:00Z"), "invalid_field", "ends_at: must be after"),
    (campaign(max_per_day=0), "invalid_field", "max_per_day"),
    (campaign(max_per_day=25), "invalid_field", "max_per_day"),
    (campaign(radius_m=9), "invalid_field", "radius_m"),
    (campaign(radius_m=5001), "invalid_field", "radius_m"),
    (campaign(radius_m="100"), "invalid_field", "radius_m"),
    (campaign(id="mine"), "invalid_field", "id"),
    (campaign(colour="red"), "invalid_field", "colour"),
]


def test_every_bad_body_is_refused_and_nothing_is_stored(api: Checked):
    for body, code, fragment in BAD:
        error = api("POST", LIST, LIST, 400, json=body).json()["error"]
        assert error["code"] == code, (body, error)
        assert fragment in error["message"], (body, error)
    api("POST", LIST, LIST, 400, content=b"[1]", headers={"Content-Type": "application/json"})
    api("POST", LIST, LIST, 400, content=b"{nope", headers={"Content-Type": "application/json"})
    assert listed(api) == []


def test_the_longest_tier_name_counts_and_a_text_within_80_is_taken(api: Checked):
    # "Платиновый" (10) is coffee's longest tier name: 70 + 10 fits, where 16 ({tier}'s own budget) would not
    api("POST", LIST, LIST, 201, json=campaign(text="x" * 70 + "{tier}"))
    api("POST", LIST, LIST, 400, json=campaign(text="x" * 71 + "{tier}"))
    api("POST", LIST, LIST, 201, json=campaign(text="{{literal}} {balance}"))
    assert len(listed(api)) == 2


def test_patch_merges_and_checks_the_result_whole(api: Checked):
    made = api("POST", LIST, LIST, 201, json=campaign(when={"min_balance": 100, "tiers": ["gold"]})).json()
    url = f"/v1/campaigns/{made['id']}"
    patched = api("PATCH", ONE, url, 200, json={"name": "Renamed", "when": {"expiring_within_days": 7}}).json()
    assert patched == {
        **made,
        "name": "Renamed",
        "when": {"min_balance": 100, "tiers": ["gold"], "expiring_within_days": 7},
    }
    cleared = api("PATCH", ONE, url, 200, json={"when": {"tiers": None}, "stores": None, "ends_at": None}).json()
    assert cleared["when"] == {"min_balance": 100, "tiers": None, "expiring_within_days": 7}
    assert cleared["stores"] is None and cleared["ends_at"] is None
    same_program = api("PATCH", ONE, url, 200, json={"program": "coffee", "radius_m": 500}).json()
    assert same_program["radius_m"] == 500 and same_program["program"] == "coffee"
    assert api("GET", ONE, url, 200).json() == same_program
    for patch, fragment in (
        ({"program": "tea"}, "program: may not change"),
        ({"ends_at": "2025-01-01T00:00:00Z"}, "ends_at: must be after"),
        ({"text": "x" * 75 + "{store}"}, "renders to up to"),
        ({"text": "{unknown}"}, "{unknown}"),
        ({"text": None}, "text: required"),
        ({"stores": ["ghost"]}, "ghost"),
        ({"when": {"tiers": ["diamond"]}}, "diamond"),
        ({"when": "gold"}, "when"),
        ({"id": "other"}, "id"),
        ({"colour": "red"}, "colour"),
        ({"max_per_day": 99}, "max_per_day"),
    ):
        error = api("PATCH", ONE, url, 400, json=patch).json()["error"]
        assert fragment in error["message"], (patch, error)
    assert api("GET", ONE, url, 200).json() == same_program
    api("PATCH", ONE, "/v1/campaigns/unknown", 404, json={"name": "x"})
    assert len(listed(api)) == 1


def issue_with_state(server: LiveServer, balance: int, tier: str, locale: str = "ru", **event: Any) -> str:
    card: str = server.issue("acc-" + uuid.uuid4().hex[:12], locale=locale)["card"]
    answer = server.post_ledger(
        [{"id": uuid.uuid4().hex, "card": card, "version": 1, "balance": balance, "tier": tier, **event}]
    )
    assert answer.json()["accepted"], answer.text
    return card


def test_preview_counts_cards_by_tier_with_sample_texts(api: Checked, live_server: LiveServer):
    soon = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    cards = {
        "poor": issue_with_state(live_server, 10, "base"),
        "base": issue_with_state(live_server, 500, "base", locale="en"),
        "gold": issue_with_state(live_server, 15_000, "gold", expiring={"points": 50, "date": soon}),
        "platinum": issue_with_state(live_server, 40_000, "platinum"),
    }
    made = api("POST", LIST, LIST, 201, json=campaign(text="{tier} {balance} at {store}", stores=["s2", "s1"])).json()
    preview = api("POST", PREVIEW, f"/v1/campaigns/{made['id']}/preview", 200).json()
    assert preview["qualifying"] == 3 and preview["active"] is True
    assert preview["by_tier"] == {"base": 1, "gold": 1, "platinum": 1}
    texts = {sample["card"]: sample["text"] for sample in preview["samples"]}
    assert texts == {
        cards["base"][-4:]: "Base 500 at Arbat",
        cards["gold"][-4:]: "Золотой 15000 at Arbat",
        cards["platinum"][-4:]: "Платиновый 40000 at Arbat",
    }
    later = campaign(
        stores=None,
        text="{balance} at {store}",
        when={"tiers": ["gold", "platinum"], "expiring_within_days": 5},
        starts_at="2098-01-01T00:00:00Z",
    )
    made = api("POST", LIST, LIST, 201, json=later).json()
    preview = api("POST", PREVIEW, f"/v1/campaigns/{made['id']}/preview", 200).json()
    # not running yet, and still who would qualify; with every store, the program's first (by id) is named
    assert preview == {
        "qualifying": 1,
        "by_tier": {"base": 0, "gold": 1, "platinum": 0},
        "samples": [{"card": cards["gold"][-4:], "text": "15000 at Tverskaya"}],
        "active": False,
    }


def test_roles(live_server: LiveServer):
    document = Checked(live_server).document
    for role, status in (("issuer", 403), ("marketing", 201), ("admin", 201)):
        answer = live_server.api(role).post(LIST, json=campaign(stores=None))
        assert answer.status_code == status, (role, answer.text)
        check_answer(document, "POST", LIST, answer)
    some = live_server.api("admin").get(LIST).json()["campaigns"][0]["id"]
    for method, url in (
        ("GET", LIST),
        ("GET", f"/v1/campaigns/{some}"),
        ("PATCH", f"/v1/campaigns/{some}"),
        ("DELETE", f"/v1/campaigns/{some}"),
        ("POST", f"/v1/campaigns/{some}/preview"),
        ("POST", LIST),
    ):
        body: dict[str, Any] | None = {} if method in ("PATCH", "POST") else None
        assert live_server.api("issuer").request(method, url, json=body).status_code == 403, (method, url)
        assert live_server.client().request(method, url, json=body).status_code == 401, (method, url)
    assert len(live_server.api("marketing").get(LIST).json()["campaigns"]) == 2
