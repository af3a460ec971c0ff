"""Data-subject requests over HTTP (role `admin`): GET /v1/members/{card}/export and
DELETE /v1/members/{card} (service/privacy.py does the work)."""

from __future__ import annotations

import logging
import time
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cards.numbers import last4, luhn_valid
from passes.google.model import object_id
from service.privacy import Privacy
from web.auth import require_role
from web.errors import ApiError
from web.services import Services

log = logging.getLogger(__name__)


def _privacy(services: Services) -> Privacy:
    google = services.settings.google
    return Privacy(
        services.store,
        services.settings.pass_type_id,
        google_object_id=partial(object_id, google.issuer_id) if google.enabled else None,
        wakeup=services.outbox_wakeup,
    )


def _number(request: Request) -> str:
    number = str(request.path_params["card"])
    if not (len(number) == 16 and number.isdigit() and luhn_valid(number)):
        raise ApiError(404, "unknown_card", "no such card")
    return number


async def export_member(request: Request) -> Response:
    require_role(request, "admin")
    services: Services = request.app.state.services
    exported = await _privacy(services).export(_number(request), time.time())
    if exported is None:
        raise ApiError(404, "unknown_card", "no such card")
    return JSONResponse(exported)


async def erase_member(request: Request) -> Response:
    require_role(request, "admin")
    services: Services = request.app.state.services
    number = _number(request)
    erased = await _privacy(services).erase(number, time.time())
    if erased is None:
        raise ApiError(404, "unknown_card", "no such card")
    if erased["erased"]:
        services.metrics.inc("wallet_members_erased_total", help="Members whose personal data was erased")
        log.info("member of card *%s erased; %d device(s) to tell", last4(number), erased["devices"])
    return JSONResponse(erased)
