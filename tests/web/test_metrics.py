"""GET /metrics with prometheus-client: the real service on both stores, read back with prometheus_client's
own parser; plus the registry and the request middleware in-process."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.web.conftest import LiveServer
from tests.web.test_push_e2e import register, token, wait_for
from web.metrics import CONTENT_TYPE, UNMATCHED, Metrics, MetricsMiddleware

OUTCOMES = ("accepted", "duplicate", "stale", "unknown", "invalid")


def scrape(server: LiveServer) -> dict[str, list[Sample]]:
    """Metric family name -> its samples, parsed as Prometheus would."""
    answer = server.client().get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    return {family.name: family.samples for family in text_string_to_metric_families(answer.text)}


def value(families: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in families.get(family, []) if s.name == sample and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else 0.0


def requests(families: dict[str, list[Sample]], route: str, method: str = "GET", status: str = "2xx") -> float:
    return value(
        families, "wallet_http_requests", "wallet_http_requests_total", route=route, method=method, status=status
    )


def test_metrics_move_with_requests_ledger_posts_and_pushes(server_factory) -> None:
    server = server_factory()
    before = scrape(server)
    # every ledger outcome is a series from the start, at 0
    for outcome in OUTCOMES:
        assert value(before, "wallet_ledger_events", "wallet_ledger_events_total", outcome=outcome) == 0.0

    issued = server.issue("metrics-" + uuid.uuid4().hex[:8])
    register(server, issued, token())
    card, event = issued["card"], uuid.uuid4().hex
    answer = server.post_ledger(
        [
            {"id": event, "card": card, "version": 2, "balance": 42},
            {"id": uuid.uuid4().hex, "card": card, "version": 1, "balance": 7},  # older than version 2
            {"id": uuid.uuid4().hex, "card": "4" * 16, "version": 1, "balance": 1},  # no such card
            {"id": uuid.uuid4().hex, "card": card, "version": "3", "balance": 1},  # a version is an integer
        ]
    ).json()
    assert [len(answer[o]) for o in OUTCOMES] == [1, 0, 1, 1, 1], answer
    assert server.post_ledger([{"id": event, "card": card, "version": 2, "balance": 42}]).json()["duplicate"]

    # 20 different card numbers in the path: one route label, the template, and no number anywhere
    api = server.api()
    numbers = [str(4_000_000_000_000_000 + i) for i in range(20)]
    for number in numbers:
        assert api.get(f"/v1/cards/{number}").status_code in (400, 404)
    assert api.get(f"/v1/cards/{card}").status_code == 200
    assert server.client().get(f"/no/such/route/{card}").status_code == 404

    # the in-process worker (dry run) pushes the change to the registered device
    wait_for(lambda: value(scrape(server), "wallet_pushes", "wallet_pushes_total", client="apple", result="ok") >= 1)
    wait_for(lambda: value(scrape(server), "wallet_outbox_pending", "wallet_outbox_pending") == 0.0)
    after = scrape(server)

    counted = {o: value(after, "wallet_ledger_events", "wallet_ledger_events_total", outcome=o) for o in OUTCOMES}
    assert counted == {"accepted": 1, "duplicate": 1, "stale": 1, "unknown": 1, "invalid": 1}
    assert requests(after, "/v1/ledger/events", "POST") == 2
    assert requests(after, "/v1/cards", "POST") >= 1
    assert requests(after, "/v1/cards/{card_number}") == 1
    assert requests(after, "/v1/cards/{card_number}", status="4xx") == 20
    assert requests(after, UNMATCHED, status="4xx") == 1
    assert requests(after, "/metrics") >= 2

    routes = {s.labels["route"] for s in after["wallet_http_requests"]}
    assert not [route for route in routes if card in route or any(n in route for n in numbers)], routes
    assert all(route == UNMATCHED or route.startswith("/") for route in routes)
    # a series per (route, method, status class) that was used, nothing per path
    assert len(after["wallet_http_requests"]) == len(
        {(s.labels["route"], s.labels["method"], s.labels["status"]) for s in after["wallet_http_requests"]}
    )

    # latency histograms: every bucket up to +Inf, cumulative, the count equal to the counter
    durations = after["wallet_http_request_duration_seconds"]
    labels = {"route": "/v1/cards/{card_number}", "method": "GET", "status": "4xx"}
    buckets = [s for s in durations if s.name.endswith("_bucket") and {**s.labels, "le": ""} == {**labels, "le": ""}]
    assert [s.labels["le"] for s in buckets][-1] == "+Inf" and len(buckets) >= 10
    assert [s.value for s in buckets] == sorted(s.value for s in buckets) and buckets[-1].value == 20
    assert value(after, "wallet_http_request_duration_seconds", "wallet_http_request_duration_seconds_count", **labels)
    assert (
        value(after, "wallet_http_request_duration_seconds", "wallet_http_request_duration_seconds_sum", **labels) > 0
    )

    # ledger -> push: the pass update's time from enqueue to delivery
    latency = after["wallet_push_latency_seconds"]
    assert value(after, "wallet_push_latency_seconds", "wallet_push_latency_seconds_count", kind="pass_update") >= 1
    assert [s for s in latency if s.name.endswith("_bucket") and s.labels == {"kind": "pass_update", "le": "+Inf"}]
    assert value(after, "wallet_push_events", "wallet_push_events_total", event="delivered") >= 1

    # the dev PKI's certificates, each with its days to expiry
    days = after["wallet_certificate_days_to_expiry"]
    assert days and all(s.labels["certificate"] and s.value > 0 for s in days)


def test_each_process_on_one_redis_exposes_its_own(server_factory, store_kind: str) -> None:
    if store_kind != "redis":
        pytest.skip("several web processes share a store on Redis")
    first, second = server_factory(), server_factory(WALLET_RUN_WORKER="0")
    seen = requests(scrape(second), "/healthz")  # its start-up probes (LiveServer.start)
    for _ in range(3):
        assert first.client().get("/healthz").status_code == 200
    assert requests(scrape(first), "/healthz") >= 3
    assert requests(scrape(second), "/healthz") == seen
    # the outbox is the store's: both show it; pushes only where a worker runs
    assert "wallet_outbox_pending" in scrape(second)
    assert "wallet_pushes" in scrape(first) and "wallet_pushes" not in scrape(second)


def test_a_standalone_worker_serves_its_own_push_metrics(server_factory, store_kind: str, tmp_path) -> None:
    if store_kind != "redis":
        pytest.skip("a standalone worker shares the store on Redis")
    from tests.web.conftest import free_port
    from tests.web.test_push_e2e import WorkerProcess

    server = server_factory(WALLET_RUN_WORKER="0")
    port = free_port()
    worker = WorkerProcess({**server.env, "WALLET_WORKER_METRICS_PORT": str(port)}, tmp_path / "worker.log")
    try:
        issued = server.issue("metrics-worker-" + uuid.uuid4().hex[:8])
        register(server, issued, token())
        posted = server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 3}])
        assert posted.json()["accepted"]

        def worker_families() -> dict[str, list[Sample]]:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return {}
            return {family.name: family.samples for family in text_string_to_metric_families(text)}

        ok = ("wallet_pushes", "wallet_pushes_total")
        wait_for(lambda: value(worker_families(), *ok, client="apple", result="ok") == 1, timeout=30)
        # the web process sent nothing: its registry has no pushes
        assert value(scrape(server), *ok, client="apple", result="ok") == 0
        assert "wallet_push_latency_seconds" in worker_families()
    finally:
        worker.stop()


# -- in-process: the registry and the middleware ----------------------------------------------------


async def test_route_templates_bound_the_labels_and_registries_are_per_app() -> None:
    async def card(request: Request) -> Response:
        return PlainTextResponse("card")

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    def app_with(metrics: Metrics) -> Starlette:
        app = Starlette(
            routes=[Route("/c/{number}", card), Route("/broken", broken)],
            middleware=[Middleware(MetricsMiddleware)],
        )
        app.state.services = type("Services", (), {"metrics": metrics})()
        return app

    one, other = Metrics(), Metrics()
    transport = httpx.ASGITransport(app=app_with(one), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://wallet.test") as client:
        for number in range(100):
            assert (await client.get(f"/c/{number:016d}")).status_code == 200
        assert (await client.get("/c")).status_code == 404
        assert (await client.request("BREW", "/c/1")).status_code == 405
        assert (await client.post("/c/1")).status_code == 405
        assert (await client.get("/broken")).status_code == 500

    families = {f.name: f.samples for f in text_string_to_metric_families(one.render())}
    keys = {(s.labels["route"], s.labels["method"], s.labels["status"]) for s in families["wallet_http_requests"]}
    assert keys == {
        ("/c/{number}", "GET", "2xx"),
        (UNMATCHED, "GET", "4xx"),
        ("/c/{number}", "other", "4xx"),
        ("/c/{number}", "POST", "4xx"),
        ("/broken", "GET", "5xx"),
    }
    assert one.value("wallet_http_requests_total", route="/c/{number}", method="GET", status="2xx") == 100
    # another app's registry in the same process saw nothing
    assert other.value("wallet_http_requests_total", route="/c/{number}", method="GET", status="2xx") == 0
    assert "wallet_http_requests_total{" not in other.render()


def test_counters_named_by_handlers_keep_their_labels() -> None:
    metrics = Metrics()
    metrics.inc("wallet_cards_issued_total", help="Cards issued", program="coffee")
    metrics.inc("wallet_cards_issued_total", 2, program="coffee")
    assert metrics.value("wallet_cards_issued_total", program="coffee") == 3
    assert 'wallet_cards_issued_total{program="coffee"} 3.0' in metrics.render()
    assert "# HELP wallet_cards_issued_total Cards issued" in metrics.render()
    with pytest.raises(ValueError, match="labels"):
        metrics.inc("wallet_cards_issued_total", kind="gift")
    # no `_created` series beside the counters
    assert "_created" not in metrics.render()
