"""The composition root: settings -> programs -> signer -> pass factory -> store -> use cases ->
channels -> worker, built in one place for the web process and the CLI alike."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from config.settings import Settings
from passes.apple.certs import load_signing_material
from passes.apple.pkpass import PassFactory
from passes.apple.signing import Signer
from passes.programs import Program, load_programs
from push.worker import Worker
from service.cards import CardIssuer
from service.geo import GeoRunner, GeoService, build_runner
from service.ledger import LedgerIntake
from service.push import build_worker
from store.factory import open_store
from store.port import Store


@dataclass(frozen=True)
class Core:
    """What every entry point shares; the web layer adds its own (metrics, readiness) beside it."""

    settings: Settings
    store: Store
    programs: Mapping[str, Program]
    factory: PassFactory
    cards: CardIssuer
    ledger: LedgerIntake
    # set whenever new outbox work is committed, so an in-process worker wakes at once
    outbox_wakeup: asyncio.Event
    worker: Worker | None  # the in-process worker, when this process runs one
    geo: GeoService  # the geo snapshot and app-ping writes (service/geo.py)
    # set whenever geo work (a campaign, store or message job) is added, so the sweeper wakes at once
    geo_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    async def aclose(self) -> None:
        await self.store.close()


async def open_core(settings: Settings, *, with_worker: bool = False) -> Core:
    """Everything built and the store opened (and migrated); `with_worker` adds the push worker
    (not started: the caller runs it, see service/push.py run_worker)."""
    programs = load_programs(settings.templates_dir)
    signer = Signer.from_material(load_signing_material(settings.certs_dir, settings.pass_key_password))
    factory = PassFactory(
        programs,
        signer,
        pass_type_id=settings.pass_type_id,
        team_id=settings.team_id,
        public_url=settings.public_url,
        default_distance_m=settings.geo.default_distance_m,
    )
    store = await open_store(settings.database_url)
    wakeup = asyncio.Event()
    ledger = LedgerIntake(store, programs, settings.pass_type_id, wakeup, google=settings.google.enabled)
    # a geo write changes a pass exactly as a ledger change does: the same outbox work
    geo = GeoService(store, programs, ledger.fanout)
    ledger.geo = geo
    cards = CardIssuer(store, programs, google=settings.google.enabled, wakeup=wakeup)
    cards.geo = geo
    return Core(
        settings=settings,
        store=store,
        programs=programs,
        factory=factory,
        cards=cards,
        ledger=ledger,
        outbox_wakeup=wakeup,
        worker=build_worker(settings, store, wakeup, programs) if with_worker else None,
        geo=geo,
    )


def geo_runner(core: Core, owner: str) -> GeoRunner:
    """The runner of campaign and message jobs for this process (beside its push worker)."""
    return build_runner(core.settings, core.geo, owner, core.geo_wakeup, core.outbox_wakeup)
