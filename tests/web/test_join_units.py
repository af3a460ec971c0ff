"""The pure parts of the join page and its webhook: form parsing, consents, the message kind and
the signed webhook channel (against an httpx mock transport)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import httpx
import pytest
from starlette.datastructures import FormData

from ledger.signature import verify
from passes.programs import load_programs
from push.channels.webhook import WebhookChannel, WebhookPush
from push.kinds.base import MessageError
from push.kinds.enroll_webhook import EnrollWebhook, encode_body
from push.messages import decode, entry
from tests.web.conftest import ROOT
from web.pages.join import consents_of, parse_join_form, program_region, terms_version
from web.pages.strings import STRINGS

RU = STRINGS["ru"]
SECRET = "webhook-secret-" + "w" * 20


def form(**values: str) -> FormData:
    base = {"name": "Анна", "phone": "8 900 123-45-67", "email": "", "terms": "yes"}
    base.update(values)
    return FormData([(k, v) for k, v in base.items() if v is not None])


def test_a_valid_form_gives_the_member_in_e164() -> None:
    entered, joined = parse_join_form(form(email="anna@example.com", marketing_sms="yes"), "RU", RU)
    assert entered.errors == {}
    assert joined is not None
    assert joined.phone == "+79001234567" and joined.name == "Анна" and joined.email == "anna@example.com"
    assert joined.marketing == {"sms": True, "email": False, "push": False}


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"phone": "12"}, "phone", "error.phone_invalid"),
        ({"phone": ""}, "phone", "error.phone_required"),
        ({"name": "  "}, "name", "error.name_required"),
        ({"name": "x" * 101}, "name", "error.name_too_long"),
        ({"email": "not-an-address"}, "email", "error.email_invalid"),
        ({"marketing_email": "yes"}, "email", "error.email_marketing"),
        ({"terms": ""}, "terms", "error.terms_required"),
    ],
)
def test_each_problem_is_named_at_its_field_and_the_values_are_kept(values: dict, field: str, message: str) -> None:
    entered, joined = parse_join_form(form(**values), "RU", RU)
    assert joined is None
    assert entered.errors == {field: RU[message]}
    assert entered.name == str(form(**values)["name"]).strip()[:400]


def test_the_region_reads_numbers_without_a_country_code() -> None:
    _, joined = parse_join_form(form(phone="030 901820"), "DE", RU)
    assert joined is not None and joined.phone == "+4930901820"


def test_program_settings_from_the_template() -> None:
    coffee = load_programs(ROOT / "pass_templates")["coffee"]
    assert terms_version(coffee) == "2026-12"
    assert program_region(coffee) == "RU"


def test_consents_terms_and_one_answer_per_channel() -> None:
    _, joined = parse_join_form(form(marketing_push="yes"), "RU", RU)
    assert joined is not None
    consents = consents_of(joined, "2026-12", 1000.0)
    assert [(c.kind, c.channel, c.granted) for c in consents] == [
        ("terms", None, True),
        ("marketing", "sms", False),
        ("marketing", "email", False),
        ("marketing", "push", True),
    ]
    assert {c.version for c in consents} == {"2026-12"} and {c.at for c in consents} == {1000.0}


def message() -> EnrollWebhook:
    return EnrollWebhook(
        card_number="7790123456789012",
        account="join-abc",
        program="coffee",
        name="Анна",
        phone="+79001234567",
        email=None,
        joined_at=1000.5,
        consents=({"kind": "terms", "channel": None, "granted": True, "version": "1", "at": 1000.5},),
    )


def test_the_message_survives_the_outbox_without_the_members_data() -> None:
    stored = entry(message())
    assert stored.kind == "enroll_webhook"
    assert all(isinstance(v, str) for v in stored.fields.values())
    # the outbox holds no personal data: the worker reads it from the card at delivery
    assert "Анна" not in str(stored.fields) and "+79001234567" not in str(stored.fields)
    assert decode(stored.kind, dict(stored.fields)) == replace(message(), name="", phone="", consents=())
    body = json.loads(encode_body(message()))
    assert body["card"] == "7790123456789012" and body["member"]["phone"] == "+79001234567"
    with pytest.raises(MessageError):
        decode("enroll_webhook", {"card_number": "1"})


def run(channel: WebhookChannel, pushes: list) -> list:
    async def go() -> list:
        try:
            return await channel.deliver(pushes)
        finally:
            await channel.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (204, "ok"), (500, "retry"), (503, "retry"), (429, "retry"), (400, "failed"), (404, "failed")],
)
def test_channel_signs_and_maps_statuses(status: int, outcome: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"Retry-After": "7"} if status == 429 else {})

    channel = WebhookChannel("https://ledger.example/hook", SECRET, transport=httpx.MockTransport(answer))
    body = encode_body(message())
    [result] = run(channel, [WebhookPush("entry-1", body)])
    assert result.status == outcome
    if status == 429:
        assert result.retry_after == 7
    [request] = seen
    assert request.content == body and request.headers["x-wallet-delivery"] == "entry-1"
    assert verify(SECRET, request.headers["x-wallet-signature"], body, time.time()) is None


def test_channel_retries_on_a_timeout() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    channel = WebhookChannel("https://ledger.example/hook", SECRET, transport=httpx.MockTransport(answer))
    [result] = run(channel, [WebhookPush("e", b"{}")])
    assert result.status == "retry" and result.reason == "Timeout"
