"""The Android pass apps end to end (issue 10, point 8): the real service and a real `python -m cli
worker` process on both stores, fake APNs and one fake relay server (tests/fakes/relay_server.py)
for every maker's relay; simulated phones (tests/web/android.py) register with each app's word,
User-Agent and FCM-like token, get pushed through their own relay, fetch, and unregister.

One service + worker per store serves the whole module; each test uses fresh cards and tokens and
picks its own relay calls out by token, so the tests do not disturb each other."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import httpx
import pytest

from push import clients
from tests.fakes.relay_server import FakeRelayServer, RelayCall, Reply
from tests.web.android import (
    APPS,
    PASS2U,
    PASSWALLET,
    WALLETPASSES,
    WALLETUNION,
    AndroidApp,
    SimulatedAndroid,
    apns_token,
    fcm_token,
)
from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import PASS_TYPE_ID, LiveServer, database_url, delete_redis_prefix, free_port, service_env
from tests.web.iphone import SimulatedIPhone
from tests.web.test_push_e2e import WorkerProcess, push_env, wait_for

RELAY_KEYS = {
    "walletunion": "wu-key-" + "w" * 24,
    "walletpasses": "wp-key-" + "p" * 24,
    "pass2u": "p2u-key-" + "u" * 24,
    "passhub": "ph-key-" + "h" * 24,
}


@dataclass
class Rig:
    store: str
    server: LiveServer
    worker: WorkerProcess
    apns: ThreadedApns
    relays: FakeRelayServer
    versions: dict[str, count] = field(default_factory=dict)
    phones: list[SimulatedAndroid] = field(default_factory=list)

    def card(self, balance: int = 10) -> dict:
        return self.server.issue("android-" + uuid.uuid4().hex[:10], balance=balance)

    def android(self, app: AndroidApp, issued: dict | None = None, **kw) -> SimulatedAndroid:
        if app.attido:
            kw.setdefault("push_service_url", self.relays.url_for("passwallet"))
        phone = SimulatedAndroid.make(self.server.base, app, **kw)
        self.phones.append(phone)
        if issued is not None:
            assert phone.download(issued["links"]["apple"]) == issued["serial"]
        return phone

    def event(self, issued: dict, balance: int) -> None:
        version = next(self.versions.setdefault(issued["card"], count(1)))
        answer = self.server.post_ledger(
            [{"id": uuid.uuid4().hex, "card": issued["card"], "version": version, "balance": balance}]
        )
        assert answer.status_code in (200, 202), answer.text
        assert answer.json()["accepted"], answer.text

    def devices(self, issued: dict) -> int:
        response = self.server.api().get(f"/v1/cards/{issued['card']}")
        assert response.status_code == 200, response.text
        return response.json()["devices"]

    def calls_with(self, token: str, since: int = 0) -> list[RelayCall]:
        return [c for c in list(self.relays.calls)[since:] if token in c.tokens]

    def delivered(self, token: str, since: int = 0) -> bool:
        return any(200 <= c.status < 300 for c in self.calls_with(token, since))


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def rig(request: pytest.FixtureRequest, certs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"android-{request.param}")
    url = database_url(request.param, tmp)
    port = free_port()
    apns = ThreadedApns(certs_dir)
    relays = FakeRelayServer(keys=RELAY_KEYS)
    relays.start()
    extra = push_env(
        apns,
        WALLET_RUN_WORKER="0",
        WALLET_MAX_DEVICES_PER_PASS="200",
        WALLET_RATE_PASSKIT_REGISTER="100000/minute",
        WALLET_RELAY_WALLETUNION_URL=relays.url_for("walletunion"),
        WALLET_RELAY_WALLETUNION_KEY=RELAY_KEYS["walletunion"],
        WALLET_RELAY_WALLETPASSES_URL=relays.url_for("walletpasses"),
        WALLET_RELAY_WALLETPASSES_KEY=RELAY_KEYS["walletpasses"],
        WALLET_RELAY_PASS2U_URL=relays.url_for("pass2u"),
        WALLET_RELAY_PASS2U_KEY=RELAY_KEYS["pass2u"],
        WALLET_RELAY_PASSHUB_URL=relays.url_for("passhub"),
        WALLET_RELAY_PASSHUB_KEY=RELAY_KEYS["passhub"],
        WALLET_RELAY_PASSWALLET_HOSTS="127.0.0.1",
    )
    server = LiveServer(service_env(certs_dir, url, port, **extra), port, tmp / "server.log")
    worker: WorkerProcess | None = None
    rig_: Rig | None = None
    try:
        server.start()
        worker = WorkerProcess(server.env, tmp / "worker.log")
        rig_ = Rig(request.param, server, worker, apns, relays)
        yield rig_
    finally:
        if rig_ is not None:
            for phone in rig_.phones:
                phone.close()
        if worker is not None:
            worker.stop()
        server.close()
        relays.stop()
        apns.close()
        if request.param == "redis":
            delete_redis_prefix(url)


def _nothing_stored(rig: Rig, phone: SimulatedAndroid, issued: dict) -> None:
    assert rig.devices(issued) == 0
    assert phone.changed_serials(issued["serial"]).status_code == 204


# -- each app, the whole way -----------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.name)
def test_app_registers_is_pushed_through_its_relay_fetches_and_unregisters(rig: Rig, app: AndroidApp) -> None:
    issued = rig.card(balance=10)
    serial = issued["serial"]
    phone, sibling = rig.android(app, issued), rig.android(app, issued)
    for device in (phone, sibling):
        response = device.register(serial)
        assert response.status_code == 201, response.text
    again = phone.register(serial)
    assert again.status_code == 200, again.text  # already registered
    assert rig.devices(issued) == 2

    mark = len(rig.relays.calls)
    rig.event(issued, 250)
    wait_for(lambda: rig.delivered(phone.push_token, mark) and rig.delivered(sibling.push_token, mark))
    calls = rig.calls_with(phone.push_token, mark)
    assert [c.status for c in calls] == [200], calls
    call = calls[0]
    assert call.protocol == app.relay
    assert sibling.push_token in call.tokens  # one batched call for the two devices, not one each
    assert sorted(call.tokens) == sorted([phone.push_token, sibling.push_token])
    if app.relay == "pass2u":
        assert call.path == f"/pass2u/v2/registrations/{PASS_TYPE_ID}/push"
        assert call.headers["x-api-key"] == RELAY_KEYS["pass2u"]
    elif app.relay == "passhub":
        assert call.body["pass_type_id"] == PASS_TYPE_ID
        assert call.headers["authorization"] == f"Bearer {RELAY_KEYS['passhub']}"
    elif app.relay == "passwallet":
        assert call.path == "/passwallet/v1/pushUpdates"
        assert call.body["passTypeID"] == PASS_TYPE_ID
    else:
        assert call.body["passTypeIdentifier"] == PASS_TYPE_ID
        assert call.headers["authorization"] == RELAY_KEYS[app.relay]
    if app.relay == "walletunion":
        assert call.body.get("hms", False) is app.hms
    assert phone.push_token not in rig.apns.tokens()

    # what the app does on the push: serials since its tag, fetch with its word (200, then 304)
    assert phone.on_push() == [serial]  # the changed serial is listed, and fetched: 200
    assert phone.current(serial).field("balance")["value"] == 250
    statuses = phone.fetch_until_unchanged(serial)  # then 304 with If-Modified-Since
    assert statuses[-1] == 304, statuses
    assert phone.changed_serials(serial, phone.last_updated).status_code == 204
    assert phone.fetch_as(serial, app.word).status_code in (200, 304)  # the registration word works too

    gone = phone.unregister(serial)
    assert gone.status_code == 200, gone.text
    assert rig.devices(issued) == 1
    mark = len(rig.relays.calls)
    rig.event(issued, 300)
    wait_for(lambda: rig.delivered(sibling.push_token, mark))
    assert rig.calls_with(phone.push_token, mark) == []  # unregistered: nothing pushed to it
    assert sibling.on_push() == [serial]


def test_one_card_on_an_iphone_and_three_android_apps_each_pushed_once_through_its_channel(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    iphone_http = rig.server.client()
    iphone = SimulatedIPhone(iphone_http, "iphone" + uuid.uuid4().hex, apns_token())
    iphone.add_pass(iphone_http.get(issued["links"]["apple"]).content)
    assert iphone.register(serial).status_code == 201
    androids = [rig.android(app, issued) for app in (WALLETUNION, PASS2U, PASSWALLET)]
    for phone in androids:
        response = phone.register(serial)
        assert response.status_code == 201, response.text
    assert rig.devices(issued) == 4

    mark = len(rig.relays.calls)
    apns_before = len(rig.apns.tokens())
    rig.event(issued, 77)
    wait_for(
        lambda: iphone.push_token in rig.apns.tokens() and all(rig.delivered(p.push_token, mark) for p in androids)
    )
    time.sleep(1.0)  # anything pushed twice would show by now
    apns_tokens = rig.apns.tokens()[apns_before:]
    assert Counter(apns_tokens)[iphone.push_token] == 1
    android_tokens = {p.push_token for p in androids}
    assert not android_tokens & set(apns_tokens)  # APNs gets only the iPhone's token
    calls = list(rig.relays.calls)[mark:]
    assert all(iphone.push_token not in c.tokens for c in calls)
    for phone in androids:
        mine = [c for c in calls if phone.push_token in c.tokens]
        assert [(c.protocol, c.status) for c in mine] == [(phone.app.relay, 200)], mine
        assert Counter(t for c in calls for t in c.tokens)[phone.push_token] == 1
    for device in (iphone, *androids):
        assert device.on_push() == [serial]


# -- the relays' answers ---------------------------------------------------------------------------


def test_expired_token_removes_the_registration(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    dead, alive = rig.android(WALLETUNION, issued), rig.android(WALLETUNION, issued)
    for phone in (dead, alive):
        assert phone.register(serial).status_code == 201
    rig.relays.expired.add(dead.push_token)
    try:
        mark = len(rig.relays.calls)
        rig.event(issued, 20)
        wait_for(lambda: rig.delivered(dead.push_token, mark) and rig.delivered(alive.push_token, mark))
        (call,) = rig.calls_with(dead.push_token, mark)
        assert call.status == 200
        wait_for(lambda: rig.devices(issued) == 1, timeout=10)
        assert dead.changed_serials(serial).status_code == 204  # its registration is gone

        mark = len(rig.relays.calls)
        rig.event(issued, 30)
        wait_for(lambda: rig.delivered(alive.push_token, mark))
        assert rig.calls_with(dead.push_token, mark) == []
    finally:
        rig.relays.expired.discard(dead.push_token)


def test_429_is_retried_after_retry_after_and_delivered(rig: Rig) -> None:
    issued = rig.card()
    phone = rig.android(WALLETPASSES, issued)
    assert phone.register(issued["serial"]).status_code == 201
    mark = len(rig.relays.calls)
    rig.relays.script("walletpasses", Reply(429, {"Retry-After": "1"}, {"error": "Too many requests"}))
    rig.event(issued, 40)
    wait_for(lambda: bool(rig.calls_with(phone.push_token, mark)), interval=0.01)
    refused_at = time.monotonic()
    assert [c.status for c in rig.calls_with(phone.push_token, mark)] == [429]
    wait_for(lambda: rig.delivered(phone.push_token, mark), interval=0.01)
    waited = time.monotonic() - refused_at
    statuses = [c.status for c in rig.calls_with(phone.push_token, mark)]
    assert statuses == [429, 200], statuses
    # at least Retry-After (less the poll's slack); then the worker's backoff (base 2 s, full jitter,
    # Retry-After as the floor) and its 0.5 s idle poll: a few seconds at most
    assert 0.9 <= waited <= 8.0, waited
    assert phone.on_push() == [issued["serial"]]


def test_120_walletunion_devices_take_three_calls_of_at_most_50(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    phones = [rig.android(WALLETUNION, issued) for _ in range(120)]
    for phone in phones:
        response = phone.register(serial)
        assert response.status_code == 201, response.text
    assert rig.devices(issued) == 120
    tokens = {p.push_token for p in phones}
    mark = len(rig.relays.calls)
    rig.event(issued, 50)
    wait_for(lambda: all(rig.delivered(t, mark) for t in tokens))
    time.sleep(0.5)
    calls = [c for c in list(rig.relays.calls)[mark:] if set(c.tokens) & tokens]
    assert len(calls) == 3, [len(c.tokens) for c in calls]
    assert all(c.status == 200 and len(c.tokens) <= 50 and c.protocol == "walletunion" for c in calls)
    assert sorted(len(c.tokens) for c in calls) == [20, 50, 50]
    assert Counter(t for c in calls for t in c.tokens) == Counter(tokens)  # each token once


def test_413_splits_the_call_and_every_device_is_delivered(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    phones = [rig.android(WALLETPASSES, issued) for _ in range(10)]
    for phone in phones:
        assert phone.register(serial).status_code == 201
    tokens = {p.push_token for p in phones}
    rig.relays.limits["walletpasses"] = 4
    try:
        mark = len(rig.relays.calls)
        rig.event(issued, 60)
        wait_for(lambda: all(rig.delivered(t, mark) for t in tokens))
    finally:
        rig.relays.limits.pop("walletpasses", None)
    calls = [c for c in list(rig.relays.calls)[mark:] if set(c.tokens) & tokens]
    assert any(c.status == 413 for c in calls)
    ok = [c for c in calls if c.status == 200]
    assert all(len(c.tokens) <= 4 for c in ok)
    assert Counter(t for c in ok for t in c.tokens) == Counter(tokens)  # each delivered once
    assert all(c.status in (200, 413) for c in calls)


# -- refusals: nothing stored ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "service_url",
    [
        "http://10.0.0.1/x",
        "https://evil.example",
        "https://evil.example/passwallet",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1.evil.example/passwallet",
        "http://user@evil.example/passwallet",
        "ftp://127.0.0.1/passwallet",
        "file:///etc/passwd",
        "",
    ],
)
def test_passwallet_push_service_url_off_the_allowlist_is_refused(rig: Rig, service_url: str) -> None:
    issued = rig.card()
    phone = rig.android(PASSWALLET, issued, push_service_url=service_url)
    response = phone.register(issued["serial"])
    assert response.status_code == 400, response.text
    _nothing_stored(rig, phone, issued)


def test_passwallet_without_push_service_url_is_refused(rig: Rig) -> None:
    issued = rig.card()
    phone = rig.android(PASSWALLET, issued)
    response = phone.register(issued["serial"], body={"pushToken": phone.push_token})
    assert response.status_code == 400, response.text
    _nothing_stored(rig, phone, issued)


def test_wrong_word_wrong_token_and_malformed_tokens_are_refused(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    phone = rig.android(WALLETUNION, issued)
    unauthorized = [
        phone.register(serial, word="FooPass"),
        phone.register(serial, word="walletunionpass"),  # words are compared exactly
        phone.register(serial, word="Bearer"),
        phone.register(serial, token="wrong-" + uuid.uuid4().hex),
        phone.register(serial, token=""),
        phone.register(serial, word="AttidoPass"),  # PassWallet's word on the plain path
        phone.register(serial, word="AttidoPass", attido=False, push_token=fcm_token()),
    ]
    for response in unauthorized:
        assert response.status_code == 401, (response.status_code, response.text)
    # one indistinguishable 401 whatever was wrong
    assert len({response.text for response in unauthorized}) == 1
    # the attido path with a good word but a wrong token is refused alike
    attido = phone.register(serial, word="AttidoPass", attido=True, token="wrong")
    assert attido.status_code == 401 and attido.text == unauthorized[0].text

    bad_tokens = [
        phone.register(serial, push_token="abc def " + fcm_token()),  # spaces
        phone.register(serial, push_token="short"),  # too short
        phone.register(serial, push_token=fcm_token() + "\n"),
        phone.register(serial, push_token="x" * 5000),  # too long
        phone.register(serial, word="ApplePass", push_token=fcm_token()),  # an FCM token under ApplePass
        phone.register(serial, body={}),  # no token
        phone.register(serial, body={"pushToken": 12345}),
    ]
    for response in bad_tokens:
        assert response.status_code == 400, (response.status_code, response.text)
    _nothing_stored(rig, phone, issued)


# -- a device changing apps ------------------------------------------------------------------------


def test_reregistration_under_another_word_moves_the_device(rig: Rig) -> None:
    issued = rig.card()
    serial = issued["serial"]
    phone = rig.android(WALLETUNION, issued)
    first_token = phone.push_token
    assert phone.register(serial).status_code == 201
    mark = len(rig.relays.calls)
    rig.event(issued, 1)
    wait_for(lambda: rig.delivered(first_token, mark))
    assert [c.protocol for c in rig.calls_with(first_token, mark)] == ["walletunion"]

    # the same device, now Wallet Passes with a new token: upserted, not a second device
    moved = rig.android(WALLETPASSES, issued, device_id=phone.device_id)
    response = moved.register(serial)
    assert response.status_code == 200, response.text
    assert rig.devices(issued) == 1
    # a fetch with another known word never changes the client (facts §7)
    assert moved.fetch_as(serial, "WalletUnionPass").status_code == 200
    mark = len(rig.relays.calls)
    rig.event(issued, 2)
    wait_for(lambda: rig.delivered(moved.push_token, mark))
    assert [c.protocol for c in rig.calls_with(moved.push_token, mark)] == ["walletpasses"]
    assert rig.calls_with(first_token, mark) == []
    assert not [
        c for c in list(rig.relays.calls)[mark:] if c.protocol == "walletunion" and moved.push_token in c.tokens
    ]

    # and on to Pass2U (ApplePass + X-Pass-Client: Passes), token kept: the next push goes to Pass2U
    again = rig.android(PASS2U, issued, device_id=phone.device_id, push_token=moved.push_token)
    response = again.register(serial)
    assert response.status_code == 200, response.text
    mark = len(rig.relays.calls)
    rig.event(issued, 3)
    wait_for(lambda: rig.delivered(moved.push_token, mark))
    assert [c.protocol for c in rig.calls_with(moved.push_token, mark)] == ["pass2u"]
    assert rig.calls_with(first_token, mark) == []
    assert rig.devices(issued) == 1


def test_registrations_are_classified_per_client(rig: Rig) -> None:
    """Every app's registration is counted under its own client in /metrics (§7 order)."""
    issued = rig.card()
    for app in APPS:
        assert rig.android(app, issued).register(issued["serial"]).status_code == 201
    metrics = httpx.get(f"{rig.server.base}/metrics", timeout=10).text
    for client in (app.client for app in APPS):
        assert f'client="{client}"' in metrics, client
    assert clients.APPLE in clients.CLIENTS
