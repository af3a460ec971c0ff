"""Every status code of the cards, PassKit and ledger APIs, and bad input that must change nothing."""

from __future__ import annotations

import json
import time
import uuid
from itertools import pairwise

import pytest

from cards.numbers import luhn_valid
from ledger.signature import sign
from tests.pii_guard import sensitive
from tests.web.conftest import KEYS, LEDGER_SECRET, PASS_TYPE_ID, LiveServer


def new_account() -> str:
    return "acc-" + uuid.uuid4().hex[:12]


def card_body(account: str, **overrides) -> dict:
    body = {
        "program": "coffee",
        "account": account,
        "member": {"name": "Ivan", "phone": "+79001112233", "email": "ivan@example.com"},
        "balance": 0,
        "tier": "base",
        "locale": "ru",
    }
    body.update(overrides)
    member = body.get("member")
    for kind, value in member.items() if isinstance(member, dict) else ():
        sensitive(value, kind)
    return body


class TestCards:
    def test_create_is_idempotent_per_account(self, shared_server: LiveServer):
        api = shared_server.api()
        account = new_account()
        first = api.post("/v1/cards", json=card_body(account))
        assert first.status_code == 201
        body = first.json()
        assert len(body["card"]) == 16 and luhn_valid(body["card"])
        assert set(body["links"]) == {"apple", "page", "google"}  # dev runs with Google Wallet on
        again = api.post("/v1/cards", json=card_body(account))
        assert again.status_code == 200
        assert (again.json()["card"], again.json()["serial"]) == (body["card"], body["serial"])
        state = api.get(f"/v1/cards/{body['card']}").json()
        assert (state["balance"], state["tier"], state["version"], state["devices"]) == (0, "base", 0, 0)
        assert state["devices_by_client"] == {}

    def test_numbers_are_not_sequential(self, shared_server: LiveServer):
        api = shared_server.api()
        numbers = [int(api.post("/v1/cards", json=card_body(new_account())).json()["card"]) for _ in range(5)]
        gaps = {b - a for a, b in pairwise(numbers)}
        assert len(set(numbers)) == 5 and len(gaps) > 1 and all(abs(g) > 10 for g in gaps)

    def test_tier_follows_balance_when_not_given(self, shared_server: LiveServer):
        body = card_body(new_account(), balance=15000)
        del body["tier"]
        number = shared_server.api().post("/v1/cards", json=body).json()["card"]
        assert shared_server.api().get(f"/v1/cards/{number}").json()["tier"] == "gold"

    @pytest.mark.parametrize(
        "mutate, status",
        [
            (lambda b: b.update(program="tea"), 404),
            (lambda b: b["member"].update(phone="89001112233"), 400),
            (lambda b: b["member"].update(phone="+7 900 111"), 400),
            (lambda b: b["member"].update(email="not-an-email"), 400),
            (lambda b: b["member"].pop("name"), 400),
            (lambda b: b.pop("member"), 400),
            (lambda b: b.pop("account"), 400),
            (lambda b: b.update(account=""), 400),
            (lambda b: b.update(account="a b"), 400),
            (lambda b: b.update(balance="100"), 400),
            (lambda b: b.update(balance=-1), 400),
            (lambda b: b.update(balance=True), 400),
            (lambda b: b.update(tier="diamond"), 400),
            (lambda b: b.update(locale="de"), 400),
            (lambda b: b.update(member="Ivan"), 400),
            (lambda b: b.update(unexpected=1), 400),
        ],
    )
    def test_bad_input_is_4xx_and_stores_nothing(self, shared_server: LiveServer, mutate, status):
        account = new_account()
        body = card_body(account)
        mutate(body)
        response = shared_server.api().post("/v1/cards", json=body)
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"code", "message"}
        # nothing was stored: the same account is still free
        assert shared_server.api().post("/v1/cards", json=card_body(account)).status_code == 201

    def test_malformed_json_and_oversize(self, shared_server: LiveServer):
        api = shared_server.api()
        assert (
            api.post("/v1/cards", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        )
        assert api.post("/v1/cards", content=b"[1,2]").status_code == 400
        big = json.dumps(card_body(new_account(), padding="x" * (1024 * 1024))).encode()
        assert api.post("/v1/cards", content=big).status_code == 413

        def chunks():
            yield b'{"program": "coffee", "pad": "'
            for _ in range(20):
                yield b"x" * 65536
            yield b'"}'

        assert api.post("/v1/cards", content=chunks()).status_code == 413

    def test_keys_and_roles(self, shared_server: LiveServer):
        body = card_body(new_account())
        plain = shared_server.client()
        assert plain.post("/v1/cards", json=body).status_code == 401
        assert (
            shared_server.client(Authorization="Bearer wrong-key-xxxxxxxxxxxx").post("/v1/cards", json=body).status_code
            == 401
        )
        assert (
            shared_server.client(Authorization=f"Basic {KEYS['issuer']}").post("/v1/cards", json=body).status_code
            == 401
        )
        assert shared_server.api("marketing").post("/v1/cards", json=body).status_code == 403
        assert shared_server.api("marketing").get("/v1/admin/pushes").status_code == 403
        assert shared_server.api("admin").post("/v1/cards", json=body).status_code == 201

    def test_unknown_card_and_bad_links(self, shared_server: LiveServer):
        api = shared_server.api()
        assert api.get("/v1/cards/4000000000000002").status_code == 404
        assert api.get("/v1/cards/not-a-number").status_code == 404
        issued = shared_server.issue(new_account())
        plain = shared_server.client()
        link = issued["links"]["apple"]
        assert plain.get(link).status_code == 200
        assert plain.get(link.replace("sig=", "sig=0")).status_code == 404
        assert plain.get(link.split("?")[0]).status_code == 404
        page = plain.get(issued["links"]["page"], headers={"Accept-Language": "en"})
        assert page.status_code == 200 and "Add to Apple Wallet" in page.text

    def test_programs_and_ops(self, shared_server: LiveServer):
        plain = shared_server.client()
        programs = plain.get("/v1/programs").json()["programs"]
        coffee = next(p for p in programs if p["program"] == "coffee")
        assert [t["key"] for t in coffee["tiers"]] == ["base", "gold", "platinum"]
        assert plain.get("/healthz").status_code == 200
        ready = plain.get("/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "ok"
        assert ready.json()["certificates"]["days_to_expiry"]["pass"] > 0
        spec = plain.get("/openapi.json").json()
        assert "/v1/cards" in spec["paths"] and "/v1/ledger/events" in spec["paths"]
        # /docs renders that document in the browser (Swagger UI); tests/web/test_openapi.py checks both in depth
        docs = plain.get("/docs")
        assert docs.headers["content-type"].startswith("text/html") and 'data-url="openapi.json"' in docs.text
        assert "wallet_" in plain.get("/metrics").text


class TestPassKit:
    def _card(self, server: LiveServer) -> tuple[dict, str]:
        issued = server.issue(new_account())
        from tests.web.iphone import read_pass_json

        token = read_pass_json(server.client().get(issued["links"]["apple"]).content)["authenticationToken"]
        return issued, token

    def test_auth_failures_are_401_alike(self, shared_server: LiveServer):
        issued, token = self._card(shared_server)
        serial = issued["serial"]
        plain = shared_server.client()
        path = f"/passkit/v1/devices/dev1/registrations/{PASS_TYPE_ID}/{serial}"
        body = {"pushToken": "ab" * 32}
        cases = [
            (path, {}),
            (path, {"Authorization": "ApplePass wrong-token-000000000"}),
            (path, {"Authorization": f"Bearer {token}"}),
            (
                f"/passkit/v1/devices/dev1/registrations/{PASS_TYPE_ID}/unknownserial",
                {"Authorization": f"ApplePass {token}"},
            ),
            (
                f"/passkit/v1/devices/dev1/registrations/pass.other.type/{serial}",
                {"Authorization": f"ApplePass {token}"},
            ),
        ]
        for url, headers in cases:
            for method in ("POST", "DELETE"):
                response = plain.request(method, url, headers=headers, json=body)
                assert response.status_code == 401, (method, url, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
        pass_url = f"/passkit/v1/passes/{PASS_TYPE_ID}/{serial}"
        assert plain.get(pass_url).status_code == 401
        assert plain.get(pass_url, headers={"Authorization": "ApplePass nope-nope-nope-nope"}).status_code == 401
        assert plain.get(pass_url, headers={"Authorization": f"ApplePass {token}"}).status_code == 200

    def test_malformed_path_and_body(self, shared_server: LiveServer):
        issued, token = self._card(shared_server)
        plain = shared_server.client(Authorization=f"ApplePass {token}")
        serial = issued["serial"]
        assert (
            plain.post(
                f"/passkit/v1/devices/{'x' * 200}/registrations/{PASS_TYPE_ID}/{serial}", json={"pushToken": "ab" * 32}
            ).status_code
            == 400
        )
        assert (
            plain.post(
                f"/passkit/v1/devices/dev%00x/registrations/{PASS_TYPE_ID}/{serial}", json={"pushToken": "ab" * 32}
            ).status_code
            == 400
        )
        path = f"/passkit/v1/devices/devA/registrations/{PASS_TYPE_ID}/{serial}"
        assert plain.post(path, json={"pushToken": 5}).status_code == 400
        assert plain.post(path, json={}).status_code == 400
        assert plain.post(path, content=b"nope").status_code == 400
        assert plain.get(f"/passkit/v1/devices/{'y' * 300}/registrations/{PASS_TYPE_ID}").status_code == 400
        # nothing registered by all that
        assert shared_server.api().get(f"/v1/cards/{issued['card']}").json()["devices"] == 0

    def test_if_modified_since(self, shared_server: LiveServer):
        issued, token = self._card(shared_server)
        plain = shared_server.client(Authorization=f"ApplePass {token}")
        url = f"/passkit/v1/passes/{PASS_TYPE_ID}/{issued['serial']}"
        first = plain.get(url)
        modified = first.headers["last-modified"]
        assert plain.get(url, headers={"If-Modified-Since": modified}).status_code == 304
        assert plain.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
        assert plain.get(url, headers={"If-Modified-Since": "garbage"}).status_code == 200
        # a change in the same second still moves Last-Modified forward
        shared_server.post_ledger([{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 9}])
        assert plain.get(url, headers={"If-Modified-Since": modified}).status_code == 200

    def test_log_bounds(self, shared_server: LiveServer):
        plain = shared_server.client()
        assert plain.post("/passkit/v1/log", json={"logs": ["a"]}).status_code == 200
        assert plain.post("/passkit/v1/log", json={"logs": "a"}).status_code == 400
        assert plain.post("/passkit/v1/log", json={"logs": ["a"] * 101}).status_code == 400
        assert shared_server.client().get("/v1/admin/device-logs").status_code == 401


class TestLedger:
    def test_outcomes(self, shared_server: LiveServer):
        issued = shared_server.issue(new_account())
        card, account = issued["card"], None
        state = shared_server.api().get(f"/v1/cards/{card}").json()
        account = state["account"]
        e1, e2, e3 = (uuid.uuid4().hex for _ in range(3))
        answer = shared_server.post_ledger(
            [
                {"id": e1, "card": card, "version": 2, "balance": 100},
                {"id": e2, "account": account, "version": 1, "balance": 50},
                {"id": e1, "card": card, "version": 3, "balance": 999},
                {"id": e3, "card": "4000000000000002", "version": 1, "balance": 1},
                {"id": "bad", "card": card, "version": "x", "balance": 1},
                {"card": card, "version": 4, "balance": 1},
            ]
        ).json()
        assert answer["accepted"] == [e1]
        assert answer["stale"] == [e2]
        assert answer["duplicate"] == [e1]
        assert answer["unknown"] == [e3]
        assert [i["id"] for i in answer["invalid"]] == ["bad", None]
        state = shared_server.api().get(f"/v1/cards/{card}").json()
        assert (state["balance"], state["version"]) == (100, 2)
        # a replay of the whole post changes nothing
        replay = shared_server.post_ledger([{"id": e1, "card": card, "version": 2, "balance": 100}]).json()
        assert replay["duplicate"] == [e1]

    def test_signature_failures_change_nothing(self, shared_server: LiveServer):
        issued = shared_server.issue(new_account())
        event = [{"id": uuid.uuid4().hex, "card": issued["card"], "version": 1, "balance": 777}]
        plain = shared_server.client()
        body = json.dumps({"events": event}).encode()
        now = int(time.time())
        for header in [
            None,
            "t=1,v1=00",
            sign("wrong-secret-xxxxxxxxxxxx", now, body),
            sign(LEDGER_SECRET, now - 301, body),
            sign(LEDGER_SECRET, now + 400, body),
            sign(LEDGER_SECRET, now, body + b" "),
        ]:
            headers = {"X-Wallet-Signature": header} if header else {}
            response = plain.post("/v1/ledger/events", content=body, headers=headers)
            assert response.status_code == 401, header
        assert shared_server.api().get(f"/v1/cards/{issued['card']}").json()["balance"] == 0

    def test_malformed_and_oversize_bodies(self, shared_server: LiveServer):
        assert shared_server.post_ledger([]).status_code == 202
        plain = shared_server.client()
        for raw in (b"nope", b"[]", b'{"events": 5}'):
            header = sign(LEDGER_SECRET, int(time.time()), raw)
            assert (
                plain.post("/v1/ledger/events", content=raw, headers={"X-Wallet-Signature": header}).status_code == 400
            )
        too_many = [{"id": str(i), "card": "4000000000000002", "version": 1, "balance": 1} for i in range(1001)]
        assert shared_server.post_ledger(too_many).status_code == 413
        huge = json.dumps({"events": [], "pad": "x" * (1024 * 1024)}).encode()
        header = sign(LEDGER_SECRET, int(time.time()), huge)
        assert plain.post("/v1/ledger/events", content=huge, headers={"X-Wallet-Signature": header}).status_code == 413
