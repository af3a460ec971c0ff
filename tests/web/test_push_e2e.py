"""Ledger change -> outbox -> worker -> aioapns -> fake APNs (HTTP/2 over TLS, client certificate
from the dev PKI), with the service and workers as real processes, on both stores."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.apns_server import ApnsReply
from tests.pii_guard import sensitive
from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import PASS_TYPE_ID, ROOT, LiveServer
from tests.web.iphone import read_pass_json


def push_env(apns: ThreadedApns, **extra: str) -> dict[str, str]:
    return {
        "WALLET_PUSH_DRY_RUN": "0",
        "WALLET_APNS_ENDPOINT": apns.url,
        "WALLET_APNS_CA_FILE": apns.ca_file,
        "WALLET_WORKER_LEASE_SECONDS": "2",
        **extra,
    }


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def token() -> str:
    return sensitive(uuid.uuid4().hex + uuid.uuid4().hex, "push token")


def register(server: LiveServer, issued: dict, push_token: str) -> str:
    plain = server.client()
    auth = read_pass_json(plain.get(issued["links"]["apple"]).content)["authenticationToken"]
    device = "dev" + uuid.uuid4().hex
    response = plain.post(
        f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}/{issued['serial']}",
        headers={"Authorization": f"ApplePass {auth}"},
        json={"pushToken": push_token},
    )
    assert response.status_code == 201
    return device


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def test_ledger_event_reaches_every_device_through_apns(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns))
    issued = server.issue("push-" + uuid.uuid4().hex[:8])
    good, gone, flaky, throttled = token(), token(), token(), token()
    for t in (good, gone, flaky, throttled):
        register(server, issued, t)
    apns.run(apns.server.program, gone, ApnsReply(410, "Unregistered"))
    apns.run(apns.server.program, flaky, ApnsReply(503, "ServiceUnavailable"))
    apns.run(apns.server.program, throttled, ApnsReply(429, "TooManyRequests"))

    answer = server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 42}])
    assert answer.json()["accepted"]

    def delivered(t: str) -> bool:
        return any(r.token == t and r.status == 200 for r in apns.requests())

    wait_for(lambda: delivered(good) and delivered(flaky) and delivered(throttled))
    first = next(r for r in apns.requests() if r.token == good)
    assert (first.method, first.path, first.body) == ("POST", f"/3/device/{good}", b"{}")
    assert first.headers["apns-topic"] == PASS_TYPE_ID and first.auth == "cert"
    # 410 removed the registration; the three others remain
    wait_for(lambda: server.api().get(f"/v1/cards/{issued['card']}").json()["devices"] == 3)
    # and the card says its change reached every device it has ("did every card get updated?")
    wait_for(lambda: server.api().get(f"/v1/cards/{issued['card']}").json()["devices_current"] == 3)
    counts = Counter(apns.tokens())
    assert counts[good] == 1 and counts[gone] == 1
    assert counts[flaky] == 2 and counts[throttled] == 2  # one failure, one retry that got through

    # nothing is pushed twice for the same change
    time.sleep(1.0)
    assert Counter(apns.tokens()) == counts
    # the in-process worker's pushes, per app and outcome, in /metrics
    metrics = server.client().get("/metrics").text
    assert 'wallet_pushes_total{client="apple",result="ok"} 3.0' in metrics
    assert 'wallet_pushes_total{client="apple",result="invalid_token"} 1.0' in metrics
    assert 'wallet_pushes_total{client="apple",result="retry"} 2.0' in metrics


def test_worker_killed_mid_delivery_still_reaches_every_device(
    server_factory, apns: ThreadedApns, tmp_path: Path
) -> None:
    env = push_env(apns, WALLET_RUN_WORKER="0")
    server = server_factory(**env)
    cards = [server.issue(f"kill-{i}-{uuid.uuid4().hex[:6]}") for i in range(40)]
    tokens = [token() for _ in cards]
    for issued, t in zip(cards, tokens, strict=True):
        register(server, issued, t)
        # answers are slow, so the worker dies with pushes in flight and unacknowledged
        apns.run(apns.server.program, t, ApnsReply(200, delay=2.0))
    events = [{"id": uuid.uuid4().hex, "card": c["card"], "version": 1, "balance": 1} for c in cards]
    assert len(server.post_ledger(events).json()["accepted"]) == 40

    worker = WorkerProcess(server.env, tmp_path / "worker-1.log")
    wait_for(lambda: len(apns.tokens()) >= 10)
    worker.kill()
    killed_at = time.time()
    second = WorkerProcess(server.env, tmp_path / "worker-2.log")
    try:

        def everyone_after_restart() -> bool:
            reached = {r.token for r in apns.requests() if r.at > killed_at and r.status == 200}
            answered_before = {r.token for r in apns.requests() if r.at + 2.0 < killed_at}
            return set(tokens) <= reached | answered_before

        wait_for(everyone_after_restart, timeout=40)
        wait_for(lambda: "wallet_outbox_pending 0.0" in server.client().get("/metrics").text, timeout=20)
    finally:
        second.stop()


def test_two_workers_share_the_redis_stream_without_double_delivery(
    store_kind: str, server_factory, apns: ThreadedApns, tmp_path: Path
) -> None:
    if store_kind != "redis":
        pytest.skip("several worker processes share the outbox only on Redis")
    # 250 entries: more than one worker keeps in flight at this concurrency, so the other gets some
    env = push_env(apns, WALLET_RUN_WORKER="0", WALLET_WORKER_LEASE_SECONDS="30", WALLET_WORKER_CONCURRENCY="100")
    server = server_factory(**env)
    cards = [server.issue(f"two-{i}-{uuid.uuid4().hex[:6]}") for i in range(250)]
    tokens = [token() for _ in cards]
    for issued, t in zip(cards, tokens, strict=True):
        register(server, issued, t)
        # slow first answers keep one worker busy with its batch while the other claims the rest
        apns.run(apns.server.program, t, ApnsReply(200, delay=1.0))
    workers = [WorkerProcess(server.env, tmp_path / f"worker-{i}.log") for i in range(2)]

    def pushes_reach(count: int) -> Callable[[], bool]:
        return lambda: len(apns.tokens()) >= count

    try:
        for round_ in range(2):
            events = [
                {"id": uuid.uuid4().hex, "card": c["card"], "version": round_ + 1, "balance": round_} for c in cards
            ]
            with httpx.Client(base_url=server.base, timeout=30) as http:
                assert len(server.post_ledger(events, client=http).json()["accepted"]) == 250
            wait_for(pushes_reach(250 * (round_ + 1)), timeout=30)
        time.sleep(1.0)
        counts = Counter(apns.tokens())
        assert set(counts) == set(tokens)
        assert set(counts.values()) == {2}  # one push per change per device, never two
        connections = {r.connection for r in apns.requests()}
        assert len(connections) >= 2  # both workers took part
    finally:
        for worker in workers:
            worker.stop()
