"""The marketing console over HTTP (web/console/) on both stores: login and logout, wrong keys, no session
-> 302, CSRF refused, stores, imports, campaigns (create, edit, pause, delete, preview), messages, push
history and reports; what the forms save is what the API then shows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.web.conftest import KEYS, LiveServer
from web.console.routes import CONSOLE_ROUTES
from web.pages.console_strings import CONSOLE_STRINGS

TOKEN_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')
MOSCOW = (55.7558, 37.6173)


class Console:
    """A browser-like client of the console: cookies kept, the CSRF token read from the last page."""

    def __init__(self, server: LiveServer, language: str = "en") -> None:
        self.server = server
        self.http = server.client(**{"Accept-Language": language})
        self.token = ""

    def get(self, path: str, **kwargs) -> httpx.Response:
        response = self.http.get(path, **kwargs)
        found = TOKEN_RE.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict | None = None, *, token: str | None = None, **kwargs) -> httpx.Response:
        fields = {"csrf": self.token if token is None else token, **(data or {})}
        response = self.http.post(path, data=fields, **kwargs)
        found = TOKEN_RE.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    def login(self, role: str = "marketing") -> httpx.Response:
        self.get("/console/login")
        response = self.post("/console/login", {"key": KEYS[role]})
        assert response.status_code == 303, response.text
        self.get("/console/stores")
        return response


@pytest.fixture
def console(shared_server: LiveServer) -> Iterator[Console]:
    signed_in = Console(shared_server)
    signed_in.login()
    yield signed_in


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put_store(server: LiveServer, store_id: str, name: str = "Tverskaya") -> None:
    body = {"program": "coffee", "name": name, "lat": MOSCOW[0], "lon": MOSCOW[1], "timezone": "Europe/Moscow"}
    server.api("marketing").put(f"/v1/stores/{store_id}", json=body).raise_for_status()


# -- sessions -------------------------------------------------------------------------------------


def test_every_console_route_sends_a_visitor_without_a_session_to_the_login_form(shared_server: LiveServer):
    plain = shared_server.client()
    for route in CONSOLE_ROUTES:
        if route.path.startswith("/console/login"):
            continue
        path = route.path.replace("{id}", "x1").replace("{program}", "coffee")
        [method] = route.methods - {"HEAD"} if route.methods else ["GET"]
        response = plain.request(method, path)
        assert response.status_code == 302, (method, path, response.status_code)
        assert response.headers["location"] == "/console/login"
    # a forged or expired cookie is no session either
    forged = shared_server.client(Cookie="wallet_console=eyJyb2xlIjoiYWRtaW4ifQ.forged.sig")
    assert forged.get("/console/stores").status_code == 302


def test_login_sets_a_signed_http_only_cookie_without_the_key_and_logout_clears_it(shared_server: LiveServer):
    console = Console(shared_server)
    form = console.get("/console/login")
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in form.headers["content-security-policy"]
    response = console.post("/console/login", {"key": KEYS["marketing"]})
    assert response.status_code == 303 and response.headers["location"] == "/console/stores"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("wallet_console="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/console" in cookie
    assert KEYS["marketing"] not in cookie
    stores = console.get("/console/stores")
    assert stores.status_code == 200 and KEYS["marketing"] not in stores.text
    assert "marketing" in stores.text  # the role is shown, the key never
    out = console.post("/console/logout")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert console.get("/console/stores").status_code == 302


def test_admin_keys_open_the_console_and_other_keys_do_not(shared_server: LiveServer):
    for role, status in (("admin", 303), ("issuer", 401)):
        console = Console(shared_server)
        console.get("/console/login")
        response = console.post("/console/login", {"key": KEYS[role]})
        assert response.status_code == status, role
    wrong = Console(shared_server)
    wrong.get("/console/login")
    answer = wrong.post("/console/login", {"key": "not-a-key-" + "x" * 30})
    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text and "not-a-key" not in answer.text
    assert not any(c.startswith("wallet_console=") for c in answer.headers.get_list("set-cookie"))
    assert wrong.get("/console/stores").status_code == 302


def test_login_is_rate_limited_per_client_address(server_factory):
    server = server_factory(WALLET_RATE_PAGES="3/minute", WALLET_RUN_WORKER="0")
    console = Console(server)
    console.get("/console/login")
    statuses = [console.post("/console/login", {"key": "wrong"}).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    last = console.post("/console/login", {"key": KEYS["marketing"]})
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1


def test_a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(console: Console):
    store_id = uid("csrf")
    body = {"id": store_id, "program": "coffee", "name": "Forged", "lat": "55.7", "lon": "37.6"}
    for token in ("", "0" * 64, console.token[:-1] + ("0" if console.token[-1] != "0" else "1")):
        refused = console.post("/console/stores", body, token=token)
        assert refused.status_code == 403 and 'id="csrf-error"' in refused.text
    listed = console.server.api("marketing").get("/v1/stores").json()["stores"]
    assert store_id not in {s["id"] for s in listed}
    # the token of another browser (another CSRF cookie) does not do either
    other = Console(console.server)
    other.get("/console/login")
    assert console.post("/console/stores", body, token=other.token).status_code == 403
    # logout too: still signed in after a forged logout
    assert console.post("/console/logout", token="f" * 64).status_code == 403
    assert console.get("/console/stores").status_code == 200
    # the login form: a tampered token signs nobody in (the form again, 400: nobody is signed in to forbid)
    fresh = Console(console.server)
    fresh.get("/console/login")
    again = fresh.post("/console/login", {"key": KEYS["marketing"]}, token="a" * 64)
    assert again.status_code == 400 and 'id="login-error"' in again.text
    assert not any(c.startswith("wallet_console=") for c in again.headers.get_list("set-cookie"))
    # and a browser that never loaded the form (no CSRF cookie) is sent to it
    blind = console.server.client().post("/console/login", data={"key": KEYS["marketing"], "csrf": "a" * 64})
    assert blind.status_code == 303 and blind.headers["location"] == "/console/login"


# -- stores ---------------------------------------------------------------------------------------


def test_a_store_created_edited_and_deleted_in_the_form_is_what_the_api_shows(console: Console):
    store_id = uid("form")
    body = {"id": store_id, "program": "coffee", "name": "Пятницкая <b>", "lat": "55.74", "lon": "37.63"}
    assert console.post("/console/stores", body).status_code == 303
    api = console.server.api("marketing")
    [found] = [s for s in api.get("/v1/stores").json()["stores"] if s["id"] == store_id]
    assert found["name"] == "Пятницкая <b>" and found["timezone"] == "Europe/Moscow"  # derived from the point
    page = console.get("/console/stores", params={"q": "пятниц"})
    assert store_id in page.text and "Пятницкая &lt;b&gt;" in page.text and "<b>" not in page.text
    assert 'data-map="' in page.text and store_id in page.text
    assert store_id not in console.get("/console/stores", params={"q": "nomatch-zz"}).text
    edited = {**body, "name": "Pyatnitskaya", "address": "ul. Pyatnitskaya 1", "editing": "1"}
    assert console.post("/console/stores", edited).status_code == 303
    [found] = [s for s in api.get("/v1/stores").json()["stores"] if s["id"] == store_id]
    assert found["name"] == "Pyatnitskaya" and found["address"] == "ul. Pyatnitskaya 1"
    assert console.post(f"/console/stores/{store_id}/delete").status_code == 303
    assert store_id not in {s["id"] for s in api.get("/v1/stores").json()["stores"]}


def test_a_bad_store_is_shown_again_with_the_apis_reason_and_nothing_is_stored(console: Console):
    store_id = uid("bad")
    answer = console.post(
        "/console/stores", {"id": store_id, "program": "coffee", "name": "X", "lat": "95", "lon": "1"}
    )
    assert answer.status_code == 400 and 'id="store-error"' in answer.text and "lat" in answer.text
    assert f'value="{store_id}"' in answer.text  # what was typed is kept
    zone = console.post(
        "/console/stores",
        {"id": store_id, "program": "coffee", "name": "X", "lat": "55", "lon": "37", "timezone": "Mars/Base"},
    )
    assert zone.status_code == 400 and "IANA" in zone.text
    assert store_id not in {s["id"] for s in console.server.api("marketing").get("/v1/stores").json()["stores"]}


def test_an_import_with_bad_rows_lists_each_and_imports_nothing_a_good_one_imports_all(console: Console):
    good, bad = uid("imp"), uid("imp")
    csv = f"id,program,name,lat,lon\n{good},coffee,Good,55.75,37.61\n{bad},tea,Bad,91,37\n,coffee,,x,37\n"
    answer = console.http.post(
        "/console/stores/import", data={"csrf": console.token}, files={"file": ("stores.csv", csv.encode(), "text/csv")}
    )
    assert answer.status_code == 400 and 'id="import-errors"' in answer.text
    table = answer.text.split('id="import-errors"', 1)[1]
    assert "<td>3</td>" in table and "unknown program" in table and "<td>4</td>" in table and "lat" in table
    api = console.server.api("marketing")
    assert good not in {s["id"] for s in api.get("/v1/stores").json()["stores"]}
    geojson = (
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
        f'"coordinates":[37.6,55.7]}},"properties":{{"id":"{good}","program":"coffee","name":"Geo"}}}}]}}'
    )
    done = console.http.post(
        "/console/stores/import", data={"csrf": console.token}, files={"file": ("s.geojson", geojson.encode(), "")}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("imported=1")
    assert "1" in console.get(done.headers["location"]).text
    assert good in {s["id"] for s in api.get("/v1/stores").json()["stores"]}
    broken = console.http.post(
        "/console/stores/import", data={"csrf": console.token}, files={"file": ("s.json", b"{nope", "")}
    )
    assert broken.status_code == 400 and 'id="import-errors"' in broken.text


# -- campaigns ------------------------------------------------------------------------------------


def campaign_form(store_id: str, **fields: str) -> dict:
    return {
        "program": "coffee",
        "name": uid("Morning"),
        "text": "{name}, coffee at {store}?",
        "stores": store_id,
        "min_balance": "100",
        "starts_at": "2026-01-01T09:00",
        "ends_at": "2099-01-01T00:00",
        "max_per_day": "2",
        "radius_m": "300",
        **fields,
    }


def test_a_campaign_from_the_form_is_in_the_api_and_pause_resume_edit_delete_work(console: Console):
    server = console.server
    store_id = uid("cs")
    put_store(server, store_id)
    server.issue(uid("acc"), balance=500)
    form = campaign_form(store_id)
    created = console.post("/console/campaigns", form)
    assert created.status_code == 303, created.text
    campaign_id = created.headers["location"].split("/")[-1].split("?")[0]
    api = server.api("marketing")
    stored = api.get(f"/v1/campaigns/{campaign_id}").json()
    assert stored["name"] == form["name"] and stored["stores"] == [store_id] and stored["paused"] is False
    assert stored["starts_at"] == "2026-01-01T09:00:00Z" and stored["radius_m"] == 300
    assert stored["when"] == {"min_balance": 100, "tiers": None, "expiring_within_days": None}
    assert form["name"] in {c["name"] for c in api.get("/v1/campaigns").json()["campaigns"]}

    page = console.get(f"/console/campaigns/{campaign_id}")
    assert page.status_code == 200
    assert 'id="reach-total"' in page.text and "/console/preview/coffee.png?tier=" in page.text
    assert "Анна Петро…" in page.text or "Анна Петрова" in page.text  # a sample card's rendered text
    assert '"radius_m": 300' in page.text.replace("&#34;", '"')
    image = console.http.get("/console/preview/coffee.png", params={"tier": "gold", "locale": "ru"})
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert console.http.get("/console/preview/coffee.png", params={"tier": "nope"}).status_code == 404
    assert console.http.get("/console/preview/tea.png", params={"tier": "gold"}).status_code == 404

    assert console.post(f"/console/campaigns/{campaign_id}/pause", {"paused": "1"}).status_code == 303
    assert api.get(f"/v1/campaigns/{campaign_id}").json()["paused"] is True
    assert "paused" in console.get("/console/campaigns").text
    assert api.post(f"/v1/campaigns/{campaign_id}/preview").json()["active"] is False
    assert console.post(f"/console/campaigns/{campaign_id}/pause", {"paused": "0"}).status_code == 303
    assert api.get(f"/v1/campaigns/{campaign_id}").json()["paused"] is False

    edited = console.post(f"/console/campaigns/{campaign_id}", {**form, "name": "Evening", "ends_at": ""})
    assert edited.status_code == 303
    after = api.get(f"/v1/campaigns/{campaign_id}").json()
    assert after["name"] == "Evening" and after["ends_at"] is None and after["program"] == "coffee"

    refused = console.post(f"/console/campaigns/{campaign_id}", {**form, "text": "{nope}"})
    assert refused.status_code == 400 and 'id="campaign-error"' in refused.text and "placeholder" in refused.text
    assert api.get(f"/v1/campaigns/{campaign_id}").json()["text"] == form["text"]

    assert console.post(f"/console/campaigns/{campaign_id}/delete").status_code == 303
    assert api.get(f"/v1/campaigns/{campaign_id}").status_code == 404


def test_a_bad_campaign_form_keeps_the_values_and_stores_nothing(console: Console):
    name = uid("Broken")
    answer = console.post("/console/campaigns", campaign_form("no-such-store", name=name, ends_at="2025-01-01T00:00"))
    assert answer.status_code == 400 and 'id="campaign-error"' in answer.text
    assert f'value="{name}"' in answer.text
    names = {c["name"] for c in console.server.api("marketing").get("/v1/campaigns").json()["campaigns"]}
    assert name not in names


def test_paused_is_part_of_the_api_too(shared_server: LiveServer):
    api = shared_server.api("marketing")
    store_id = uid("ps")
    put_store(shared_server, store_id)
    body = {"program": "coffee", "name": "P", "text": "Hi {name}", "stores": [store_id], "paused": True}
    created = api.post("/v1/campaigns", json=body)
    assert created.status_code == 201 and created.json()["paused"] is True
    campaign_id = created.json()["id"]
    assert api.post(f"/v1/campaigns/{campaign_id}/preview").json()["active"] is False
    assert api.patch(f"/v1/campaigns/{campaign_id}", json={"paused": False}).json()["paused"] is False
    assert api.patch(f"/v1/campaigns/{campaign_id}", json={"paused": "yes"}).status_code == 400


# -- messages, pushes, reports ------------------------------------------------------------------------


def test_a_message_is_previewed_then_sent_and_shows_in_the_history(console: Console):
    console.server.issue(uid("acc"), balance=700)
    text = "Hello {name}: " + uuid.uuid4().hex[:6]
    preview = console.post("/console/messages", {"program": "coffee", "text": text, "action": "preview"})
    assert preview.status_code == 200 and 'id="message-reach"' in preview.text and "Hello Анна" in preview.text
    bad = console.post("/console/messages", {"program": "coffee", "text": "At {store}", "action": "send"})
    assert bad.status_code == 400 and "{store}" in bad.text
    sent = console.post("/console/messages", {"program": "coffee", "text": text, "min_balance": "1", "action": "send"})
    assert sent.status_code == 303
    history = console.get(sent.headers["location"])
    assert 'id="queued"' in history.text and text in history.text.split('id="message-history"', 1)[1]


def test_push_history_and_reports_render_with_server_drawn_charts(console: Console):
    pushes = console.get("/console/pushes")
    assert pushes.status_code == 200 and "<script" not in pushes.text.replace('<script src="', "")
    reports = console.get("/console/reports")
    assert reports.status_code == 200
    assert reports.text.count("<h2") == 2
    # with the campaigns of the other tests there is reach to draw
    assert 'id="chart-reach"' in reports.text or "No data yet." in reports.text


def test_pages_follow_accept_language_and_the_strings_have_the_same_keys(shared_server: LiveServer):
    assert set(CONSOLE_STRINGS["ru"]) == set(CONSOLE_STRINGS["en"])
    ru = Console(shared_server, language="ru-RU,ru;q=0.9")
    page = ru.get("/console/login")
    assert 'lang="ru"' in page.text and "Вход в консоль" in page.text
    en = Console(shared_server, language="en-GB")
    assert "Sign in to the console" in en.get("/console/login").text


def test_the_console_routes_answer_as_openapi_documents_them(shared_server: LiveServer):
    from tests.web.test_openapi import call, check_answer, operations

    document = shared_server.client().get("/openapi.json").json()
    plain = shared_server.client()
    seen = 0
    for method, path, op in operations(document):
        if not path.startswith("/console"):
            continue
        seen += 1
        assert op["tags"] and "security" not in op
        answer = call(plain, method, path, op)
        check_answer(document, method, path, answer)
        assert answer.status_code not in (401, 403), (method, path)
    assert seen == len(CONSOLE_ROUTES)
    signed_in = Console(shared_server)
    signed_in.login()
    for path in ("/console/stores", "/console/campaigns", "/console/messages", "/console/pushes", "/console/reports"):
        check_answer(document, "GET", path, signed_in.get(path))
    check_answer(document, "GET", "/console", signed_in.get("/console"))
