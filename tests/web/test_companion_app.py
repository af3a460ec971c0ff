"""The companion app end to end: POST /v1/cards hands out the app token, the app registers its FCM
token and pings; the real service and its in-process worker send the alert through FcmChannel
(pyfcm) to the fake FCM, on both stores. Cap, cooldown, quiet hours (a store whose local time is
23:00, through an Etc/GMT zone chosen for the hour the test runs) and refused credentials."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cards.model import Card
from config.apps import load_app_settings
from config.settings import Settings, load_settings
from geo.area import coarsen
from passes.apple.pki import ensure_dev_pki
from push.channels.apns.sender import ApnsChannel
from push.channels.base import ANY
from push.channels.dryrun import DryRunChannel
from push.channels.fcm import FcmChannel
from push.clients import APPLE
from service.push import APP_ANDROID, APP_IOS, build_channels
from store.factory import open_store
from store.port import AlertRecord, AppToken
from tests.fakes.fcm_server import FakeFcmServer
from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import PASS_TYPE_ID, LiveServer
from tests.web.test_push_e2e import push_env, wait_for

# a store in central Moscow; 0.0005° of latitude is about 56 m
LAT, LON = 55.7558, 37.6173


def zone_at_hour(hour: int) -> str:
    """An IANA zone (fixed offset, Etc/GMT±N) whose local time is `hour`:xx right now."""
    offset = (hour - datetime.now(UTC).hour) % 24
    if offset > 14:  # Etc zones run from UTC-12 to UTC+14
        offset -= 24
    if offset == 0:
        return "Etc/GMT"
    # POSIX sign convention: Etc/GMT-3 is three hours ahead of UTC
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def fcm_token() -> str:
    return f"{uuid.uuid4().hex[:22]}:APA91b{uuid.uuid4().hex}{uuid.uuid4().hex}"


@pytest.fixture
def fcm() -> Iterator[FakeFcmServer]:
    with FakeFcmServer() as fake:
        yield fake


def app_env(fcm: FakeFcmServer, apns: ThreadedApns, tmp_path: Path, **extra: str) -> dict[str, str]:
    account = tmp_path / f"fcm-{uuid.uuid4().hex[:6]}.json"
    account.write_text(json.dumps(fcm.service_account("demo-project")))
    return push_env(apns, WALLET_FCM_SERVICE_ACCOUNT=str(account), WALLET_FCM_API_URL=fcm.url, **extra)


def stored(database_url: str, number: str) -> tuple[Card | None, list[AlertRecord], list[AppToken]]:
    """What the store holds for the card, read as another process would."""

    async def read() -> tuple[Card | None, list[AlertRecord], list[AppToken]]:
        store = await open_store(database_url)
        try:
            return await store.get_card(number), await store.alert_records(number), await store.app_tokens(number)
        finally:
            await store.close()

    return asyncio.run(read())


def put_store(server: LiveServer, store_id: str, zone: str, lat: float = LAT, lon: float = LON) -> None:
    body = {"program": "coffee", "name": f"Coffee {store_id}", "lat": lat, "lon": lon, "timezone": zone}
    response = server.api("marketing").put(f"/v1/stores/{store_id}", json=body)
    assert response.status_code in (200, 201), response.text


def put_campaign(server: LiveServer, stores: list[str], **fields: Any) -> str:
    body = {
        "program": "coffee",
        "name": "nearby",
        "text": "{store} is around the corner: {balance} points",
        "stores": stores,
        "max_per_day": 1,
        "radius_m": 200,
        **fields,
    }
    response = server.api("marketing").post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["id"]
    return campaign_id


def app_client(server: LiveServer, issued: dict[str, Any], token: str | None = None) -> Any:
    return server.client(Authorization=f"Card {issued['card']}:{token or issued['app_token']}")


def register_app(server: LiveServer, issued: dict[str, Any], platform: str = "android") -> str:
    token = fcm_token()
    response = app_client(server, issued).post("/v1/apps/devices", json={"platform": platform, "token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"platform": platform, "registered": True}
    return token


def ping(server: LiveServer, issued: dict[str, Any], lat: float, lon: float, token: str | None = None) -> Any:
    return app_client(server, issued, token).post("/v1/geo/ping", json={"lat": lat, "lon": lon})


def test_ping_inside_the_radius_sends_one_fcm_alert_then_capped_and_cooldown(
    server_factory, fcm: FakeFcmServer, apns: ThreadedApns, tmp_path: Path
) -> None:
    server = server_factory(**app_env(fcm, apns, tmp_path))
    put_store(server, "day", zone_at_hour(12))
    put_store(server, "day2", zone_at_hour(12), lat=LAT + 0.01)
    put_campaign(server, ["day"], max_per_day=1)
    other = put_campaign(server, ["day", "day2"], max_per_day=5, radius_m=150)
    issued = server.issue("acc-" + uuid.uuid4().hex[:12], balance=120)
    assert len(issued["app_token"]) >= 22  # at least 128 random bits, URL-safe base64
    card_state = server.api().get(f"/v1/cards/{issued['card']}").json()
    assert "app_token" not in card_state and issued["app_token"] not in json.dumps(card_state)
    token = register_app(server, issued)

    here = (LAT + 0.0004, LON)  # ~45 m from the store
    first = ping(server, issued, *here)
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "sent", "store": "day"}
    wait_for(lambda: len(fcm.requests_for(token)) == 1)
    [request] = fcm.requests_for(token)
    message = request.body["message"]
    assert message["notification"]["title"] == "Клуб Кофе Поинт"  # the program's name, in the card's locale
    assert message["notification"]["body"] == "Coffee day is around the corner: 120 points"
    assert message["data"]["store"] == "day"

    # Both campaigns cover the store (which one alerted depends on their random ids): that one is
    # capped (max_per_day 1) or the store is in its 24 h cooldown (the other, 5 a day)
    second = ping(server, issued, *here)
    assert second.status_code == 200 and second.json()["result"] in ("capped", "cooldown")
    assert second.json()["store"] == "day"

    # the area is the ~1 km cell, not the position
    card, records, tokens = stored(server_factory.database_url, issued["card"])
    assert card is not None and card.area == coarsen(*here) and card.area != here
    assert [r.store for r in records] == ["day"]
    assert [t.token for t in tokens] == [token]

    # a ping at the other store: a different store, so no cooldown; the other campaign is not capped
    there = ping(server, issued, LAT + 0.01, LON)
    assert there.json() == {"result": "sent", "store": "day2"}
    wait_for(lambda: len(fcm.requests_for(token)) == 2)
    _, records, _ = stored(server_factory.database_url, issued["card"])
    assert records[-1] == AlertRecord(records[-1].at, other, "day2")

    # far from every store: nothing near, and still exactly two alerts
    far = ping(server, issued, LAT + 1.0, LON)
    assert far.json() == {"result": "none_near", "store": None}
    time.sleep(0.5)
    assert len(fcm.requests_for(token)) == 2


def test_a_store_at_23_00_local_time_is_quiet_hours(
    server_factory, fcm: FakeFcmServer, apns: ThreadedApns, tmp_path: Path
) -> None:
    server = server_factory(**app_env(fcm, apns, tmp_path))
    put_store(server, "night", zone_at_hour(23))
    put_campaign(server, ["night"])
    issued = server.issue("acc-" + uuid.uuid4().hex[:12])
    token = register_app(server, issued)

    answer = ping(server, issued, LAT, LON)
    assert answer.status_code == 200 and answer.json() == {"result": "quiet_hours", "store": "night"}
    _, records, _ = stored(server_factory.database_url, issued["card"])
    assert records == []  # not counted against the cap: nothing was sent
    time.sleep(0.5)
    assert fcm.requests_for(token) == []


def test_wrong_credentials_are_401_and_nothing_is_stored(
    server_factory, fcm: FakeFcmServer, apns: ThreadedApns, tmp_path: Path
) -> None:
    server = server_factory(**app_env(fcm, apns, tmp_path, WALLET_RATE_GEO_PING="5/minute"))
    put_store(server, "day", zone_at_hour(12))
    put_campaign(server, ["day"])
    issued = server.issue("acc-" + uuid.uuid4().hex[:12])
    other = server.issue("acc-" + uuid.uuid4().hex[:12])

    wrong = [
        app_client(server, issued, "x" * len(issued["app_token"])),
        app_client(server, issued, other["app_token"]),  # another card's token
        server.client(Authorization=f"Card {issued['card']}"),
        server.client(Authorization=f"Card {issued['card']}:"),
        server.client(Authorization=f"Bearer {issued['app_token']}"),
        server.client(Authorization=f"Card 4000000000000002:{issued['app_token']}"),
        server.client(),
    ]
    for client in wrong:
        device = client.post("/v1/apps/devices", json={"platform": "android", "token": fcm_token()})
        assert device.status_code == 401, device.text
        assert device.json()["error"]["code"] == "unauthorized"
        answer = client.post("/v1/geo/ping", json={"lat": LAT, "lon": LON})
        assert answer.status_code == 401, answer.text
    card, records, tokens = stored(server_factory.database_url, issued["card"])
    assert card is not None and card.area is None and records == [] and tokens == []

    # right token, but no app install yet: nothing to alert, nothing stored
    answer = ping(server, issued, LAT, LON)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "no_app_device"
    token = register_app(server, issued)
    for body in ({"lat": 91, "lon": 0}, {"lat": "55.7", "lon": 37.6}, {"lat": LAT}, {"lat": LAT, "lon": LON, "x": 1}):
        bad = app_client(server, issued).post("/v1/geo/ping", json=body)
        assert bad.status_code == 400, (body, bad.text)
    bad_ios = app_client(server, issued).post("/v1/apps/devices", json={"platform": "ios", "token": fcm_token()})
    assert bad_ios.status_code == 400
    card, records, tokens = stored(server_factory.database_url, issued["card"])
    assert card is not None and card.area is None and records == [] and [t.token for t in tokens] == [token]

    # pings are limited per card (5 a minute here: the 409 and the 400s above counted), the other card is not held back
    limited = ping(server, issued, LAT, LON)
    assert limited.status_code == 429 and "retry-after" in limited.headers
    time.sleep(0.5)
    assert fcm.requests_for(token) == []
    assert ping(server, other, LAT, LON).status_code == 409


# -- wiring and settings (in process) -----------------------------------------------------------


def app_settings(certs: Path, **env: str) -> Settings:
    ensure_dev_pki(certs, PASS_TYPE_ID, "TESTTEAM01")
    base = {"WALLET_CERTS_DIR": str(certs), "WALLET_PASS_TYPE_ID": PASS_TYPE_ID, "WALLET_TEAM_ID": "TESTTEAM01"}
    return load_settings({**base, **env}, dotenv=None)


async def test_the_runner_routes_app_alerts_to_fcm_and_the_apps_apns_topic(tmp_path: Path, fcm: FakeFcmServer) -> None:
    account = tmp_path / "fcm.json"
    account.write_text(json.dumps(fcm.service_account("demo-project")))
    settings = app_settings(
        tmp_path,
        WALLET_PUSH_DRY_RUN="0",
        WALLET_FCM_SERVICE_ACCOUNT=str(account),
        WALLET_FCM_API_URL=fcm.url,
        WALLET_APP_APNS_TOPIC="com.example.loyalty",
    )
    channels = build_channels(settings)
    try:
        android, ios = channels.get(APP_ANDROID, ANY), channels.get(APP_IOS, ANY)
        assert isinstance(android, FcmChannel) and android.project_id == "demo-project"
        assert isinstance(ios, ApnsChannel) and ios.app_topic == "com.example.loyalty"
        assert ios is not channels.get(APPLE, PASS_TYPE_ID)
        assert (await android.send("tok-1", "t", "b")).ok  # to the fake, through WALLET_FCM_API_URL
    finally:
        await channels.aclose()

    bare = build_channels(app_settings(tmp_path, WALLET_PUSH_DRY_RUN="0"))
    try:
        assert bare.get(APP_ANDROID, ANY) is None and bare.get(APP_IOS, ANY) is None
    finally:
        await bare.aclose()
    dry = build_channels(app_settings(tmp_path, WALLET_FCM_SERVICE_ACCOUNT=str(account), WALLET_FCM_API_URL=fcm.url))
    assert isinstance(dry.get(APP_ANDROID, ANY), DryRunChannel) and isinstance(dry.get(APP_IOS, ANY), DryRunChannel)


def env_get(env: dict[str, str]) -> Callable[..., str]:
    def get(name: str, default: str = "") -> str:
        return env.get(name, default)

    return get


@pytest.mark.parametrize(
    "env, problem",
    [
        (
            {"WALLET_FCM_SERVICE_ACCOUNT": "/nonexistent/fcm.json"},
            "WALLET_FCM_SERVICE_ACCOUNT (/nonexistent/fcm.json) does not exist",
        ),
        ({"WALLET_FCM_API_URL": "ftp://fcm.example"}, "WALLET_FCM_API_URL must be"),
        ({"WALLET_FCM_API_URL": "https://fcm.example/v1/projects"}, "WALLET_FCM_API_URL must be"),
        ({"WALLET_ENV": "prod", "WALLET_FCM_API_URL": "http://127.0.0.1:9"}, "WALLET_FCM_API_URL must be an https URL"),
        ({"WALLET_APP_APNS_TOPIC": "not a bundle id"}, "WALLET_APP_APNS_TOPIC must be"),
    ],
)
def test_unusable_app_settings_are_problems(env: dict[str, str], problem: str) -> None:
    problems: list[str] = []
    load_app_settings(env_get(env), problems)
    assert any(p.startswith(problem) for p in problems), problems


def test_a_file_that_is_not_a_service_account_key_is_a_problem_that_never_quotes_it(tmp_path: Path) -> None:
    for content in (
        "not json",
        json.dumps({"type": "user"}),
        json.dumps({"type": "service_account", "secret": "s3cr3t"}),
    ):
        path = tmp_path / "fcm.json"
        path.write_text(content)
        problems: list[str] = []
        env = {"WALLET_FCM_SERVICE_ACCOUNT": str(path)}
        settings = load_app_settings(env_get(env), problems)
        assert settings.fcm_service_account is None and len(problems) == 1
        assert "s3cr3t" not in problems[0] and "not json" not in problems[0]
