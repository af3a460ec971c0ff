"""The objects handlers share, built once at start-up and kept on `app.state.services`:
the core of service/wiring.py plus what only the web process has (metrics, readiness)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request

from config.settings import Settings
from passes.apple.certs import CertReport, check_certificates
from passes.apple.pkpass import PassFactory
from passes.programs import Program
from push.worker import Worker
from service.cards import CardIssuer
from service.ledger import LedgerIntake
from service.wiring import Core
from store.port import Store
from web.metrics import Metrics
from web.ratelimit import RateLimiter

if TYPE_CHECKING:  # web/google.py imports this module
    from web.google import RootKeyCache

_CERT_RECHECK_SECONDS = 60.0


class CertificateWatch:
    """The certificate report, re-read now and then: an operator may replace the files while we run."""

    def __init__(self, settings: Settings, report: CertReport, recheck_seconds: float = _CERT_RECHECK_SECONDS) -> None:
        self._settings = settings
        self._report = report
        self._recheck = recheck_seconds
        self._checked_at = time.monotonic()

    @property
    def report(self) -> CertReport:
        """The last report read (no file access)."""
        return self._report

    async def current(self) -> CertReport:
        if time.monotonic() - self._checked_at > self._recheck:
            s = self._settings
            self._report = await anyio.to_thread.run_sync(
                lambda: check_certificates(s.certs_dir, s.pass_type_id, s.team_id, s.pass_key_password)
            )
            self._checked_at = time.monotonic()
        return self._report


@dataclass(frozen=True)
class Services:
    core: Core
    metrics: Metrics
    certs: CertificateWatch
    limiter: RateLimiter
    # Google's callback root keys (web/google.py); None while Google Wallet is off
    google_keys: RootKeyCache | None = None

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def programs(self) -> Mapping[str, Program]:
        return self.core.programs

    @property
    def factory(self) -> PassFactory:
        return self.core.factory

    @property
    def cards(self) -> CardIssuer:
        return self.core.cards

    @property
    def ledger(self) -> LedgerIntake:
        return self.core.ledger

    @property
    def worker(self) -> Worker | None:
        return self.core.worker

    @property
    def outbox_wakeup(self) -> asyncio.Event:
        return self.core.outbox_wakeup

    @property
    def geo_wakeup(self) -> asyncio.Event:
        return self.core.geo_wakeup


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
