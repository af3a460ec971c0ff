"""Operations and discovery: health, readiness, metrics, the program list, OpenAPI and its docs page."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from passes.apple.certs import CertReport, check_certificates
from web.openapi import openapi_document
from web.services import Services

_CERT_RECHECK_SECONDS = 60.0
# the /docs page and its start script (served under /docs/static)
DOCS_DIR = Path(__file__).parent / "static" / "docs"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _cert_report(services: Services) -> CertReport:
    # certificates are files that an operator may replace while we run: re-read them now and then
    if time.monotonic() - services.certs_checked_at > _CERT_RECHECK_SECONDS:
        s = services.settings
        services.certs = await anyio.to_thread.run_sync(
            lambda: check_certificates(s.certs_dir, s.pass_type_id, s.team_id, s.pass_key_password)
        )
        services.certs_checked_at = time.monotonic()
    return services.certs


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        store_ok = await services.store.ping()
    except Exception:  # any failure to answer means not ready
        store_ok = False
    report = await _cert_report(services)
    ready = store_ok and not report.problems
    body = {
        "status": "ready" if ready else "not ready",
        "store": "ok" if store_ok else "unreachable",
        "certificates": {"problems": list(report.problems), "days_to_expiry": dict(report.expiry)},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    extra: dict[str, float] = {}
    try:
        extra["wallet_outbox_pending"] = float(await services.store.outbox_size())
    except Exception:
        pass
    for name, days in services.certs.expiry.items():
        extra[f"wallet_certificate_days_to_expiry_{name}"] = float(days)
    worker = services.worker
    if worker is not None:
        for name, value in getattr(worker, "counters", {}).items():
            extra[f"wallet_push_{name}_total"] = float(value)
    return PlainTextResponse(services.metrics.render(extra), media_type="text/plain; version=0.0.4")


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
