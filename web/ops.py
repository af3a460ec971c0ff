"""Operations and discovery: health, readiness, metrics, the program list, OpenAPI and its docs page."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from web.metrics import CONTENT_TYPE
from web.openapi import openapi_document
from web.services import Services

_CERT_RECHECK_SECONDS = 60.0
# the /docs page and its start script (served under /docs/static)
DOCS_DIR = Path(__file__).parent / "static" / "docs"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        store_ok = await services.store.ping()
    except Exception:  # any failure to answer means not ready
        store_ok = False
    report = await services.certs.current()
    ready = store_ok and not report.problems
    settings = services.settings
    # Named, not a reason to be unready: an operator may serve no card holder using that app.
    missing = [] if settings.push_dry_run else settings.relays.missing_keys()
    body = {
        "status": "ready" if ready else "not ready",
        "store": "ok" if store_ok else "unreachable",
        "certificates": {"problems": list(report.problems), "days_to_expiry": dict(report.expiry)},
        "relays": {"missing_keys": missing},
        # off = no issuer id configured (prod): no links.google, nothing sent to Google; not a reason to be unready
        "google": "on" if settings.google.enabled else "off",
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """This process's registry (web/metrics.py), with the outbox depth and certificate days read now."""
    services: Services = request.app.state.services
    age: float | None = None
    try:
        pending: float | None = float(await services.store.outbox_size())
        oldest = await services.store.outbox_oldest()
        age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
    except Exception:  # the store is down: the gauges are left out, the rest still answers
        pending = None
    report = await services.certs.current()
    services.metrics.scraped(pending, report.expiry, age)
    return Response(services.metrics.render_bytes(), media_type=CONTENT_TYPE)


async def programs(request: Request) -> Response:
    services: Services = request.app.state.services
    locale = request.query_params.get("locale")
    items = []
    for name in sorted(services.programs):
        template = services.programs[name]
        items.append(template.summary(locale if locale in template.locales else template.default_locale))
    return JSONResponse({"programs": items})


async def openapi(request: Request) -> Response:
    # Written from the app's own routes on each call: a millisecond or two, on a route nobody calls often,
    # and nothing cached can go stale.
    services: Services = request.app.state.services
    return JSONResponse(openapi_document(request.app.routes, services.programs, services.settings.public_url))


async def docs(request: Request) -> Response:
    # A static page: Swagger UI and our start script come from /docs/static (web/routes.py), nothing inline
    return FileResponse(DOCS_DIR / "index.html", media_type="text/html; charset=utf-8")
