"""Gift certificates and offers (issue 14): the ledger backend posts them, signed like ledger events;
each becomes a pass of its own (store/port.py Voucher) beside the member's loyalty card, on Apple
Wallet (passes/apple/voucher_json.py) and, while it is on, Google Wallet (passes/google/vouchers.py).

Codes and PINs are secrets: they go into the store, onto the pass and to the `admin` key's GET, and
nowhere else. No log line here names a voucher's code, PIN, card number or member; error messages
name the field, never its value. An offer for a segment is one parent voucher (no card; it holds the
offer) and a resumable job (service/geo.py, kind "offer") that gives each qualifying card its own.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.links import link_valid, sign_link
from cards.model import Card
from cards.numbers import luhn_valid, new_auth_token, new_serial
from geo.evaluate import member_area
from ledger.signature import verify
from passes.apple.pkpass import RenderedPass
from passes.apple.voucher_json import CERTIFICATE, OFFER, format_amount, offer_data
from passes.google.save_link import save_jwt, save_url
from passes.google.vouchers import PAYLOAD_KEYS, voucher_class_id, voucher_object_id
from push.kinds.google_voucher import voucher_entries
from store.port import CardUpdate, Fanout, Voucher, fixed_fanout
from web.auth import require_role
from web.body import parse_json, read_body
from web.campaigns import CONDITIONS, STORE_ID_RE, TIME_RE, Names, conditions, known_stores, program_of
from web.cards import pkpass_response
from web.errors import ApiError
from web.ratelimit import check_rule
from web.services import Services, services_of
from web.validation import Body, Choices, Obj, Text, invalid

log = logging.getLogger(__name__)

# The ledger's ids; `~` is kept out so the ids of a segment's vouchers (`<offer>~<serial>`) never clash
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# printable ASCII without spaces: the barcode message is ISO-8859-1 and a cashier types the altText
CODE_RE = re.compile(r"^[A-Za-z0-9-]{4,64}$")
PIN_RE = re.compile(r"^[A-Za-z0-9]{3,16}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
AMOUNT_MAX = Decimal(1_000_000)
TERMS_MAX = 1000
TITLE_MAX = 60  # Google's recommended OfferClass title length
OFFER_TEXT_MAX = 500
LINK_PURPOSE = "voucher"
OFFER_JOB_KIND = "offer"
_NOTICE_RETRIES = 5


def _nullable(schema: dict[str, Any], description: str, required: bool) -> dict[str, Any]:
    if not required:
        schema["type"] = [schema["type"], "null"]
    if description:
        schema["description"] = description
    return schema


@dataclass(frozen=True)
class Amount:
    """A positive JSON number with at most two decimals (a denomination), as a Decimal."""

    required: bool = True
    description: str = ""

    def read(self, data: dict[str, Any], name: str, where: str = "") -> Decimal | None:
        value = data.get(name)
        field = where + name
        if value is None:
            if self.required:
                raise invalid(field, "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(field, "must be a number")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise invalid(field, "must be a number") from None
        if not amount.is_finite() or amount <= 0 or amount > AMOUNT_MAX:
            raise invalid(field, f"must be above 0 and at most {AMOUNT_MAX}")
        if amount != amount.quantize(Decimal("0.01")):
            raise invalid(field, "at most two decimals")
        return amount

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema = {"type": "number", "exclusiveMinimum": 0, "maximum": int(AMOUNT_MAX), "multipleOf": 0.01}
        return _nullable(schema, self.description, self.required)


@dataclass(frozen=True)
class Expiry:
    """An RFC 3339 date-time with its offset, or a date (valid through its last second, UTC)."""

    required: bool = False
    description: str = ""

    def read(self, data: dict[str, Any], name: str, where: str = "") -> str | None:
        value = data.get(name)
        field = where + name
        if value is None:
            if self.required:
                raise invalid(field, "required")
            return None
        if not isinstance(value, str):
            raise invalid(field, "must be a string")
        try:
            if DATE_RE.fullmatch(value):
                day = date.fromisoformat(value)
                moment = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
            elif TIME_RE.fullmatch(value):
                moment = datetime.fromisoformat(value.upper())
            else:
                raise ValueError
        except ValueError:
            raise invalid(field, "must be a date (2027-03-31) or an RFC 3339 date-time with its offset") from None
        if not 2000 <= moment.year <= 9998:
            raise invalid(field, "the year must be from 2000 to 9998")
        # whole seconds with the offset: what Apple's expirationDate and Google's DateTime both take
        return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
        return _nullable(schema, self.description, self.required)


_ID = Text(max_len=64, pattern=ID_RE, description="the ledger's id: a repeated id returns what it made")
_CARD = Text(required=False, max_len=16, pattern=re.compile(r"^[0-9]{16}$"), description="the card number")
_ACCOUNT = Text(required=False, max_len=64, description="the ledger account of the card (instead of `card`)")
_CODE = Text(max_len=64, pattern=CODE_RE, description="the code: barcode and text on the pass (a secret)")

NEW_CERTIFICATE = Body(
    "NewCertificate",
    {
        "id": _ID,
        "card": _CARD,
        "account": _ACCOUNT,
        "code": _CODE,
        "pin": Text(required=False, max_len=16, pattern=PIN_RE, description="shown only on the pass's back"),
        "amount": Amount(description="the denomination, in `currency`"),
        "currency": Text(required=False, max_len=3, pattern=CURRENCY_RE, description="ISO 4217; RUB when absent"),
        "expires": Expiry(description="a date (valid through it, UTC) or a date-time with offset; null: none"),
        "terms": Text(required=False, max_len=TERMS_MAX, multiline=True, description="the program's when absent"),
    },
    description="Exactly one of `card` and `account`.",
)

SEGMENT = Body(
    "OfferSegment",
    {
        "when": Obj(CONDITIONS, required=False),
        "stores": Names(
            pattern=STORE_ID_RE,
            description="cards enrolled at, or last seen near, one of these stores; null: anywhere",
        ),
    },
)

NEW_OFFER = Body(
    "NewOffer",
    {
        "id": _ID,
        "program": Text(max_len=64, one_of="programs", description="a program of GET /v1/programs"),
        "card": _CARD,
        "account": _ACCOUNT,
        "segment": Obj(SEGMENT, required=False),
        "title": Text(max_len=TITLE_MAX),
        "text": Text(required=False, max_len=OFFER_TEXT_MAX, multiline=True),
        "code": Text(required=False, max_len=64, pattern=CODE_RE, description="barcode of the coupon (a secret)"),
        "expires": Expiry(description="a date (valid through it, UTC) or a date-time with offset; null: none"),
        "stores": Names(
            pattern=STORE_ID_RE,
            description="the program's stores where it is relevant (at most 10 on the pass, nearest the member "
            "first); null: all of them",
        ),
    },
    description="Exactly one of `card`, `account` and `segment`.",
)


# -- helpers -----------------------------------------------------------------------------------------------


async def _signed_object(request: Request, services: Services) -> dict[str, Any]:
    raw = await read_body(request)
    problem = verify(services.settings.ledger_secret, request.headers.get("x-wallet-signature"), raw, time.time())
    if problem:
        services.metrics.inc("wallet_ledger_rejected_total", help="Ledger posts refused", reason="signature")
        raise ApiError(401, "bad_signature", problem)
    if not raw.strip():
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _one_of(data: dict[str, Any], names: tuple[str, ...]) -> str:
    given = [n for n in names if data.get(n) is not None]
    if len(given) != 1:
        raise invalid(names[0], "exactly one of " + ", ".join(names) + " is required")
    return given[0]


async def _holder(services: Services, card_number: str | None, account: str | None) -> Card:
    card = None
    if card_number is not None:
        if luhn_valid(card_number):
            card = await services.store.get_card(card_number)
    elif account is not None:
        card = await services.store.get_card_by_account(account)
    if card is None:
        raise ApiError(404, "unknown_card", "no such card")
    return card


def _fanout(services: Services, voucher: Voucher) -> Fanout:
    return fixed_fanout(
        voucher_entries(services.settings.pass_type_id, services.settings.google.enabled, voucher.serial)
    )


def _new_voucher(
    kind: str, voucher_id: str, program: str, card: Card | None, data: dict[str, Any], now: float
) -> Voucher:
    return Voucher(
        id=voucher_id,
        kind=kind,
        serial=new_serial(),
        auth_token=new_auth_token(),
        program=program,
        card_number=card.number if card is not None else None,
        data=data,
        created_at=int(now),
        modified_at=int(now),
    )


def google_voucher_link(services: Services, voucher: Voucher) -> str | None:
    """Save to Google Wallet (skinny: the outbox inserts the object), or None while Google Wallet is off."""
    google = services.settings.google
    account = google.service_account
    if not google.enabled or account is None or voucher.program not in services.programs:
        return None
    payload = {
        PAYLOAD_KEYS[voucher.kind]: [
            {"id": voucher_object_id(google.issuer_id, voucher), "classId": voucher_class_id(google.issuer_id, voucher)}
        ]
    }
    # iat = created_at: the same link on every answer (as for cards, web/cards.py google_link)
    signed = save_jwt(account.signer, account.client_email, tuple(google.origins), payload, int(voucher.created_at))
    return save_url(signed)


def voucher_links_of(services: Services, voucher: Voucher, now: float) -> dict[str, str]:
    settings = services.settings
    expires = int(now) + settings.link_ttl_seconds
    signed = sign_link(settings.link_secret, LINK_PURPOSE, voucher.serial, expires)
    links = {"apple": f"{settings.public_url}/v1/vouchers/{voucher.serial}.pkpass?{signed}"}
    google = google_voucher_link(services, voucher)
    if google is not None:
        links["google"] = google
    return links


def _answer(services: Services, voucher: Voucher, created: bool) -> JSONResponse:
    body = {"id": voucher.id, "serial": voucher.serial, "links": voucher_links_of(services, voucher, time.time())}
    return JSONResponse(body, status_code=201 if created else 200)


def _notice_text(services: Services, card: Card, voucher: Voucher) -> str | None:
    program = services.programs.get(card.program)
    if program is None:
        return None
    amount = format_amount(float(voucher.data.get("amount", 0)), str(voucher.data.get("currency") or "RUB"))
    return program.text("notice.certificate", card.locale).replace("%@", amount)


async def _announce(services: Services, card: Card, voucher: Voucher, now: float) -> None:
    """The change message on the loyalty pass of a card held on a device: "a new certificate"."""
    if await services.store.count_registrations(card.serial) == 0:
        return
    text = _notice_text(services, card, voucher)
    if text is None:
        return
    notice_id = f"certificate:{voucher.id}"
    current: Card | None = card
    for _ in range(_NOTICE_RETRIES):
        if current is None or current.notice_id == notice_id:
            return
        update = CardUpdate(current.tag, current.with_changes(notice=text, notice_id=notice_id), bump=True)
        result = await services.store.update_cards([update], now, services.ledger.fanout)
        if result.cards[0] is not None:
            return
        current = await services.store.get_card(card.number)  # changed meanwhile: again on the latest
    log.warning("certificate notice not written: the card kept changing")


# -- certificates ------------------------------------------------------------------------------------------


async def create_certificate(request: Request) -> Response:
    services = services_of(request)
    data = await _signed_object(request, services)
    fields = NEW_CERTIFICATE.read(data)
    _one_of(data, ("card", "account"))
    card = await _holder(services, fields["card"], fields["account"])
    existing = await services.store.get_voucher(CERTIFICATE, fields["id"])
    if existing is not None:
        return _answer(services, existing, False)
    amount: Decimal = fields["amount"]
    now = time.time()
    payload: dict[str, Any] = {
        "code": fields["code"],
        "pin": fields["pin"],
        "amount": int(amount) if amount == amount.to_integral_value() else float(amount),
        "currency": fields["currency"] or "RUB",
        "expires": fields["expires"],
        "terms": fields["terms"],
        "locale": card.locale,
    }
    voucher = _new_voucher(CERTIFICATE, fields["id"], card.program, card, payload, now)
    stored, created = await services.store.create_voucher(voucher, now, _fanout(services, voucher))
    if created:
        services.metrics.inc("wallet_vouchers_total", help="Vouchers issued", kind=CERTIFICATE)
        await _announce(services, card, stored, now)
        services.outbox_wakeup.set()
    return _answer(services, stored, created)


def _voucher_id(request: Request) -> str:
    value: str = request.path_params["id"]
    if not ID_RE.fullmatch(value):
        raise ApiError(400, "invalid_path", "id: 1 to 64 of A-Z a-z 0-9 . _ : -")
    return value


async def redeem_certificate(request: Request) -> Response:
    services = services_of(request)
    await _signed_object(request, services)
    voucher_id = _voucher_id(request)
    voucher = await services.store.get_voucher(CERTIFICATE, voucher_id)
    for _ in range(_NOTICE_RETRIES):
        if voucher is None:
            raise ApiError(404, "unknown_voucher", "no such certificate")
        if voucher.voided:
            break
        now = time.time()
        redeemed = replace(
            voucher, voided=True, data={**voucher.data, "redeemed_at": datetime.fromtimestamp(now, UTC).isoformat()}
        )
        stored = await services.store.update_voucher(redeemed, voucher.tag, now, _fanout(services, voucher))
        if stored is not None:
            voucher = stored
            services.metrics.inc("wallet_vouchers_redeemed_total", help="Certificates redeemed")
            services.outbox_wakeup.set()
            break
        voucher = await services.store.get_voucher(CERTIFICATE, voucher_id)
    else:
        raise ApiError(503, "unavailable", "the certificate kept changing; try again")
    assert voucher is not None
    return JSONResponse({"id": voucher.id, "serial": voucher.serial, "redeemed": True})


def voucher_state(services: Services, voucher: Voucher, *, secrets_shown: bool, now: float) -> dict[str, Any]:
    data = voucher.data
    state: dict[str, Any] = {
        "id": voucher.id,
        "kind": voucher.kind,
        "serial": voucher.serial,
        "program": voucher.program,
        "card": voucher.card_number,
        "voided": voucher.voided,
        "expires": data.get("expires"),
        "links": voucher_links_of(services, voucher, now),
    }
    if voucher.kind == CERTIFICATE:
        state.update(amount=data.get("amount"), currency=data.get("currency"), terms=data.get("terms"))
    else:
        state.update(title=data.get("title"), text=data.get("text"), offer=data.get("offer"))
    if secrets_shown:
        state["code"] = data.get("code")
        if voucher.kind == CERTIFICATE:
            state["pin"] = data.get("pin")
    return state


async def get_certificate(request: Request) -> Response:
    services = services_of(request)
    role = require_role(request, "issuer")
    voucher = await services.store.get_voucher(CERTIFICATE, _voucher_id(request))
    if voucher is None:
        raise ApiError(404, "unknown_voucher", "no such certificate")
    return JSONResponse(voucher_state(services, voucher, secrets_shown=role == "admin", now=time.time()))


# -- offers ------------------------------------------------------------------------------------------------


def offer_job_id(offer_id: str) -> str:
    return f"{OFFER_JOB_KIND}:{offer_id}"


async def _store_points(services: Services, program: str, ids: list[str] | None) -> list[list[Any]]:
    """The offer's stores as [id, lat, lon] (each card's pass takes the 10 nearest the member)."""
    stores = await services.store.list_store_locations(program)
    chosen = stores if ids is None else [s for s in stores if s.id in set(ids)]
    return [[s.id, s.lat, s.lon] for s in chosen]


async def create_offer(request: Request) -> Response:
    services = services_of(request)
    data = await _signed_object(request, services)
    fields = NEW_OFFER.read(data)
    target = _one_of(data, ("card", "account", "segment"))
    program = program_of(services.programs, fields["program"])
    stores = await known_stores(services.store, program, fields["stores"])
    base: dict[str, Any] = {
        "title": fields["title"],
        "text": fields["text"],
        "code": fields["code"],
        "expires": fields["expires"],
        "stores": stores,
        "store_points": await _store_points(services, program.program, stores),
    }
    now = time.time()
    if target == "segment":
        segment = fields["segment"] or {}
        when = conditions(program, segment.get("when"))
        segment_stores = await known_stores(services.store, program, segment.get("stores"))
        parent = _new_voucher(
            OFFER,
            fields["id"],
            program.program,
            None,
            {**base, "segment": {"when": when, "stores": segment_stores}},
            now,
        )
        stored, _ = await services.store.create_voucher(parent, now)
        if stored.card_number is not None:
            raise invalid("id", "already used by an offer for one card")
        seg = stored.data.get("segment") or {}
        job = offer_job_id(stored.id)
        # added on every post: a crash between the voucher and the job is mended by the ledger's retry
        payload = {"id": stored.id, "offer": stored.id, "when": seg.get("when"), "stores": seg.get("stores")}
        if await services.store.add_geo_job(job, program.program, OFFER_JOB_KIND, payload, now):
            services.geo_wakeup.set()
        return JSONResponse({"id": stored.id, "job": job}, status_code=202)

    card = await _holder(services, fields["card"], fields["account"])
    if card.program != program.program:
        raise invalid("program", "the card is in another program")
    existing = await services.store.get_voucher(OFFER, fields["id"])
    if existing is not None:
        return _answer(services, existing, False)
    geo = (await services.core.geo.snapshot()).program(card.program)
    voucher = _new_voucher(
        OFFER, fields["id"], program.program, card, offer_data(base, card, member_area(card, geo)), now
    )
    stored, created = await services.store.create_voucher(voucher, now, _fanout(services, voucher))
    if created:
        services.metrics.inc("wallet_vouchers_total", help="Vouchers issued", kind=OFFER)
        services.outbox_wakeup.set()
    return _answer(services, stored, created)


# -- the pass and the card page ----------------------------------------------------------------------------


async def render_voucher_pass(services: Services, voucher: Voucher) -> RenderedPass:
    cached = services.factory.cached_voucher(voucher)
    if cached is not None:
        return cached
    return await anyio.to_thread.run_sync(services.factory.render_voucher, voucher)


async def download_voucher(request: Request) -> Response:
    services = services_of(request)
    serial: str = request.path_params["serial"]
    ok = link_valid(
        services.settings.link_secret,
        LINK_PURPOSE,
        serial,
        request.query_params.get("exp"),
        request.query_params.get("sig"),
        time.time(),
    )
    voucher = await services.store.get_voucher_by_serial(serial) if ok and len(serial) <= 64 else None
    if voucher is None or voucher.card_number is None:
        raise ApiError(404, "invalid_link", "this link is invalid or has expired")
    # WALLET_RATE_PASSKIT per pass, one count with PassKit's fetch of it, before the pass is rendered
    await check_rule(request, services.settings.passkit_rate, "passkit", voucher.serial)
    rendered = await render_voucher_pass(services, voucher)
    return pkpass_response(rendered, voucher.modified_at, filename=f"{voucher.program}-{voucher.kind}.pkpass")


async def voucher_links(services: Services, card: Card, now: float) -> list[dict[str, Any]]:
    """The member's vouchers for the card page, oldest first: what each is (no code, no PIN), whether it
    still counts, and its signed Apple link (and Google's while on)."""
    found = await services.store.vouchers_of_card(card.number)
    listed: list[dict[str, Any]] = []
    for voucher in found:
        data = voucher.data
        item: dict[str, Any] = {
            "id": voucher.id,
            "kind": voucher.kind,
            "serial": voucher.serial,
            "voided": voucher.voided,
            "expires": data.get("expires"),
            "links": voucher_links_of(services, voucher, now),
        }
        if voucher.kind == CERTIFICATE:
            item["amount"] = data.get("amount")
            item["currency"] = data.get("currency")
            item["label"] = format_amount(float(data.get("amount") or 0), str(data.get("currency") or "RUB"))
        else:
            item["title"] = data.get("title")
            item["label"] = data.get("title")
        listed.append(item)
    return listed
