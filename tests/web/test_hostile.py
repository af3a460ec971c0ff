"""Hostile input never gets a 5xx (issue 9): one test per class of input that used to break the service,
each against the real server on both stores where the class reaches storage, plus the in-process checks
(Content-Length, the 5xx counter, the timing of PassKit refusals)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import MutableMapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cards.bounds import POINTS_MAX, VERSION_MAX
from cards.model import MODIFIED_AHEAD_MAX, VALIDATOR_AHEAD_MAX
from config.settings import load_settings
from config.startup import prepare
from ledger.events import EventError, parse_event
from ledger.signature import sign
from passes.programs import load_programs
from tests.web.conftest import (
    KEYS,
    LEDGER_SECRET,
    PASS_TYPE_ID,
    ROOT,
    LiveServer,
    database_url,
    delete_redis_prefix,
    service_env,
)
from tests.web.iphone import read_pass_json
from web.app import create_app
from web.body import BodyLimitMiddleware
from web.cards import parse_new_card
from web.errors import SERVER_ERRORS, ApiError, api_error_handler, unexpected_error_handler
from web.metrics import Metrics
from web.openapi import openapi_document

# -- helpers ----------------------------------------------------------------------------------


def new_account() -> str:
    return "acc-" + uuid.uuid4().hex[:12]


def holder(server: LiveServer) -> tuple[dict[str, Any], str]:
    """A new card and its pass's authenticationToken."""
    issued = server.issue(new_account())
    token = read_pass_json(server.client().get(issued["links"]["apple"]).content)["authenticationToken"]
    return issued, token


def post_raw(server: LiveServer, body: bytes) -> httpx.Response:
    """A signed ledger post of exactly these bytes (json.dumps cannot write some of what is tested)."""
    header = sign(LEDGER_SECRET, int(time.time()), body)
    return server.client().post(
        "/v1/ledger/events", content=body, headers={"X-Wallet-Signature": header, "Content-Type": "application/json"}
    )


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    return error


def card_state(server: LiveServer, number: str) -> dict[str, Any]:
    response = server.api().get(f"/v1/cards/{number}")
    assert response.status_code == 200, response.text
    return response.json()


def event(card: str, version: Any, balance: int, **fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "card": card, "version": version, "balance": balance, **fields}


DEEP = b"[" * 100_000 + b"]" * 100_000


# -- 1. numbers: ASCII digits only, and a length cap --------------------------------------------


def test_numbers_in_other_digits_or_too_long_are_refused_or_ignored(shared_server: LiveServer):
    issued, token = holder(shared_server)
    plain = shared_server.client()
    device = f"dev-{uuid.uuid4().hex[:8]}"
    registration = f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}"
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    assert apple.post(f"{registration}/{issued['serial']}", json={"pushToken": "ab" * 32}).status_code == 201

    # passesUpdatedSince is our opaque tag: one we never issued means "everything" (superscripts,
    # other scripts' digits, 5 000 digits, and a 19-digit number beyond SQLite's integers)
    for since in ["²", "٣", "1" * 5000, "9" * 19]:
        listed = plain.get(registration, params={"passesUpdatedSince": since})
        assert listed.status_code == 200, (since, listed.text)
        assert listed.json()["serialNumbers"] == [issued["serial"]]

    # a link's exp
    link = issued["links"]["apple"]
    for exp in ["²" * 3, "9" * 5000, "٣٣٣٣٣٣٣٣٣٣"]:
        tampered = link.replace("exp=", f"exp={exp}&was=")
        assert error_of(plain.get(tampered), 404)["code"] == "invalid_link"

    # the ledger signature's t
    body = json.dumps({"events": []}).encode()
    digest = sign(LEDGER_SECRET, int(time.time()), body).partition(",v1=")[2]
    # headers arrive as latin-1: its superscripts ¹ ² ³ are digits to str.isdigit(), not to int()
    for t in [b"\xb9\xb2\xb3", b"1" * 5000, "１７００".encode()]:
        header = b"t=" + t + b",v1=" + digest.encode()
        answer = plain.post("/v1/ledger/events", content=body, headers={b"X-Wallet-Signature": header})
        assert error_of(answer, 401)["code"] == "bad_signature"

    # the admin lists' limit
    admin = shared_server.api("admin")
    for limit in ["²", "1" * 5000, "٣"]:
        assert error_of(admin.get("/v1/admin/pushes", params={"limit": limit}), 400)["code"] == "invalid_query"


@pytest.mark.parametrize(
    "value, status",
    [(b"9" * 5000, 400), ("²".encode(), 400), (b"1" * 19, 400), (b"-1", 400), (b"2097152", 413)],
)
def test_a_content_length_in_other_digits_or_too_long_is_refused(value: bytes, status: int):
    # in-process: uvicorn's own parser would refuse some of these before the app sees them
    async def endpoint(request: Request) -> Response:
        return Response("read")

    app = BodyLimitMiddleware(Starlette(routes=[Route("/", endpoint, methods=["POST"])]))
    answers: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"content-length", value)],
    }
    asyncio.run(app(scope, receive, send))
    assert answers[0]["status"] == status
    assert set(json.loads(answers[1]["body"])["error"]) == {"code", "message"}


# -- 1. JSON nested too deep, lone surrogates ---------------------------------------------------


def test_json_nested_too_deep_or_holding_lone_surrogates_is_400_and_stores_nothing(shared_server: LiveServer):
    api = shared_server.api()
    account = new_account()
    body = {"program": "coffee", "account": account, "member": {"name": "Anna\ud800"}}
    error = error_of(api.post("/v1/cards", content=json.dumps(body).encode()), 400)
    assert error["code"] == "invalid_json" and "surrogate" in error["message"]
    error = error_of(api.post("/v1/cards", content=DEEP), 400)
    assert error["code"] == "invalid_json" and "depth" in error["message"]
    # nothing was stored: the account is still free
    assert api.post("/v1/cards", json={**body, "member": {"name": "Anna"}}).status_code == 201

    plain = shared_server.client()
    assert error_of(plain.post("/passkit/v1/log", content=b'{"logs": ["\\udfff"]}'), 400)["code"] == "invalid_json"
    assert error_of(plain.post("/passkit/v1/log", content=DEEP), 400)["code"] == "invalid_json"

    issued, token = holder(shared_server)
    path = f"/passkit/v1/devices/dev-{uuid.uuid4().hex[:8]}/registrations/{PASS_TYPE_ID}/{issued['serial']}"
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    assert error_of(apple.post(path, content=DEEP), 400)["code"] == "invalid_json"
    assert error_of(apple.post(path, content=b'{"pushToken": "\\ud800ab"}'), 400)["code"] == "invalid_json"
    assert card_state(shared_server, issued["card"])["devices"] == 0

    error = error_of(post_raw(shared_server, b'{"events": [' + DEEP + b"]}"), 400)
    assert error["code"] == "invalid_json" and "nested" in error["message"]


# -- 1. dates that overflow --------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
        "Mon, 01 Jan 2001 00:00:00 +99999999999999999999",
        "Mon, 99999999999999999999 Jan 2001 00:00:00 GMT",
        "Mon, 01 Jan 99999 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 -9999",
        "Mon, 01 Jan 2001 00:00:" + "9" * 5000 + " GMT",
    ],
)
def test_an_if_modified_since_that_overflows_is_treated_as_absent(shared_server: LiveServer, header: str):
    issued, token = holder(shared_server)
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    answer = apple.get(f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}", headers={"If-Modified-Since": header})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apple.pkpass"


# -- 1. whole-string matches ---------------------------------------------------------------------


def test_a_trailing_newline_never_passes_a_pattern(shared_server: LiveServer):
    issued, token = holder(shared_server)
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    token_body = {"pushToken": "ab" * 32}
    newline_device = f"/passkit/v1/devices/dev1%0A/registrations/{PASS_TYPE_ID}/{issued['serial']}"
    assert error_of(apple.post(newline_device, json=token_body), 400)["code"] == "invalid_path"
    newline_type = f"/passkit/v1/devices/dev1/registrations/{PASS_TYPE_ID}%0A/{issued['serial']}"
    assert error_of(apple.post(newline_type, json=token_body), 400)["code"] == "invalid_path"
    path = f"/passkit/v1/devices/dev-{uuid.uuid4().hex[:8]}/registrations/{PASS_TYPE_ID}/{issued['serial']}"
    assert error_of(apple.post(path, json={"pushToken": "ab" * 32 + "\n"}), 400)["code"] == "invalid_field"
    assert card_state(shared_server, issued["card"])["devices"] == 0

    state = card_state(shared_server, issued["card"])
    newline_id = {"id": "e1\n", "card": issued["card"], "version": 1, "balance": 5}
    newline_card = {"id": uuid.uuid4().hex, "card": issued["card"] + "\n", "version": 1, "balance": 5}
    newline_account = {"id": uuid.uuid4().hex, "account": state["account"] + "\n", "version": 1, "balance": 5}
    answer = shared_server.post_ledger([newline_id, newline_card, newline_account])
    assert answer.status_code == 202, answer.text
    assert [item["id"] for item in answer.json()["invalid"]] == [None, newline_card["id"], newline_account["id"]]
    assert answer.json()["accepted"] == []
    assert card_state(shared_server, issued["card"])["balance"] == 0


# -- 1. client errors are one log line, server errors are counted -------------------------------


def test_client_errors_are_one_log_line_each_never_a_traceback(live_server: LiveServer):
    issued, token = holder(live_server)
    api, plain = live_server.api(), live_server.client()
    apple = live_server.client(Authorization=f"ApplePass {token}")
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"
    answers = [
        api.post("/v1/cards", content=DEEP),
        api.post("/v1/cards", content=b'{"program": "coffee", "account": "a", "member": {"name": "\\ud800"}}'),
        api.get("/v1/admin/pushes", params={"limit": "²"}),
        live_server.api("admin").get("/v1/admin/pushes", params={"limit": "1" * 5000}),
        plain.get(issued["links"]["apple"].replace("exp=", "exp=²&x=")),
        plain.get(f"/passkit/v1/devices/d/registrations/{PASS_TYPE_ID}", params={"passesUpdatedSince": "²"}),
        apple.get(latest, headers={"If-Modified-Since": "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"}),
        plain.post("/v1/ledger/events", content=b"{}", headers={b"X-Wallet-Signature": b"t=\xb9,v1=00"}),
        post_raw(live_server, b'{"events": [{"id": "x", "message": "\\ud800"}]}'),
        plain.get(latest),
    ]
    statuses = [answer.status_code for answer in answers]
    assert all(status < 500 for status in statuses), [(a.status_code, a.text) for a in answers]
    client_errors = [a for a in answers if 400 <= a.status_code < 500]
    log = live_server.log_path.read_text()
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "client error" in line]
    assert len(lines) == len(client_errors), lines
    for answer, line in zip(client_errors, lines, strict=True):
        assert f"client error {answer.status_code} {answer.json()['error']['code']} on " in line
    # the path is logged as its route, never with the serial or card number in it
    assert not [line for line in lines if issued["serial"] in line or issued["card"] in line]
    assert SERVER_ERRORS not in plain.get("/metrics").text


async def test_a_server_error_is_counted_in_metrics_and_a_client_error_logged_in_one_line(caplog):
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    async def refused(request: Request) -> Response:
        raise ApiError(400, "invalid_field", "name: required")

    app = Starlette(
        routes=[Route("/broken/{card}", broken), Route("/refused/{card}", refused)],
        exception_handlers={ApiError: api_error_handler, Exception: unexpected_error_handler},
    )
    metrics = Metrics()
    app.state.services = type("Services", (), {"metrics": metrics})()
    # the app re-raises a 500's exception to the server after answering (uvicorn logs it); not here
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://wallet.test") as client:
        with caplog.at_level("INFO", logger="web.errors"):
            assert (await client.get("/refused/4000000000000002")).status_code == 400
        [record] = [r for r in caplog.records if r.name == "web.errors"]
        assert (
            record.exc_info is None and record.getMessage() == "client error 400 invalid_field on GET /refused/{card}"
        )
        assert metrics.value(SERVER_ERRORS, status="500") == 0
        for _ in range(2):
            answer = await client.get("/broken/4000000000000002")
            assert answer.status_code == 500
            assert answer.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert metrics.value(SERVER_ERRORS, status="500") == 2
    assert f'{SERVER_ERRORS}{{status="500"}} 2.0' in metrics.render()


# -- 2. one bad event never sinks a batch --------------------------------------------------------


def test_one_bad_event_never_sinks_a_signed_batch(shared_server: LiveServer):
    first = shared_server.issue(new_account())["card"]
    second = shared_server.issue(new_account())["card"]
    good = event(first, 1, 100, message="+100")
    surrogate = event(second, 1, 5, message="bad \ud800 text")
    bidi = event(second, 2, 6, message="+\u202e001")
    later = event(second, 3, 7, message="+7")
    events = [good, surrogate, bidi, later]
    # json.dumps writes the surrogate as the escape \ud800; the huge integer is spliced in as text
    body = json.dumps({"events": events}).encode()
    huge_id = uuid.uuid4().hex
    huge = b'{"id": "%s", "card": "%s", "version": 4, "balance": %s}' % (huge_id.encode(), second.encode(), b"9" * 5000)
    body = body[: -len(b"]}")] + b", " + huge + b"]}"

    answer = post_raw(shared_server, body)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["accepted"] == [good["id"], later["id"]]
    reasons = {item["id"]: item["error"] for item in result["invalid"]}
    assert set(reasons) == {surrogate["id"], bidi["id"], huge_id}
    assert "surrogate" in reasons[surrogate["id"]]
    assert "bidirectional" in reasons[bidi["id"]]
    assert "out of range" in reasons[huge_id]
    assert (card_state(shared_server, first)["balance"], card_state(shared_server, second)["balance"]) == (100, 7)
    # the ledger's retry of the same post is answered the same way, not refused: it is not stuck
    again = post_raw(shared_server, body).json()
    assert again["duplicate"] == [good["id"], later["id"]] and len(again["invalid"]) == 3


# -- 3. texts that reach a lock screen -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reason",
    [
        ("Anna\u202eanna", "bidirectional"),
        ("\u2066Anna\u2069", "bidirectional"),
        ("An\x85na", "control"),
        ("An\nna", "control"),
        ("An\u2028na", "control"),
        ("An\x1b[31mna", "control"),
    ],
)
def test_member_names_keep_to_the_lock_screen_rule(shared_server: LiveServer, name: str, reason: str):
    body = {"program": "coffee", "account": new_account(), "member": {"name": name}}
    error = error_of(shared_server.api().post("/v1/cards", json=body), 400)
    assert (
        error["code"] == "invalid_field" and error["message"].startswith("member.name:") and reason in error["message"]
    )


def test_ledger_messages_keep_to_the_lock_screen_rule_and_may_have_several_lines(shared_server: LiveServer):
    issued = shared_server.issue(new_account(), member={"name": "سارا\u200f Ahmed", "phone": "+79001234567"})
    number = issued["card"]
    bad = [
        event(number, 1, 1, message="+1\u202e0001"),
        event(number, 2, 2, message="\u2067+2"),
        event(number, 3, 3, message="ring\x07"),
        event(number, 4, 4, message="\x9b31m"),
    ]
    fine = event(number, 5, 5, message="+5 points\nthank you")
    answer = shared_server.post_ledger([*bad, fine]).json()
    assert answer["accepted"] == [fine["id"]]
    assert [item["id"] for item in answer["invalid"]] == [e["id"] for e in bad]
    assert card_state(shared_server, number)["last_message"] == "+5 points\nthank you"


def test_the_document_states_the_same_text_and_number_rules_as_the_readers(certs_dir: Path):
    """/openapi.json keeps in step with the rules above: its NewCard and LedgerEvent schemas give the
    readers' verdicts on the hostile cases. (Trailing newlines are left out: the document's `^...$` means
    the whole string in JSON Schema, but Python's re, which jsonschema uses, lets a final newline through.)"""
    programs = load_programs(ROOT / "pass_templates")
    app = create_app(prepare(load_settings({"WALLET_CERTS_DIR": str(certs_dir)}, dotenv=None)))
    document = openapi_document(app.routes, programs, "http://127.0.0.1")

    def schema(name: str, *path: str) -> Draft202012Validator:
        node: Any = document["components"]["schemas"][name]
        for key in path:
            node = node[key]
        return Draft202012Validator(node)

    new_card = schema("NewCard")
    names = {"Anna": True, "سارا\u200f": True, "A\u202eB": False, "\u2066A": False, "A\x85B": False}
    names |= {"A\nB": False, "A\u2028B": False, "A\x07B": False}
    for name, fine in names.items():
        for balance, in_bounds in [(0, True), (POINTS_MAX, True), (POINTS_MAX + 1, False)]:
            body = {"program": "coffee", "account": "acc-1", "member": {"name": name}, "balance": balance}
            try:
                parse_new_card(body, programs)
                read = True
            except ApiError:
                read = False
            assert read is (fine and in_bounds) and new_card.is_valid(body) is read, body

    ledger_event = schema("LedgerPost", "properties", "events", "items")
    tiers = frozenset(key for program in programs.values() for key in program.tier_keys)
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"message": "+5\nthanks"}, True),
        ({"message": "+\u202e5"}, False),
        ({"message": "\u2069"}, False),
        ({"message": "ring\x07"}, False),
        ({"balance": -1}, False),
        ({"balance": POINTS_MAX}, True),
        ({"balance": POINTS_MAX + 1}, False),
        ({"pending": POINTS_MAX + 1}, False),
        ({"expiring": {"points": POINTS_MAX + 1, "date": "2030-01-01"}}, False),
        ({"version": VERSION_MAX}, True),
        ({"version": VERSION_MAX + 1}, False),
    ]
    for fields, fine in cases:
        item = {"id": "e-1", "card": "7790000000000005", "version": 1, "balance": 0, **fields}
        try:
            parse_event(item, tiers)
            parsed = True
        except EventError:
            parsed = False
        assert parsed is fine and ledger_event.is_valid(item) is parsed, item


# -- 4. bounded values -----------------------------------------------------------------------------


def test_figures_and_versions_are_bounded_and_never_read_from_a_malformed_number(shared_server: LiveServer):
    api = shared_server.api()
    body = {"program": "coffee", "account": new_account(), "member": {"name": "Anna"}}
    for balance in [POINTS_MAX + 1, -1, 1.0, "5", True, 2**64]:
        error = error_of(api.post("/v1/cards", json={**body, "balance": balance}), 400)
        assert error["message"].startswith("balance:"), (balance, error)
    assert api.post("/v1/cards", json={**body, "balance": POINTS_MAX}).status_code == 201

    number = shared_server.issue(new_account())["card"]
    refused = [
        event(number, 1, -1),
        event(number, 1, POINTS_MAX + 1),
        event(number, 1, 0, pending=POINTS_MAX + 1),
        event(number, 1, 0, pending=-1),
        event(number, 1, 0, expiring={"points": POINTS_MAX + 1, "date": "2030-01-01"}),
        event(number, VERSION_MAX + 1, 0),
        event(number, 2**53, 0),
        event(number, 1.0, 0),
        event(number, "1", 0),
        event(number, True, 0),
    ]
    answer = shared_server.post_ledger(refused).json()
    assert answer["accepted"] == [] and len(answer["invalid"]) == len(refused)
    top = event(number, VERSION_MAX, POINTS_MAX, pending=POINTS_MAX)
    assert shared_server.post_ledger([top]).json()["accepted"] == [top["id"]]
    state = card_state(shared_server, number)
    assert (state["version"], state["balance"], state["pending"]) == (VERSION_MAX, POINTS_MAX, POINTS_MAX)


def _seconds(http_date: str) -> float:
    return parsedate_to_datetime(http_date).timestamp()


def test_last_modified_stays_near_the_clock_and_if_modified_since_never_hides_a_change(shared_server: LiveServer):
    issued, token = holder(shared_server)
    number = issued["card"]
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"

    # 1 000 events for one card in one post, then 30 posts in a row: the old rule put it 1 030 s ahead
    answer = shared_server.post_ledger([event(number, v, v) for v in range(1, 1001)])
    assert len(answer.json()["accepted"]) == 1000
    for v in range(1001, 1031):
        assert shared_server.post_ledger([event(number, v, v)]).json()["accepted"]
    updated = datetime.fromisoformat(card_state(shared_server, number)["updated_at"].replace("Z", "+00:00"))
    assert updated.timestamp() <= time.time() + MODIFIED_AHEAD_MAX
    fetched = apple.get(latest)
    assert _seconds(fetched.headers["last-modified"]) <= time.time() + VALIDATOR_AHEAD_MAX

    # a device that re-checks after every change always gets the change, however fast they come
    held = fetched.headers["last-modified"]
    for v in range(1031, 1046):
        assert shared_server.post_ledger([event(number, v, v)]).json()["accepted"]
        again = apple.get(latest, headers={"If-Modified-Since": held})
        assert again.status_code == 200, (v, held)
        assert read_pass_json(again.content)["serialNumber"] == issued["serial"]
        held = again.headers["last-modified"]
    # and once the card is quiet, its Last-Modified settles and the device gets its 304
    deadline = time.monotonic() + MODIFIED_AHEAD_MAX + 3
    while (check := apple.get(latest, headers={"If-Modified-Since": held})).status_code == 200:
        assert time.monotonic() < deadline, "never a 304"
        held = check.headers["last-modified"]
        time.sleep(0.25)
    assert check.status_code == 304


# -- 7. PassKit refusals take the same time, known serial or not ---------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_wrong_token_and_an_unknown_serial_take_the_same_time(kind: str, certs_dir: Path, tmp_path: Path):
    url = database_url(kind, tmp_path)
    app = create_app(prepare(load_settings(service_env(certs_dir, url, 8000, WALLET_RUN_WORKER="0"), dotenv=None)))

    async def measure() -> tuple[float, float]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wallet.test") as client:
                issued = await client.post(
                    "/v1/cards",
                    json={"program": "coffee", "account": new_account(), "member": {"name": "Anna"}},
                    headers={"Authorization": f"Bearer {KEYS['issuer']}"},
                )
                serial = issued.json()["serial"]
                wrong = {"Authorization": "ApplePass " + "w" * 32}
                known = f"/passkit/v1/passes/{PASS_TYPE_ID}/{serial}"
                unknown = f"/passkit/v1/passes/{PASS_TYPE_ID}/{uuid.uuid4().hex[:22]}"
                times: dict[str, list[float]] = {known: [], unknown: []}
                for i in range(1_000):
                    # interleaved, in alternating order, so that drift in the machine's speed hits both alike
                    for path in (known, unknown) if i % 2 else (unknown, known):
                        started = time.perf_counter()
                        answer = await client.get(path, headers=wrong)
                        times[path].append(time.perf_counter() - started)
                        assert answer.status_code == 401
                return statistics.median(times[known][100:]), statistics.median(times[unknown][100:])

    try:
        known_median, unknown_median = asyncio.run(measure())
    finally:
        if kind == "redis":
            delete_redis_prefix(url)
    ratio = known_median / unknown_median
    print(f"{kind}: wrong token {known_median * 1e6:.0f} us, unknown serial {unknown_median * 1e6:.0f} us, {ratio:.3f}")
    assert 0.8 <= ratio <= 1.25, ratio
