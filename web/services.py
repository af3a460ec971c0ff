"""The objects handlers share, built once at start-up and kept on `app.state.services`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from passes.apple.certs import CertReport
from passes.apple.pkpass import PassFactory
from passes.programs import Program
from service.ledger import LedgerIntake
from store.port import Store
from web.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    store: Store
    programs: dict[str, Program]
    factory: PassFactory
    certs: CertReport
    metrics: Metrics
    # set whenever new outbox work is committed, so an in-process worker wakes at once
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ledger: LedgerIntake | None = None
    worker: Any = None
    # program -> its tier keys; fixed for the process, read by every ledger post
    tier_keys: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tier_keys = {name: frozenset(t.tier_keys) for name, t in self.programs.items()}
        self.all_tier_keys: frozenset[str] = frozenset().union(*self.tier_keys.values())
        # with one shared tier set, a tier valid anywhere is valid for every card
        self.tiers_differ = len(set(self.tier_keys.values())) > 1
    # monotonic time of the last certificate re-check (readyz re-reads the files now and then)
    certs_checked_at: float = 0.0
