"""The objects handlers share, built once at start-up and kept on `app.state.services`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from passes.certs import CertReport
from passes.pkpass import PassFactory
from passes.templates import Template
from store.port import Store
from web.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    store: Store
    templates: dict[str, Template]
    factory: PassFactory
    certs: CertReport
    metrics: Metrics
    # set whenever new outbox work is committed, so an in-process worker wakes at once
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    worker: Any = None
    # monotonic time of the last certificate re-check (readyz re-reads the files now and then)
    certs_checked_at: float = 0.0
