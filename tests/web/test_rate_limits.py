"""Rate limits on the public routes (web/ratelimit.py), against the real service on both stores with tiny
limits set through WALLET_RATE_*: each route answers 429 with Retry-After past its limit (an HTML page
for the card page, the JSON error for the APIs) and the refused request stores and changes nothing;
another pass, device, card or client address is not held back; on Redis two server processes on one
database share a limit. Clients of another address connect from 127.0.0.2 (all of 127/8 is loopback).
Also: the trusted-proxy X-Forwarded-For rule, and the settings' validation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import ConfigError, load_settings
from ledger.signature import sign
from store.factory import open_store
from tests.fakes.google_keys import SigningChain
from tests.fakes.google_keys_server import FakeGoogleKeysServer
from tests.web.conftest import LEDGER_SECRET, PASS_TYPE_ID, LiveServer
from tests.web.iphone import read_pass_json
from web.ratelimit import forwarded_client
from web.serving import uvicorn_options

OTHER_ADDRESS = "127.0.0.2"
# The servers here run `uvicorn server:app`, which by default takes X-Forwarded-For from 127.0.0.1 itself;
# `cli serve` turns that off (web/serving.py): the same here, so that WALLET_TRUSTED_PROXIES alone decides.
DIRECT_PEER = {"FORWARDED_ALLOW_IPS": ""}
ISSUER = "3388000000000000042"


def from_other_address(server: LiveServer, **headers: str) -> httpx.Client:
    client = httpx.Client(
        base_url=server.base,
        timeout=30.0,
        headers=headers,
        transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS),
    )
    server.clients.append(client)
    return client


def in_store(url: str, read: Any) -> Any:
    async def run() -> Any:
        store = await open_store(url)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


def assert_json_429(answer: httpx.Response, window: int = 60) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answer.headers["Retry-After"]) <= window


def assert_html_429(answer: httpx.Response, window: int = 60) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert 1 <= int(answer.headers["Retry-After"]) <= window
    assert "Слишком много попыток" in answer.text


def pass_token(server: LiveServer, issued: dict) -> str:
    return read_pass_json(server.client().get(issued["links"]["apple"]).content)["authenticationToken"]


def certificate(server: LiveServer, card: str) -> dict:
    body = {
        "id": "cert-" + uuid.uuid4().hex[:8],
        "card": card,
        "code": "GIFT-5521-7788",
        "pin": "9371",
        "amount": 1000,
        "currency": "RUB",
        "expires": "2027-03-31",
    }
    raw = json.dumps(body).encode()
    header = sign(LEDGER_SECRET, int(time.time()), raw)
    made = server.client().post(
        "/v1/certificates", content=raw, headers={"X-Wallet-Signature": header, "Content-Type": "application/json"}
    )
    assert made.status_code == 201, made.text
    return made.json()


# -- pages: /c, /join, /activate (one count per client address) ------------------------------------


def test_pages_share_the_pages_limit_per_address(server_factory) -> None:
    server = server_factory(WALLET_RATE_PAGES="3/minute")
    issued = server.issue("rl-" + uuid.uuid4().hex[:8])
    client = server.client()
    assert client.get(issued["links"]["page"]).status_code == 200
    assert client.get("/join/coffee").status_code == 200
    assert client.get(issued["links"]["page"]).status_code == 200
    # the fourth of any of them is refused with the HTML page, nothing of the card looked up
    page = client.get(issued["links"]["page"])
    assert_html_429(page)
    assert issued["card"][-4:] not in page.text
    assert_html_429(client.get("/join/coffee"))
    assert_html_429(client.get("/activate/coffee"))
    # the .pkpass link counts per pass, not as a page
    assert client.get(issued["links"]["apple"]).status_code == 200
    # another address is not held back
    other = from_other_address(server)
    assert other.get(issued["links"]["page"]).status_code == 200


def test_pass_links_count_with_passkit_per_pass(server_factory) -> None:
    server = server_factory(WALLET_RATE_PASSKIT="3/minute")
    issued = server.issue("rl-" + uuid.uuid4().hex[:8])
    voucher = certificate(server, issued["card"])
    client = server.client()
    pkpass = client.get(issued["links"]["apple"])
    assert pkpass.status_code == 200
    auth = {"Authorization": f"ApplePass {read_pass_json(pkpass.content)['authenticationToken']}"}
    # the link and PassKit's fetch of the same pass are one count
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"
    assert server.client(**auth).get(latest).status_code == 200
    assert client.get(issued["links"]["apple"]).status_code == 200
    assert_json_429(client.get(issued["links"]["apple"]))
    assert_json_429(server.client(**auth).get(latest))
    # a forged link is refused as ever, and spends nothing of the pass's budget
    assert client.get(issued["links"]["apple"].split("?")[0]).status_code == 404
    # the voucher is a pass of its own: three fetches, the fourth refused
    for _ in range(3):
        assert client.get(voucher["links"]["apple"]).headers["content-type"] == "application/vnd.apple.pkpass"
    assert_json_429(client.get(voucher["links"]["apple"]))
    # another pass is not held back
    other = server.issue("rl-" + uuid.uuid4().hex[:8])
    assert client.get(other["links"]["apple"]).status_code == 200


# -- PassKit: per pass, per device for serials-since, per address for the log -----------------------


def test_passkit_is_limited_per_pass_and_the_refused_call_changes_nothing(server_factory) -> None:
    server = server_factory(WALLET_RATE_PASSKIT="5/minute")
    issued = server.issue("rl-" + uuid.uuid4().hex[:8])
    serial = issued["serial"]
    auth = {"Authorization": f"ApplePass {pass_token(server, issued)}"}
    client = server.client(**auth)
    registration = f"/passkit/v1/devices/{{device}}/registrations/{PASS_TYPE_ID}/{serial}"
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{serial}"

    # five calls about this pass: the link (in pass_token), a registration, two fetches, an unregistration
    # of an unknown device
    assert client.post(registration.format(device="dev1"), json={"pushToken": "ab" * 32}).status_code == 201
    for _ in range(2):
        assert client.get(latest).status_code == 200
    assert client.delete(registration.format(device="dev-none")).status_code == 200

    # the sixth is refused, whatever it is, and does nothing
    assert_json_429(client.post(registration.format(device="dev2"), json={"pushToken": "cd" * 32}))
    assert_json_429(client.get(latest))
    assert_json_429(client.delete(registration.format(device="dev1")))
    # a caller without the pass's token is refused as ever and spends nothing of the pass's budget
    assert server.client().get(latest).status_code == 401
    card = server.api().get(f"/v1/cards/{issued['card']}").json()
    assert card["devices"] == 1  # dev2 not registered, dev1 not unregistered
    # serials-since counts per device, not per pass: dev1 still hears of the pass, dev2 never did
    assert server.client().get(f"/passkit/v1/devices/dev1/registrations/{PASS_TYPE_ID}").status_code == 200
    assert server.client().get(f"/passkit/v1/devices/dev2/registrations/{PASS_TYPE_ID}").status_code == 204

    # another pass is not held back
    other = server.issue("rl-" + uuid.uuid4().hex[:8])
    other_client = server.client(Authorization=f"ApplePass {pass_token(server, other)}")
    assert other_client.get(f"/passkit/v1/passes/{PASS_TYPE_ID}/{other['serial']}").status_code == 200


def test_serials_since_is_limited_per_device(server_factory) -> None:
    server = server_factory(WALLET_RATE_PASSKIT="3/minute")
    client = server.client()
    path = f"/passkit/v1/devices/{{device}}/registrations/{PASS_TYPE_ID}"
    assert [client.get(path.format(device="devA")).status_code for _ in range(3)] == [204, 204, 204]
    assert_json_429(client.get(path.format(device="devA")))
    assert client.get(path.format(device="devB")).status_code == 204


def test_device_logs_are_limited_per_address_and_the_refused_batch_is_not_kept(server_factory) -> None:
    server = server_factory(WALLET_RATE_PASSKIT="3/minute")
    client = server.client()
    for i in range(3):
        assert client.post("/passkit/v1/log", json={"logs": [f"kept {i}"]}).status_code == 200
    assert_json_429(client.post("/passkit/v1/log", json={"logs": ["refused"]}))
    assert from_other_address(server).post("/passkit/v1/log", json={"logs": ["other address"]}).status_code == 200
    kept = in_store(server_factory.database_url, lambda store: store.list_device_logs(100))
    assert sorted(message for _, message in kept) == ["kept 0", "kept 1", "kept 2", "other address"]


def test_registrations_keep_their_own_per_pass_limit(server_factory) -> None:
    # the whole-surface limit is high, the registration limit (WALLET_RATE_PASSKIT_REGISTER) still applies
    server = server_factory(WALLET_RATE_PASSKIT="100/minute", WALLET_RATE_PASSKIT_REGISTER="2/minute")
    issued = server.issue("rl-" + uuid.uuid4().hex[:8])
    client = server.client(Authorization=f"ApplePass {pass_token(server, issued)}")
    path = f"/passkit/v1/devices/{{device}}/registrations/{PASS_TYPE_ID}/{issued['serial']}"
    for i in range(2):
        assert client.post(path.format(device=f"d{i}"), json={"pushToken": "ab" * 32}).status_code == 201
    assert_json_429(client.post(path.format(device="d-over"), json={"pushToken": "ab" * 32}))
    assert client.get(f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}").status_code == 200


# -- Google callbacks: per address -------------------------------------------------------------------


@pytest.fixture
def chain() -> SigningChain:
    return SigningChain(now_ms=int(time.time() * 1000), issuer_id=ISSUER)


@pytest.fixture
def google_keys(chain: SigningChain) -> Iterator[FakeGoogleKeysServer]:
    with FakeGoogleKeysServer(chain.keys_json(), max_age=3600) as server:
        yield server


def test_google_callbacks_are_limited_per_address(server_factory, chain, google_keys) -> None:
    server = server_factory(
        WALLET_GOOGLE_KEYS_URL=google_keys.url, WALLET_GOOGLE_ISSUER_ID=ISSUER, WALLET_RATE_GOOGLE_CALLBACKS="2/minute"
    )
    headers = {"Content-Type": "application/json"}
    client = server.client()
    suffixes = ["card-" + uuid.uuid4().hex[:12] for _ in range(4)]
    for suffix in suffixes[:2]:
        answer = client.post("/google/callbacks", content=chain.callback(object_suffix=suffix), headers=headers)
        assert answer.status_code == 200, answer.text
    refused = client.post("/google/callbacks", content=chain.callback(object_suffix=suffixes[2]), headers=headers)
    assert_json_429(refused)
    other = from_other_address(server).post(
        "/google/callbacks", content=chain.callback(object_suffix=suffixes[3]), headers=headers
    )
    assert other.status_code == 200, other.text

    def installs(store: Any) -> Any:
        async def read() -> list[int]:
            return [len(await store.google_installs(f"{ISSUER}.{suffix}")) for suffix in suffixes]

        return read()

    assert in_store(server_factory.database_url, installs) == [1, 1, 0, 1]


# -- geo pings: per card -----------------------------------------------------------------------------


def test_geo_pings_are_limited_per_card(server_factory) -> None:
    server = server_factory(WALLET_RATE_GEO_PING="2/minute")
    issued = server.issue("rl-" + uuid.uuid4().hex[:8])
    other = server.issue("rl-" + uuid.uuid4().hex[:8])
    app = server.client(Authorization=f"Card {issued['card']}:{issued['app_token']}")
    body = {"lat": 55.7558, "lon": 37.6173}
    # no app install registered: 409, but counted
    assert [app.post("/v1/geo/ping", json=body).status_code for _ in range(2)] == [409, 409]
    assert_json_429(app.post("/v1/geo/ping", json=body))
    card = in_store(server_factory.database_url, lambda store: store.get_card(issued["card"]))
    assert card is not None and card.area is None
    other_app = server.client(Authorization=f"Card {other['card']}:{other['app_token']}")
    assert other_app.post("/v1/geo/ping", json=body).status_code == 409


# -- several processes on Redis ----------------------------------------------------------------------


def test_two_processes_on_redis_share_the_limits(server_factory, store_kind: str) -> None:
    if store_kind != "redis":
        pytest.skip("SQLite serves from one process: its limits live in that process")
    env = {"WALLET_RATE_PASSKIT": "4/minute", "WALLET_RATE_PAGES": "3/minute"}
    first, second = server_factory(**env), server_factory(**env)
    issued = first.issue("rl-" + uuid.uuid4().hex[:8])
    auth = {"Authorization": f"ApplePass {pass_token(first, issued)}"}  # the link: one fetch on `first`
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"
    assert second.client(**auth).get(latest).status_code == 200
    assert first.client(**auth).get(latest).status_code == 200
    assert second.client(**auth).get(latest).status_code == 200
    assert first.client().get(issued["links"]["page"]).status_code == 200
    assert_json_429(first.client(**auth).get(latest))
    assert_json_429(second.client(**auth).get(latest))

    assert second.client().get(issued["links"]["page"]).status_code == 200
    assert first.client().get("/join/coffee").status_code == 200
    assert_html_429(second.client().get(issued["links"]["page"]))


# -- the client address behind a trusted proxy -------------------------------------------------------


def test_behind_a_trusted_proxy_the_forwarded_client_counts(server_factory) -> None:
    server = server_factory(WALLET_RATE_PAGES="2/minute", WALLET_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8", **DIRECT_PEER)
    client = server.client()

    def join(forwarded: str) -> httpx.Response:
        return client.get("/join/coffee", headers={"X-Forwarded-For": forwarded})

    assert join("203.0.113.7").status_code == 200
    assert join("203.0.113.7, 10.1.2.3").status_code == 200  # through a second proxy of ours: the same client
    # a hop the client made up, left of the real one, changes nothing
    assert_html_429(join("198.51.100.1, 203.0.113.7"))
    assert join("203.0.113.8").status_code == 200
    # the direct peer 127.0.0.2 is no proxy of ours: its X-Forwarded-For is ignored, it counts itself
    other = from_other_address(server, **{"X-Forwarded-For": "203.0.113.9"})
    assert [other.get("/join/coffee").status_code for _ in range(3)] == [200, 200, 429]
    assert join("203.0.113.9").status_code == 200


def test_without_trusted_proxies_forwarded_for_is_ignored(server_factory) -> None:
    server = server_factory(WALLET_RATE_PAGES="2/minute", **DIRECT_PEER)
    client = server.client()
    answers = [client.get("/join/coffee", headers={"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", ["203.0.113.7"], "192.0.2.1"),  # not a proxy of ours
        ("10.0.0.1", [], "10.0.0.1"),  # a proxy that forwarded nothing
        ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["198.51.100.1, 203.0.113.7", "10.0.0.2"], "203.0.113.7"),  # several headers, in order
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # every hop ours: the first
        ("10.0.0.1", ["unknown"], "unknown"),
        ("::1", ["2001:db8::5"], "2001:db8::5"),
    ],
)
def test_forwarded_client(peer: str, forwarded: list[str], expected: str) -> None:
    assert forwarded_client(peer, forwarded, ("10.0.0.0/8", "::1")) == expected
    assert forwarded_client(peer, forwarded, ()) == peer


def test_the_web_process_leaves_the_peer_to_the_service(tmp_path: Path) -> None:
    settings = load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)
    assert uvicorn_options(settings, "info")["proxy_headers"] is False


# -- settings ----------------------------------------------------------------------------------------


def test_defaults_and_unusable_settings_are_refused_at_start(tmp_path: Path) -> None:
    settings = load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)
    assert (settings.pages_rate, settings.passkit_rate, settings.passkit_register_rate) == (
        "60/minute",
        "600/minute",
        "20/minute",
    )
    assert settings.google_callbacks_rate == "600/minute" and settings.geo.ping_rate == "30/minute"
    assert settings.trusted_proxies == ()
    trusted = load_settings({"WALLET_CERTS_DIR": str(tmp_path), "WALLET_TRUSTED_PROXIES": " 10.0.0.1, fd00::/8 "})
    assert trusted.trusted_proxies == ("10.0.0.1/32", "fd00::/8")
    bad = {
        "WALLET_CERTS_DIR": str(tmp_path),
        "WALLET_RATE_PASSKIT": "600",
        "WALLET_RATE_GOOGLE_CALLBACKS": "0/minute",
        "WALLET_TRUSTED_PROXIES": "10.0.0.1,proxy.example",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(bad, dotenv=None)
    problems = "\n".join(info.value.problems)
    assert "WALLET_RATE_PASSKIT must look like" in problems
    assert "WALLET_RATE_GOOGLE_CALLBACKS must look like" in problems
    assert "WALLET_TRUSTED_PROXIES: 'proxy.example'" in problems
