"""`POST /v1/ledger/events`: the ledger backend's signed balance/tier changes."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledger.batch import BatchError, read_batch
from ledger.events import MAX_EVENTS
from ledger.signature import verify
from web.body import read_body
from web.errors import ApiError
from web.services import Services

log = logging.getLogger(__name__)


async def post_events(request: Request) -> Response:
    services: Services = request.app.state.services
    raw = await read_body(request)
    problem = verify(services.settings.ledger_secret, request.headers.get("x-wallet-signature"), raw, time.time())
    if problem:
        services.metrics.inc("wallet_ledger_rejected_total", help="Ledger posts refused", reason="signature")
        raise ApiError(401, "bad_signature", problem)
    try:
        # leniently, unlike other bodies: one event's lone surrogate or huge number must not refuse the
        # whole signed batch (ledger/batch.py); each event is judged on its own by the intake
        items = read_batch(raw)
    except BatchError as exc:
        services.metrics.inc("wallet_ledger_rejected_total", help="Ledger posts refused", reason="invalid_json")
        raise ApiError(400, "invalid_json", str(exc)) from None
    if len(items) > MAX_EVENTS:
        services.metrics.inc("wallet_ledger_rejected_total", help="Ledger posts refused", reason="too_many_events")
        raise ApiError(413, "too_many_events", f"at most {MAX_EVENTS} events per post")

    answer = await services.ledger.intake(items, time.time())
    # accepted, duplicate, stale, unknown, invalid: each is a series from the start (web/metrics.py)
    for outcome, found in answer.items():
        if found:
            services.metrics.ledger_events.labels(outcome=outcome).inc(len(found))
    return JSONResponse(answer, status_code=202)
