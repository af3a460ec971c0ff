"""Geo at run time: the snapshot of campaigns and stores every writer derives pass content from, the
ledger's derive step, the member's area from app pings, and the runner of campaign and message jobs.

Consistency rests on the store's geo generation (store/port.py): a snapshot is read at one generation,
and every write derived from it passes that generation, so the store refuses it (GeoChanged) once a
campaign or store changed; the writer reads the new snapshot and derives again. Every campaign or
store write also restarts its program's "campaigns" job, which re-evaluates every card of the program
in card-number order, batch by batch, each batch and the job's cursor in one commit: a restart
mid-way resumes at the cursor, a re-evaluated card that did not change is not written (no push), and
a card that changes is written with a new tag and one pass update.

Time changes what qualifies too (a campaign's start or end passing, the days before points expire):
the runner restarts a program's job when one of its campaigns' times passes and, for campaigns on
expiring points, when the UTC day changes; and once at its start for every program with campaigns,
since it cannot know what passed while no runner ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cards.model import Card
from cards.numbers import new_auth_token, new_serial
from config.settings import Settings
from geo.campaigns import Campaign, Conditions, campaign_from_dict
from geo.evaluate import (
    Message,
    ProgramGeo,
    deliver_message,
    evaluate,
    in_segment,
    member_area,
    pass_content_changed,
    program_centre,
)
from geo.locations import StoreLocation
from geo.nearest import NearestIndex
from passes.apple.voucher_json import offer_data
from passes.programs import Program
from push.kinds.google_voucher import voucher_entries
from store.port import CardUpdate, Fanout, GeoChanged, GeoJob, JobStep, NewEntry, Store, Voucher, fixed_fanout

log = logging.getLogger(__name__)

_RETRIES = 20  # re-derivations of one write while campaigns keep changing under it
OFFER_JOB = "offer"  # a segment's offer (web/vouchers.py): one voucher per card it selects


def utc_today(now: float) -> _dt.date:
    """The day expiry windows count from (campaign conditions)."""
    return _dt.datetime.fromtimestamp(now, _dt.UTC).date()


@dataclass(frozen=True)
class GeoSnapshot:
    """Every program's campaigns and stores at one geo generation."""

    generation: int
    programs: Mapping[str, ProgramGeo] = field(default_factory=dict)

    def program(self, name: str) -> ProgramGeo:
        return self.programs.get(name) or ProgramGeo(program=name)

    def campaigns(self, program: str) -> tuple[Campaign, ...]:
        return self.program(program).campaigns

    def stores(self, program: str) -> Mapping[str, StoreLocation]:
        return self.program(program).stores


def build_snapshot(
    generation: int,
    campaigns: Sequence[Campaign],
    stores: Sequence[StoreLocation],
    templates: Mapping[str, Program],
) -> GeoSnapshot:
    """The snapshot of what the store holds; programs without a template are left out (no card
    can be in them)."""
    programs: dict[str, ProgramGeo] = {}
    for name, template in templates.items():
        own = {s.id: s for s in stores if s.program == name}
        mine = tuple(sorted((c for c in campaigns if c.program == name), key=lambda c: c.id))
        # the index keeps its own mapping, and choose_locations wants that very object beside it
        index = NearestIndex(own) if own and mine else None
        programs[name] = ProgramGeo(
            program=name,
            campaigns=mine,
            stores=index.stores if index is not None else own,
            centre=program_centre(own, template.extra.get("centre")),
            index=index,
        )
    return GeoSnapshot(generation=generation, programs=programs)


class GeoService:
    """The geo snapshot of this process (read again whenever the generation moved) and the writes
    derived from it outside the ledger: app pings' areas."""

    def __init__(self, store: Store, templates: Mapping[str, Program], fanout: Fanout) -> None:
        self.store = store
        self.templates = templates
        self.fanout = fanout
        self._snapshot: GeoSnapshot | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> GeoSnapshot:
        """The snapshot at the store's current generation (one read when nothing changed)."""
        generation = await self.store.geo_generation()
        current = self._snapshot
        if current is not None and current.generation == generation:
            return current
        async with self._lock:
            current = self._snapshot
            if current is not None and current.generation >= generation:
                return current
            # The generation is read before the data: data newer than it only makes a write fail
            # its generation check and read again, never pass with stale data.
            campaigns = [campaign_from_dict(c) for c in await self.store.list_campaigns()]
            stores = await self.store.list_store_locations()
            snap = build_snapshot(generation, campaigns, stores, self.templates)
            self._snapshot = snap
            return snap

    def tier_name(self, card: Card) -> str | None:
        template = self.templates.get(card.program)
        tier = template.tier(card.tier) if template is not None else None
        return tier.name(card.locale) if tier is not None else None

    def deriver(self, snapshot: GeoSnapshot, now: float) -> Callable[[Card], Card]:
        """The ledger commit's derive step: each changed card's geo content at `now`."""
        today = utc_today(now)

        def derive(card: Card) -> Card:
            return evaluate(card, snapshot.program(card.program), now, today, self.tier_name(card))

        return derive

    async def evaluated(self, card: Card, now: float) -> tuple[Card, int]:
        """A new card's geo content and the generation it was derived at (service/cards.py)."""
        snap = await self.snapshot()
        return self.deriver(snap, now)(card), snap.generation

    async def set_area(self, card: Card, area: tuple[float, float], now: float | None = None) -> Card | None:
        """Store the member's (coarsened) area on the card and re-derive its pass: a changed pass
        gets a new tag and its push; an unchanged one only the area. The card as stored, or None when
        it no longer exists."""
        return await self._rederive(card, now, area)

    async def refresh(self, card: Card, now: float | None = None) -> Card | None:
        """Re-derive the card's pass from the current snapshot and store it (as set_area does)."""
        return await self._rederive(card, now, None)

    async def _rederive(self, card: Card, now: float | None, area: tuple[float, float] | None) -> Card | None:
        for _ in range(_RETRIES):
            at = time.time() if now is None else now
            snap = await self.snapshot()
            moved = card.with_changes(area=area) if area is not None else card
            derived = self.deriver(snap, at)(moved)
            update = CardUpdate(card.tag, derived, bump=pass_content_changed(card, derived))
            try:
                result = await self.store.update_cards([update], at, self.fanout, geo_generation=snap.generation)
            except GeoChanged:
                continue
            stored = result.cards[0]
            if stored is not None:
                return stored
            latest = await self.store.get_card(card.number)  # changed meanwhile: again on the latest
            if latest is None:
                return None
            card = latest
        raise GeoChanged("campaigns kept changing while a ping was stored")


def offer_voucher(parent: Voucher, card: Card, area: tuple[float, float] | None, now: float) -> Voucher:
    """The voucher of a segment's offer for one card: its id joins the offer's and the card's serial
    (`~` is outside the ledger's ids), its data the offer's with the card's locale and the stores
    nearest the member (passes/apple/voucher_json.py offer_data)."""
    return Voucher(
        id=f"{parent.id}~{card.serial}",
        kind="offer",
        serial=new_serial(),
        auth_token=new_auth_token(),
        program=parent.program,
        card_number=card.number,
        data={**offer_data(parent.data, card, area), "offer": parent.id},
        created_at=int(now),
        modified_at=int(now),
    )


def message_of(job: GeoJob) -> Message:
    payload = job.payload
    when = payload.get("when") or {}
    tiers = when.get("tiers")
    stores = payload.get("stores")
    conditions = Conditions(
        min_balance=when.get("min_balance"),
        tiers=frozenset(tiers) if tiers is not None else None,
        expiring_within_days=when.get("expiring_within_days"),
    )
    segment = Campaign(
        id=str(payload.get("id") or job.id),
        program=job.program,
        name="",
        text=str(payload.get("text") or ""),
        stores=tuple(stores) if stores is not None else None,
        when=conditions,
        starts_at=None,
        ends_at=None,
        max_per_day=1,
        radius_m=0,
    )
    return Message(id=segment.id, program=job.program, text=segment.text, campaign=segment)


@dataclass
class JobStats:
    """What one runner did (tests and benchmarks read it)."""

    batches: int = 0
    evaluated: int = 0
    written: int = 0  # cards whose pass changed (each one pass update enqueued)
    conflicts: int = 0
    jobs_done: int = 0


class GeoRunner:
    """Runs campaign and message jobs, and restarts campaign jobs when time changes what qualifies."""

    def __init__(
        self,
        geo: GeoService,
        *,
        owner: str,
        batch_size: int = 500,
        lease_seconds: float = 60.0,
        tick_seconds: float = 5.0,
        wakeup: asyncio.Event | None = None,
        outbox_wakeup: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
        voucher_fanout: Callable[[str], Sequence[NewEntry]] | None = None,
    ) -> None:
        self.geo = geo
        # a new voucher's outbox work by its serial (push/kinds/google_voucher.py voucher_entries)
        self.voucher_fanout = voucher_fanout
        self.store = geo.store
        self.owner = owner
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.tick_seconds = tick_seconds
        self.wakeup = wakeup or asyncio.Event()
        self.outbox_wakeup = outbox_wakeup
        self.clock = clock
        self.stats = JobStats()
        self._seen_at: float | None = None  # when the schedules were last looked at

    # -- schedules ---------------------------------------------------------------------------
    async def check_schedules(self) -> list[str]:
        """Restart the jobs of programs where a campaign time (or, for expiring-points campaigns, a
        UTC midnight) passed since the last look; the first look restarts every program with
        campaigns. The programs restarted."""
        now = self.clock()
        previous, self._seen_at = self._seen_at, now
        snap = await self.geo.snapshot()
        due: list[str] = []
        for name, program in snap.programs.items():
            if not program.campaigns:
                continue
            if previous is None or any(_passed(c, previous, now) for c in program.campaigns):
                due.append(name)
        for name in due:
            await self.store.restart_campaigns_job(name, now)
        return due

    # -- jobs --------------------------------------------------------------------------------
    async def run_once(self) -> bool:
        """Claim one job and run it to its end (or until its lease is lost); False when none."""
        job = await self.store.claim_geo_job(self.owner, self.lease_seconds, self.clock())
        if job is None:
            return False
        await self._run(job)
        return True

    async def drain(self) -> None:
        """Run jobs until none is left (tests, benchmarks)."""
        while await self.run_once():
            pass

    async def _run(self, job: GeoJob) -> None:
        # A job longer than its lease loses it mid-way: its next step is refused, and the job is
        # claimed again (by this runner or another) and resumed at its cursor.
        current: GeoJob | None = job
        while current is not None and not current.done:
            current = await self._step(current)
        if current is not None:
            self.stats.jobs_done += 1

    async def _step(self, job: GeoJob) -> GeoJob | None:
        """One batch of `job`: the job as it stands after it, or None when the lease is lost."""
        now = self.clock()
        snap = await self.geo.snapshot()
        page = await self.store.cards_page(job.program, job.cursor, self.batch_size)
        program = snap.program(job.program)
        today = utc_today(now)
        if job.kind == OFFER_JOB:
            return await self._offer_step(job, page, program, now, today)
        message = message_of(job) if job.kind == "message" else None
        updates: list[CardUpdate] = []
        for card in page:
            tier_name = self.geo.tier_name(card)
            new = evaluate(card, program, now, today, tier_name)
            if message is not None:
                new = deliver_message(new, message, program, today, tier_name)
            if pass_content_changed(card, new) or new != card:
                updates.append(CardUpdate(card.tag, new, bump=pass_content_changed(card, new)))
        cursor = page[-1].number if page else job.cursor
        done = len(page) < self.batch_size
        step = JobStep(job.id, self.owner, cursor, done)
        try:
            result = await self.store.update_cards(
                updates, now, self.geo.fanout, geo_generation=snap.generation, step=step
            )
        except GeoChanged:
            latest = await self.store.get_geo_job(job.id)  # a campaign job restarted: from its cursor
            return latest
        self.stats.batches += 1
        self.stats.evaluated += len(page)
        written = sum(1 for u, c in zip(updates, result.cards, strict=True) if c is not None and u.bump)
        self.stats.written += written
        if written and self.outbox_wakeup is not None:
            self.outbox_wakeup.set()
        if not result.advanced:
            if any(c is None for c in result.cards):
                self.stats.conflicts += 1
                return await self.store.get_geo_job(job.id)  # the same page again, on the cards' news
            return None
        return GeoJob(job.id, job.program, job.kind, job.payload, cursor, job.created_at, done)

    async def _offer_step(
        self, job: GeoJob, page: Sequence[Card], program: ProgramGeo, now: float, today: _dt.date
    ) -> GeoJob | None:
        """One page of an offer job: a voucher of the offer for each card its segment selects, made
        idempotently (its id is the offer's and the card's), then the cursor; a page done again after a
        lost lease or a crash makes nothing twice."""
        offer_id = str(job.payload.get("offer") or "")
        parent = await self.store.get_voucher("offer", offer_id)
        if parent is None or self.voucher_fanout is None:
            log.warning("offer job %s: no offer or no voucher fanout; finished", job.id)
            cursor, done = job.cursor, True
        else:
            segment = message_of(job)
            made = 0
            for card in page:
                if not in_segment(card, segment, program, today):
                    continue
                child = offer_voucher(parent, card, member_area(card, program), now)
                _, created = await self.store.create_voucher(
                    child, now, fixed_fanout(self.voucher_fanout(child.serial))
                )
                made += created
            if made and self.outbox_wakeup is not None:
                self.outbox_wakeup.set()
            self.stats.written += made
            cursor = page[-1].number if page else job.cursor
            done = len(page) < self.batch_size
        result = await self.store.update_cards([], now, step=JobStep(job.id, self.owner, cursor, done))
        self.stats.batches += 1
        self.stats.evaluated += len(page)
        if not result.advanced:
            return None
        return GeoJob(job.id, job.program, job.kind, job.payload, cursor, job.created_at, done)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Jobs as they come, schedules every tick, until `stop`."""
        while not stop.is_set():
            try:
                if self._seen_at is None or self.clock() - self._seen_at >= self.tick_seconds:
                    await self.check_schedules()
                if await self.run_once():
                    continue
            except Exception:  # a store outage must not end the runner: it tries again next tick
                log.exception("geo runner: step failed")
            self.wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                waiters = [asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waiters, timeout=self.tick_seconds, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()


def _passed(campaign: Campaign, previous: float, now: float) -> bool:
    """Whether one of the campaign's times lies in (previous, now], or a UTC midnight does for a
    campaign on expiring points (its window moves with the day)."""
    for moment in (campaign.starts_at, campaign.ends_at):
        if moment is not None and previous < moment <= now:
            return True
    if campaign.when.expiring_within_days is not None and utc_today(previous) != utc_today(now):
        return True
    return False


def build_runner(
    settings: Settings,
    geo: GeoService,
    owner: str,
    wakeup: asyncio.Event | None = None,
    outbox_wakeup: asyncio.Event | None = None,
) -> GeoRunner:
    """The runner of a process with a push worker, configured from settings.geo."""
    config = settings.geo
    return GeoRunner(
        geo,
        owner=owner,
        batch_size=config.batch_size,
        lease_seconds=config.lease_seconds,
        tick_seconds=config.schedule_tick_seconds,
        wakeup=wakeup,
        outbox_wakeup=outbox_wakeup,
        voucher_fanout=functools.partial(voucher_entries, settings.pass_type_id, settings.google.enabled),
    )
