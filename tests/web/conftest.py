"""Fixtures: a dev PKI for the session, and the real service started with uvicorn on a loopback
port against either store, plus helpers to call it as its users do."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ledger.signature import sign
from passes.apple.pki import ensure_dev_pki
from tests.conftest import REDIS_URL, delete_prefix
from tests.pii_guard import sensitive
from tests.web.apns_thread import ThreadedApns

ROOT = Path(__file__).resolve().parents[2]
PASS_TYPE_ID = "pass.test.wallet.loyalty"
TEAM_ID = "TESTTEAM01"
KEYS = {"issuer": "issuer-key-" + "i" * 24, "marketing": "marketing-key-" + "m" * 24, "admin": "admin-key-" + "a" * 24}
LEDGER_SECRET = "ledger-secret-" + "l" * 24
for _key in KEYS.values():
    sensitive(_key, "api key")
sensitive(LEDGER_SECRET, "ledger secret")
ISSUED_MEMBER = {"name": "Анна Петрова", "phone": "+79001234567"}  # LiveServer.issue's member
sensitive(ISSUED_MEMBER["name"], "name")
sensitive(ISSUED_MEMBER["phone"], "phone")
REDIS_TEST_URL = REDIS_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("certs")
    ensure_dev_pki(path, PASS_TYPE_ID, TEAM_ID)
    return path


@pytest.fixture
def apns(certs_dir: Path) -> Iterator[ThreadedApns]:
    """A fake APNs (HTTP/2 over TLS, dev PKI) in a thread, for the service processes to push to."""
    fake = ThreadedApns(certs_dir)
    try:
        yield fake
    finally:
        fake.close()


def database_url(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'wallet.db'}"
    return f"{REDIS_TEST_URL}?prefix=test:{uuid.uuid4().hex}:"


def delete_redis_prefix(url: str) -> None:
    _, _, prefix = url.partition("?prefix=")
    # in a thread of its own: Playwright's sync API keeps an event loop running in the test's thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, delete_prefix(prefix)).result()


def service_env(certs: Path, db_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(
        {
            "WALLET_ENV": "dev",
            "WALLET_CERTS_DIR": str(certs),
            "WALLET_DATABASE_URL": db_url,
            "WALLET_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WALLET_PASS_TYPE_ID": PASS_TYPE_ID,
            "WALLET_TEAM_ID": TEAM_ID,
            "WALLET_API_KEYS": ",".join(f"{role}:{key}" for role, key in KEYS.items()),
            "WALLET_LEDGER_SECRET": LEDGER_SECRET,
            "WALLET_PUSH_DRY_RUN": "1",
            "WALLET_RUN_WORKER": "1",
            "PYTHONUNBUFFERED": "1",
            # every test client is 127.0.0.1: the per-address limits of pages, PassKit and callbacks would
            # throttle tests that poll; the rate-limit tests set their own (tests/web/test_rate_limits.py)
            "WALLET_RATE_PAGES": "100000/minute",
            "WALLET_RATE_PASSKIT": "100000/minute",
            "WALLET_RATE_GOOGLE_CALLBACKS": "100000/minute",
        }
    )
    env.update(extra)
    for name, value in env.items():  # the secrets a test passes (relay keys, link and session secrets, ...)
        if name.startswith("WALLET_") and name.endswith(("_SECRET", "_PASSWORD", "_KEY")):
            sensitive(value, name.removeprefix("WALLET_").lower().replace("_", " "))
    return env


@dataclass
class LiveServer:
    """The service as a real process: uvicorn on a loopback port."""

    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "server:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, **headers: str) -> httpx.Client:
        client = httpx.Client(base_url=self.base, timeout=30.0, headers=headers)
        self.clients.append(client)
        return client

    def api(self, role: str = "issuer") -> httpx.Client:
        return self.client(Authorization=f"Bearer {KEYS[role]}")

    def post_ledger(
        self,
        events: list[dict],
        client: httpx.Client | None = None,
        secret: str = LEDGER_SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = json.dumps({"events": events}).encode()
        header = sign(secret, int(time.time()) if timestamp is None else timestamp, body)
        http = client or self.client()
        return http.post(
            "/v1/ledger/events",
            content=body,
            headers={"X-Wallet-Signature": header, "Content-Type": "application/json"},
        )

    def issue(self, account: str, **fields) -> dict:
        body = {
            "program": "coffee",
            "account": account,
            "member": dict(ISSUED_MEMBER),
            "locale": "ru",
            **fields,
        }
        response = self.api().post("/v1/cards", json=body)
        assert response.status_code in (200, 201), response.text
        issued = response.json()
        sensitive(issued.get("card"), "card number")
        sensitive(issued.get("app_token"), "app token")
        return issued

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server_factory(store_kind: str, certs_dir: Path, tmp_path: Path) -> Iterator:
    """Makes started servers on one store (same database for all of them), with extra env."""
    url = database_url(store_kind, tmp_path)
    made: list[LiveServer] = []

    def make(start: bool = True, **extra: str) -> LiveServer:
        port = free_port()
        server = LiveServer(service_env(certs_dir, url, port, **extra), port, tmp_path / f"server-{len(made)}.log")
        made.append(server)
        if start:
            server.start()
        return server

    make.database_url = url  # type: ignore[attr-defined]  # a function attribute tests read back
    try:
        yield make
    finally:
        for server in made:
            server.close()
        if store_kind == "redis":
            delete_redis_prefix(url)


@pytest.fixture
def live_server(server_factory) -> LiveServer:
    return server_factory()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def shared_server(
    request: pytest.FixtureRequest, certs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per store for a whole module of tests that do not disturb each other."""
    tmp = tmp_path_factory.mktemp("shared")
    port = free_port()
    url = database_url(request.param, tmp)
    server = LiveServer(service_env(certs_dir, url, port), port, tmp / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.close()
        if request.param == "redis":
            delete_redis_prefix(url)
