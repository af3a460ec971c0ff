"""The Starlette application: routes, error handlers, and the services built at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from config.startup import Prepared
from passes.apple.certs import load_signing_material
from passes.apple.pkpass import PassFactory
from passes.apple.signing import Signer
from passes.programs import load_programs
from store.factory import open_store
from web import admin, cards, ledger, ops, passkit
from web.body import BodyLimitMiddleware
from web.errors import ApiError, api_error_handler, http_error_handler, unexpected_error_handler
from web.metrics import Metrics
from web.services import Services

log = logging.getLogger("wallet")

REGISTRATION = "/passkit/v1/devices/{device}/registrations/{pass_type}/{serial}"

ROUTES = [
    Route("/v1/cards", cards.create_card, methods=["POST"]),
    Route("/v1/cards/{card}", cards.get_card, methods=["GET"]),
    Route("/v1/passes/{serial}.pkpass", cards.download_pkpass, methods=["GET"]),
    Route("/c/{serial}", cards.card_page, methods=["GET"]),
    Route("/v1/programs", ops.programs, methods=["GET"]),
    Route("/v1/ledger/events", ledger.post_events, methods=["POST"]),
    Route(REGISTRATION, passkit.register, methods=["POST"]),
    Route(REGISTRATION, passkit.unregister, methods=["DELETE"]),
    Route("/passkit/v1/devices/{device}/registrations/{pass_type}", passkit.serials, methods=["GET"]),
    Route("/passkit/v1/passes/{pass_type}/{serial}", passkit.latest_pass, methods=["GET"]),
    Route("/passkit/v1/log", passkit.log, methods=["POST"]),
    Route("/v1/admin/device-logs", admin.device_logs, methods=["GET"]),
    Route("/v1/admin/pushes", admin.pushes, methods=["GET"]),
    Route("/v1/admin/dead-letters", admin.dead_letters, methods=["GET"]),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/metrics", ops.metrics, methods=["GET"]),
    Route("/openapi.json", ops.openapi, methods=["GET"]),
    Route("/docs", ops.docs, methods=["GET"]),
]


async def build_services(prepared: Prepared) -> Services:
    settings = prepared.settings
    programs = load_programs(settings.templates_dir)
    material = load_signing_material(settings.certs_dir, settings.pass_key_password)
    signer = Signer.from_material(material)
    factory = PassFactory(programs, signer, pass_type_id=settings.pass_type_id,
                          team_id=settings.team_id, public_url=settings.public_url)
    store = await open_store(settings.database_url)
    return Services(settings=settings, store=store, programs=programs, factory=factory,
                    certs=prepared.certs, metrics=Metrics())


def create_app(prepared: Prepared) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await build_services(prepared)
        app.state.services = services
        worker_task: asyncio.Task | None = None
        stop = asyncio.Event()
        if prepared.settings.run_worker:
            from push.runner import start_worker

            worker_task = await start_worker(services, stop)
        try:
            yield
        finally:
            stop.set()
            if worker_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await services.store.close()

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(BodyLimitMiddleware)],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
