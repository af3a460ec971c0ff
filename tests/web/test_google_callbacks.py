"""POST /google/callbacks against the real service on both stores, with Google's root keys served by
a loopback fake (tests/fakes/google_keys_server.py) and callbacks signed by a test chain
(tests/fakes/google_keys.py): valid save/del recorded once per nonce, every unverified variant
refused with nothing recorded, the root keys cached until they expire and fetched one at a time,
503 while they cannot be fetched; and the key cache itself, in-process."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from config.google import GoogleSettings
from store.factory import open_store
from tests.fakes.google_keys import SigningChain, encode
from tests.fakes.google_keys_server import FakeGoogleKeysServer
from tests.web.conftest import LiveServer
from tests.web.test_openapi import check_answer
from web.errors import ApiError, api_error_handler
from web.google import CALLBACKS_TOTAL, RootKeyCache, RootKeysUnavailable, google_callback
from web.metrics import Metrics

ISSUER = "3388000000000000042"  # set explicitly: not the dev default
PATH = "/google/callbacks"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def chain() -> SigningChain:
    return SigningChain(now_ms=now_ms(), issuer_id=ISSUER)


@pytest.fixture
def keys(chain: SigningChain) -> Iterator[FakeGoogleKeysServer]:
    with FakeGoogleKeysServer(chain.keys_json(), max_age=3600) as server:
        yield server


def start(server_factory, keys_url: str, **extra: str) -> LiveServer:
    return server_factory(WALLET_GOOGLE_KEYS_URL=keys_url, WALLET_GOOGLE_ISSUER_ID=ISSUER, **extra)


def post(server: LiveServer, body: bytes) -> httpx.Response:
    return server.client().post(PATH, content=body, headers={"Content-Type": "application/json"})


def installs(server_factory, object_id: str) -> list[tuple[str, float]]:
    async def read() -> list[tuple[str, float]]:
        store = await open_store(server_factory.database_url)
        try:
            return await store.google_installs(object_id)
        finally:
            await store.close()

    return asyncio.run(read())


def counted(server: LiveServer, result: str) -> float:
    text = server.client().get("/metrics").text
    match = re.search(rf'^{CALLBACKS_TOTAL}{{result="{result}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def suffix() -> str:
    return "card-" + uuid.uuid4().hex[:12]


# -- accepted -------------------------------------------------------------------------------------


def test_a_valid_save_is_recorded_once_and_its_replay_answered_200(server_factory, chain, keys):
    server = start(server_factory, keys.url)
    card = suffix()
    nonce = str(uuid.uuid4())
    body = chain.callback(event="save", object_suffix=card, nonce=nonce)
    before = time.time()

    first = post(server, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "recorded", "event": "save"}
    # Google retries and duplicates: the same nonce again (re-spaced outer JSON too) changes nothing
    again = post(server, body)
    respaced = post(server, encode(json.loads(body), indent=2))
    document = server.client().get("/openapi.json").json()
    check_answer(document, "POST", PATH, first)
    for answer in (again, respaced):
        assert answer.status_code == 200, answer.text
        check_answer(document, "POST", PATH, answer)
        assert answer.json() == {"result": "duplicate", "event": "save"}

    [(event, at)] = installs(server_factory, f"{ISSUER}.{card}")
    assert event == "save" and before - 1 <= at <= time.time() + 1
    assert counted(server, "recorded") == 1 and counted(server, "duplicate") == 2
    # the log names outcomes, never the object or the nonce
    log = server.log_path.read_text()
    assert card not in log and nonce not in log


def test_a_valid_del_is_recorded_after_the_save(server_factory, chain, keys):
    server = start(server_factory, keys.url)
    card = suffix()
    for event in ("save", "del"):
        answer = post(server, chain.callback(event=event, object_suffix=card))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"result": "recorded", "event": event}
    assert [event for event, _ in installs(server_factory, f"{ISSUER}.{card}")] == ["del", "save"]


# -- refused --------------------------------------------------------------------------------------


def refusals(chain: SigningChain, card: str) -> list[tuple[str, bytes, int, str, str]]:
    """(case, body, status, code, reason) for every way a callback is refused, all about `card`."""
    now = now_ms()
    other_root = SigningChain(now_ms=now, issuer_id=ISSUER).root
    other_intermediate = SigningChain(now_ms=now, issuer_id=ISSUER).intermediate
    good = chain.callback_dict(object_suffix=card)
    wrong_type = dict(good, signature=5)
    unverified = "unverified_callback"
    return [
        (
            "message signature tampered",
            chain.callback(object_suffix=card, tamper_message_signature=True),
            401,
            unverified,
            "message_signature",
        ),
        (
            "signed message changed",
            chain.callback(object_suffix=card, tamper_signed_message=True),
            401,
            unverified,
            "message_signature",
        ),
        (
            "message signed by another key",
            chain.callback(object_suffix=card, message_signer=other_intermediate),
            401,
            unverified,
            "message_signature",
        ),
        (
            "intermediate key signature tampered",
            chain.callback(object_suffix=card, tamper_key_signature=True),
            401,
            unverified,
            "intermediate_signature",
        ),
        (
            "intermediate key signed by an unknown root",
            chain.callback(object_suffix=card, key_signer=other_root),
            401,
            unverified,
            "intermediate_signature",
        ),
        (
            "intermediate key expired",
            chain.callback(object_suffix=card, intermediate_expires_ms=now - 1000),
            401,
            unverified,
            "intermediate_expired",
        ),
        (
            "signed for the other sender id Google's pages name",
            chain.callback(object_suffix=card, sender_id="GoogleWalletPasses"),
            401,
            unverified,
            "wrong_sender",
        ),
        (
            "signed for an unknown sender id",
            chain.callback(object_suffix=card, sender_id="SomeoneElse"),
            401,
            unverified,
            "intermediate_signature",
        ),
        (
            "signed for another issuer",
            chain.callback(object_suffix=card, recipient_id="3388000000099999999", issuer_in_ids="3388000000099999999"),
            401,
            unverified,
            "wrong_issuer",
        ),
        (
            "signed for us, about another issuer's object",
            chain.callback(object_suffix=card, issuer_in_ids="3388000000099999999"),
            401,
            unverified,
            "wrong_issuer",
        ),
        (
            "message expired",
            chain.callback(object_suffix=card, exp_time_millis=now - 1000),
            401,
            unverified,
            "message_expired",
        ),
        ("not JSON", b'{"signature": "abc', 400, "invalid_callback", "malformed"),
        ("not an object", b"[]", 400, "invalid_callback", "malformed"),
        ("empty object", b"{}", 400, "invalid_callback", "malformed"),
        ("a field of the wrong type", encode(wrong_type), 400, "invalid_callback", "malformed"),
        (
            "another protocol",
            chain.callback(object_suffix=card, protocol="ECv2"),
            400,
            "invalid_callback",
            "protocol_version",
        ),
    ]


def test_every_unverified_callback_is_refused_and_nothing_is_recorded(server_factory, chain, keys):
    server = start(server_factory, keys.url)
    card = suffix()
    cases = refusals(chain, card)
    document = server.client().get("/openapi.json").json()
    for case, body, status, code, reason in cases:
        answer = post(server, body)
        assert answer.status_code == status, (case, answer.text)
        check_answer(document, "POST", PATH, answer)  # a documented status, code and body
        error = answer.json()["error"]
        assert error["code"] == code and reason in error["message"], (case, error)
    assert installs(server_factory, f"{ISSUER}.{card}") == []
    assert counted(server, "recorded") == 0
    assert counted(server, "message_signature") == 3 and counted(server, "malformed") == 4
    # bodies that are not callbacks cost no key fetch; the rest shared one
    assert keys.requests == 1
    # the same chain's valid callback still goes through: nothing above broke the service's state
    assert post(server, chain.callback(object_suffix=card)).status_code == 200
    assert len(installs(server_factory, f"{ISSUER}.{card}")) == 1


def test_a_body_over_the_limit_is_refused_with_413(server_factory, chain, keys):
    server = start(server_factory, keys.url)
    big = chain.callback_dict(object_suffix=suffix())
    big["padding"] = "x" * (64 * 1024)
    answer = post(server, encode(big))
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"
    assert keys.requests == 0


# -- the root keys ----------------------------------------------------------------------------------


def test_root_keys_are_fetched_once_for_many_callbacks_and_again_after_they_expire(server_factory, chain):
    with FakeGoogleKeysServer(chain.keys_json(), max_age=2) as keys:
        server = start(server_factory, keys.url)
        for _ in range(4):
            assert post(server, chain.callback(object_suffix=suffix())).status_code == 200
        assert keys.requests == 1
        time.sleep(2.3)  # past max-age
        for _ in range(3):
            assert post(server, chain.callback(object_suffix=suffix())).status_code == 200
        assert keys.requests == 2


def test_concurrent_callbacks_wait_for_one_fetch(server_factory, chain):
    with FakeGoogleKeysServer(chain.keys_json(), max_age=3600) as keys:
        keys.delay = 0.5
        server = start(server_factory, keys.url)
        bodies = [chain.callback(object_suffix=suffix()) for _ in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda body: post(server, body), bodies))
        assert [a.status_code for a in answers] == [200] * 8
        assert keys.requests == 1 and keys.max_in_flight == 1


def test_rotated_root_keys_are_picked_up_on_refetch(server_factory, chain):
    with FakeGoogleKeysServer(chain.keys_json(), max_age=1) as keys:
        server = start(server_factory, keys.url)
        assert post(server, chain.callback(object_suffix=suffix())).status_code == 200
        rotated = SigningChain(now_ms=now_ms(), issuer_id=ISSUER)
        keys.set_body(rotated.keys_json())
        time.sleep(1.2)
        assert post(server, rotated.callback(object_suffix=suffix())).status_code == 200
        answer = post(server, chain.callback(object_suffix=suffix()))
        assert answer.status_code == 401 and "intermediate_signature" in answer.text


def test_keys_endpoint_down_answers_503_with_retry_after_and_records_nothing(server_factory, chain, keys):
    keys.fail_with(500)
    server = start(server_factory, keys.url)
    card = suffix()
    body = chain.callback(object_suffix=card)
    answer = post(server, body)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "keys_unavailable"
    check_answer(server.client().get("/openapi.json").json(), "POST", PATH, answer)
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 5
    # within Retry-After the keys URL is not hit again
    assert post(server, body).status_code == 503
    assert keys.requests == 1
    assert installs(server_factory, f"{ISSUER}.{card}") == []
    assert counted(server, "keys_unavailable") == 2

    keys.fail_with(None)  # back up: Google's retry goes through
    time.sleep(retry_after + 0.2)
    answer = post(server, body)
    assert answer.status_code == 200, answer.text
    assert len(installs(server_factory, f"{ISSUER}.{card}")) == 1


@pytest.mark.parametrize(
    "document",
    [b"not json", b'{"keys": "nope"}', b'{"keys": [{"protocolVersion": "ECv1", "keyValue": "x"}]}'],
    ids=["not-json", "no-key-list", "no-ecv2-key"],
)
def test_an_unusable_keys_document_answers_503(server_factory, chain, keys, document):
    keys.set_body(document)
    server = start(server_factory, keys.url)
    answer = post(server, chain.callback(object_suffix=suffix()))
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "keys_unavailable", answer.text


def test_an_unreachable_keys_url_answers_503(server_factory, chain):
    with FakeGoogleKeysServer(b"") as closed:
        url = closed.url
    server = start(server_factory, url)  # nothing listens there now
    answer = post(server, chain.callback(object_suffix=suffix()))
    assert answer.status_code == 503 and "Retry-After" in answer.headers


# -- in-process: Google off, and the cache on its own -------------------------------------------------


async def test_google_off_answers_404(chain):
    app = Starlette(
        routes=[Route(PATH, google_callback, methods=["POST"])], exception_handlers={ApiError: api_error_handler}
    )
    metrics = Metrics()
    app.state.services = SimpleNamespace(
        settings=SimpleNamespace(google=GoogleSettings()), google_keys=None, metrics=metrics
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post(PATH, content=chain.callback())
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "google_wallet_off"
    assert metrics.value(CALLBACKS_TOTAL, result="off") == 1


class Clock:
    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms


async def test_the_cache_keeps_keys_until_cache_control_and_spaces_retries_after_a_failure(chain):
    clock = Clock()
    answers: list[httpx.Request] = []

    def good() -> httpx.Response:
        return httpx.Response(200, content=chain.keys_json(), headers={"Cache-Control": "max-age=60"})

    script = iter([good, lambda: httpx.Response(503), good])

    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(request)
        return next(script)()

    cache = RootKeyCache(
        "https://keys.test/keys", clock_ms=clock, retry_seconds=3, transport=httpx.MockTransport(handler)
    )
    try:
        first = await cache.keys()
        assert len(first) == 1 and len(answers) == 1
        clock.ms += 59_000
        assert await cache.keys() == first and len(answers) == 1
        clock.ms += 1_000  # max-age over: fetched again, and it fails
        with pytest.raises(RootKeysUnavailable) as failed:
            await cache.keys()
        assert failed.value.retry_after == 3 and len(answers) == 2
        clock.ms += 2_000  # still within the retry spacing: no fetch
        with pytest.raises(RootKeysUnavailable):
            await cache.keys()
        assert len(answers) == 2
        clock.ms += 1_000
        assert len(await cache.keys()) == 1 and len(answers) == 3
    finally:
        await cache.aclose()


async def test_the_cache_never_outlives_the_root_key(chain):
    clock = Clock()
    fetched: list[httpx.Request] = []
    soon = clock.ms + 10_000
    document = chain.keys_json(root_expires_ms=soon)

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(request)
        return httpx.Response(200, content=document, headers={"Cache-Control": "max-age=86400"})

    cache = RootKeyCache("https://keys.test/keys", clock_ms=clock, transport=httpx.MockTransport(handler))
    try:
        await cache.keys()
        clock.ms = soon - 1
        await cache.keys()
        assert len(fetched) == 1
        clock.ms = soon  # the key expired: a fetch, and its answer has no usable key
        with pytest.raises(RootKeysUnavailable):
            await cache.keys()
        assert len(fetched) == 2
    finally:
        await cache.aclose()


async def test_concurrent_callers_share_one_fetch(chain):
    started = 0
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal started
        started += 1
        await release.wait()
        return httpx.Response(200, content=chain.keys_json())

    cache = RootKeyCache("https://keys.test/keys", transport=httpx.MockTransport(handler))
    try:
        waiting = [asyncio.create_task(cache.keys()) for _ in range(10)]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(*waiting)
        assert started == 1 and all(len(keys) == 1 for keys in results)
    finally:
        await cache.aclose()
