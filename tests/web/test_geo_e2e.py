"""Geo end to end, the service as a real process pushing to a fake APNs, on both stores: stores and
campaigns over the API, a ledger event lifting a card into a campaign, a campaign edit reaching
exactly the affected passes, schedules with no request, and messages to holders."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import LiveServer
from tests.web.iphone import read_pass_json
from tests.web.test_push_e2e import push_env, register, token, wait_for

GEO_ENV = {"WALLET_GEO_SCHEDULE_TICK_SECONDS": "0.2", "WALLET_GEO_BATCH_SIZE": "3"}


def put_stores(server: LiveServer, count: int = 12) -> None:
    marketing = server.api("marketing")
    for i in range(count):
        body = {"program": "coffee", "name": f"Кофе {i}", "lat": 55.70 + i / 100, "lon": 37.60}
        response = marketing.put(f"/v1/stores/st{i:02d}", json=body)
        assert response.status_code in (200, 201), response.text


def create_campaign(server: LiveServer, **fields) -> dict:
    body = {
        "program": "coffee",
        "name": "nearby",
        "text": "{store}: у вас {balance} баллов",
        "stores": None,
        "when": {"min_balance": 500},
        "max_per_day": 1,
        "radius_m": 100,
        **fields,
    }
    response = server.api("marketing").post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def pass_json(server: LiveServer, issued: dict) -> dict:
    return read_pass_json(server.client().get(issued["links"]["apple"]).content)


def back(pj: dict, key: str) -> dict | None:
    return next((f for f in pj["storeCard"]["backFields"] if f["key"] == key), None)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def settle(apns: ThreadedApns, seconds: float = 1.5) -> Counter:
    """The pushes so far, once nothing more arrives for a while."""
    counts = Counter(apns.tokens())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = Counter(apns.tokens())
        if now == counts:
            return now
        counts = now
    return counts


def test_ledger_event_lifts_a_card_into_a_campaign(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns, **GEO_ENV))
    put_stores(server)
    create_campaign(server, announce="Неделя кофе: двойные баллы")
    issued = server.issue("geo-" + uuid.uuid4().hex[:8])
    device_token = token()
    register(server, issued, device_token)
    assert "locations" not in pass_json(server, issued)  # below min_balance: no campaign stores
    assert settle(apns)[device_token] == 0

    answer = server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 600}])
    assert answer.json()["accepted"]
    wait_for(lambda: apns.tokens().count(device_token) >= 1)
    pj = pass_json(server, issued)
    locations = pj["locations"]
    assert 1 <= len(locations) <= 10
    assert all(loc["relevantText"].endswith(": у вас 600 баллов") for loc in locations)
    assert locations[0]["relevantText"].startswith("Кофе ")
    news = back(pj, "news")
    assert news is not None and news["value"] == "Неделя кофе: двойные баллы" and news["changeMessage"] == "%@"
    assert settle(apns)[device_token] == 1  # pushed once

    server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 2, "balance": 700}])
    wait_for(lambda: apns.tokens().count(device_token) >= 2)
    again = pass_json(server, issued)
    assert back(again, "news") == news  # the announce is shown once: its value does not change again
    assert again["locations"][0]["relevantText"].endswith("700 баллов")


def test_campaign_edit_changes_exactly_the_affected_passes(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns, **GEO_ENV))
    put_stores(server, 4)
    rich = [server.issue(f"rich-{i}-" + uuid.uuid4().hex[:6]) for i in range(4)]
    poor = [server.issue(f"poor-{i}-" + uuid.uuid4().hex[:6]) for i in range(3)]
    events = [{"id": uuid.uuid4().hex, "card": c["card"], "version": 1, "balance": 900} for c in rich]
    assert len(server.post_ledger(events).json()["accepted"]) == 4
    tokens = {c["card"]: token() for c in rich + poor}
    for c in rich + poor:
        register(server, c, tokens[c["card"]])
    settle(apns)
    apns.run(apns.server.reset)
    poor_before = {c["card"]: server.client().get(c["links"]["apple"]).headers["ETag"] for c in poor}

    made = create_campaign(server)
    wait_for(lambda: set(apns.tokens()) >= {tokens[c["card"]] for c in rich})
    counts = settle(apns)
    assert counts == Counter({tokens[c["card"]]: 1 for c in rich})  # the poor cards got no push

    edited = server.api("marketing").patch(f"/v1/campaigns/{made['id']}", json={"text": "{store} рядом"})
    assert edited.status_code == 200, edited.text
    wait_for(lambda: len(apns.tokens()) >= 8)
    counts = settle(apns)
    assert counts == Counter({tokens[c["card"]]: 2 for c in rich})
    assert pass_json(server, rich[0])["locations"][0]["relevantText"].endswith(" рядом")
    for c in poor:  # untouched: same bytes, no locations
        response = server.client().get(c["links"]["apple"])
        assert response.headers["ETag"] == poor_before[c["card"]]
        assert "locations" not in read_pass_json(response.content)

    assert server.api("marketing").delete(f"/v1/campaigns/{made['id']}").status_code in (200, 204)
    wait_for(lambda: len(apns.tokens()) >= 12)
    assert "locations" not in pass_json(server, rich[0])


def test_schedule_start_and_end_without_a_request(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns, **GEO_ENV))
    put_stores(server, 3)
    issued = server.issue("sched-" + uuid.uuid4().hex[:8])
    server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 900}])
    device_token = token()
    register(server, issued, device_token)
    settle(apns)
    start = time.time() + 3
    create_campaign(server, starts_at=rfc3339(start), ends_at=rfc3339(start + 3))
    assert "locations" not in pass_json(server, issued)
    wait_for(lambda: "locations" in pass_json(server, issued), timeout=20)
    assert time.time() >= start
    wait_for(lambda: apns.tokens().count(device_token) >= 1)
    wait_for(lambda: "locations" not in pass_json(server, issued), timeout=20)
    assert time.time() >= start + 3
    wait_for(lambda: apns.tokens().count(device_token) >= 2)
    assert settle(apns)[device_token] == 2


def test_message_to_a_segment_lands_in_a_back_field(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns, **GEO_ENV))
    gold = server.issue("msg-gold-" + uuid.uuid4().hex[:6])
    base = server.issue("msg-base-" + uuid.uuid4().hex[:6])
    server.post_ledger([{"id": uuid.uuid4().hex, "card": gold["card"], "version": 1, "balance": 15000, "tier": "gold"}])
    gold_token, base_token = token(), token()
    register(server, gold, gold_token)
    register(server, base, base_token)
    settle(apns)
    response = server.api("marketing").post(
        "/v1/messages",
        json={"program": "coffee", "text": "Только для золотых: десерт в подарок", "when": {"tiers": ["gold"]}},
    )
    assert response.status_code == 202, response.text
    wait_for(lambda: apns.tokens().count(gold_token) >= 1)
    news = back(pass_json(server, gold), "news")
    assert news is not None and news["value"] == "Только для золотых: десерт в подарок"
    assert news["changeMessage"] == "%@"
    assert back(pass_json(server, base), "news") is None
    counts = settle(apns)
    assert counts[gold_token] == 1 and counts[base_token] == 0
    job = server.api("marketing").get(f"/v1/messages/{response.json()['id']}").json()
    assert job["state"] == "done"


def test_new_card_shows_the_campaign_stores_nearest_its_enrolment_store(live_server: LiveServer) -> None:
    server = live_server
    put_stores(server)
    create_campaign(server, when={"min_balance": 0}, text="{store} рядом")
    time.sleep(0.5)
    issued = server.issue("home-" + uuid.uuid4().hex[:8], store="st11")
    locations = pass_json(server, issued)["locations"]
    assert locations[0]["relevantText"] == "Кофе 11 рядом"  # the enrolment store is nearest
    assert len(locations) == 10 and "Кофе 0 рядом" not in {loc["relevantText"] for loc in locations}
    unknown = server.api().post(
        "/v1/cards",
        json={"program": "coffee", "account": "home-x", "member": {"name": "A"}, "store": "nowhere"},
    )
    assert unknown.status_code == 400 and "store" in unknown.text
