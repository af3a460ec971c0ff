"""Activation of pre-printed cards through the real service, on both stores: a number of the
program's range activates once, typos and foreign numbers are told apart, CSRF and limits hold."""

from __future__ import annotations

import re
import secrets

import httpx

from cards.numbers import luhn_check_digit
from passes.programs import load_programs
from tests.web.conftest import ROOT, LiveServer
from tests.web.test_join import card_and_consents, fresh_phone, in_store, serial_of
from web.pages.activate import card_number_problem, in_ranges, plastic_ranges

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def printed() -> str:
    body = "77900000" + f"{secrets.randbelow(10**7):07d}"
    return body + luhn_check_digit(body)


def activate(client: httpx.Client, **fields: str) -> httpx.Response:
    page = client.get("/activate/coffee")
    assert page.status_code == 200, page.text
    token = _CSRF.search(page.text)
    assert token is not None
    return client.post("/activate/coffee", data={"csrf": token.group(1), "lang": "ru", "terms": "yes", **fields})


def test_ranges_and_number_checks() -> None:
    coffee = load_programs(ROOT / "pass_templates")["coffee"]
    ranges = plastic_ranges(coffee)
    assert ranges == [("7790000000000000", "7790000099999999")]
    number = printed()
    assert card_number_problem(f"{number[:4]} {number[4:8]} {number[8:12]}-{number[12:]}", ranges) == (number, None)
    assert card_number_problem("", ranges)[1] == "error.card_required"
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert card_number_problem(wrong, ranges)[1] == "error.card_invalid"
    outside = "7790000100000000"[:-1]
    outside += luhn_check_digit(outside)
    assert not in_ranges(outside, ranges)
    assert card_number_problem(outside, ranges)[1] == "error.card_outside"


def test_a_printed_card_activates_once(server_factory) -> None:
    server: LiveServer = server_factory()
    number = printed()
    typed, e164 = fresh_phone()
    answer = activate(server.client(), number=number, phone=typed, marketing_email="yes", email="a@example.com")
    assert answer.status_code == 303, answer.text
    card, consents = card_and_consents(server_factory.database_url, serial_of(answer.headers["location"]))
    assert card.number == number and card.member.phone == e164 and card.account.startswith("plastic-")
    assert {c.source for c in consents} == {"activate"}
    # the same number again, by another phone: already active
    other, _ = fresh_phone()
    again = activate(server.client(), number=number, phone=other)
    assert again.status_code == 409 and "Эта карта уже активирована" in again.text
    assert 'id="number-error"' in again.text
    log = server.log_path.read_text()
    assert number not in log and e164 not in log and number[-4:] in log


def test_typos_and_foreign_numbers_are_told_apart(server_factory) -> None:
    server: LiveServer = server_factory()
    number = printed()
    typed, e164 = fresh_phone()
    typo = activate(server.client(), number=number[:-1] + str((int(number[-1]) + 1) % 10), phone=typed)
    assert typo.status_code == 400 and "Номер карты введён с ошибкой" in typo.text
    foreign = "4000000000000002"
    outside = activate(server.client(), number=foreign, phone=typed)
    assert outside.status_code == 400 and "Эта карта не из нашей программы" in outside.text
    assert 'value="4000000000000002"' in outside.text  # kept for correcting
    no_terms = activate(server.client(), number=number, phone=typed, terms="")
    assert no_terms.status_code == 400 and 'id="terms-error"' in no_terms.text
    assert in_store(server_factory.database_url, lambda store: store.get_card(number)) is None


def test_csrf_refused(server_factory) -> None:
    server: LiveServer = server_factory()
    number = printed()
    typed, _ = fresh_phone()
    answer = server.client().post("/activate/coffee", data={"number": number, "phone": typed, "terms": "yes"})
    assert answer.status_code == 403
    assert in_store(server_factory.database_url, lambda store: store.get_card(number)) is None


def test_rate_limited_per_address(server_factory) -> None:
    server: LiveServer = server_factory(WALLET_RATE_PAGES="2/minute")
    client = server.client()
    assert client.get("/activate/coffee").status_code == 200
    assert client.get("/activate/coffee").status_code == 200
    over = client.get("/activate/coffee")
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1


def test_rate_limited_per_number(server_factory) -> None:
    server: LiveServer = server_factory()
    number = printed()
    client = server.client()
    token = _CSRF.search(client.get("/activate/coffee").text)
    assert token is not None
    fields = {"csrf": token.group(1), "number": number, "phone": "12", "terms": "yes"}
    statuses = [client.post("/activate/coffee", data=fields).status_code for _ in range(11)]
    assert statuses == [400] * 10 + [429]
    # another browser's attempts on that number are held too: the limit is the number's
    other = server.client()
    token = _CSRF.search(other.get("/activate/coffee").text)
    assert token is not None
    assert other.post("/activate/coffee", data={**fields, "csrf": token.group(1)}).status_code == 429
