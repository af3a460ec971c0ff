"""The join page `GET/POST /join/{program}`: a person enrols with name, phone, optional e-mail,
consent to the program's terms and, per channel, to marketing; the card page follows.

- One card per phone in the program: the phone (normalized to E.164 in the program's `region`) is
  unique in the store, so the same phone again gets the same card (store.create_card unique_phone),
  and its consents are not recorded again: nothing proves that this visitor owns the phone.
- The member's ledger account is a fresh random id ("join-<hex>"), never the phone: accounts
  appear in URLs and logs of the ledger backend, phones must not.
- Consents are kept with their time, the terms' version and the channel (store.add_consents); a
  new member is announced to WALLET_ENROLL_WEBHOOK_URL through the outbox (push/kinds/enroll_webhook.py).
- CSRF: GET sets the browser's cookie and the form's token; a POST without a valid one is refused
  (403) before anything is read or stored. Rate-limited per client address (WALLET_RATE_PAGES).
- Logs hold at most a card's last 4 digits: never what was typed.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cards.model import Card, Member
from cards.numbers import last4
from cards.phones import DEFAULT_REGION, PhoneError, normalize_phone
from passes.programs import Program
from push.kinds.enroll_webhook import EnrollWebhook
from push.messages import entry
from service.cards import IssueError, NewCard
from store.port import Consent
from web import ratelimit
from web.cards import links_for
from web.pages.security import CSRF_FIELD, csrf_token_for, csrf_valid, read_form, set_csrf_cookie
from web.pages.templating import LANGUAGES, choose_language, render, strings_for
from web.ratelimit import rule
from web.services import Services

log = logging.getLogger(__name__)

NAME_MAX: Final = 100
EMAIL_MAX: Final = 254
MARKETING_CHANNELS: Final = ("sms", "email", "push")
LANGUAGE_NAMES: Final = {"ru": "Русский", "en": "English"}
# A plain shape check: the address is the member's to get right; what matters is that it can be sent to
_EMAIL_RE: Final = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']+\.[^@\s<>\"'.]{2,}$")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


def _services(request: Request) -> Services:
    return request.app.state.services


def program_region(program: Program) -> str:
    region = program.extra.get("region")
    return region.upper() if isinstance(region, str) and len(region) == 2 and region.isalpha() else DEFAULT_REGION


def terms_version(program: Program) -> str:
    version = program.extra.get("terms_version")
    return str(version) if isinstance(version, (str, int)) and str(version) else "1"


def client_address(request: Request) -> str:
    # the direct peer, or behind WALLET_TRUSTED_PROXIES the client they forward for
    return ratelimit.client_address(request)


@dataclass
class JoinForm:
    """What the visitor entered (kept for a re-rendered form) and what is wrong with it."""

    name: str = ""
    phone: str = ""
    email: str = ""
    terms: bool = False
    marketing_sms: bool = False
    marketing_email: bool = False
    marketing_push: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def marketing(self, channel: str) -> bool:
        return bool(getattr(self, f"marketing_{channel}"))


@dataclass(frozen=True)
class Joined:
    """A valid form: the member's data as stored."""

    name: str
    phone: str  # E.164
    email: str | None
    marketing: Mapping[str, bool]


def _text(form: FormData, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) == "yes"


def parse_join_form(
    form: FormData, region: str, strings: Mapping[str, str], *, name_required: bool = True
) -> tuple[JoinForm, Joined | None]:
    """The form as entered, and the member when it is valid (pure: no store, no request)."""
    entered = JoinForm(
        name=_text(form, "name"),
        phone=_text(form, "phone", 60),
        email=_text(form, "email", 300),
        terms=_checked(form, "terms"),
        marketing_sms=_checked(form, "marketing_sms"),
        marketing_email=_checked(form, "marketing_email"),
        marketing_push=_checked(form, "marketing_push"),
    )
    errors = entered.errors
    name = _CONTROL_RE.sub("", entered.name)
    if not name and name_required:
        errors["name"] = strings["error.name_required"]
    elif len(name) > NAME_MAX:
        errors["name"] = strings["error.name_too_long"]
    phone = ""
    if not entered.phone:
        errors["phone"] = strings["error.phone_required"]
    else:
        try:
            phone = normalize_phone(entered.phone, region)
        except PhoneError:
            errors["phone"] = strings["error.phone_invalid"]
    email = entered.email or None
    if email is not None and (len(email) > EMAIL_MAX or not _EMAIL_RE.fullmatch(email)):
        errors["email"] = strings["error.email_invalid"]
    elif email is None and entered.marketing_email:
        errors["email"] = strings["error.email_marketing"]
    if not entered.terms:
        errors["terms"] = strings["error.terms_required"]
    if errors:
        return entered, None
    marketing = {channel: entered.marketing(channel) for channel in MARKETING_CHANNELS}
    return entered, Joined(name=name, phone=phone, email=email, marketing=marketing)


def consents_of(joined: Joined, version: str, now: float, source: str = "join") -> list[Consent]:
    """The terms (granted: the form requires it) and one answer per marketing channel, yes or no:
    an explicit "no" is an answer worth keeping too."""
    consents = [Consent(kind="terms", channel=None, granted=True, version=version, at=now, source=source)]
    consents.extend(
        Consent(
            kind="marketing", channel=channel, granted=joined.marketing[channel], version=version, at=now, source=source
        )
        for channel in MARKETING_CHANNELS
    )
    return consents


def language_links(path: str, program: Program) -> list[tuple[str, str, str]]:
    return [
        (code, LANGUAGE_NAMES.get(code, code), f"{path}?{urlencode({'lang': code})}")
        for code in program.locales
        if code in LANGUAGES
    ]


def page_language(request: Request, program: Program, form: FormData | None = None) -> str:
    # a posted form keeps the language it was shown in (its hidden `lang`), whatever the headers say
    wanted = form.get("lang") if form is not None else None
    if isinstance(wanted, str) and wanted in program.locales and wanted in LANGUAGES:
        return wanted
    return choose_language(request, program.locales, program.default_locale)


def error_page(
    request: Request,
    language: str,
    status: int,
    title_key: str,
    text: str,
    back: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    t = strings_for(language)
    context = {"title": t[title_key], "message": text, "back": back}
    return render(request, "error.html", context, language=language, status_code=status, headers=headers)


async def over_limit(request: Request, language: str, back: str | None) -> Response | None:
    """The 429 page when this address is over WALLET_RATE_PAGES, else None (the hit is counted)."""
    services = _services(request)
    wait = await services.limiter.retry_after(rule(services.settings.pages_rate), "pages", client_address(request))
    if wait is None:
        return None
    text = strings_for(language)["error.rate_text"].format(seconds=wait)
    return error_page(request, language, 429, "error.rate_title", text, back, {"Retry-After": str(wait)})


def form_page(
    request: Request,
    program: Program,
    language: str,
    entered: JoinForm,
    *,
    status_code: int = 200,
) -> Response:
    services = _services(request)
    token, nonce = csrf_token_for(request, services.settings)
    context = {
        "program": program,
        "program_name": program.name(language),
        "terms": program.text("program.terms", language),
        "terms_version": terms_version(program),
        "action": request.url.path,
        "csrf": token,
        "values": entered,
        "errors": entered.errors,
        "language_links": language_links(request.url.path, program),
    }
    response = render(request, "join.html", context, language=language, status_code=status_code)
    set_csrf_cookie(response, nonce, services.settings)
    return response


def _program(request: Request) -> Program | None:
    return _services(request).programs.get(request.path_params["program"])


def unknown_program(request: Request) -> Response:
    language = choose_language(request, LANGUAGES, "ru")
    text = strings_for(language)["error.not_found_text"]
    return error_page(request, language, 404, "error.not_found_title", text)


async def join_form(request: Request) -> Response:
    program = _program(request)
    if program is None:
        return unknown_program(request)
    language = page_language(request, program)
    limited = await over_limit(request, language, None)
    if limited is not None:
        return limited
    return form_page(request, program, language, JoinForm())


T = TypeVar("T")


async def read_member_form(
    request: Request, program: Program, action: str, parse: Callable[[FormData, Mapping[str, str]], T]
) -> tuple[str, T] | Response:
    """A member form's POST up to its parsed fields: rate limit per address, then the CSRF token, then
    `parse(form, page strings)`; (language, parsed) or the page that refuses it (429, 403)."""
    services = _services(request)
    language = page_language(request, program)
    limited = await over_limit(request, language, request.url.path)
    if limited is not None:
        return limited
    # no files (max_files=0): nothing to close; a form over the limits is refused as one without a token
    form = await read_form(request, max_files=0, max_fields=20, max_part_size=4096)
    language = page_language(request, program, form) if form is not None else language
    t = strings_for(language)
    token = form.get(CSRF_FIELD) if form is not None else None
    if form is None or not csrf_valid(request, services.settings, token if isinstance(token, str) else None):
        log.info("%s %s: form refused (no valid CSRF token)", action, program.program)
        return error_page(request, language, 403, "error.csrf_title", t["error.csrf_text"], request.url.path)
    return language, parse(form, t)


async def join_submit(request: Request) -> Response:
    services = _services(request)
    program = _program(request)
    if program is None:
        return unknown_program(request)
    read = await read_member_form(
        request, program, "join", lambda form, t: parse_join_form(form, program_region(program), t)
    )
    if isinstance(read, Response):
        return read
    language, (entered, joined) = read
    t = strings_for(language)
    if joined is None:
        return form_page(request, program, language, entered, status_code=400)
    now = time.time()
    new = NewCard(
        program=program.program,
        account="join-" + secrets.token_hex(12),
        member=Member(name=joined.name, phone=joined.phone, email=joined.email),
        locale=language if language in program.locales else None,
        unique_phone=True,
    )
    try:
        issued = await services.cards.issue(new, now)
    except IssueError as exc:
        log.warning("join %s: card not issued (%s)", program.program, exc.code)
        entered.errors["form"] = t["error.busy"]
        return form_page(request, program, language, entered, status_code=503)
    card = issued.card
    if issued.created:
        await welcome(services, program, card, joined, now, "join")
    else:
        log.info("join %s: phone already holds card *%s", program.program, last4(card.number))
    return RedirectResponse(links_for(services, card, now)["page"], status_code=303)


async def welcome(services: Services, program: Program, card: Card, joined: Joined, now: float, source: str) -> None:
    """What follows a new member's card: the consents kept, the ledger backend told (when configured)."""
    services.metrics.inc("wallet_cards_issued_total", help="Cards issued", program=program.program)
    consents = consents_of(joined, terms_version(program), now, source)
    await services.store.add_consents(card.number, consents)
    if services.settings.enroll_webhook_url:
        # names the card only: the worker reads the member's data at delivery (push/kinds/enroll_webhook.py)
        announcement = EnrollWebhook(
            card_number=card.number,
            account=card.account,
            program=program.program,
            name="",
            phone="",
            email=None,
            joined_at=now,
            delivery=secrets.token_hex(16),
            source=source,
        )
        await services.store.enqueue([entry(announcement)], now)
        services.outbox_wakeup.set()
    log.info("%s %s: new card *%s", source, program.program, last4(card.number))
