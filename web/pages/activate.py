"""Activation of pre-printed plastic cards `GET/POST /activate/{program}` (issue 14 point 3).

The program declares the number ranges it printed (`"plastic_ranges": [["7790000000000000",
"7790000099999999"], ...]` in program.json). A person types the number from the card, the phone and
consents; the card is created with exactly that number, so each number activates once (a second
time is "already active"). Numbers are Luhn-checked first (a typo is told as a typo, not as a
foreign card), then checked against the ranges. Rate-limited per address (WALLET_RATE_PAGES) and per
number (ACTIVATE_PER_NUMBER: someone trying numbers of a stolen range one phone after another).
CSRF as the join page; the phone again: that phone's existing card (as on the join page).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cards.model import Member
from cards.numbers import CARD_NUMBER_LENGTH, last4, luhn_valid
from passes.programs import Program
from service.cards import IssueError, NewCard
from web.cards import links_for
from web.pages.join import (
    Joined,
    JoinForm,
    error_page,
    language_links,
    over_limit,
    page_language,
    parse_join_form,
    program_region,
    read_member_form,
    terms_version,
    unknown_program,
    welcome,
)
from web.pages.security import csrf_token_for, set_csrf_cookie
from web.pages.templating import render, strings_for
from web.ratelimit import rule
from web.services import Services

log = logging.getLogger(__name__)

ACTIVATE_PER_NUMBER: Final = "10/hour"
_SEPARATORS: Final = re.compile(r"[\s-]+")


def _services(request: Request) -> Services:
    return request.app.state.services


def plastic_ranges(program: Program) -> list[tuple[str, str]]:
    """The program's printed ranges, inclusive; malformed entries are left out (never match)."""
    found = []
    raw = program.extra.get("plastic_ranges")
    for item in raw if isinstance(raw, list) else []:
        if not (isinstance(item, Sequence) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            continue
        first, last = str(item[0]), str(item[1])
        if all(len(x) == CARD_NUMBER_LENGTH and x.isascii() and x.isdigit() for x in (first, last)) and first <= last:
            found.append((first, last))
    return found


def in_ranges(number: str, ranges: Sequence[tuple[str, str]]) -> bool:
    # equal-length digit strings compare as the numbers do
    return any(first <= number <= last for first, last in ranges)


def card_number_problem(text: str, ranges: Sequence[tuple[str, str]]) -> tuple[str, str | None]:
    """(the number without separators, the strings key of what is wrong or None)."""
    number = _SEPARATORS.sub("", text)
    if not number:
        return number, "error.card_required"
    if len(number) != CARD_NUMBER_LENGTH or not number.isascii() or not number.isdigit() or not luhn_valid(number):
        return number, "error.card_invalid"
    if not in_ranges(number, ranges):
        return number, "error.card_outside"
    return number, None


@dataclass
class ActivateForm:
    number: str
    member: JoinForm


def form_page(
    request: Request, program: Program, language: str, entered: ActivateForm, status_code: int = 200
) -> Response:
    services = _services(request)
    token, nonce = csrf_token_for(request, services.settings)
    values: dict[str, Any] = {**vars(entered.member), "number": entered.number}
    context = {
        "program": program,
        "program_name": program.name(language),
        "terms": program.text("program.terms", language),
        "terms_version": terms_version(program),
        "action": request.url.path,
        "csrf": token,
        "values": values,
        "errors": entered.member.errors,
        "language_links": language_links(request.url.path, program),
    }
    response = render(request, "activate.html", context, language=language, status_code=status_code)
    set_csrf_cookie(response, nonce, services.settings)
    return response


def _program(request: Request) -> Program | None:
    return _services(request).programs.get(request.path_params["program"])


async def activate_form(request: Request) -> Response:
    program = _program(request)
    if program is None:
        return unknown_program(request)
    language = page_language(request, program)
    limited = await over_limit(request, language, None)
    if limited is not None:
        return limited
    return form_page(request, program, language, ActivateForm("", JoinForm()))


def _parse(
    form: FormData, program: Program, strings: Mapping[str, str]
) -> tuple[ActivateForm, str | None, Joined | None]:
    """(the form as entered, the card number when it is valid, the member when the rest is)."""
    typed = form.get("number")
    number_text = typed.strip()[:40] if isinstance(typed, str) else ""
    member, joined = parse_join_form(form, program_region(program), strings, name_required=False)
    number, problem = card_number_problem(number_text, plastic_ranges(program))
    if problem is not None:
        # the number's error first: it is the first field
        member.errors = {"number": strings[problem], **member.errors}
    return ActivateForm(number_text, member), (number if problem is None else None), joined


async def activate_submit(request: Request) -> Response:
    services = _services(request)
    program = _program(request)
    if program is None:
        return unknown_program(request)
    read = await read_member_form(request, program, "activate", lambda form, t: _parse(form, program, t))
    if isinstance(read, Response):
        return read
    language, (entered, number, joined) = read
    t = strings_for(language)
    if number is not None:
        wait = await services.limiter.retry_after(rule(ACTIVATE_PER_NUMBER), "activate_number", number)
        if wait is not None:
            text = t["error.rate_text"].format(seconds=wait)
            return error_page(
                request, language, 429, "error.rate_title", text, request.url.path, {"Retry-After": str(wait)}
            )
    if number is None or joined is None or entered.member.errors:
        return form_page(request, program, language, entered, status_code=400)
    now = time.time()
    new = NewCard(
        program=program.program,
        account="plastic-" + secrets.token_hex(12),
        member=Member(name=joined.name, phone=joined.phone, email=joined.email),
        locale=language if language in program.locales else None,
        unique_phone=True,
        number=number,
    )
    try:
        issued = await services.cards.issue(new, now)
    except IssueError as exc:
        if exc.code == "number_taken":
            log.info("activate %s: card *%s is already active", program.program, last4(number))
            entered.member.errors["number"] = t["error.card_active"]
            return form_page(request, program, language, entered, status_code=409)
        log.warning("activate %s: card not issued (%s)", program.program, exc.code)
        entered.member.errors["form"] = t["error.busy"]
        return form_page(request, program, language, entered, status_code=503)
    card = issued.card
    if issued.created:
        await welcome(services, program, card, joined, now, "activate")
    else:
        log.info("activate %s: phone already holds card *%s", program.program, last4(card.number))
    return RedirectResponse(links_for(services, card, now)["page"], status_code=303)
