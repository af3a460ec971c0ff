"""/openapi.json and /docs against the service they describe.

Every route of the app is in the document exactly once, with its methods and path parameters; the
document is valid OpenAPI 3.1; its body schemas give the same verdicts as the readers the handlers use;
its enums come from the loaded programs; the security, statuses, error codes and answer bodies it states
are what the running service does; and /docs loads Swagger UI from our own host with no inline script."""

from __future__ import annotations

import copy
import json
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from config.settings import load_settings
from config.startup import prepare
from ledger.events import EventError, parse_event
from passes.programs import Program, load_programs
from tests.web.conftest import KEYS, PASS_TYPE_ID, ROOT, LiveServer
from tests.web.iphone import read_pass_json
from web.app import create_app
from web.cards import parse_new_card
from web.errors import ApiError
from web.openapi import openapi_document
from web.routing import ApiRoute

Document = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    """The app as server.py builds it (its lifespan is not run: only its routes are walked)."""
    certs = tmp_path_factory.mktemp("app-certs")
    return create_app(prepare(load_settings({"WALLET_CERTS_DIR": str(certs)}, dotenv=None)))


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return load_programs(ROOT / "pass_templates")


@pytest.fixture(scope="module")
def built(app: Starlette, programs: dict[str, Program]) -> Document:
    """The document for the shipped programs, built in-process (for the checks that need no server)."""
    return openapi_document(app.routes, programs, "http://127.0.0.1")


@pytest.fixture
def served(shared_server: LiveServer) -> Document:
    response = shared_server.client().get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return response.json()


def walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Route):
            yield prefix + route.path_format, route
        elif isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path_format)


def route_problems(routes: Sequence[BaseRoute], document: Document) -> list[str]:
    """Each way the document and the routes disagree, in words."""
    documented = {
        (path, method.upper()): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    problems: list[str] = []
    routed: set[tuple[str, str]] = set()
    for path, route in walk(routes):
        if not isinstance(route, ApiRoute):
            problems.append(f"{path}: a plain Route, with no Operation to document")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if (path, method) in routed:
                problems.append(f"{method} {path} is routed twice")
            routed.add((path, method))
            op = documented.get((path, method))
            if op is None:
                problems.append(f"{method} {path} is not documented")
                continue
            names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            if names != list(route.param_convertors):
                problems.append(
                    f"{method} {path} documents path parameters {names}, the route has {list(route.param_convertors)}"
                )
    for path, method in sorted(documented.keys() - routed):
        problems.append(f"{method} {path} is documented but not routed")
    return problems


def resolved(node: Any, document: Document) -> Any:
    """The schema with every components/schemas $ref replaced by what it points at."""
    if isinstance(node, dict):
        if "$ref" in node:
            return resolved(document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]], document)
        return {key: resolved(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value, document) for value in node]
    return node


def validator(schema: dict[str, Any], document: Document) -> Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; formats (date, date-time, email) are checked too
    return Draft202012Validator(resolved(schema, document), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_accepts(schema: dict[str, Any], document: Document, instance: Any) -> bool:
    return validator(schema, document).is_valid(instance)


def operation(document: Document, method: str, path: str) -> dict[str, Any]:
    return document["paths"][path][method.lower()]


def check_answer(document: Document, method: str, path: str, response: httpx.Response) -> None:
    """The answer's status is documented for the route, and its body matches the documented schema."""
    responses = operation(document, method, path)["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method} {path} answered {status} ({response.text}), documented: {sorted(responses)}"
    content = responses[status].get("content")
    if content is None:
        assert response.content == b"", f"{method} {path} {status} is documented without a body"
        return
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type in content, f"{method} {path} {status} answered {media_type}, documented {list(content)}"
    schema = content[media_type].get("schema")
    if media_type == "application/json" and schema is not None:
        found = validator(schema, document).iter_errors(response.json())
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
        assert not errors, f"{method} {path} {status}: {errors}"


# -- every route, once, with its methods and path parameters ----------------------------------


def test_every_route_of_the_app_is_documented_once_with_its_methods_and_path_parameters(
    app: Starlette, served: Document
):
    assert route_problems(app.routes, served) == []
    # and the walk saw the whole table, Swagger UI's static mounts aside
    assert len({(path, m) for path, r in walk(app.routes) for m in (r.methods or set()) - {"HEAD"}}) == sum(
        1 for item in served["paths"].values() for m in item if m in METHODS
    )


def test_the_route_check_notices_a_missing_route_a_wrong_method_and_a_renamed_parameter(
    app: Starlette, built: Document
):
    doctored = copy.deepcopy(built)
    del doctored["paths"]["/v1/cards"]["post"]
    registration = "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
    doctored["paths"][registration]["put"] = doctored["paths"][registration].pop("delete")
    doctored["paths"]["/v1/cards/{card_number}"]["get"]["parameters"][0]["name"] = "card"
    problems = "\n".join(route_problems(app.routes, doctored))
    assert "POST /v1/cards is not documented" in problems
    assert f"DELETE {registration} is not documented" in problems
    assert f"PUT {registration} is documented but not routed" in problems
    assert "['card_number']" in problems


def test_a_route_without_an_operation_still_appears_with_its_methods_and_parameters_but_fails_the_check(
    app: Starlette, programs: dict[str, Program]
):
    async def endpoint(request: Any) -> Response:
        return Response()

    routes = [*app.routes, Route("/v1/things/{thing}/parts/{part:int}", endpoint, methods=["PUT", "PATCH"])]
    document = openapi_document(routes, programs, "http://127.0.0.1")
    item = document["paths"]["/v1/things/{thing}/parts/{part}"]
    assert sorted(item) == ["patch", "put"]
    assert [(p["name"], p["schema"]["type"]) for p in item["put"]["parameters"]] == [
        ("thing", "string"),
        ("part", "integer"),
    ]
    assert route_problems(routes, document) == [
        "/v1/things/{thing}/parts/{part}: a plain Route, with no Operation to document"
    ]


def test_passkit_paths_use_apples_parameter_names(served: Document):
    passkit = sorted(path for path in served["paths"] if path.startswith("/passkit/v1/devices"))
    assert passkit == [
        "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}",
        "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}",
        "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations_attido/{passTypeIdentifier}/{serialNumber}",
    ]
    assert "/passkit/v1/passes/{passTypeIdentifier}/{serialNumber}" in served["paths"]


# -- a valid OpenAPI 3.1 document -------------------------------------------------------------


def test_the_served_document_is_valid_openapi_3_1(served: Document, shared_server: LiveServer):
    assert served["openapi"] == "3.1.0"
    validate(served, cls=OpenAPIV31SpecValidator)
    assert served["servers"] == [{"url": shared_server.base}]


def test_the_validator_refuses_a_broken_document(built: Document):
    # the validity test above could not fail if the validator took anything
    broken = copy.deepcopy(built)
    del broken["paths"]["/v1/cards/{card_number}"]["get"]["parameters"]
    with pytest.raises(Exception, match="card"):
        validate(broken, cls=OpenAPIV31SpecValidator)


# -- enums from the loaded programs -----------------------------------------------------------


def tea_only(tmp: Path) -> Path:
    """One program, `tea`, with tiers base and gold only and locales en and kk (no ru)."""
    root = tmp / "templates"
    shutil.copytree(ROOT / "pass_templates" / "coffee", root / "tea")
    (root / "tea" / "ru.lproj").rename(root / "tea" / "kk.lproj")
    program = root / "tea" / "program.json"
    data = json.loads(program.read_text(encoding="utf-8"))
    data.update(program="tea", card_prefix="7791", tiers=data["tiers"][:2], locales=["en", "kk"], default_locale="en")
    program.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return root


def test_program_tier_and_locale_enums_come_from_the_loaded_programs(server_factory, tmp_path: Path):
    server = server_factory(WALLET_TEMPLATES_DIR=str(tea_only(tmp_path)), WALLET_RUN_WORKER="0")
    document = server.client().get("/openapi.json").json()
    new_card = document["components"]["schemas"]["NewCard"]["properties"]
    assert new_card["program"]["enum"] == ["tea"]
    assert new_card["tier"]["enum"] == ["base", "gold", None]
    assert new_card["locale"]["enum"] == ["en", "kk", None]
    event = document["components"]["schemas"]["LedgerPost"]["properties"]["events"]["items"]
    assert event["properties"]["tier"]["enum"] == ["base", "gold", None]
    # and the service takes exactly those
    body = {"program": "tea", "account": "acc-" + uuid.uuid4().hex[:8], "member": {"name": "Aigerim"}, "locale": "kk"}
    assert server.api().post("/v1/cards", json=body).status_code == 201
    assert server.api().post("/v1/cards", json={**body, "locale": "ru"}).status_code == 400
    assert server.api().post("/v1/cards", json={**body, "tier": "platinum"}).status_code == 400


# -- body schemas and the readers give the same verdicts --------------------------------------

CARD: dict[str, Any] = {
    "program": "coffee",
    "account": "acc-1",
    "member": {"name": "Ivan", "phone": "+79001112233", "email": "ivan@example.com"},
    "balance": 0,
    "tier": "base",
    "locale": "ru",
}


def card(member_fields: dict[str, Any] | None = None, drop: Sequence[str] = (), **fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(CARD)
    body["member"].update(member_fields or {})
    body.update(fields)
    for name in drop:
        (body["member"] if name.startswith("member.") else body).pop(name.removeprefix("member."))
    return body


# Messages as the hand-written readers gave them before the declarations (web/models.py) took over.
NEW_CARD_ERRORS = [
    (card(program="tea"), 404, "unknown_program", "program 'tea' does not exist"),
    (card({"phone": "89001112233"}), 400, "invalid_field", "member.phone: malformed"),
    (card({"email": "not-an-email"}), 400, "invalid_field", "member.email: malformed"),
    (card(drop=["member.name"]), 400, "invalid_field", "member.name: required"),
    (card(drop=["member"]), 400, "invalid_field", "member: required"),
    (card(member="Ivan"), 400, "invalid_field", "member: must be an object"),
    (card(drop=["account"]), 400, "invalid_field", "account: required"),
    (card(account=""), 400, "invalid_field", "account: must not be empty"),
    (card(account="a b"), 400, "invalid_field", "account: malformed"),
    (card(balance="100"), 400, "invalid_field", "balance: must be an integer"),
    (card(balance=True), 400, "invalid_field", "balance: must be an integer"),
    (card(balance=-1), 400, "invalid_field", "balance: must be at least 0"),
    # the bound is POINTS_MAX (cards/bounds.py) since issue 9; it was 2**53
    (card(balance=10**12 + 1), 400, "invalid_field", "balance: must be at most 1000000000000"),
    (card(tier="diamond"), 400, "invalid_field", "tier: not a tier of coffee: base, gold, platinum"),
    (card(locale="de"), 400, "invalid_field", "locale: one of ru, en"),
    (card(unexpected=1), 400, "invalid_field", "unexpected: unknown field"),
    (card({"extra": 1}), 400, "invalid_field", "member.extra: unknown field"),
    (card({"name": "x" * 101}), 400, "invalid_field", "member.name: at most 100 characters"),
    (card({"name": "a\x01b"}), 400, "invalid_field", "member.name: control characters are not allowed"),
    (card({"name": "   "}), 400, "invalid_field", "member.name: must not be empty"),
    (card(program=5), 400, "invalid_field", "program: must be a string"),
    # which failure wins when there are several: unknown fields first, then the program, then in order
    (card(program="tea", zzz=1, aaa=2), 400, "invalid_field", "aaa: unknown field"),
    (card(program="tea", balance=-1), 404, "unknown_program", "program 'tea' does not exist"),
    (card(tier="diamond", locale="x" * 17), 400, "invalid_field", "tier: not a tier of coffee: base, gold, platinum"),
]


@pytest.mark.parametrize("body, status, code, message", NEW_CARD_ERRORS)
def test_new_card_errors_keep_their_status_code_and_message(body, status, code, message, programs):
    with pytest.raises(ApiError) as info:
        parse_new_card(body, programs)
    assert (info.value.status, info.value.code, info.value.message) == (status, code, message)


NEW_CARD_ACCEPTED = [
    CARD,
    card(drop=["tier", "locale", "balance"]),
    card({"phone": None, "email": None}, tier=None, locale=None),
    card({"name": " Ivan "}, account="acc-2", tier="gold", locale="en", balance=15000),
    card(drop=["member.phone", "member.email"]),
]


@pytest.mark.parametrize("body", NEW_CARD_ACCEPTED + [case[0] for case in NEW_CARD_ERRORS])
def test_the_new_card_schema_and_its_reader_agree(body, programs, built):
    try:
        parse_new_card(body, programs)
        read = True
    except ApiError:
        read = False
    assert schema_accepts(built["components"]["schemas"]["NewCard"], built, body) is read


def event(**fields: Any) -> dict[str, Any]:
    base = {"id": "e-1", "card": "7790000000000005", "version": 1, "balance": 0}
    return {key: value for key, value in {**base, **fields}.items() if value is not ...}


LEDGER_EVENTS = [
    event(),
    event(card=..., account="acc-1"),
    event(card=None, account="acc-1"),
    event(
        tier="gold",
        pending=10,
        message="+250",
        occurred_at="2026-11-23T10:00:00Z",
        expiring={"points": 50, "date": "2027-01-31"},
    ),
    event(pending=None, tier=None, expiring=None, message=None, occurred_at=None),
    event(balance=-5),
    event(id=...),
    event(id=""),
    event(id="a b"),
    event(id="x" * 129),
    event(card=...),
    event(card=None),
    event(card="123"),
    event(card=..., account="a b"),
    event(version=0),
    event(version="1"),
    event(version=True),
    event(balance=...),
    event(balance=2**53 + 1),
    event(pending=-1),
    event(tier="diamond"),
    event(tier="   "),
    event(message="x" * 501),
    event(expiring={"points": 1}),
    event(expiring={"points": 1, "date": "2027-1-31"}),
    event(expiring="soon"),
    event(occurred_at="yesterday"),
    event(occurred_at="2026-11-23T10:00:00"),
    "not an event",
]


@pytest.mark.parametrize("item", LEDGER_EVENTS)
def test_the_ledger_event_schema_and_the_ledger_parser_agree(item, programs, built):
    tiers = frozenset(key for program in programs.values() for key in program.tier_keys)
    try:
        parse_event(item, tiers)
        parsed = True
    except EventError:
        parsed = False
    schema = built["components"]["schemas"]["LedgerPost"]["properties"]["events"]["items"]
    assert schema_accepts(schema, built, item) is parsed


# -- what the running service does is what the document says ----------------------------------

SAMPLE_PATH_VALUES = {
    "card_number": "4000000000000002",
    "card": "4000000000000002",
    "serial": "unknownserial",
    "deviceLibraryIdentifier": "dev1",
    "passTypeIdentifier": PASS_TYPE_ID,
    "serialNumber": "serial1",
    "program": "coffee",
    "name": "logo",
    "id": "store-1",
}


def operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def call(client: httpx.Client, method: str, path: str, op: dict[str, Any], **headers: str) -> httpx.Response:
    url = re.sub(r"{(\w+)}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)
    body: dict[str, Any] | None = {} if "requestBody" in op else None
    return client.request(method, url, json=body, headers=headers)


def test_each_routes_security_is_what_the_service_enforces(shared_server: LiveServer, served: Document):
    plain = shared_server.client()
    checked = set()
    for method, path, op in operations(served):
        [requirement] = op.get("security", [{}]) or [{}]
        anonymous = call(plain, method, path, op)
        check_answer(served, method, path, anonymous)
        if not requirement:
            # a page's form POST without its CSRF token is refused with an HTML 403 page: that is
            # not authentication (no credentials exist for it), and the document says so
            csrf_page = anonymous.status_code == 403 and anonymous.headers.get("content-type", "").startswith(
                "text/html"
            )
            assert anonymous.status_code != 401 and (anonymous.status_code != 403 or csrf_page), (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        [(scheme, roles)] = requirement.items()
        checked.add(scheme)
        if scheme == "bearer":
            for role, key in KEYS.items():
                answer = call(plain, method, path, op, Authorization=f"Bearer {key}")
                check_answer(served, method, path, answer)
                assert (answer.status_code == 403) is (role not in roles), (method, path, role, answer.text)
    assert checked == {"bearer", "applePass", "ledgerSignature", "cardApp"}


def new_account() -> str:
    return "acc-" + uuid.uuid4().hex[:12]


def test_answers_match_the_document(shared_server: LiveServer, served: Document):
    api, plain = shared_server.api(), shared_server.client()

    def check(method: str, path: str, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, (method, path, response.text)
        check_answer(served, method, path, response)
        return response

    body: dict[str, Any] = {"program": "coffee", "account": new_account(), "member": {"name": "Ivan"}}
    issued = check("POST", "/v1/cards", api.post("/v1/cards", json=body), 201).json()
    check("POST", "/v1/cards", api.post("/v1/cards", json=body), 200)
    check("POST", "/v1/cards", api.post("/v1/cards", json={**body, "program": "tea"}), 404)
    check("POST", "/v1/cards", api.post("/v1/cards", content=b"{nope"), 400)
    check("GET", "/v1/cards/{card_number}", api.get(f"/v1/cards/{issued['card']}"), 200)
    check("GET", "/v1/cards/{card_number}", api.get("/v1/cards/4000000000000002"), 404)
    pkpass = check("GET", "/v1/passes/{serial}.pkpass", plain.get(issued["links"]["apple"]), 200)
    check("GET", "/v1/passes/{serial}.pkpass", plain.get(issued["links"]["apple"].split("?")[0]), 404)
    check("GET", "/c/{serial}", plain.get(issued["links"]["page"]), 200)
    check("GET", "/v1/programs", plain.get("/v1/programs", params={"locale": "en"}), 200)

    events = [
        {
            "id": uuid.uuid4().hex,
            "card": issued["card"],
            "version": 1,
            "balance": 50,
            "tier": "base",
            "expiring": {"points": 5, "date": "2027-01-31"},
            "occurred_at": "2026-11-23T10:00:00Z",
        },
        {"id": "bad", "card": issued["card"], "version": "x", "balance": 1},
    ]
    check("POST", "/v1/ledger/events", shared_server.post_ledger(events), 202)
    too_many = [{"id": str(i), "card": issued["card"], "version": 1, "balance": 1} for i in range(1001)]
    check("POST", "/v1/ledger/events", shared_server.post_ledger(too_many), 413)
    check("GET", "/v1/cards/{card_number}", api.get(f"/v1/cards/{issued['card']}"), 200)

    token = read_pass_json(pkpass.content)["authenticationToken"]
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    registrations = "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}"
    registration = registrations + "/{serialNumber}"
    url = f"/passkit/v1/devices/dev-{uuid.uuid4().hex[:8]}/registrations/{PASS_TYPE_ID}"
    check("POST", registration, apple.post(f"{url}/{issued['serial']}", json={"pushToken": "ab" * 32}), 201)
    check("POST", registration, apple.post(f"{url}/{issued['serial']}", json={"pushToken": "cd" * 32}), 200)
    check("POST", registration, apple.post(f"{url}/{issued['serial']}", json={"pushToken": 5}), 400)
    too_long_device = url.replace("dev-", "x" * 200)
    check("POST", registration, apple.post(f"{too_long_device}/{issued['serial']}", json={"pushToken": "ab" * 32}), 400)
    listed = check("GET", registrations, plain.get(url), 200).json()
    check("GET", registrations, plain.get(url, params={"passesUpdatedSince": listed["lastUpdated"]}), 204)
    latest = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"
    passes = "/passkit/v1/passes/{passTypeIdentifier}/{serialNumber}"
    modified = check("GET", passes, apple.get(latest), 200).headers["last-modified"]
    check("GET", passes, apple.get(latest, headers={"If-Modified-Since": modified}), 304)
    check("DELETE", registration, apple.delete(f"{url}/{issued['serial']}"), 200)
    check("POST", "/passkit/v1/log", plain.post("/passkit/v1/log", json={"logs": ["hello"]}), 200)
    check("POST", "/passkit/v1/log", plain.post("/passkit/v1/log", json={"logs": "hello"}), 400)

    admin = shared_server.api("admin")
    for path in ("/v1/admin/device-logs", "/v1/admin/pushes", "/v1/admin/dead-letters"):
        check("GET", path, admin.get(path, params={"limit": 10_000}), 200)
        check("GET", path, admin.get(path, params={"limit": 10_001}), 400)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        check("GET", path, plain.get(path), 200)


PASSKIT_BODIES = [
    ("/passkit/v1/log", {"logs": []}),
    ("/passkit/v1/log", {"logs": ["a", "b"]}),
    ("/passkit/v1/log", {"logs": ["a"] * 100}),
    ("/passkit/v1/log", {"logs": ["a"] * 101}),
    ("/passkit/v1/log", {"logs": [1]}),
    ("/passkit/v1/log", {}),
    ("/passkit/v1/log", {"logs": None}),
    ("registration", {"pushToken": "ab" * 32}),
    ("registration", {"pushToken": "ab" * 7}),
    ("registration", {"pushToken": "xyz" * 8}),
    ("registration", {"pushToken": 5}),
    ("registration", {}),
]


def test_passkit_bodies_are_what_their_schemas_say(shared_server: LiveServer, served: Document):
    issued = shared_server.issue(new_account())
    token = read_pass_json(shared_server.client().get(issued["links"]["apple"]).content)["authenticationToken"]
    apple = shared_server.client(Authorization=f"ApplePass {token}")
    # The documented pushToken is any app's; Apple Wallet's own (hex) is narrower, as its description says
    # and tests/web/test_android_apps.py checks. An Android app's registration takes exactly the schema.
    android = shared_server.client(Authorization=f"WalletUnionPass {token}")
    template = "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
    for target, body in PASSKIT_BODIES:
        if target == "registration":
            path, url = (
                template,
                f"/passkit/v1/devices/dev-{uuid.uuid4().hex[:8]}/registrations/{PASS_TYPE_ID}/{issued['serial']}",
            )
        else:
            path, url = target, target
        schema = operation(served, "POST", path)["requestBody"]["content"]["application/json"]["schema"]
        answer = (android if target == "registration" else apple).post(url, json=body)
        assert answer.status_code in (200, 201, 400), answer.text
        assert (answer.status_code != 400) is schema_accepts(schema, served, body), (target, body, answer.text)


# -- /docs ------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self.data_url: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
            if name in ("src", "href") and value is not None:
                self.refs.append(value)
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if not values.get("src"):
                self.inline.append("<script> without src")
        if values.get("id") == "swagger-ui":
            self.data_url = values.get("data-url")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"inline script {data.strip()[:40]!r}")


EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


def test_docs_renders_the_document_with_swagger_ui_from_our_own_host(shared_server: LiveServer):
    client = shared_server.client()
    response = client.get("/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = _Page()
    page.feed(response.text)
    assert page.inline == []
    assert page.data_url is not None and urljoin(shared_server.base + "/docs", page.data_url).endswith("/openapi.json")
    scripts = [ref for ref in page.refs if ref.endswith(".js")]
    assert any(ref.endswith("/swagger-ui-bundle.js") for ref in scripts)
    assert any(ref.endswith("/docs.js") for ref in scripts)
    for ref in [*page.refs, page.data_url]:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"/docs refers to another host: {ref}"
        asset = client.get(urljoin(shared_server.base + "/docs", ref))
        assert asset.status_code == 200, ref
        suffix = Path(parts.path).suffix
        assert EXPECTED_TYPES[suffix] in asset.headers["content-type"], (ref, asset.headers["content-type"])


def test_docs_assets_name_no_other_host(shared_server: LiveServer):
    client = shared_server.client()
    ours = client.get("/docs/static/docs.js").text
    assert re.search(r"https?:|//[a-z]", ours) is None
    # without this Swagger UI sends the document to validator.swagger.io for a badge
    assert "validatorUrl: null" in ours
    css = client.get("/docs/static/swagger-ui/swagger-ui.css").text
    assert "@import" not in css
    urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css)
    assert urls and all(url.startswith("data:") for url in urls), [u[:40] for u in urls if not u.startswith("data:")]
    # Swagger UI 4 (the swagger-ui-bundle package) refuses to render OpenAPI 3.1; 5 knows it
    assert "isOAS31" in client.get("/docs/static/swagger-ui/swagger-ui-bundle.js").text
