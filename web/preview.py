"""`GET /v1/programs/{program}/preview.png?tier=&locale=`: the front of the program's Apple pass for
a tier, as marketing sees it when choosing colours and words (passes/preview.py draws it)."""

from __future__ import annotations

from functools import lru_cache

import anyio
from starlette.requests import Request
from starlette.responses import Response

from passes.preview import pass_front_png
from passes.programs import Program
from web.assets import PNG_TYPE
from web.auth import require_role
from web.errors import ApiError
from web.services import Services


@lru_cache(maxsize=64)
def _cached(template: Program, tier: str, locale: str, fingerprint: str) -> bytes:
    # keyed by the template's fingerprint too: a reloaded template with new colours draws afresh
    return pass_front_png(template, tier, locale)


async def program_preview(request: Request) -> Response:
    require_role(request, "marketing")
    services: Services = request.app.state.services
    template = services.programs.get(request.path_params["program"])
    if template is None:
        raise ApiError(404, "unknown_program", "no such program")
    tier = request.query_params.get("tier") or template.default_tier.key
    if template.tier(tier) is None:
        raise ApiError(400, "invalid_query", f"tier: not a tier of {template.program}: {', '.join(template.tier_keys)}")
    locale = request.query_params.get("locale") or template.default_locale
    if locale not in template.locales:
        raise ApiError(400, "invalid_query", f"locale: one of {', '.join(template.locales)}")
    # drawing takes tens of milliseconds: off the event loop
    data = await anyio.to_thread.run_sync(_cached, template, tier, locale, template.fingerprint)
    return Response(data, media_type=PNG_TYPE, headers={"Cache-Control": "private, max-age=300"})
