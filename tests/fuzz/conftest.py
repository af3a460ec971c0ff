"""Fixtures of the fuzz tests: the real server (uvicorn, as tests/web/conftest.py starts it, once on SQLite and
once on Redis; Google's root keys from a loopback fake) seeded with one of everything a path can name (a card
with its PassKit and app tokens, a registered device, a store, a campaign, a message, an import job, a gift
certificate), so that fuzzed requests can name things that exist and carry valid credentials, and reach the
handlers rather than only their 401 and 404."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledger.signature import sign
from tests.fakes.google_keys import SigningChain
from tests.fakes.google_keys_server import FakeGoogleKeysServer
from tests.web.conftest import (  # noqa: F401  # certs_dir: the session's dev PKI, a fixture
    KEYS,
    LEDGER_SECRET,
    PASS_TYPE_ID,
    LiveServer,
    certs_dir,
    database_url,
    delete_redis_prefix,
    free_port,
    service_env,
)
from tests.web.iphone import read_pass_json

GOOGLE_ISSUER = "3388000000000000042"
# the routes' own limits would turn most of a fuzz run into 429s; tests/web/test_rate_limits.py covers them
FUZZ_ENV = {
    "WALLET_RATE_PASSKIT_REGISTER": "100000/minute",
    "WALLET_RATE_GEO_PING": "100000/minute",
}


@dataclass
class Seeds:
    """What exists on the fuzzed server, for the fuzz test to put into paths, queries and credentials."""

    card: str
    serial: str
    account: str
    pass_token: str
    app_token: str
    # a second card, store and campaign, for the routes that destroy what they name (erasure, DELETE): the
    # first ones stay for every other operation
    spare_card: str
    spare_store: str
    spare_campaign: str
    device: str
    store: str
    campaign: str
    message: str
    job: str
    certificate: str
    voucher_serial: str
    voucher_token: str
    # signed links: the query (exp, sig) of each, by the path they sign
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    # console session cookies by role (marketing, admin)
    console: dict[str, dict[str, str]] = field(default_factory=dict)
    # signs Google Wallet callbacks that verify (Google's root keys are served by a loopback fake)
    google: SigningChain | None = None


def _query(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


def _post_signed(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    header = sign(LEDGER_SECRET, int(time.time()), raw)
    return server.client().post(
        path, content=raw, headers={"X-Wallet-Signature": header, "Content-Type": "application/json"}
    )


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _console_session(server: LiveServer, role: str) -> dict[str, str]:
    """The console's cookies after signing in with the role's key (the login form's CSRF token first). The
    CSRF token of their `wallet_csrf` cookie is under the key `csrf`: every form of that browser takes it."""
    with httpx.Client(base_url=server.base, timeout=30.0) as browser:
        form = browser.get("/console/login")
        found = _CSRF.search(form.text)
        assert form.status_code == 200 and found, form.text[:500]
        answer = browser.post("/console/login", data={"key": KEYS[role], "csrf": found.group(1)})
        assert answer.status_code == 303, answer.text[:500]
        return {**dict(browser.cookies), "csrf": found.group(1)}


def seed(server: LiveServer, google: SigningChain) -> Seeds:
    api, marketing = server.api("issuer"), server.api("marketing")
    account = "fuzz-" + uuid.uuid4().hex[:12]
    issued = server.issue(account)
    spare = server.issue("fuzz-spare-" + uuid.uuid4().hex[:8])
    pkpass_path, pkpass_query = _query(issued["links"]["apple"])
    page_path, page_query = _query(issued["links"]["page"])
    pkpass = server.client().get(issued["links"]["apple"])
    assert pkpass.status_code == 200, pkpass.text
    pass_token = read_pass_json(pkpass.content)["authenticationToken"]

    device = "fuzz-device-" + uuid.uuid4().hex[:8]
    apple = server.client(Authorization=f"ApplePass {pass_token}")
    registered = apple.post(
        f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}/{issued['serial']}", json={"pushToken": "ab" * 32}
    )
    assert registered.status_code == 201, registered.text
    app = server.client(Authorization=f"Card {issued['card']}:{issued['app_token']}")
    assert app.post("/v1/apps/devices", json={"platform": "android", "token": "fcm-" + "x" * 40}).status_code == 200

    for store_id in ("fuzz-store", "fuzz-spare-store"):
        store = marketing.put(
            f"/v1/stores/{store_id}",
            json={"program": "coffee", "name": "Fuzz", "lat": 55.75, "lon": 37.62, "address": "-"},
        )
        assert store.status_code in (200, 201), store.text
    campaigns = []
    for name in ("fuzz", "fuzz-spare"):
        campaign = marketing.post(
            "/v1/campaigns", json={"program": "coffee", "name": name, "text": "Coffee at {store}", "stores": None}
        )
        assert campaign.status_code == 201, campaign.text
        campaigns.append(campaign.json()["id"])
    message = marketing.post("/v1/messages", json={"program": "coffee", "text": "hello {name}"})
    assert message.status_code == 202, message.text
    job = api.post(
        "/v1/cards/import",
        params={"program": "coffee"},
        content=f"account,name\nfuzz-import-{uuid.uuid4().hex[:8]},Ivan\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert job.status_code == 202, job.text

    certificate_id = "fuzz-cert-" + uuid.uuid4().hex[:8]
    certificate = _post_signed(
        server,
        "/v1/certificates",
        {"id": certificate_id, "card": issued["card"], "code": "FUZZ-0001", "amount": 500, "currency": "RUB"},
    )
    assert certificate.status_code == 201, certificate.text
    voucher = certificate.json()
    voucher_path, voucher_query = _query(voucher["links"]["apple"])
    voucher_pkpass = server.client().get(voucher["links"]["apple"])
    assert voucher_pkpass.status_code == 200, voucher_pkpass.text

    return Seeds(
        card=issued["card"],
        serial=issued["serial"],
        account=account,
        pass_token=pass_token,
        app_token=issued["app_token"],
        spare_card=spare["card"],
        spare_store="fuzz-spare-store",
        spare_campaign=campaigns[1],
        device=device,
        store="fuzz-store",
        campaign=campaigns[0],
        message=message.json()["id"],
        job=job.json()["job"],
        certificate=certificate_id,
        voucher_serial=voucher["serial"],
        voucher_token=read_pass_json(voucher_pkpass.content)["authenticationToken"],
        links={pkpass_path: pkpass_query, page_path: page_query, voucher_path: voucher_query},
        console={role: _console_session(server, role) for role in ("marketing", "admin")},
        google=google,
    )


@pytest.fixture(scope="module")
def google_chain() -> SigningChain:
    return SigningChain(now_ms=int(time.time() * 1000), issuer_id=GOOGLE_ISSUER)


@pytest.fixture(scope="module")
def google_keys(google_chain: SigningChain) -> Iterator[FakeGoogleKeysServer]:
    with FakeGoogleKeysServer(google_chain.keys_json(), max_age=3600) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def fuzz_store(request: pytest.FixtureRequest) -> str:
    """The store the fuzzed server runs on (Redis: its own key prefix, deleted after)."""
    return request.param


@pytest.fixture(scope="module")
def fuzz_server(
    certs_dir: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    google_keys: FakeGoogleKeysServer,
    fuzz_store: str,
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    url = database_url(fuzz_store, tmp)
    env = service_env(
        certs_dir,
        url,
        port,
        WALLET_GOOGLE_KEYS_URL=google_keys.url,
        WALLET_GOOGLE_ISSUER_ID=GOOGLE_ISSUER,
        **FUZZ_ENV,
    )
    server = LiveServer(env, port, tmp / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.close()
        if fuzz_store == "redis":
            delete_redis_prefix(url)


@pytest.fixture(scope="module")
def seeds(fuzz_server: LiveServer, google_chain: SigningChain) -> Seeds:
    return seed(fuzz_server, google_chain)
