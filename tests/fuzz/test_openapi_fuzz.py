"""schemathesis over every operation /openapi.json lists, against the real server, with each role's key and
with none: no answer is a 5xx, and every answer's status, Content-Type and body are ones the document
states for that operation.

The operations come from the served document, so a new route is fuzzed as soon as it is routed. Cases are
generated from the document (valid and invalid ones); some of them name what exists on the server (the
seeded card, store, campaign...; tests/fuzz/conftest.py) and carry that thing's credentials (the PassKit
token, the app token, a ledger signature over the very bytes sent, a console session), so that fuzzing
reaches the handlers and not only their 401 and 404.

Bounded for CI: a fixed number of examples per operation and mode, derandomized (the same cases every run),
no example database, no shrinking unless FUZZ_SHRINK=1 (for reading a failure: shrinking re-sends requests)."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction

from ledger.signature import sign
from tests.fuzz.conftest import Seeds
from tests.web.conftest import KEYS, LEDGER_SECRET, PASS_TYPE_ID, LiveServer

MODES = ("none", "issuer", "marketing", "admin")
# examples per operation on SQLite: where the mode's credentials are ones the operation takes, and a quarter
# of that elsewhere (a refused key or no credentials: the answers are mostly 401/403/302, fewer cases tell as
# much); Redis gets half of each (the handlers are the same, the store's code is what differs)
FULL_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "80"))
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]
# operations that must answer 2xx at least once in a mode: its credentials (a key, the PassKit token, the
# app token, the ledger signature, a verified Google callback, a console session) were taken
REACHED = {
    "issuer": (
        "GET /v1/cards/{card_number}",
        "GET /passkit/v1/passes/{passTypeIdentifier}/{serialNumber}",
        "POST /v1/geo/ping",
        "POST /v1/ledger/events",
        "POST /google/callbacks",
    ),
    "marketing": ("GET /v1/stores", "GET /console/stores"),
    "admin": ("GET /v1/admin/pushes",),
}
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("FUZZ_SHRINK") == "1" else [])


def _security(definition: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """The operation's security scheme and the roles it takes (None: public)."""
    for requirement in definition.get("security") or ():
        for scheme, roles in requirement.items():
            return scheme, tuple(roles)
    return None, ()


def _full(path: str, scheme: str | None, roles: tuple[str, ...], mode: str) -> bool:
    """Whether the operation gets its full number of examples in this mode."""
    if scheme == "bearer":
        # every Bearer route takes admin too: its full run is on the routes no other role may call
        return mode in roles and (mode != "admin" or roles == ("admin",))
    if path.startswith("/console") and path != "/console/login":
        # the console's pages take a session of marketing or admin; admin sees the same pages
        return mode == "marketing"
    # public, or credentials of its own (PassKit token, app token, ledger signature): "issuer" is the mode
    # that carries them, "none" the one without; the other keys change nothing there
    if scheme is None:
        return mode in ("none", "issuer")
    return mode == "issuer"


def _examples(full: bool, store: str) -> int:
    examples = FULL_EXAMPLES if full else FULL_EXAMPLES // 4
    return max(1, examples // 2 if store == "redis" else examples)


def _real_path_value(seeds: Seeds, method: str, path: str, name: str) -> str | None:
    """What exists on the server for the path parameter `name` of `method path`: the spare card, store or
    campaign for the operations that destroy what they name, so that the others keep theirs."""
    destroys = method == "DELETE" or path.endswith("/delete")
    if name in ("card_number", "card"):
        return seeds.spare_card if destroys else seeds.card
    if name in ("serial", "serialNumber"):
        return seeds.voucher_serial if "/vouchers/" in path else seeds.serial
    if name == "deviceLibraryIdentifier":
        return seeds.device
    if name == "passTypeIdentifier":
        return PASS_TYPE_ID
    if name == "program":
        return "coffee"
    if name == "name":
        return "apple-wallet-ru.svg" if "badges" in path else "logo@2x"
    if name == "id":
        store = seeds.spare_store if destroys else seeds.store
        campaign = seeds.spare_campaign if destroys else seeds.campaign
        for prefix, value in (
            ("/v1/stores", store),
            ("/console/stores", store),
            ("/v1/campaigns", campaign),
            ("/console/campaigns", campaign),
            ("/v1/messages", seeds.message),
            ("/v1/jobs", seeds.job),
            ("/v1/certificates", seeds.certificate),
        ):
            if path.startswith(prefix):
                return value
    return None


# the HTML forms (join, activation, the console) document their fields in prose, not as a schema: cases for
# them get form fields drawn from these names and values, with the browser's valid CSRF token
FORM_FIELDS = sorted(
    {"lang", "name", "phone", "email", "terms", "marketing_sms", "marketing_email", "marketing_push", "number"}
    | {"key", "id", "program", "lat", "lon", "address", "timezone", "text", "stores", "min_balance", "tiers"}
    | {"expiring_within_days", "starts_at", "ends_at", "max_per_day", "radius_m", "announce", "paused", "action"}
)
FORM_VALUES = st.sampled_from(
    ["yes", "1", "0", "coffee", "gold", "+79001234567", "8 900 123-45-67", "4000000000000002", "55.75", "37.6"]
    + ["send", "preview", "Europe/Moscow", "2026-12-01T10:00", "Coffee at {store}", "a@example.com", ""]
) | st.text(max_size=40)
forms = st.dictionaries(
    st.sampled_from(FORM_FIELDS) | st.text(max_size=8), FORM_VALUES | st.lists(FORM_VALUES, max_size=3), max_size=10
)


def _is_form(case: Any) -> bool:
    path = case.operation.path
    return (
        case.operation.method.upper() == "POST"
        and "requestBody" not in case.operation.definition.raw
        and path.startswith(("/join/", "/activate/", "/console/"))
        and path != "/console/stores/import"
    )


# query parameters that name something: what exists (None: leave the parameter out, its default applies)
REAL_QUERY: dict[str, str | None] = {"program": "coffee", "tier": "gold", "locale": "en", "from": None, "to": None}


def _prepare(
    case: Any, scheme: str | None, mode: str, seeds: Seeds, real: Callable[[], bool], draw: Callable[[Any], Any]
) -> dict[str, Any] | None:
    """Put existing things into some of the case's parameters and the mode's credentials into it; the form
    fields to post for an HTML form (None: none)."""
    method, path = case.operation.method.upper(), case.operation.path
    if case.path_parameters:
        for name in list(case.path_parameters):
            value = _real_path_value(seeds, method, path, name)
            if value is not None and real():
                if name == "serialNumber" and path.startswith("/passkit/v1/passes/") and real():
                    value = seeds.voucher_serial  # PassKit serves the vouchers' passes too
                case.path_parameters[name] = value
    if case.query:
        for name in [name for name in case.query if name in REAL_QUERY]:
            if real():
                replacement = REAL_QUERY[name]
                if replacement is None:
                    del case.query[name]
                else:
                    case.query[name] = replacement
    if path == "/google/callbacks" and mode != "none" and seeds.google is not None and real():
        # a callback that verifies: the handler goes on to record it
        expires = int(time.time() * 1000) + 60_000  # the chain's own clock is the module's start
        case.body = seeds.google.callback_dict(object_suffix=seeds.card, exp_time_millis=expires)
    try:
        formatted = path.format(**(case.path_parameters or {}))
    except (KeyError, IndexError, ValueError):  # an invalid case without all of its path parameters
        formatted = path
    if formatted in seeds.links and real():
        case.query = {**(case.query or {}), **seeds.links[formatted]}
    headers = dict(case.headers or {})
    if mode != "none":
        voucher = (case.path_parameters or {}).get("serialNumber") == seeds.voucher_serial
        if scheme == "applePass":
            # Apple Wallet's word, or an Android app's (whose push tokens are any the document allows)
            word = "ApplePass" if real() else "WalletUnionPass"
            headers["Authorization"] = f"{word} {seeds.voucher_token if voucher else seeds.pass_token}"
        elif scheme == "cardApp":
            headers["Authorization"] = f"Card {seeds.card}:{seeds.app_token}"
        elif scheme == "bearer" or scheme is None:
            headers["Authorization"] = f"Bearer {KEYS[mode]}"
        if path.startswith("/console") and mode in seeds.console:
            case.cookies = {**(case.cookies or {}), **_cookies(seeds.console[mode])}
    case.headers = headers
    if not _is_form(case):
        return None
    form = draw(forms)
    if real():
        # a browser that loaded the form: its CSRF cookie and token (the console's, for the public forms too)
        browser = seeds.console.get(mode, seeds.console["marketing"])
        case.cookies = {**(case.cookies or {}), "wallet_csrf": browser["wallet_csrf"]}
        form["csrf"] = browser["csrf"]
    return form


def _cookies(browser: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in browser.items() if name != "csrf"}


# RFC 9110 5.5: a field value holds no control characters but HTAB; uvicorn refuses the whole request
# before the app sees it ("Invalid HTTP request received."), so such a case tests the HTTP parser, not us
_BAD_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 3: senders and recipients should support request lines of at least 8000 octets; a longer one
# meets uvicorn's limit on the request head (431), not the app
_MAX_REQUEST_LINE = 8000


class Unsendable(Exception):
    """The case is not a request a client can send over HTTP/1.1 (nothing reached the service)."""


def _sendable(prepared: requests.PreparedRequest) -> None:
    if len(prepared.url or "") > _MAX_REQUEST_LINE:
        raise Unsendable("request line too long")
    for name, value in prepared.headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if _BAD_FIELD_VALUE.search(text) or not text.isascii() and not _latin1(text):
            raise Unsendable(f"header {name} is not a field value")


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _send(
    case: Any, base: str, scheme: str | None, mode: str, session: requests.Session, form: dict[str, Any] | None
) -> tuple[Any, dict]:
    kwargs = case.as_transport_kwargs(base_url=base)
    kwargs.pop("timeout", None)
    if form is not None:
        kwargs["data"] = form  # application/x-www-form-urlencoded, as a browser posts it
    if scheme == "ledgerSignature" and mode != "none":
        # the signature covers the raw body: serialize it here and sign exactly those bytes
        headers = dict(kwargs.get("headers") or {})
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
            headers.setdefault("Content-Type", "application/json")
        raw = kwargs.get("data") or b""
        raw = raw.encode() if isinstance(raw, str) else raw
        if isinstance(raw, bytes):
            headers["X-Wallet-Signature"] = sign(LEDGER_SECRET, int(time.time()), raw)
        kwargs["headers"] = headers
    names = ("method", "url", "headers", "files", "data", "params", "auth", "cookies", "json")
    prepared = session.prepare_request(requests.Request(**{k: v for k, v in kwargs.items() if k in names}))
    _sendable(prepared)
    return session.send(prepared, timeout=30, allow_redirects=False), kwargs


def fuzz_operation(
    operation: Any, base: str, mode: str, seeds: Seeds, session: requests.Session, examples: int, statuses: list[int]
) -> str | None:
    """The first failure of the operation in this mode, as text with the request to repeat it; None: none.
    `statuses` gets the status of every answer."""
    scheme, _ = _security(operation.definition.raw)
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    strategies = [positive]
    try:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    except Exception:  # an operation with nothing to make invalid has no negative cases
        pass
    anything = st.one_of(strategies)
    failures: list[str] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=PHASES,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        # about half the cases are "sure": valid, naming what exists, with every credential, so that they reach
        # the handler (REACHED holds on few examples); the others draw valid and invalid parts alike
        sure = data.draw(st.booleans())
        case = data.draw(positive if sure else anything)
        form = _prepare(case, scheme, mode, seeds, lambda: sure or data.draw(st.booleans()), data.draw)
        try:
            response, sent = _send(case, base, scheme, mode, session, form)
        except (Unsendable, requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
            return  # not sendable over HTTP (a header value with a line break...): nothing reached the server
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=sent.get("headers"), transport_kwargs=sent)
        except (Exception, BaseExceptionGroup) as exc:
            if not failures:
                # the curl line shows no form fields: they are not the document's body
                fields = f"\nform fields: {form!r}" if form is not None else ""
                failures.append(f"{operation.label} [{mode}]: {exc}{fields}")
            raise

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
        if not failures:  # not a check's: the harness or the transport failed
            failures.append(f"{operation.label} [{mode}]: {type(exc).__name__}: {exc}")
    return failures[0] if failures else None


@pytest.fixture(scope="module")
def schema(fuzz_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.base}/openapi.json")


@pytest.mark.parametrize("mode", MODES)
def test_every_operation_answers_as_documented(
    fuzz_server: LiveServer, fuzz_store: str, seeds: Seeds, schema: Any, mode: str
):
    failures: list[str] = []
    reached: dict[str, list[int]] = {}
    with requests.Session() as session:
        # each case carries its own cookies (a console session or none): none are kept between cases
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        for result in schema.get_all_operations():
            operation = result.ok()
            scheme, roles = _security(operation.definition.raw)
            full = _full(operation.path, scheme, roles, mode)
            started, statuses = time.monotonic(), reached.setdefault(operation.label, [])
            failure = fuzz_operation(
                operation, fuzz_server.base, mode, seeds, session, _examples(full, fuzz_store), statuses
            )
            if os.environ.get("FUZZ_STATS"):  # what each operation answered, and how long it took
                print(f"{time.monotonic() - started:6.2f}s {operation.label} {sorted(set(statuses))} x{len(statuses)}")
            if failure is not None:
                failures.append(failure)
    assert len(reached) > 40, "the document lists fewer operations than the service has"
    # the credentials the fixtures supply work: with them, each kind of operation gets past its auth
    for label in REACHED.get(mode, ()):
        assert any(200 <= status < 300 for status in reached[label]), (label, sorted(set(reached[label])))
    log = fuzz_server.log_path.read_text(errors="replace")
    assert not failures, "\n\n".join(failures) + "\n\nserver log (tail):\n" + log[-4000:]


# the public routes' rate limits (web/ratelimit.py, web/apps.py): every operation under these answers 429 with
# Retry-After past its limit, and the document must say so (tests/web/test_rate_limits.py makes them answer it)
RATE_LIMITED = re.compile(
    r"^(/passkit/|/c/|/join/|/activate/|/google/callbacks$|/v1/geo/ping$|/v1/apps/devices$|"
    r"/v1/(passes|vouchers)/\{serial\}\.pkpass$|/console/login$)"
)


def test_every_rate_limited_route_documents_429_with_retry_after(fuzz_server: LiveServer):
    document = requests.get(f"{fuzz_server.base}/openapi.json", timeout=30).json()
    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not RATE_LIMITED.match(path) or (path == "/console/login" and method != "post"):
                continue
            answer = operation["responses"].get("429", {})
            if "Retry-After" not in answer.get("headers", {}):
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing


@pytest.mark.parametrize(
    ("path", "status"),
    [("/console/login", 400), ("/join/coffee", 403), ("/activate/coffee", 403), ("/console/stores", 403)],
)
def test_a_form_over_the_field_limit_gets_its_page_not_a_json_400(
    fuzz_server: LiveServer, seeds: Seeds, path: str, status: int
):
    # found by the fuzzing above: 11 fields to the login form (its limit is 10) were Starlette's JSON 400
    # `bad_request`, which no page documents; now the form is refused as one without a valid CSRF token
    browser = seeds.console["marketing"]
    fields = [(f"field{i}", "x") for i in range(2100)] + [("csrf", browser["csrf"])]  # over every form's limit
    answer = requests.post(
        fuzz_server.base + path, data=fields, cookies=_cookies(browser), timeout=30, allow_redirects=False
    )
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/html")
