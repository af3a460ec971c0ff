"""`links.google` (issue 11 point 2): the "Save to Google Wallet" link in the card answers and on the
card page, and the public pass images Google fetches the class's logo from. Through the real
service (dev: Google Wallet on with a generated service account and issuer id), on both stores;
the switched-off case through the pure function with a disabled GoogleSettings."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from cards.model import Card, Member
from config.dev_secrets import ensure_dev_service_account
from config.google import DEV_ISSUER_ID, SERVICE_ACCOUNT_FILE, GoogleSettings, read_service_account
from passes.assets import program_hero_url, program_logo_url
from passes.google.model import class_id, loyalty_class, loyalty_object
from passes.google.save_link import SAVE_URL_PREFIX, choose_form, full_payload, save_jwt, skinny_payload
from passes.programs import Program, load_programs
from tests.unit.test_wallet_apps import DESKTOP_CHROME_UA, IPHONE_SAFARI_UA
from tests.web.conftest import ROOT, LiveServer
from tests.web.test_card_page_apps import ANDROID_CHROME_UA, anchors, no_scripts, page_for
from tests.web.test_openapi import check_answer
from web.assets import CACHE_CONTROL, asset_names
from web.cards import google_link
from web.wallet_apps import GOOGLE_BUTTON_TEXT, google_button_text

DEV_EMAIL = "wallet-dev@dev.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return load_programs(ROOT / "pass_templates")


@pytest.fixture(scope="module")
def issued(shared_server: LiveServer) -> dict:
    return shared_server.issue("acc-" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="module")
def public_key(shared_server: LiveServer, certs_dir: Path) -> Any:
    # dev generated the key beside the other dev material when the server started
    account, problem = read_service_account(certs_dir / SERVICE_ACCOUNT_FILE, allow_http=True)
    assert problem is None and account is not None
    assert account.client_email == DEV_EMAIL
    private = serialization.load_pem_private_key(account.info["private_key"].encode(), password=None)
    return private.public_key()


def decode(link: str, public_key: Any) -> dict[str, Any]:
    assert link.startswith(SAVE_URL_PREFIX)
    token = link[len(SAVE_URL_PREFIX) :]
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    return pyjwt.decode(token, public_key, algorithms=["RS256"], audience="google", options={"require": ["iat"]})


def card_state(server: LiveServer, number: str) -> dict[str, Any]:
    response = server.api().get(f"/v1/cards/{number}")
    assert response.status_code == 200, response.text
    return response.json()


# -- links.google in the answers ----------------------------------------------------------------


def test_issue_answer_carries_a_verified_skinny_save_link(shared_server: LiveServer, issued: dict, public_key: Any):
    claims = decode(issued["links"]["google"], public_key)
    state = card_state(shared_server, issued["card"])
    assert set(claims) == {"iss", "aud", "typ", "iat", "origins", "payload"}
    assert claims["iss"] == DEV_EMAIL
    assert claims["aud"] == "google" and claims["typ"] == "savetowallet"
    # the origin of WALLET_PUBLIC_URL (the default of WALLET_GOOGLE_ORIGINS)
    assert claims["origins"] == [shared_server.base]
    # iat is the card's created_at: the link is a function of the card, not of the answer's time
    created = datetime.fromisoformat(state["created_at"].replace("Z", "+00:00"))
    assert claims["iat"] == int(created.timestamp())
    # the skinny form: the card's object (named by its serial) and the class of its tier
    assert claims["payload"] == {
        "loyaltyObjects": [
            {"id": f"{DEV_ISSUER_ID}.{issued['serial']}", "classId": f"{DEV_ISSUER_ID}.coffee.{state['tier']}"}
        ]
    }
    assert len(issued["links"]["google"]) - len(SAVE_URL_PREFIX) < 1800


def test_the_link_is_the_same_on_every_answer(shared_server: LiveServer, issued: dict):
    first = card_state(shared_server, issued["card"])
    second = card_state(shared_server, issued["card"])
    assert first["links"]["google"] == second["links"]["google"] == issued["links"]["google"]
    # the idempotent re-issue answers the same link too
    again = shared_server.issue(first["account"])
    assert again["card"] == issued["card"] and again["links"]["google"] == issued["links"]["google"]


def test_a_tier_change_names_the_new_tier_class(shared_server: LiveServer, public_key: Any, programs):
    card = shared_server.issue("acc-" + uuid.uuid4().hex[:12])
    top = programs["coffee"].tiers[-1]
    event = {"id": uuid.uuid4().hex, "card": card["card"], "version": 1, "balance": top.threshold, "tier": top.key}
    accepted = shared_server.post_ledger([event])
    assert accepted.status_code == 202 and accepted.json()["accepted"] == [event["id"]], accepted.text
    state = card_state(shared_server, card["card"])
    assert state["tier"] == top.key
    reference = decode(state["links"]["google"], public_key)["payload"]["loyaltyObjects"][0]
    assert reference == {"id": f"{DEV_ISSUER_ID}.{card['serial']}", "classId": f"{DEV_ISSUER_ID}.coffee.{top.key}"}


def test_card_answers_match_the_openapi_document(shared_server: LiveServer, issued: dict):
    served = shared_server.client().get("/openapi.json").json()
    links = served["components"]["schemas"]["CardState"]["properties"]["links"]
    assert "google" in links["properties"] and "google" not in links["required"]
    api = shared_server.api()
    body = {"program": "coffee", "account": "acc-" + uuid.uuid4().hex[:12], "member": {"name": "Ivan"}}
    created = api.post("/v1/cards", json=body)
    assert "google" in created.json()["links"]
    check_answer(served, "POST", "/v1/cards", created)
    check_answer(served, "GET", "/v1/cards/{card_number}", api.get(f"/v1/cards/{issued['card']}"))
    plain = shared_server.client()
    check_answer(served, "GET", "/assets/{program}/{name}.png", plain.get("/assets/coffee/logo.png"))
    check_answer(served, "GET", "/assets/{program}/{name}.png", plain.get("/assets/coffee/nope.png"))
    check_answer(served, "GET", "/assets/{program}/{name}.png", plain.get("/assets/tea/logo.png"))


# -- the pure function: off, and the skinny-form premise -----------------------------------------


def a_card(**changes: Any) -> Card:
    card = Card(
        number="4000000000000002",
        program="coffee",
        account="acc-1",
        serial="S3r1al-abc_DEF",
        auth_token="t" * 32,
        member=Member(name="Анна", phone=None, email=None),
        created_at=1_790_000_000,
    )
    return replace(card, **changes)


@pytest.fixture(scope="module")
def google_on(tmp_path_factory: pytest.TempPathFactory) -> GoogleSettings:
    path = tmp_path_factory.mktemp("google") / SERVICE_ACCOUNT_FILE
    ensure_dev_service_account(path)
    account, problem = read_service_account(path, allow_http=True)
    assert problem is None
    return GoogleSettings(
        issuer_id=DEV_ISSUER_ID, service_account=account, origins=("https://wallet.example.com",), allow_http=True
    )


def test_no_google_link_while_google_wallet_is_off(programs, google_on: GoogleSettings):
    coffee = programs["coffee"]
    assert not GoogleSettings().enabled
    assert google_link(GoogleSettings(), coffee, a_card()) is None
    # an issuer id without a service account, or a service account without an issuer id: still off
    assert google_link(GoogleSettings(issuer_id=DEV_ISSUER_ID), coffee, a_card()) is None
    assert google_link(replace(google_on, issuer_id=""), coffee, a_card()) is None
    # a card whose program is not loaded gets none either
    assert google_link(google_on, None, a_card()) is None
    assert google_link(google_on, coffee, a_card()) is not None


def test_the_pure_link_is_deterministic_and_follows_created_at(programs, google_on: GoogleSettings):
    coffee = programs["coffee"]
    account = google_on.service_account
    assert account is not None
    public = serialization.load_pem_private_key(account.info["private_key"].encode(), password=None).public_key()
    link = google_link(google_on, coffee, a_card())
    assert link is not None and link == google_link(google_on, coffee, a_card(balance=5, modified_at=1_800_000_000))
    claims = decode(link, public)
    assert claims["iat"] == 1_790_000_000 and claims["origins"] == ["https://wallet.example.com"]
    # the object id sanitises nothing here: serials are URL-safe
    assert claims["payload"]["loyaltyObjects"][0]["id"] == f"{DEV_ISSUER_ID}.S3r1al-abc_DEF"
    assert google_link(google_on, coffee, a_card(created_at=1_790_000_001)) != link


def test_the_full_payload_would_never_fit_so_the_skinny_form_is_right(programs, google_on: GoogleSettings):
    """The premise of google_link's always-skinny choice: for the shipped template, choose_form picks
    the skinny payload (the full one is kilobytes)."""
    coffee = programs["coffee"]
    card = a_card()
    account = google_on.service_account
    assert account is not None
    tier = coffee.tier(card.tier)
    assert tier is not None
    full = full_payload(
        loyalty_object(coffee, card, DEV_ISSUER_ID, page_url="https://wallet.example.com/c/S3r1al-abc_DEF?exp=1&sig=x"),
        loyalty_class(coffee, DEV_ISSUER_ID, tier, logo_url=program_logo_url("https://wallet.example.com", coffee)),
    )
    skinny = skinny_payload(f"{DEV_ISSUER_ID}.{card.serial}", class_id(DEV_ISSUER_ID, coffee, tier))
    sign = partial(save_jwt, account.signer, account.client_email, google_on.origins, iat=card.created_at)
    chosen, signed = choose_form(full, skinny, sign)
    assert chosen == skinny
    assert len(sign(full)) > 5000
    assert google_link(google_on, coffee, card) == SAVE_URL_PREFIX + signed


# -- the card page --------------------------------------------------------------------------------


@pytest.mark.parametrize("user_agent", [ANDROID_CHROME_UA, DESKTOP_CHROME_UA, ""])
def test_android_and_desktop_get_the_google_button(shared_server: LiveServer, issued: dict, user_agent: str):
    page = page_for(shared_server, issued, user_agent)
    buttons = anchors(page)
    href, text = buttons["google"]
    assert href == issued["links"]["google"]
    assert text == "Сохранить в Google Кошелёк"  # the card's locale is ru
    assert 'rel="noreferrer noopener"' in page.split('id="google"')[1].split(">")[0]
    # the Google button comes first on Android (its wallet), after Apple's on a desktop
    order = list(buttons)
    if user_agent == ANDROID_CHROME_UA:
        assert order.index("google") < order.index("pkpass")
    else:
        assert order.index("apple") < order.index("google")
    no_scripts(page)


def test_the_english_page_says_save_to_google_wallet(shared_server: LiveServer):
    card = shared_server.issue("acc-" + uuid.uuid4().hex[:12], locale="en")
    buttons = anchors(page_for(shared_server, card, ANDROID_CHROME_UA))
    assert buttons["google"] == (card["links"]["google"], "Save to Google Wallet")


def test_iphone_gets_no_google_button(shared_server: LiveServer, issued: dict):
    page = page_for(shared_server, issued, IPHONE_SAFARI_UA)
    assert list(anchors(page)) == ["apple"]
    assert "pay.google.com" not in page
    assert all(text not in page for text in GOOGLE_BUTTON_TEXT.values())


def test_button_words():
    assert google_button_text("en") == "Save to Google Wallet"
    assert google_button_text("ru") == "Сохранить в Google Кошелёк"
    assert google_button_text("ru-RU") == "Сохранить в Google Кошелёк"
    assert google_button_text("de") == "Save to Google Wallet"


# -- the assets route ----------------------------------------------------------------------------


def test_logo_url_helper(programs):
    coffee = programs["coffee"]
    assert (
        program_logo_url("https://wallet.example.com/", coffee)
        == "https://wallet.example.com/assets/coffee/logo@3x.png"
    )
    assert (
        program_logo_url("https://wallet.example.com", "coffee")
        == "https://wallet.example.com/assets/coffee/logo@3x.png"
    )
    assert program_hero_url("https://w.example", "coffee") == "https://w.example/assets/coffee/strip@3x.png"
    assert set(asset_names(coffee)) == {f"{i}{s}" for i in ("icon", "logo", "strip") for s in ("", "@2x", "@3x")}


@pytest.mark.parametrize("name", ["logo", "logo@3x", "icon@2x", "strip"])
def test_assets_serve_the_templates_images(shared_server: LiveServer, programs, name: str):
    response = shared_server.client().get(f"/assets/coffee/{name}.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == CACHE_CONTROL
    found = programs["coffee"].file(f"{name}.png")
    assert found is not None and response.content == found.data
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    again = shared_server.client(**{"If-None-Match": response.headers["etag"]}).get(f"/assets/coffee/{name}.png")
    assert again.status_code == 304 and again.content == b""


def test_the_logo_url_the_classes_get_is_served(shared_server: LiveServer):
    url = program_logo_url(shared_server.base, "coffee")
    response = shared_server.client().get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"


def raw_get(server: LiveServer, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (httpx would normalise dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/assets/coffee/nope.png",
        "/assets/coffee/background.png",
        "/assets/tea/logo.png",
        "/assets/coffee/program.json",
        "/assets/coffee/program.json.png",
        "/assets/coffee/en.lproj/pass.strings",
        "/assets/coffee/en.lproj%2Fpass.strings.png",
        "/assets/coffee/..%2F..%2Fpyproject.toml.png",
        "/assets/coffee/../../server.py",
        "/assets/coffee/%2e%2e%2f%2e%2e%2fserver.py.png",
        "/assets/../pass_templates/coffee/logo.png",
        "/assets/..%2Fpass_templates%2Fcoffee/logo.png",
        "/assets/coffee/",
        "/assets/coffee",
        "/assets/",
    ],
)
def test_assets_404_unknown_names_traversal_and_listing(shared_server: LiveServer, path: str):
    status, body = raw_get(shared_server, path)
    assert status == 404, (path, status, body[:200])
    assert not body.startswith(b"\x89PNG")
    assert b"<html" not in body.lower()  # no listing
    if body:
        json.loads(body)  # the service's JSON error, whichever route answered
