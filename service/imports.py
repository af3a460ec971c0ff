"""Bulk import of an existing member base (`POST /v1/cards/import`, `python -m cli import-cards`).

Two halves. `parse_csv` is pure: the whole file is checked before anything is stored, and every bad
cell is reported with its line, column and reason, so a business fixes its export once instead of
uploading it once per mistake. `ImportRunner` then creates the cards of a stored job in batches.

Resumability rests on two store guarantees (store/port.py): `create_cards` is idempotent per account
(an account that has a card gets it back, created False) and `advance_import_job` records a result
once per account. A runner killed between a batch's commit and its progress commit therefore redoes
that batch on the next run, finds the cards, records the same numbers, and nothing is created twice.

Who runs a job: the process that stored it, at once. A job whose runner died is found again when
someone looks at it (a `GET /v1/jobs/{id}`, or the same file posted or imported again: the job id is a
digest of the upload) and its `updated_at` is older than the lease, since every batch refreshes it.
A store that can list unfinished jobs (`ImportJobIndex`) also lets an idle runner find them alone.

The welcome bonus is not credited here: points are the ledger's, so the bonus is recorded in the
job's meta and in result.csv for the ledger backend to confirm and post as an ordinary event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import hashlib
import io
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cards.bounds import POINTS_MAX, decimal
from cards.links import sign_link
from cards.model import Card, Member
from cards.numbers import ACCOUNT_PATTERN, new_auth_token, new_card_number, new_serial
from cards.phones import DEFAULT_REGION, PhoneError, normalize_phone
from cards.text import forbidden_class, text_problem
from config.settings import Settings
from passes.programs import Program
from push.kinds.google_object import GoogleObject
from push.messages import entry
from service.cards import new_app_token
from service.geo import GeoService
from store.port import CardConflict, ImportJob, Store

if TYPE_CHECKING:  # service/wiring.py builds the core; nothing of it is needed at import time
    from service.wiring import Core

log = logging.getLogger(__name__)

# POST /v1/cards's rules (web/validation.py ACCOUNT_RE, EMAIL_RE; a test holds them equal), written here
# because the worker and the CLI load this module and they never load the web package
ACCOUNT_RE = re.compile(f"^{ACCOUNT_PATTERN}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^[^@\s{forbidden_class()}]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")

COLUMNS = ("account", "name", "phone", "email", "balance", "tier", "locale")
REQUIRED = ("account", "name")
MAX_ROWS = 100_000
# 100 000 rows of seven columns with long names and e-mails stay far below this; the JSON routes keep
# their 1 MiB (web/body.py names this route's exception)
MAX_BYTES = 32 * 1024 * 1024
# every bad cell of a hopeless file (another system's export, say) would be an answer of many MB
MAX_ERRORS = 10_000
NAME_MAX = 100
EMAIL_MAX = 254
BATCH = 1000
# every batch (or validation page) refreshes updated_at well within this; a job quiet for longer
# has lost its runner
LEASE_SECONDS = 10.0
_DRAWS = 8  # fresh numbers for a batch whose random number or serial collided

STATES = ("validating", "running", "done", "failed")
UNFINISHED = ("validating", "running")


def phone_region(program: Program) -> str:
    """Where a phone without a country code is read: the template's `region` (as the join page), else RU."""
    region = program.extra.get("region")
    return region.upper() if isinstance(region, str) and len(region) == 2 else DEFAULT_REGION


@dataclass
class Parsed:
    """The rows of a file as they will be stored (normalized, JSON-able), or why it is refused."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bad_cells: int = 0  # errors found, beyond MAX_ERRORS too

    def fail(self, line: int, column: str | None, reason: str) -> None:
        self.bad_cells += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "column": column, "reason": reason})


class _Row:
    """One CSV row checked cell by cell: each problem is its own error, with its column."""

    def __init__(self, parsed: Parsed, line: int, values: Mapping[str, str]) -> None:
        self.parsed = parsed
        self.line = line
        self.values = values
        self.ok = True

    def fail(self, column: str, reason: str) -> None:
        self.ok = False
        self.parsed.fail(self.line, column, reason)

    def text(self, column: str, max_len: int) -> str | None:
        # reasons never quote the value: names, phones and e-mails are personal data, and the
        # answer travels back through proxies and logs
        value = self.values.get(column, "").strip()
        if not value:
            if column in REQUIRED:
                self.fail(column, "required")
            return None
        if len(value) > max_len:
            self.fail(column, f"at most {max_len} characters")
            return None
        problem = text_problem(value)
        if problem is not None:
            self.fail(column, problem)
            return None
        return value


def _check_row(parsed: Parsed, program: Program, region: str, line: int, values: Mapping[str, str]) -> None:
    row = _Row(parsed, line, values)
    account = row.text("account", 128)
    if account is not None and not ACCOUNT_RE.fullmatch(account):
        row.fail("account", "1 to 128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit")
        account = None
    name = row.text("name", NAME_MAX)
    phone = row.text("phone", 64)
    if phone is not None:
        try:
            phone = normalize_phone(phone, region)
        except PhoneError as exc:
            row.fail("phone", str(exc))
    email = row.text("email", EMAIL_MAX)
    if email is not None and not EMAIL_RE.fullmatch(email):
        row.fail("email", "not an e-mail address")
    balance_text = values.get("balance", "").strip()
    balance = 0
    if balance_text:
        number = decimal(balance_text, 13)
        if number is None or number > POINTS_MAX:
            row.fail("balance", f"a whole number from 0 to {POINTS_MAX}")
        else:
            balance = number
    tier = values.get("tier", "").strip() or None
    if tier is not None and program.tier(tier) is None:
        row.fail("tier", f"not a tier of {program.program}: {', '.join(program.tier_keys)}")
    locale = values.get("locale", "").strip() or None
    if locale is not None and locale not in program.locales:
        row.fail("locale", f"not a locale of {program.program}: {', '.join(program.locales)}")
    if not row.ok:
        return
    parsed.rows.append(
        {
            "line": line,
            "account": account,
            "name": name,
            "phone": phone,
            "email": email,
            "balance": balance,
            "tier": tier or program.tier_for_balance(balance).key,
            "locale": locale or program.default_locale,
        }
    )


def parse_csv(raw: bytes, program: Program, *, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES) -> Parsed:
    """The file's rows, or every problem in it (line 0: the whole file). UTF-8 (a BOM is allowed), a header
    row naming the columns (`account` and `name` required, the others optional, any order), `;` or `,`."""
    parsed = Parsed()
    if len(raw) > max_bytes:
        parsed.fail(0, None, f"the file is over {max_bytes} bytes")
        return parsed
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.fail(0, None, f"not UTF-8: {exc.reason} at byte {exc.start}")
        return parsed
    first = content.split("\n", 1)[0]
    if not first.strip():
        parsed.fail(1, None, "no header row")
        return parsed
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True)
    region = phone_region(program)
    seen: dict[str, int] = {}
    count = 0
    try:
        header = [name.strip().lower() for name in next(reader)]
        missing = [name for name in REQUIRED if name not in header]
        unknown = [name for name in header if name not in COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            for name in missing:
                parsed.fail(1, name, "missing column")
            for name in unknown:
                parsed.fail(1, name or None, f"unknown column (the columns are {', '.join(COLUMNS)})")
            if len(set(header)) != len(header):
                parsed.fail(1, None, "a column twice")
            return parsed
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            count += 1
            if count > max_rows:
                parsed.fail(line, None, f"more than {max_rows} rows")
                break
            if len(values) != len(header):
                parsed.fail(line, None, f"{len(values)} values, the header has {len(header)} columns")
                continue
            cells = dict(zip(header, values, strict=True))
            _check_row(parsed, program, region, line, cells)
            account = cells.get("account", "").strip()
            if account:
                first_line = seen.setdefault(account, line)
                if first_line != line:
                    parsed.fail(line, "account", f"twice in the file (first on line {first_line})")
    except csv.Error as exc:
        parsed.fail(reader.line_num, None, f"malformed CSV: {exc}")
        return parsed
    if count == 0 and not parsed.errors:
        parsed.fail(1, None, "no rows after the header")
    return parsed


def job_id_for(program: str, welcome_bonus: int, raw: bytes) -> str:
    """The same upload is the same job: posting a file again resumes its job instead of starting another."""
    digest = hashlib.sha256(f"{program}\n{welcome_bonus}\n".encode() + raw).hexdigest()
    return "imp_" + digest[:28]


def new_job(job_id: str, program: str, rows: int, welcome_bonus: int, now: float, source: str) -> ImportJob:
    meta: dict[str, Any] = {"welcome_bonus": welcome_bonus, "source": source}
    return ImportJob(job_id, program, "validating", rows, 0, now, now, meta=meta)


def card_for(row: Mapping[str, Any], program: Program, now: float) -> Card:
    """A new card for a stored row, built as CardIssuer.issue builds one (service/cards.py)."""
    return Card(
        number=new_card_number(program.card_prefix),
        program=program.program,
        account=row["account"],
        serial=new_serial(),
        auth_token=new_auth_token(),
        app_token=new_app_token(),
        member=Member(name=row.get("name") or "", phone=row.get("phone"), email=row.get("email")),
        locale=row["locale"],
        balance=int(row["balance"]),
        tier=row["tier"],
        created_at=int(now),
        modified_at=int(now),
    )


@dataclass
class Live:
    """Progress of a job this process is running, for a rate that ignores time the job spent waiting."""

    started_at: float
    done_at_start: int
    done: int = 0
    at: float = 0.0


def progress(job: ImportJob, now: float, live: Live | None = None) -> dict[str, Any]:
    """The job as GET /v1/jobs/{id} shows it. `rate` is rows per second (null before the first batch),
    `eta_s` the seconds left at that rate (0 when finished, null when unknown)."""
    rate: float | None = None
    if live is not None and live.done > live.done_at_start and live.at > live.started_at:
        rate = (live.done - live.done_at_start) / (live.at - live.started_at)
    elif job.done > 0 and job.updated_at > job.created_at:
        rate = job.done / (job.updated_at - job.created_at)
    eta: float | None
    if job.state in ("done", "failed"):
        eta = 0.0
    elif rate:
        eta = round((job.rows - job.done) / rate, 1)
    else:
        eta = None
    return {
        "id": job.id,
        "program": job.program,
        "state": job.state,
        "rows": job.rows,
        "done": job.done,
        "errors": job.errors,
        "rate": round(rate, 1) if rate is not None else None,
        "eta_s": eta,
        "welcome_bonus": int(job.meta.get("welcome_bonus") or 0),
    }


def page_link(settings: Settings, serial: str, now: float) -> str:
    """The card page link, as web/cards.py links_for signs it ("page"), for result.csv."""
    expires = int(now) + settings.link_ttl_seconds
    return f"{settings.public_url}/c/{serial}?{sign_link(settings.link_secret, 'page', serial, expires)}"


RESULT_COLUMNS = ("account", "card", "link")


async def result_lines(store: Store, job: ImportJob, settings: Settings, now: float) -> AsyncIterator[str]:
    """result.csv, a chunk of lines at a time: `account,card,link` (and `welcome_bonus` when the job has
    one, for the ledger to confirm), in the file's row order."""
    bonus = int(job.meta.get("welcome_bonus") or 0)
    columns = (*RESULT_COLUMNS, "welcome_bonus") if bonus else RESULT_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    start = 0
    while True:
        results = await store.import_results(job.id, start, BATCH)
        for account, number in results:
            card = await store.get_card(number)
            link = page_link(settings, card.serial, now) if card is not None else ""
            writer.writerow((account, number, link, bonus) if bonus else (account, number, link))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(results) < BATCH:
            return
        start += BATCH


@runtime_checkable
class ImportJobIndex(Protocol):
    """What a store offers when it can list jobs: lets an idle runner find a job nobody asks about."""

    async def unfinished_import_jobs(self, limit: int) -> list[ImportJob]: ...


@dataclass
class ImportStats:
    """What one runner did (tests and benchmarks read it)."""

    batches: int = 0
    created: int = 0
    existing: int = 0
    collisions: int = 0
    jobs_done: int = 0


Progress = Callable[[ImportJob], None]


class ImportRunner:
    """Validates stored jobs against the store and creates their cards in batches, one job at a time."""

    def __init__(
        self,
        store: Store,
        programs: Mapping[str, Program],
        *,
        geo: GeoService | None = None,
        google: bool = False,
        outbox_wakeup: asyncio.Event | None = None,
        batch_size: int = BATCH,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.programs = programs
        self.geo = geo
        self.google = google
        self.outbox_wakeup = outbox_wakeup
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.stats = ImportStats()
        self.live: dict[str, Live] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._wakeup = asyncio.Event()
        # set by run_forever's stop: a job stops between batches and is resumed by the next runner
        self._stop: asyncio.Event | None = None
        self._mine: set[str] = set()  # stored by this process: run at once, whatever the lease says

    # -- what to run -------------------------------------------------------------------------
    def submit(self, job_id: str, *, stored_here: bool = False) -> None:
        """Run the job when this runner gets to it (a job stored elsewhere only once its lease is over)."""
        if stored_here:
            self._mine.add(job_id)
        if job_id not in self._queue and job_id not in self.live:
            self._queue.append(job_id)
            self._wakeup.set()

    def abandoned(self, job: ImportJob) -> bool:
        """Unfinished, not run here, and quiet for longer than a batch ever takes: its runner is gone."""
        return (
            job.state in UNFINISHED and job.id not in self.live and self.clock() - job.updated_at > self.lease_seconds
        )

    def _claimable(self, job: ImportJob) -> bool:
        if job.state not in UNFINISHED or job.id in self.live:
            return False
        return job.id in self._mine or self.clock() - job.updated_at > self.lease_seconds

    # -- running -----------------------------------------------------------------------------
    async def run_job(
        self, job_id: str, on_progress: Progress | None = None, *, here: bool = False
    ) -> ImportJob | None:
        """Run the job to its end from where it stands; the job as it ends (None when unknown). A job
        another runner holds (fresh updated_at) is left alone and returned as it is, unless `here`
        (the caller knows it stored the job, or saw it abandoned)."""
        job = await self.store.get_import_job(job_id)
        if job is None or job.id in self.live or job.state not in UNFINISHED:
            return job
        if not here and not self._claimable(job):
            return job
        self._mine.discard(job_id)
        now = self.clock()
        live = Live(started_at=now, done_at_start=job.done, done=job.done, at=now)
        self.live[job_id] = live
        try:
            log.info("import job %s: %d rows in %s, %s from row %d", job.id, job.rows, job.program, job.state, job.done)
            if job.state == "validating":
                job = await self._validate(job, on_progress)
            if job.state == "running":
                job = await self._create(job, live, on_progress)
            if job.state in ("done", "failed"):
                self.stats.jobs_done += 1
                log.info("import job %s: %s, %d of %d rows", job.id, job.state, job.done, job.rows)
            return job
        finally:
            self.live.pop(job_id, None)

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _refreshed(self, job_id: str) -> ImportJob:
        job = await self.store.get_import_job(job_id)
        if job is None:
            raise LookupError(f"import job {job_id} vanished")
        return job

    async def _validate(self, job: ImportJob, on_progress: Progress | None) -> ImportJob:
        """What a file cannot show: an account that already has a card in another program. Found
        before the first card is made, so a refused job stored no card at all."""
        program = self.programs.get(job.program)
        if program is None:
            await self._finish(job, "failed", [{"line": 0, "column": None, "reason": "the program is gone"}])
            return await self._refreshed(job.id)
        errors: list[dict[str, Any]] = []
        start = 0
        while start < job.rows:
            if self._stopping():
                return job
            rows = await self.store.import_rows(job.id, start, self.batch_size)
            if not rows:
                break
            for row in rows:
                existing = await self.store.get_card_by_account(row["account"])
                if existing is not None and existing.program != job.program:
                    if len(errors) < MAX_ERRORS:
                        errors.append(
                            {
                                "line": row.get("line", 0),
                                "column": "account",
                                "reason": "this account already has a card in another program",
                            }
                        )
            start += len(rows)
            # the lease: a long validation must not look abandoned
            await self.store.advance_import_job(job.id, 0, (), self.clock())
            if on_progress is not None:
                on_progress(job)
        await self._finish(job, "failed" if errors else "running", errors)
        return await self._refreshed(job.id)

    async def _finish(self, job: ImportJob, state: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        await self.store.advance_import_job(job.id, job.done, (), self.clock(), state=state, errors=errors)

    async def _create(self, job: ImportJob, live: Live, on_progress: Progress | None) -> ImportJob:
        program = self.programs.get(job.program)
        if program is None:
            await self._finish(job, "failed", [{"line": 0, "column": None, "reason": "the program is gone"}])
            return await self._refreshed(job.id)
        done = job.done
        while done < job.rows:
            if self._stopping():
                return job
            rows = await self.store.import_rows(job.id, done, self.batch_size)
            if not rows:
                break
            stored = await self._batch(job, program, rows)
            if stored is None:
                return await self._refreshed(job.id)
            done += len(rows)
            now = self.clock()
            last = done >= job.rows
            await self.store.advance_import_job(
                job.id, done, [(c.account, c.number) for c in stored], now, state="done" if last else None
            )
            live.done, live.at = done, now
            self.stats.batches += 1
            if on_progress is not None:
                on_progress(ImportJob(job.id, job.program, job.state, job.rows, done, job.created_at, now))
            # the batch's CPU work (numbers, geo) ran on the event loop: let requests in between batches
            await asyncio.sleep(0)
        if done < job.rows:
            reason = f"rows from {done} are missing from the store"
            await self._finish(job, "failed", [{"line": 0, "column": None, "reason": reason}])
        elif job.done >= job.rows:
            await self._finish(job, "done")  # nothing was left when it was claimed: only the state was
        return await self._refreshed(job.id)

    async def _batch(self, job: ImportJob, program: Program, rows: Sequence[Mapping[str, Any]]) -> list[Card] | None:
        """The cards of the rows, created or found (row order); None when the job had to fail."""
        for _ in range(_DRAWS):
            now = self.clock()
            cards = [card_for(row, program, now) for row in rows]
            generation: int | None = None
            if self.geo is not None:
                snapshot = await self.geo.snapshot()
                derive = self.geo.deriver(snapshot, now)
                cards = [derive(card) for card in cards]
                generation = snapshot.generation
            try:
                result = await self.store.create_cards(cards)
            except CardConflict:
                # a random number or serial collided (draw again), or an account got a card in
                # another program since validation (found below)
                self.stats.collisions += 1
                errors = await self._other_program(job, rows)
                if errors:
                    await self._finish(job, "failed", errors)
                    return None
                continue
            created = [card for card, new in result if new]
            self.stats.created += len(created)
            self.stats.existing += len(result) - len(created)
            if created and self.geo is not None and generation != await self.store.geo_generation():
                # campaigns changed between the derivation and the commit: derived again, as CardIssuer does
                for card in created:
                    await self.geo.refresh(card, now)
            if self.google:
                # for existing cards too: coalesced when one waits, and it repairs a crash mid-batch
                await self.store.enqueue([entry(GoogleObject(card.serial)) for card, _ in result], now)
                if self.outbox_wakeup is not None:
                    self.outbox_wakeup.set()
            return [card for card, _ in result]
        await self._finish(job, "failed", [{"line": 0, "column": None, "reason": "could not allocate card numbers"}])
        return None

    async def _other_program(self, job: ImportJob, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        errors = []
        for row in rows:
            existing = await self.store.get_card_by_account(row["account"])
            if existing is not None and existing.program != job.program:
                errors.append(
                    {
                        "line": row.get("line", 0),
                        "column": "account",
                        "reason": "this account already has a card in another program",
                    }
                )
        return errors

    async def run_once(self) -> bool:
        """Run one submitted job, or one an index lists as abandoned; False when there was none."""
        if self._queue:
            await self.run_job(self._queue.popleft())
            return True
        if isinstance(self.store, ImportJobIndex):
            for job in await self.store.unfinished_import_jobs(10):
                if self._claimable(job):
                    await self.run_job(job.id)
                    return True
        return False

    async def run_forever(self, stop: asyncio.Event, tick_seconds: float = 5.0) -> None:
        """Jobs as they are submitted (and, on a store with an index, as they are abandoned) until `stop`."""
        self._stop = stop
        while not stop.is_set():
            try:
                if await self.run_once():
                    continue
            except Exception:  # a store outage must not end the runner: the job waits for the next look
                log.exception("import runner: a job step failed")
            self._wakeup.clear()
            if self._queue:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waiters, timeout=tick_seconds, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()


def runner_for(core: Core) -> ImportRunner:
    """The import runner of a process built on the composition root (web, CLI), wired as its card issuer is."""
    return ImportRunner(
        core.store,
        core.programs,
        geo=core.geo,
        google=core.settings.google.enabled,
        outbox_wakeup=core.outbox_wakeup,
    )
