"""GET /v1/reports/* against the real service on both stores: passes added through PassKit (an iPhone
and an Android app) and Google Wallet callbacks, one removed, pushes through the dry run, geo pings
deciding alerts; each report counts exactly what happened, as JSON and CSV, and refuses bad queries
and other roles."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from push import clients
from service.reports import CAMPAIGN_COLUMNS, INSTALL_COLUMNS, PUSH_COLUMNS
from tests.fakes.google_keys import SigningChain
from tests.fakes.google_keys_server import FakeGoogleKeysServer
from tests.web.android import WALLETUNION, SimulatedAndroid
from tests.web.conftest import LiveServer
from tests.web.iphone import SimulatedIPhone
from tests.web.test_companion_app import LAT, LON, fcm_token, ping, put_campaign, put_store, zone_at_hour
from tests.web.test_openapi import check_answer
from tests.web.test_push_e2e import token, wait_for

ISSUER = "3388000000000000042"
TODAY = datetime.now(UTC).date()


def account() -> str:
    return "acc-" + uuid.uuid4().hex[:12]


@pytest.fixture
def chain() -> SigningChain:
    return SigningChain(now_ms=int(time.time() * 1000), issuer_id=ISSUER)


@pytest.fixture
def keys(chain: SigningChain) -> Iterator[FakeGoogleKeysServer]:
    with FakeGoogleKeysServer(chain.keys_json(), max_age=3600) as server:
        yield server


def report(server: LiveServer, name: str, role: str = "marketing", **params: str) -> httpx.Response:
    return server.api(role).get(f"/v1/reports/{name}", params=params)


def rows(server: LiveServer, name: str, **params: str) -> list[dict[str, Any]]:
    answer = report(server, name, **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["report"] == name
    return list(body["rows"])


def csv_rows(server: LiveServer, name: str, **params: str) -> list[dict[str, str]]:
    answer = report(server, name, format="csv", **params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith(f'attachment; filename="{name}-')
    parsed = list(csv.reader(io.StringIO(answer.text, newline="")))
    return [dict(zip(parsed[0], line, strict=True)) for line in parsed[1:]]


def as_text(row: dict[str, Any]) -> dict[str, str]:
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in row.items()}


def device(server: LiveServer) -> SimulatedIPhone:
    return SimulatedIPhone(server.client(), "dev" + uuid.uuid4().hex, token())


# -- installs and pushes --------------------------------------------------------------------------


def test_installs_and_pushes_are_what_happened(server_factory, chain: SigningChain, keys: FakeGoogleKeysServer):
    server = server_factory(WALLET_GOOGLE_KEYS_URL=keys.url, WALLET_GOOGLE_ISSUER_ID=ISSUER)
    plain = server.client()
    base = server.issue(account(), balance=100)
    gold = server.issue(account(), balance=15_000)
    assert server.api().get(f"/v1/cards/{gold['card']}").json()["tier"] == "gold"

    iphone, other_iphone = device(server), device(server)
    android = SimulatedAndroid.make(server.base, WALLETUNION)
    try:
        for phone in (iphone, other_iphone):
            phone.add_pass(plain.get(base["links"]["apple"]).content)
        iphone.add_pass(plain.get(gold["links"]["apple"]).content)
        android.download(base["links"]["apple"])
        assert iphone.register(base["serial"]).status_code == 201
        assert iphone.register(base["serial"]).status_code == 200  # again: not a new install
        assert other_iphone.register(base["serial"]).status_code == 201
        assert iphone.register(gold["serial"]).status_code == 201
        assert android.register(base["serial"]).status_code == 201
        assert other_iphone.unregister(base["serial"]).status_code == 200
        assert other_iphone.unregister(base["serial"]).status_code == 200  # nothing left: no removal
    finally:
        android.close()

    callbacks = [(gold, "save"), (base, "save"), (gold, "del")]
    for issued, kind in callbacks:
        body = chain.callback(event=kind, object_suffix=issued["serial"], nonce=str(uuid.uuid4()))
        answer = plain.post("/google/callbacks", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200 and answer.json()["result"] == "recorded", answer.text
    replay = chain.callback(event="save", object_suffix=base["serial"], nonce="n-" + uuid.uuid4().hex)
    for _ in range(2):  # Google's duplicate of one callback: one install
        plain.post("/google/callbacks", content=replay, headers={"Content-Type": "application/json"})

    # summed over the days (a run across midnight splits them)
    found: Counter[tuple[str, str, str, str]] = Counter()
    for row in rows(server, "installs"):
        assert row["program"] == "coffee"
        found[(row["platform"], row["client"], row["tier"], "installs")] += row["installs"]
        found[(row["platform"], row["client"], row["tier"], "removals")] += row["removals"]
    assert +found == Counter(
        {
            ("Apple Wallet", clients.APPLE, "base", "installs"): 2,
            ("Apple Wallet", clients.APPLE, "base", "removals"): 1,
            ("Apple Wallet", clients.APPLE, "gold", "installs"): 1,
            ("WalletUnion", clients.WALLETUNION_FCM, "base", "installs"): 1,
            ("Google Wallet", "google", "gold", "installs"): 1,
            ("Google Wallet", "google", "gold", "removals"): 1,
            ("Google Wallet", "google", "base", "installs"): 2,
        }
    )
    assert rows(server, "installs", program="coffee") == rows(server, "installs")
    # the CSV holds the same rows, columns in order
    assert csv_rows(server, "installs") == [as_text(r) for r in rows(server, "installs")]
    answer = report(server, "installs", format="csv")
    assert answer.text.splitlines()[0] == ",".join(INSTALL_COLUMNS)
    # before today: nothing
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    assert rows(server, "installs", **{"from": (TODAY - timedelta(days=30)).isoformat(), "to": yesterday}) == []

    # a ledger change pushes the base card's two devices and its Google object (all dry run)
    event = {"id": uuid.uuid4().hex, "card": base["card"], "version": 1, "balance": 300, "message": "+200"}
    assert server.post_ledger([event]).status_code == 202
    admin = server.api("admin")

    def journal() -> list[dict[str, Any]]:
        return list(admin.get("/v1/admin/pushes", params={"limit": 10_000}).json()["pushes"])

    wait_for(lambda: sum(1 for r in journal() if r["kind"] == "pass_update") >= 2)
    time.sleep(0.5)  # the Google object update, if any, goes alongside

    def expected() -> Counter[tuple[str, str]]:
        return Counter((str(r.get("channel", "")), str(r.get("outcome", ""))) for r in journal())

    def counted() -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for row in rows(server, "pushes"):
            total[(row["channel"], row["result"])] += row["count"]
        return total

    wait_for(lambda: counted() == expected(), timeout=10)
    assert counted()[("dry_run", "ok")] >= 2
    assert list(rows(server, "pushes")[0]) == list(PUSH_COLUMNS)
    assert csv_rows(server, "pushes") == [as_text(r) for r in rows(server, "pushes")]


# -- campaigns ------------------------------------------------------------------------------------


def app_device(server: LiveServer, issued: dict[str, Any]) -> None:
    answer = server.client(Authorization=f"Card {issued['card']}:{issued['app_token']}").post(
        "/v1/apps/devices", json={"platform": "android", "token": fcm_token()}
    )
    assert answer.status_code == 200, answer.text


def test_campaigns_count_qualifying_cards_carried_passes_and_alert_decisions(server_factory):
    server = server_factory(WALLET_GEO_SCHEDULE_TICK_SECONDS="0.2", WALLET_RATE_GEO_PING="1000/minute")
    noon, night = zone_at_hour(12), zone_at_hour(23)
    # 0.01° of latitude apart (about 1.1 km): each ping is near one store only
    for i, (store_id, zone) in enumerate((("day1", noon), ("day2", noon), ("day3", noon), ("night", night))):
        put_store(server, store_id, zone, lat=LAT + i * 0.01, lon=LON)
    put_store(server, "day4", noon, lat=LAT + 0.04, lon=LON)
    capped = put_campaign(server, ["day1", "day2"], name="Capped", max_per_day=1)
    cooled = put_campaign(server, ["day3"], name="Cooled", max_per_day=5)
    quiet = put_campaign(server, ["night"], name="=Quiet", when={"min_balance": 1000})
    # the same stores, text and radius as `capped`, for platinum cards only: none qualifies, and only
    # evaluation tells the passes' day1 and day2 locations apart from it
    nobody = put_campaign(server, ["day1", "day2"], name="Nobody", when={"tiers": ["platinum"]})
    temporary = put_campaign(server, ["day4"], name="Temporary")

    rich = server.issue(account(), balance=1200)
    poor = server.issue(account(), balance=100)
    for issued in (rich, poor):
        app_device(server, issued)

    def pinged(issued: dict[str, Any], store_index: int) -> str:
        answer = ping(server, issued, LAT + store_index * 0.01, LON)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["result"])

    assert [pinged(rich, i) for i in (0, 1, 2, 2, 3)] == ["sent", "capped", "sent", "cooldown", "quiet_hours"]
    assert [pinged(poor, i) for i in (2, 3, 4)] == ["sent", "none_near", "sent"]
    assert server.api("marketing").delete(f"/v1/campaigns/{temporary}").status_code == 200

    def row(campaign: str, name: str, qualifying: int, carrying: int, *alerts: int, **flags: bool) -> dict:
        sent, was_capped, cooldown, quiet_hours = alerts
        return {
            "campaign": campaign,
            "name": name,
            "program": "coffee",
            "active": flags.get("active", True),
            "deleted": flags.get("deleted", False),
            "qualifying": qualifying,
            "carrying": carrying,
            "alerts_sent": sent,
            "alerts_capped": was_capped,
            "alerts_cooldown": cooldown,
            "alerts_quiet_hours": quiet_hours,
        }

    want = [
        row(capped, "Capped", 2, 2, 1, 1, 0, 0),
        row(cooled, "Cooled", 2, 2, 2, 0, 1, 0),
        row(quiet, "=Quiet", 1, 1, 0, 0, 0, 1),
        row(nobody, "Nobody", 0, 0, 0, 0, 0, 0),
    ]
    gone = row(temporary, "", 0, 0, 1, 0, 0, 0, active=False, deleted=True)
    want = [*sorted(want, key=lambda r: r["campaign"]), gone]
    seen: list[Any] = []

    def settled() -> bool:
        # the campaign job takes the deleted campaign's store off the passes in the background
        answer = report(server, "campaigns", program="coffee").json()
        seen[:] = [answer]
        return bool(answer["rows"] == want)

    try:
        wait_for(settled, timeout=20, interval=0.2)
    except AssertionError:
        raise AssertionError(f"report {seen} != {want}") from None
    body = seen[0]
    assert (body["program"], body["cards"], body["complete"]) == ("coffee", 2, True)
    assert body["to"] == TODAY.isoformat() or body["to"] == (TODAY + timedelta(days=1)).isoformat()
    answer = report(server, "campaigns", program="coffee", format="csv")
    assert answer.headers["x-report-complete"] == "true"
    lines = csv_rows(server, "campaigns", program="coffee")
    assert list(lines[0]) == list(CAMPAIGN_COLUMNS)
    expected_csv = [as_text(r) for r in want]
    for line in expected_csv:
        if line["name"].startswith("="):
            line["name"] = "'" + line["name"]  # a spreadsheet must not run it
    assert lines == expected_csv
    long_ago = {"from": "2026-01-01", "to": "2026-01-31"}
    old = rows(server, "campaigns", program="coffee", **long_ago)
    # the alerts of a period before today: none, and the deleted campaign is not listed
    no_alerts = {"alerts_sent": 0, "alerts_capped": 0, "alerts_cooldown": 0, "alerts_quiet_hours": 0}
    assert old == [{**r, **no_alerts} for r in want[:4]]


# -- queries and roles ----------------------------------------------------------------------------

BAD_QUERIES = [
    ("installs", {"from": "2026-13-01"}, "invalid_query"),
    ("installs", {"from": "01.12.2026"}, "invalid_query"),
    ("installs", {"to": "2026-02-30"}, "invalid_query"),
    ("installs", {"from": "2026-12-02", "to": "2026-12-01"}, "invalid_query"),
    ("installs", {"from": "2024-01-01", "to": "2025-12-31"}, "invalid_query"),
    ("installs", {"format": "xml"}, "invalid_query"),
    ("installs", {"program": "no-such-program"}, "unknown_program"),
    ("pushes", {"program": "coffee"}, "invalid_query"),
    ("pushes", {"from": "yesterday"}, "invalid_query"),
    ("campaigns", {}, "invalid_query"),
    ("campaigns", {"program": "no-such-program"}, "unknown_program"),
    ("campaigns", {"program": "coffee", "to": "2026-1-1"}, "invalid_query"),
]


@pytest.mark.parametrize(("name", "params", "code"), BAD_QUERIES)
def test_a_bad_query_is_a_400_naming_it(shared_server: LiveServer, name: str, params: dict[str, str], code: str):
    answer = report(shared_server, name, **params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    check_answer(shared_server.client().get("/openapi.json").json(), "GET", f"/v1/reports/{name}", answer)


@pytest.mark.parametrize("name", ["installs", "pushes", "campaigns"])
def test_marketing_and_admin_read_reports_and_nobody_else(shared_server: LiveServer, name: str):
    document = shared_server.client().get("/openapi.json").json()
    params = {"program": "coffee"} if name == "campaigns" else {}
    for role in ("marketing", "admin"):
        for form in ("json", "csv"):
            answer = report(shared_server, name, role, format=form, **params)
            assert answer.status_code == 200, answer.text
            check_answer(document, "GET", f"/v1/reports/{name}", answer)
    issuer = report(shared_server, name, "issuer", **params)
    assert issuer.status_code == 403 and issuer.json()["error"]["code"] == "forbidden"
    anonymous = shared_server.client().get(f"/v1/reports/{name}", params=params)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    wrong = shared_server.client(Authorization="Bearer not-a-key").get(f"/v1/reports/{name}", params=params)
    assert wrong.status_code == 401
    assert document["paths"][f"/v1/reports/{name}"]["get"]["security"] == [{"bearer": ["marketing", "admin"]}]
    assert set(document["paths"][f"/v1/reports/{name}"]["get"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
    }


def test_the_default_period_is_the_last_30_days(shared_server: LiveServer):
    body = report(shared_server, "pushes").json()
    last = datetime.fromisoformat(body["to"]).date()
    assert last in (TODAY, TODAY + timedelta(days=1))  # a run across midnight
    assert datetime.fromisoformat(body["from"]).date() == last - timedelta(days=29)
    body = report(shared_server, "installs", **{"from": "2026-01-01", "to": "2026-01-31"}).json()
    assert (body["from"], body["to"], body["program"], body["rows"]) == ("2026-01-01", "2026-01-31", None, [])
