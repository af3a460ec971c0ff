"""The Starlette application: routes, error handlers, and the services built at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from config.startup import Prepared
from service.imports import runner_for
from service.push import run_worker
from service.wiring import geo_runner, open_core
from store.port import StoreError
from web.body import BodyLimitMiddleware
from web.errors import ApiError, api_error_handler, http_error_handler, store_error_handler, unexpected_error_handler
from web.google import RootKeyCache
from web.metrics import Metrics, MetricsMiddleware
from web.ratelimit import RateLimiter
from web.routes import ROUTES
from web.services import CertificateWatch, Services
from web.serving import HeaderLimitMiddleware

log = logging.getLogger(__name__)


async def build_services(prepared: Prepared) -> Services:
    settings = prepared.settings
    core = await open_core(settings, with_worker=settings.run_worker)
    # this app's own registry: several apps in one process (the tests) count apart
    metrics = Metrics()
    if core.worker is not None:
        metrics.watch_worker(core.worker)
    return Services(
        core=core,
        metrics=metrics,
        certs=CertificateWatch(settings, prepared.certs),
        limiter=RateLimiter(settings.database_url, settings.passkit_register_rate),
        google_keys=RootKeyCache(settings.google.keys_url) if settings.google.enabled else None,
    )


def create_app(prepared: Prepared) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await build_services(prepared)
        app.state.services = services
        stop = asyncio.Event()
        worker = services.worker
        worker_task = (
            asyncio.create_task(run_worker(worker, stop, services.settings, services.programs), name="push-worker")
            if worker
            else None
        )
        # campaign and message jobs run where pushes are delivered: a process without a worker
        # leaves them to the worker processes
        geo_task = (
            asyncio.create_task(geo_runner(services.core, worker.consumer).run_forever(stop), name="geo-runner")
            if worker
            else None
        )
        # in every process, worker or not: a job runs where it was posted (service/imports.py)
        app.state.import_runner = imports = runner_for(services.core)
        import_task = asyncio.create_task(imports.run_forever(stop), name="import-runner")
        try:
            yield
        finally:
            stop.set()
            for task in (worker_task, geo_task, import_task):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if services.google_keys is not None:
                await services.google_keys.aclose()
            await services.core.aclose()

    return Starlette(
        routes=ROUTES,
        # metrics outermost: it times and counts the limits' refusals too (web/metrics.py)
        middleware=[
            Middleware(MetricsMiddleware),
            Middleware(HeaderLimitMiddleware),
            Middleware(BodyLimitMiddleware),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            StoreError: store_error_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
