"""The Starlette application: routes, error handlers, and the services built at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from config.startup import Prepared
from passes.apple.certs import load_signing_material
from passes.apple.pkpass import PassFactory
from passes.apple.signing import Signer
from passes.programs import load_programs
from store.factory import open_store
from web.body import BodyLimitMiddleware
from web.errors import ApiError, api_error_handler, http_error_handler, unexpected_error_handler
from web.metrics import Metrics
from web.routes import ROUTES
from service.ledger import LedgerIntake
from web.services import Services

log = logging.getLogger("wallet")



async def build_services(prepared: Prepared) -> Services:
    settings = prepared.settings
    programs = load_programs(settings.templates_dir)
    material = load_signing_material(settings.certs_dir, settings.pass_key_password)
    signer = Signer.from_material(material)
    factory = PassFactory(programs, signer, pass_type_id=settings.pass_type_id,
                          team_id=settings.team_id, public_url=settings.public_url)
    store = await open_store(settings.database_url)
    services = Services(settings=settings, store=store, programs=programs, factory=factory,
                        certs=prepared.certs, metrics=Metrics())
    services.ledger = LedgerIntake(store, programs, settings.pass_type_id, services.outbox_wakeup)
    return services


def create_app(prepared: Prepared) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await build_services(prepared)
        app.state.services = services
        worker_task: asyncio.Task | None = None
        stop = asyncio.Event()
        if prepared.settings.run_worker:
            from service.push import build_worker, run_worker

            worker = build_worker(services.settings, services.store, services.outbox_wakeup)
            services.worker = worker
            worker_task = asyncio.create_task(run_worker(worker, stop), name="push-worker")
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
