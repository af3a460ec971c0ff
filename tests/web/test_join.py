"""The join page through the real service, on both stores: a member joins, errors re-render the
form, the same phone gets the same card, CSRF and the rate limit refuse, and the new member is
announced to the enrolment webhook (signed, retried after a 500) without PII in the log."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from cards.model import Card
from store.factory import open_store
from store.port import Consent
from tests.fakes.webhook_server import FakeWebhookServer
from tests.pii_guard import sensitive
from tests.web.conftest import LiveServer

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def fresh_phone() -> tuple[str, str]:
    """(as typed, E.164): a distinct valid Russian mobile number per call."""
    digits = f"{uuid.uuid4().int % 10_000_000:07d}"
    return f"8 (915) {digits[:3]}-{digits[3:5]}-{digits[5:]}", f"+7915{digits}"


def form_token(client: httpx.Client, path: str = "/join/coffee") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    found = _CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def join(client: httpx.Client, **fields: str) -> httpx.Response:
    data = {"csrf": form_token(client), "lang": "ru", "name": "Анна", "terms": "yes", **fields}
    for kind in ("name", "phone", "email"):
        sensitive(data.get(kind), kind)
    return client.post("/join/coffee", data=data)


def serial_of(location: str) -> str:
    path = urlsplit(location).path
    assert path.startswith("/c/")
    return path[len("/c/") :]


def in_store(url: str, action: Any) -> Any:
    """Run `action(store)` against the service's own store, from a thread of its own."""

    async def go() -> Any:
        store = await open_store(url)
        try:
            return await action(store)
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def card_and_consents(url: str, serial: str) -> tuple[Card, list[Consent]]:
    async def read(store: Any) -> tuple[Card, list[Consent]]:
        card = await store.get_card_by_serial(serial)
        assert card is not None
        return card, await store.consents(card.number)

    return in_store(url, read)


@pytest.fixture
def server(server_factory) -> LiveServer:
    return server_factory()


def test_a_member_joins_and_lands_on_the_card_page(server_factory) -> None:
    server = server_factory()
    client = server.client()
    typed, e164 = fresh_phone()
    first = client.get("/join/coffee")
    assert first.status_code == 200
    assert "wallet_csrf" in first.headers["set-cookie"] and "HttpOnly" in first.headers["set-cookie"]
    assert "default-src 'self'" in first.headers["content-security-policy"]
    page = first.text
    assert "<script" not in page.lower()
    for name in ("name", "phone", "email", "terms", "marketing_sms", "marketing_email", "marketing_push"):
        assert f'name="{name}"' in page
    # marketing is optional and unticked by default; the terms' text and version are shown
    assert " checked" not in page
    assert "2026-12" in page and "1 балл = 1 рубль" in page

    answer = join(client, phone=typed, email="anna@example.com", marketing_sms="yes", marketing_push="yes")
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert e164 not in location and "anna" not in location  # no PII in URLs
    card_page = client.get(location)
    assert card_page.status_code == 200 and "Анна" not in card_page.text.split("<main", 1)[0]

    card, consents = card_and_consents(server_factory.database_url, serial_of(location))
    assert card.member.phone == e164 and card.member.name == "Анна" and card.member.email == "anna@example.com"
    assert card.account.startswith("join-") and e164 not in card.account
    assert card.locale == "ru"
    assert [(c.kind, c.channel, c.granted, c.version, c.source) for c in consents] == [
        ("terms", None, True, "2026-12", "join"),
        ("marketing", "sms", True, "2026-12", "join"),
        ("marketing", "email", False, "2026-12", "join"),
        ("marketing", "push", True, "2026-12", "join"),
    ]
    assert all(c.at > 0 for c in consents)
    log = server.log_path.read_text()
    assert e164 not in log and "Анна" not in log and "anna@example.com" not in log
    assert card.number[-4:] in log  # the last 4 digits are what logs may hold


def test_the_same_phone_again_gets_the_same_card(server_factory) -> None:
    server = server_factory()
    typed, e164 = fresh_phone()
    first = join(server.client(), phone=typed)
    # another browser, the phone written another way
    again = join(server.client(), phone=e164, name="Аня")
    assert first.status_code == again.status_code == 303
    assert serial_of(first.headers["location"]) == serial_of(again.headers["location"])
    card, consents = card_and_consents(server_factory.database_url, serial_of(first.headers["location"]))
    assert card.member.name == "Анна"  # the first member's card, unchanged
    assert len(consents) == 4  # the second visitor's answers are not the member's


def test_a_bad_phone_re_renders_the_form_with_the_values_kept(server: LiveServer) -> None:
    client = server.client()
    answer = join(client, phone="12345", name="Анна <b>", email="anna@example.com")
    assert answer.status_code == 400
    page = answer.text
    assert 'id="phone-error"' in page and "Это не похоже на номер телефона" in page
    assert re.search(r'<input type="tel" id="phone"[^>]*aria-invalid="true"', page)
    assert re.search(r'id="phone"[^>]*aria-describedby="phone-hint phone-error"', page)
    # kept, and escaped
    assert 'value="12345"' in page and 'value="anna@example.com"' in page
    assert 'value="Анна &lt;b&gt;"' in page and "<b>" not in page
    assert re.search(r'id="terms"[^>]* checked', page)
    # a new token came with it: the corrected form goes through
    typed, _ = fresh_phone()
    token = _CSRF.search(page)
    assert token is not None
    fixed = client.post("/join/coffee", data={"csrf": token.group(1), "name": "Анна", "phone": typed, "terms": "yes"})
    assert fixed.status_code == 303


def test_no_consent_to_the_terms_issues_nothing(server_factory) -> None:
    server = server_factory()
    typed, e164 = fresh_phone()
    answer = join(server.client(), phone=typed, terms="")
    assert answer.status_code == 400
    assert 'id="terms-error"' in answer.text and "Без согласия с условиями" in answer.text
    assert in_store(server_factory.database_url, lambda store: store.card_by_phone("coffee", e164)) is None


def test_english_by_accept_language(server: LiveServer) -> None:
    client = server.client(**{"Accept-Language": "en-GB,en;q=0.9,ru;q=0.5"})
    page = client.get("/join/coffee")
    assert page.headers["content-language"] == "en" and '<html lang="en">' in page.text
    assert "Join the programme" in page.text and "1 point = 1 ruble" in page.text
    assert server.client().get("/join/coffee?lang=en").headers["content-language"] == "en"
    answer = join(client, phone="12", lang="en")
    assert answer.status_code == 400 and "This does not look like a phone number" in answer.text


def test_unknown_program_is_a_404_page(server: LiveServer) -> None:
    answer = server.client().get("/join/nope")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")


def test_csrf_refused_and_nothing_stored(server_factory) -> None:
    server = server_factory()
    typed, e164 = fresh_phone()
    fields = {"name": "Анна", "phone": typed, "terms": "yes"}
    # no token at all
    bare = server.client().post("/join/coffee", data=fields)
    assert bare.status_code == 403 and "Форма устарела" in bare.text
    # a token from another browser (its cookie stays there)
    token = form_token(server.client())
    stolen = server.client().post("/join/coffee", data={**fields, "csrf": token})
    assert stolen.status_code == 403
    # the right cookie with a forged token
    client = server.client()
    form_token(client)
    forged = client.post("/join/coffee", data={**fields, "csrf": "0" * 64})
    assert forged.status_code == 403
    assert in_store(server_factory.database_url, lambda store: store.card_by_phone("coffee", e164)) is None


def test_rate_limited_per_address(server_factory) -> None:
    server = server_factory(WALLET_RATE_PAGES="3/minute")
    client = server.client()
    assert [client.get("/join/coffee").status_code for _ in range(3)] == [200, 200, 200]
    over = client.get("/join/coffee")
    assert over.status_code == 429 and over.headers["content-type"].startswith("text/html")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert "Слишком много попыток" in over.text
    typed, e164 = fresh_phone()
    posted = client.post("/join/coffee", data={"name": "Анна", "phone": typed, "terms": "yes"})
    assert posted.status_code == 429
    assert in_store(server_factory.database_url, lambda store: store.card_by_phone("coffee", e164)) is None


def test_the_new_member_is_announced_signed_and_retried_after_a_500(server_factory) -> None:
    secret = "enroll-secret-" + "e" * 24
    with FakeWebhookServer(secret) as hook:
        hook.script(500)
        server = server_factory(WALLET_ENROLL_WEBHOOK_URL=hook.url, WALLET_ENROLL_WEBHOOK_SECRET=secret)
        typed, e164 = fresh_phone()
        answer = join(server.client(), phone=typed, email="anna@example.com", marketing_email="yes")
        assert answer.status_code == 303
        calls = hook.wait_for(2)
        # the same phone again: the same card, no second announcement
        assert join(server.client(), phone=e164).status_code == 303
    assert [call.status for call in calls[:2]] == [500, 200]
    assert all(call.signature_problem is None for call in calls)
    assert calls[0].raw == calls[1].raw  # the same delivery, retried
    assert calls[0].headers["x-wallet-delivery"] == calls[1].headers["x-wallet-delivery"]
    body = calls[1].body
    card, _ = card_and_consents(server_factory.database_url, serial_of(answer.headers["location"]))
    assert body["event"] == "member.joined" and body["card"] == card.number and body["account"] == card.account
    assert body["program"] == "coffee"
    assert body["member"] == {"name": "Анна", "phone": e164, "email": "anna@example.com"}
    assert [(c["kind"], c["channel"], c["granted"], c["version"]) for c in body["consents"]] == [
        ("terms", None, True, "2026-12"),
        ("marketing", "sms", False, "2026-12"),
        ("marketing", "email", True, "2026-12"),
        ("marketing", "push", False, "2026-12"),
    ]
    assert body["joined_at"] > 0
    assert len(calls) == 2
    log = server.log_path.read_text()
    assert e164 not in log and "Анна" not in log and "anna@example.com" not in log


def test_no_webhook_url_no_announcement(server_factory) -> None:
    server = server_factory()
    typed, _ = fresh_phone()
    assert join(server.client(), phone=typed).status_code == 303

    time.sleep(1.0)  # the in-process worker would have dead-lettered one (no route without a URL)

    async def dead(store: Any) -> list:
        return await store.list_dead_letters(100)

    assert all(d.entry.kind != "enroll_webhook" for d in in_store(server_factory.database_url, dead))
