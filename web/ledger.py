"""`POST /v1/ledger/events`: the ledger backend's signed balance/tier changes."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledger.decide import LedgerEvent, Outcome
from ledger.events import MAX_EVENTS, EventError, event_id, parse_event
from ledger.signature import verify
from web.body import parse_json, read_body
from web.errors import ApiError
from web.services import Services

log = logging.getLogger("wallet.ledger")


async def _check_tiers_per_program(services: Services, events: list[LedgerEvent],
                                   invalid: list[dict[str, Any]]) -> list[LedgerEvent]:
    """Programs with different tier sets: a tier must belong to the card's own program.
    (Cards never change program, so reading them before the commit is safe.)"""
    if not services.tiers_differ:
        return events
    tiers = services.tier_keys
    kept: list[LedgerEvent] = []
    for event in events:
        if event.tier is not None:
            store = services.store
            card = await (store.get_card(event.card) if event.card else store.get_card_by_account(event.account or ""))
            if card is not None and event.tier not in tiers.get(card.program, frozenset()):
                invalid.append({"id": event.id, "error": f"tier {event.tier!r} is not a tier of {card.program}"})
                continue
        kept.append(event)
    return kept


async def post_events(request: Request) -> Response:
    services: Services = request.app.state.services
    raw = await read_body(request)
    problem = verify(services.settings.ledger_secret, request.headers.get("x-wallet-signature"), raw, time.time())
    if problem:
        services.metrics.inc("wallet_ledger_rejected_total", help="Ledger posts refused", reason="signature")
        raise ApiError(401, "bad_signature", problem)
    body = parse_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ApiError(400, "invalid_json", 'the body must be {"events": [...]}')
    items = body["events"]
    if len(items) > MAX_EVENTS:
        raise ApiError(413, "too_many_events", f"at most {MAX_EVENTS} events per post")

    valid: list[LedgerEvent] = []
    invalid: list[dict[str, Any]] = []
    for item in items:
        try:
            valid.append(parse_event(item, services.all_tier_keys))
        except EventError as exc:
            invalid.append({"id": event_id(item), "error": str(exc)})
    valid = await _check_tiers_per_program(services, valid, invalid)

    result = await services.store.apply_ledger_events(valid, time.time()) if valid else None
    answer: dict[str, list[Any]] = {o.value: [] for o in Outcome}
    for ident, outcome in result.outcomes if result else ():
        answer[outcome.value].append(ident)
    answer["invalid"] = invalid
    accepted = len(answer[Outcome.ACCEPTED.value])
    if accepted:
        services.outbox_wakeup.set()
    for outcome in Outcome:
        if answer[outcome.value]:
            services.metrics.inc("wallet_ledger_events_total", len(answer[outcome.value]),
                                 help="Ledger events by outcome", outcome=outcome.value)
    if invalid:
        services.metrics.inc("wallet_ledger_events_total", len(invalid), outcome="invalid")
    return JSONResponse(answer, status_code=202)
