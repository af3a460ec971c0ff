"""Process metrics with prometheus-client: one registry per app (`Services.metrics`), never the global one,
so several apps in one process (the tests) count apart; `GET /metrics` (web/ops.py) renders it.

What is counted:
- HTTP requests and their latency per route template, method and status class (`MetricsMiddleware`):
  the template (`/v1/cards/{card}`), never the raw path, so card numbers and serials neither show
  nor multiply series; a request that reaches no route is `route="unmatched"`, an unusual method `other`;
- ledger events by outcome (web/ledger.py), and the counters handlers name with `inc` (cards issued,
  callbacks, server errors...);
- the in-process push worker's pushes per client (the app or channel) and result, what it did with
  its entries, and the time from an entry's enqueue to its outcome (`watch_worker`);
- at scrape time (`scraped`): the outbox depth and each certificate's days to expiry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.decide import Outcome
from push.worker import Worker

__all__ = ["CONTENT_TYPE", "UNMATCHED", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No `<name>_created` series beside each counter and histogram: they double what a scrape carries, and
# Prometheus reads them only in OpenMetrics. Process-wide (a flag of prometheus_client), read as series are made.
disable_created_metrics()
UNMATCHED = "unmatched"  # the route label of a request no route took (404s, refusals before routing)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# seconds; requests: most answer in milliseconds, a pass download signs (tens of ms), a big import posts longer
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# seconds from an outbox entry's enqueue (the ledger change) to its push: a second or two when all is well,
# minutes while a relay asks for retries, up to the 15-minute backoff cap and beyond
_PUSH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


def _sample_name(name: str) -> str:
    return name if name.endswith("_total") else name + "_total"


class _WorkerCollector(Collector):
    """The in-process worker's own counters, read at scrape time (push/ keeps plain counters)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def describe(self) -> Iterable[Metric]:
        return [
            CounterMetricFamily("wallet_pushes", "", labels=["client", "result"]),
            CounterMetricFamily("wallet_push_events", "", labels=["event"]),
        ]

    def collect(self) -> Iterable[Metric]:
        pushes = CounterMetricFamily(
            "wallet_pushes",
            "Pushes answered, per client (the app or channel: apple, a relay app, google...) and result",
            labels=["client", "result"],
        )
        for (client, result), count in sorted(self._worker.pushes.items()):
            pushes.add_metric([client, result], float(count))
        events = CounterMetricFamily(
            "wallet_push_events",
            "What the push worker did: delivered, retried, dead, invalid, auth_errors, failed, skipped",
            labels=["event"],
        )
        for event, count in sorted(self._worker.counters.items()):
            events.add_metric([event], float(count))
        return [pushes, events]


class _ScrapeGauges(Collector):
    """Values read from the store and the certificate report just before each render (web/ops.py)."""

    def __init__(self) -> None:
        self.outbox_pending: float | None = None  # None: the store did not answer
        self.outbox_oldest_age: float | None = None  # seconds the oldest entry has waited (0: empty)
        self.certificate_days: Mapping[str, int] = {}

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily("wallet_outbox_pending", ""),
            GaugeMetricFamily("wallet_outbox_oldest_age_seconds", ""),
            GaugeMetricFamily("wallet_certificate_days_to_expiry", "", labels=["certificate"]),
        ]

    def collect(self) -> Iterable[Metric]:
        found: list[Metric] = []
        if self.outbox_pending is not None:
            found.append(
                GaugeMetricFamily(
                    "wallet_outbox_pending",
                    "Outbox entries not yet acknowledged or dead-lettered (the store's, all processes')",
                    value=self.outbox_pending,
                )
            )
        if self.outbox_oldest_age is not None:
            found.append(
                GaugeMetricFamily(
                    "wallet_outbox_oldest_age_seconds",
                    "How long the oldest outbox entry has waited (0 when the outbox is empty)",
                    value=self.outbox_oldest_age,
                )
            )
        days = GaugeMetricFamily(
            "wallet_certificate_days_to_expiry",
            "Whole days until each certificate expires (negative: expired)",
            labels=["certificate"],
        )
        for name, left in sorted(self.certificate_days.items()):
            days.add_metric([name], float(left))
        found.append(days)
        return found


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters: dict[str, tuple[Counter, tuple[str, ...]]] = {}  # name -> (counter, its label names)
        self.requests = self._counter(
            "wallet_http_requests_total",
            "HTTP requests answered, per route template, method and status class",
            ("route", "method", "status"),
        )
        self.request_seconds = Histogram(
            "wallet_http_request_duration_seconds",
            "Time to answer an HTTP request, per route template, method and status class",
            ("route", "method", "status"),
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.ledger_events = self._counter("wallet_ledger_events_total", "Ledger events by outcome", ("outcome",))
        for outcome in Outcome:
            self.ledger_events.labels(outcome=outcome.value)
        self.push_latency = Histogram(
            "wallet_push_latency_seconds",
            "From an outbox entry's enqueue (a ledger change, for pass_update) to its delivery, per kind",
            ("kind",),
            buckets=_PUSH_BUCKETS,
            registry=self.registry,
        )
        self._scrape = _ScrapeGauges()
        self.registry.register(self._scrape)

    def _counter(self, name: str, help: str, labelnames: Sequence[str]) -> Counter:
        names = tuple(labelnames)
        found = self._counters.get(name)
        if found is None:
            counter = Counter(name, help or name, names, registry=self.registry)
            self._counters[name] = (counter, names)
            return counter
        if found[1] != names:  # a programming error: one name, one set of labels
            raise ValueError(f"{name} is counted with labels {found[1]}, not {names}")
        return found[0]

    # -- for handlers ----------------------------------------------------------------------------
    def inc(self, name: str, amount: float = 1.0, help: str = "", **labels: str) -> None:
        """Count under `name` (a counter, `_total` at the end), made on first use with these label names."""
        counter = self._counter(name, help, sorted(labels))
        (counter.labels(**labels) if labels else counter).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 if never counted)."""
        found = self.registry.get_sample_value(_sample_name(name), labels)
        return 0.0 if found is None else found

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method if method in _METHODS else "other", f"{status // 100}xx")
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    # -- the worker and the scrape ---------------------------------------------------------------
    def watch_worker(self, worker: Worker) -> None:
        """Expose this process's worker: its push counters at scrape time, and its enqueue-to-push latency."""
        self.registry.register(_WorkerCollector(worker))

        def observe(kind: str, seconds: float) -> None:
            self.push_latency.labels(kind=kind).observe(max(0.0, seconds))

        worker.observe_latency = observe

    def scraped(
        self, outbox_pending: float | None, certificate_days: Mapping[str, int], outbox_oldest_age: float | None = None
    ) -> None:
        """The values read for this scrape (None: the store did not answer, the gauge is left out)."""
        self._scrape.outbox_pending = outbox_pending
        self._scrape.outbox_oldest_age = outbox_oldest_age
        self._scrape.certificate_days = dict(certificate_days)

    def render_bytes(self) -> bytes:
        return generate_latest(self.registry)

    def render(self) -> str:
        return self.render_bytes().decode()


class MetricsMiddleware:
    """Counts and times every HTTP request under its route's template (`scope["route"]`, set by the router)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers when the app raises before starting a response
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            metrics = getattr(services, "metrics", None)
            if isinstance(metrics, Metrics):
                path = getattr(scope.get("route"), "path", None)
                route = path if isinstance(path, str) and path else UNMATCHED
                metrics.observe_request(route, scope["method"], status, time.perf_counter() - started)
