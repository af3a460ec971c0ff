"""Issuing a card, the use case behind `POST /v1/cards` and `python -m cli issue`.

Idempotent per ledger account: the same account in the same program gets its existing card
back; the same account in another program is refused. Card numbers and serials are random,
so a collision is drawn again rather than reported.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cards.model import Card, Member
from cards.numbers import last4, new_auth_token, new_card_number, new_serial
from passes.programs import Program
from push.kinds.google_object import GoogleObject
from push.messages import entry
from store.port import CardConflict, Store

if TYPE_CHECKING:  # service/geo.py builds on the ledger's fanout, wired after this
    from service.geo import GeoService

log = logging.getLogger(__name__)

_DRAWS = 8  # random numbers and serials drawn before giving up (10^11 numbers per prefix)
APP_TOKEN_BYTES = 24  # the companion app's secret: 192 random bits (at least 128 asked), URL-safe


def new_app_token() -> str:
    """A card's companion-app secret (`Authorization: Card <number>:<app_token>`): no ':' in it."""
    return secrets.token_urlsafe(APP_TOKEN_BYTES)


class IssueError(Exception):
    """A card that cannot be issued; `code` says why (the web layer maps it to a status)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NewCard:
    """What a caller asks for; tier and locale default from the program."""

    program: str
    account: str
    member: Member
    balance: int = 0
    tier: str | None = None
    locale: str | None = None
    home_store: str | None = None  # the enrolment store: the member's area until the app reports one
    # the join page: one card per phone in the program, the existing one is returned (store/port.py)
    unique_phone: bool = False
    # a pre-printed card's number (activation): used as given, never drawn; taken -> "number_taken"
    number: str | None = None


@dataclass(frozen=True)
class Issued:
    card: Card
    created: bool


class CardIssuer:
    def __init__(
        self,
        store: Store,
        programs: Mapping[str, Program],
        *,
        google: bool = False,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.programs = programs
        # With Google Wallet on, a card's object is inserted through the outbox as it is issued:
        # the save link names it (skinny form), so it must exist before anyone follows the link.
        self.google = google
        self.wakeup = wakeup
        # with it, a new card's pass shows its campaigns from the start (service/geo.py)
        self.geo: GeoService | None = None

    def program(self, name: str) -> Program:
        program = self.programs.get(name)
        if program is None:
            raise IssueError("unknown_program", f"program {name!r} does not exist")
        return program

    async def issue(self, request: NewCard, now: float) -> Issued:
        program = self.program(request.program)
        if request.tier is not None and program.tier(request.tier) is None:
            raise IssueError("unknown_tier", f"not a tier of {program.program}: {', '.join(program.tier_keys)}")
        if request.locale is not None and request.locale not in program.locales:
            raise IssueError("unknown_locale", f"one of {', '.join(program.locales)}")
        for _ in range(_DRAWS):
            card = Card(
                number=request.number or new_card_number(program.card_prefix),
                program=program.program,
                account=request.account,
                serial=new_serial(),
                auth_token=new_auth_token(),
                app_token=new_app_token(),
                member=request.member,
                locale=request.locale or program.default_locale,
                balance=request.balance,
                tier=request.tier or program.tier_for_balance(request.balance).key,
                created_at=int(now),
                modified_at=int(now),
                home_store=request.home_store,
            )
            generation: int | None = None
            if self.geo is not None:
                card, generation = await self.geo.evaluated(card, now)
            try:
                stored, created = await self.store.create_card(card, unique_phone=request.unique_phone)
            except CardConflict:
                existing = await self.store.get_card_by_account(request.account)
                if existing is not None and existing.program != program.program:
                    raise IssueError(
                        "account_in_other_program", "this account already has a card in another program"
                    ) from None
                if request.number is not None and await self.store.get_card(request.number) is not None:
                    raise IssueError("number_taken", "this card number is already active") from None
                continue  # a random number or serial collided: draw again
            if created:
                log.info("issued card *%s in %s", last4(stored.number), stored.program)
                if self.geo is not None and generation != await self.store.geo_generation():
                    # Campaigns changed between the derivation and the commit, and their job may
                    # have passed this card's number already: derived again, as a ping would.
                    stored = await self.geo.refresh(stored, now) or stored
            if self.google:
                # again for an existing card too: coalesced if one waits, and it repairs a crash
                # between the card's commit and this one
                await self.store.enqueue([entry(GoogleObject(stored.serial))], now)
                if self.wakeup is not None:
                    self.wakeup.set()
            return Issued(stored, created)
        raise IssueError("unavailable", "could not allocate a card number, try again")
