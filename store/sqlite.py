"""The SQLite adapter: the embedded default store.

All database work runs on one dedicated thread, so the event loop never blocks on disk and
this process's writes are serialized without locks of our own. Every write runs in a
`BEGIN IMMEDIATE` transaction, which also serializes against other processes sharing the file
(a web and a worker process), with `busy_timeout` to wait for the lock instead of failing.

Durability: WAL. A write whose success is promised to a caller (a card issued, ledger events
acknowledged with 202, a registration, an enqueued entry) commits with `synchronous=FULL`: the
WAL is fsynced before COMMIT returns, so it survives a power loss or kernel crash, not only a
crash of this process. The worker's bookkeeping (claims, acknowledgements, retries, the push
journal) commits with `synchronous=NORMAL`: losing the last of those to a power loss only
makes a push go out again, which the pushed tags dedupe. `synchronous="normal"` (URL option
`?synchronous=normal`) makes every commit NORMAL, for speed over power-loss durability.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import orjson

from cards.model import Card, Member, next_modified_at
from geo.boxes import search_boxes
from geo.distance import haversine_m
from geo.locations import StoreLocation
from ledger.decide import LedgerEvent
from ledger.plan import EventCheck, plan_batch
from store.encoding import compact_json
from store.port import (
    ALERTS_KEPT,
    DEAD_LETTERS_KEPT,
    DEFAULT_CLIENT,
    FACT_INSTALLS,
    FACT_PUSHES,
    GOOGLE_EVENTS_KEPT,
    AlertRecord,
    AppToken,
    CardConflict,
    CardUpdate,
    Consent,
    DeadLetter,
    Derive,
    DeviceTarget,
    Erasure,
    FactCount,
    Fanout,
    GeoChanged,
    GeoJob,
    GoogleState,
    ImportJob,
    JobStep,
    LedgerResult,
    NewEntry,
    OutboxEntry,
    PassKey,
    PassTargets,
    PushMark,
    Registration,
    Store,
    StoreError,
    UpdateResult,
    Voucher,
    check_near_query,
    check_store_locations,
    fact_day,
    nearest_first,
    no_fanout,
)
from store.schema.sqlite import MIGRATIONS

T = TypeVar("T")

log = logging.getLogger(__name__)

_MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING, ON CONFLICT DO UPDATE without a target

# Kept at the maximum: a slow worker finishing an older push must not move it back.
_MARK_PUSHED = """
    INSERT INTO pushed_tags (device_id, pass_type_id, serial, tag) VALUES (?, ?, ?, ?)
    ON CONFLICT DO UPDATE SET tag = MAX(tag, excluded.tag)
"""

# Keys per pass_targets statement: 2 parameters each, under SQLite's historic limit of 999.
_TARGETS_CHUNK = 400

# A NULL coalesce_key never conflicts (UNIQUE allows many), so only coalescing entries merge.
_OUTBOX_ADD = """
    INSERT INTO outbox (kind, payload, coalesce_key, due_at, attempts, enqueued_at)
    VALUES (?, ?, ?, ?, 0, ?)
    ON CONFLICT (coalesce_key) DO NOTHING
"""


_dumps = compact_json


_ORJSON_SAME = frozenset({str, int, type(None)})  # value types orjson writes exactly as _dumps does


_LOCATION_COLUMNS = "l.id, l.program, l.name, l.lat, l.lon, l.address, l.timezone"

_JOB_COLUMNS = "id, program, kind, payload, cursor, created_at, done"

# Restart keeps the lease: its holder's next step fails on the generation and it re-reads.
_RESTART_CAMPAIGNS_JOB = """
    INSERT INTO geo_jobs (id, program, kind, payload, cursor, created_at, done)
    VALUES ('campaigns:' || ?1, ?1, 'campaigns', '{}', '', ?2, 0)
    ON CONFLICT (id) DO UPDATE SET cursor = '', done = 0
"""


# Rows of an import job per stored chunk: a page of import_rows reads one or two chunks.
_IMPORT_CHUNK = 500

_CARD_INSERT = "INSERT INTO cards (number, serial, account, program, version, tag, data) VALUES (?, ?, ?, ?, ?, ?, ?)"

# The first card of the program with the phone keeps it.
_PHONE_ADD = "INSERT INTO phones (program, phone, number) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"

_IMPORT_JOB_COLUMNS = "id, program, state, rows, done, created_at, updated_at, meta"

# A fact counted again adds to its day's count; the counts of one commit are summed first.
_FACT_ADD = """
    INSERT INTO facts (family, day, dims, count) VALUES (?, ?, ?, ?)
    ON CONFLICT DO UPDATE SET count = count + excluded.count
"""

# The personal data an import row may hold (service/imports.py COLUMNS), removed by erase_member.
_IMPORT_PERSONAL = ("name", "phone", "email")


def _phone(card: Card) -> str | None:
    """The phone the index keeps for the card: its member's, when it has one."""
    phone = card.member.phone
    return phone if isinstance(phone, str) and phone else None


def _card_row(card: Card) -> tuple[str, str, str, str, int, int, str]:
    return (card.number, card.serial, card.account, card.program, card.version, card.tag, _dumps(card.to_dict()))


def _voucher_from_row(tag: int, data: str) -> Voucher:
    values = json.loads(data)
    values["tag"] = tag
    return Voucher(**values)


def _dumps_records(records: list[dict[str, Any]]) -> str:
    # The journal gets a record per delivered push, encoded as one JSON array per batch:
    # orjson writes the same compact JSON several times faster for the plain values these
    # records hold (a finite float `at`, strings, ints, None); anything else (NaN, nested
    # values, integers beyond 64 bits, ...) goes to _dumps.
    if all(
        type(at := record.get("at")) is float
        and math.isfinite(at)
        and all(type(v) in _ORJSON_SAME for k, v in record.items() if k != "at")
        for record in records
    ):
        try:
            return orjson.dumps(records).decode()
        except TypeError:
            pass
    return _dumps(records)


def _loads_payload(data: str) -> Any:
    # orjson decodes a claimed payload several times faster; json for what it refuses
    # (integers beyond 64 bits), so every stored payload still reads back.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _card_from_row(data: str) -> Card:
    return Card.from_dict(json.loads(data))


def _entry_row(entry: NewEntry, now: float) -> tuple[str, str, str | None, float, float]:
    return (entry.kind, _dumps(dict(entry.fields)), entry.coalesce_key, now, now)


def _job_from_row(row: tuple[Any, ...]) -> GeoJob:
    job_id, program, kind, payload, cursor, created_at, done = row
    return GeoJob(job_id, program, kind, json.loads(payload), cursor, created_at, bool(done))


def _campaign_key(campaign: Mapping[str, Any]) -> tuple[str, str]:
    campaign_id, program = campaign.get("id"), campaign.get("program")
    if not isinstance(campaign_id, str) or not campaign_id or not isinstance(program, str) or not program:
        raise StoreError("a campaign needs a non-empty string id and program")
    return campaign_id, program


def _fields(data: str) -> dict[str, str]:
    fields = _loads_payload(data)
    return fields if isinstance(fields, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _count_facts(conn: sqlite3.Connection, family: str, dims: Iterable[Sequence[Any]], now: float) -> None:
    """In the transaction of what they count: each dims tuple once more on the day of `now`."""
    counts = collections.Counter(_dumps([_text(part) for part in parts]) for parts in dims)
    day = fact_day(now)
    conn.executemany(_FACT_ADD, [(family, day, key, count) for key, count in counts.items()])


def _count_removals(conn: sqlite3.Connection, removed: Iterable[tuple[str, str, str]], now: float) -> None:
    """The remove facts of registrations deleted: their stored (program, client, tier)."""
    _count_facts(conn, FACT_INSTALLS, [(program, client, tier, "remove") for program, client, tier in removed], now)


def _count_pushes(conn: sqlite3.Connection, records: Iterable[Mapping[str, Any]], now: float) -> None:
    _count_facts(conn, FACT_PUSHES, [(record.get("channel", ""), record.get("outcome", "")) for record in records], now)


class SqliteStore(Store):
    """`SqliteStore(path)`: a store in one SQLite file (its parent directory is created)."""

    def __init__(self, path: str | PathLike[str], *, busy_timeout_ms: int = 10_000, synchronous: str = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise StoreError("synchronous must be full or normal")
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._durable_commits = synchronous == "full"
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing ----------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(self._run_read, fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """A write whose loss in a power cut costs nothing the user sees (see module doc)."""
        return await self._call(self._run_write, fn, *args)

    async def _durable_write(self, fn: Callable[..., T], *args: Any) -> T:
        """A write promised to a caller: fsynced before it returns (see module doc)."""
        if not self._durable_commits:
            return await self._write(fn, *args)
        return await self._call(self._run_durable_write, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    def _run_read(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._connection(), *args)

    def _run_write(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _run_durable_write(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        conn.execute("PRAGMA synchronous = FULL")  # only outside a transaction, hence here
        try:
            return self._run_write(fn, *args)
        finally:
            conn.execute("PRAGMA synchronous = NORMAL")

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _open_sync(self) -> None:
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old; 3.35 or newer is needed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module never does.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # the default for bookkeeping; see module doc
        self._conn = conn
        self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(f"database schema version {version} is newer than this code ({len(MIGRATIONS)})")
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._call(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def ping(self) -> bool:
        try:
            return await self._read(lambda conn: conn.execute("SELECT 1").fetchone()[0] == 1)
        except (StoreError, sqlite3.Error):
            return False

    async def schema_version(self) -> int:
        """The applied migration count (PRAGMA user_version)."""
        return await self._read(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])

    # -- cards -------------------------------------------------------------------------------
    @staticmethod
    def _next_tag(conn: sqlite3.Connection, count: int = 1) -> int:
        """Advance the store counter by `count`; returns its new value (the last tag handed out)."""
        return conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'tag' RETURNING value", (count,)
        ).fetchone()[0]

    async def create_card(self, card: Card, *, unique_phone: bool = False) -> tuple[Card, bool]:
        return await self._durable_write(self._create_card, card, unique_phone)

    def _create_card(self, conn: sqlite3.Connection, card: Card, unique_phone: bool = False) -> tuple[Card, bool]:
        row = conn.execute("SELECT data FROM cards WHERE account = ?", (card.account,)).fetchone()
        if row is not None:
            existing = _card_from_row(row[0])
            if existing.program != card.program:
                raise CardConflict("the account already has a card in another program")
            return existing, False
        phone = _phone(card)
        if unique_phone and phone is not None:
            # In the write transaction: no other join can index the phone before this one commits.
            holder = self._card_by_phone(conn, card.program, phone)
            if holder is not None:
                return holder, False
        taken = conn.execute(
            "SELECT 1 FROM cards WHERE number = ? OR serial = ? UNION ALL SELECT 1 FROM vouchers WHERE serial = ?",
            (card.number, card.serial, card.serial),
        ).fetchone()
        if taken is not None:
            raise CardConflict("card number or serial is taken")
        stored = card.with_changes(tag=self._next_tag(conn))
        conn.execute(_CARD_INSERT, _card_row(stored))
        if phone is not None:
            conn.execute(_PHONE_ADD, (stored.program, phone, stored.number))
        return stored, True

    async def create_cards(self, cards: Sequence[Card]) -> list[tuple[Card, bool]]:
        batch = list(cards)
        return await self._durable_write(self._create_cards, batch) if batch else []

    def _create_cards(self, conn: sqlite3.Connection, cards: list[Card]) -> list[tuple[Card, bool]]:
        by_account: dict[str, Card] = {}
        for (data,) in conn.execute(
            "SELECT data FROM cards WHERE account IN (SELECT value FROM json_each(?))",
            (_dumps(sorted({card.account for card in cards})),),
        ):
            found = _card_from_row(data)
            by_account[found.account] = found
        new: list[Card] = []
        numbers: set[str] = set()
        serials: set[str] = set()
        for card in cards:
            existing = by_account.get(card.account)
            if existing is not None:
                if existing.program != card.program:
                    raise CardConflict(f"account {card.account!r} already has a card in another program")
                continue
            if card.number in numbers or card.serial in serials:
                raise CardConflict(f"card number or serial of {card.number!r} is taken in the batch")
            numbers.add(card.number)
            serials.add(card.serial)
            by_account[card.account] = card
            new.append(card)
        if new:
            numbers_json, serials_json = _dumps(sorted(numbers)), _dumps(sorted(serials))
            for query, values in (
                ("SELECT 1 FROM cards WHERE number IN (SELECT value FROM json_each(?)) LIMIT 1", numbers_json),
                ("SELECT 1 FROM cards WHERE serial IN (SELECT value FROM json_each(?)) LIMIT 1", serials_json),
                ("SELECT 1 FROM vouchers WHERE serial IN (SELECT value FROM json_each(?)) LIMIT 1", serials_json),
            ):
                if conn.execute(query, (values,)).fetchone() is not None:
                    raise CardConflict("a card number or serial of the batch is taken")
            first = self._next_tag(conn, len(new)) - len(new) + 1
            new = [card.with_changes(tag=first + index) for index, card in enumerate(new)]
            conn.executemany(_CARD_INSERT, [_card_row(card) for card in new])
            conn.executemany(
                _PHONE_ADD,
                [(card.program, phone, card.number) for card in new if (phone := _phone(card)) is not None],
            )
            for card in new:
                by_account[card.account] = card
        # The first of an account's cards in the batch is the one created; later ones find it.
        unreported = {card.number for card in new}
        results: list[tuple[Card, bool]] = []
        for card in cards:
            stored = by_account[card.account]
            created = stored.number in unreported
            unreported.discard(stored.number)
            results.append((stored, created))
        return results

    async def card_by_phone(self, program: str, phone: str) -> Card | None:
        return await self._read(self._card_by_phone, program, phone)

    @staticmethod
    def _card_by_phone(conn: sqlite3.Connection, program: str, phone: str) -> Card | None:
        row = conn.execute(
            "SELECT c.data FROM phones p JOIN cards c ON c.number = p.number WHERE p.program = ? AND p.phone = ?",
            (program, phone),
        ).fetchone()
        return _card_from_row(row[0]) if row is not None else None

    async def add_consents(self, card_number: str, consents: Sequence[Consent]) -> None:
        rows = [(card_number, _dumps(dataclasses.asdict(consent))) for consent in consents]
        if rows:
            await self._durable_write(
                lambda conn: conn.executemany("INSERT INTO consents (card, data) VALUES (?, ?)", rows)
            )

    async def consents(self, card_number: str) -> list[Consent]:
        rows = await self._read(
            lambda conn: conn.execute("SELECT data FROM consents WHERE card = ? ORDER BY id", (card_number,)).fetchall()
        )
        return [Consent(**json.loads(row[0])) for row in rows]

    async def get_card(self, number: str) -> Card | None:
        return await self._read(self._card_where, "number", number)

    async def get_card_by_serial(self, serial: str) -> Card | None:
        return await self._read(self._card_where, "serial", serial)

    async def get_card_by_account(self, account: str) -> Card | None:
        return await self._read(self._card_where, "account", account)

    @staticmethod
    def _card_where(conn: sqlite3.Connection, column: str, value: str) -> Card | None:
        # `column` is one of our own literals above, never input.
        row = conn.execute(f"SELECT data FROM cards WHERE {column} = ?", (value,)).fetchone()
        return _card_from_row(row[0]) if row is not None else None

    # -- ledger ------------------------------------------------------------------------------
    async def apply_ledger_events(
        self,
        events: list[LedgerEvent],
        now: float,
        fanout: Fanout = no_fanout,
        check: EventCheck | None = None,
        *,
        derive: Derive | None = None,
        geo_generation: int | None = None,
    ) -> LedgerResult:
        if not events:
            return LedgerResult(outcomes=[])
        # One hop to the thread and one transaction for the whole batch: per-event round
        # trips would cost more than the work itself.
        return await self._durable_write(self._apply_ledger_events, events, now, fanout, check, derive, geo_generation)

    def _apply_ledger_events(
        self,
        conn: sqlite3.Connection,
        events: list[LedgerEvent],
        now: float,
        fanout: Fanout,
        check: EventCheck | None,
        derive: Derive | None,
        geo_generation: int | None,
    ) -> LedgerResult:
        if geo_generation is not None:
            self._check_geo_generation(conn, geo_generation)
        numbers = {e.card_number for e in events if e.card_number is not None}
        accounts = {e.account for e in events if e.card_number is None and e.account is not None}
        number_by_account: dict[str, str] = {}
        if accounts:
            number_by_account = dict(
                conn.execute(
                    "SELECT account, number FROM cards WHERE account IN (SELECT value FROM json_each(?))",
                    (_dumps(sorted(accounts)),),
                ).fetchall()
            )
            numbers.update(number_by_account.values())
        cards = {}
        if numbers:
            for (data,) in conn.execute(
                "SELECT data FROM cards WHERE number IN (SELECT value FROM json_each(?))", (_dumps(sorted(numbers)),)
            ):
                card = _card_from_row(data)
                cards[card.number] = card
        seen = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM ledger_event_ids WHERE id IN (SELECT value FROM json_each(?))",
                (_dumps(sorted({e.id for e in events})),),
            )
        }

        # Tags come from the counter; we hold the write lock, so reading it once and writing
        # back the last value handed out is the same as incrementing per event.
        counter = [conn.execute("SELECT value FROM counters WHERE name = 'tag'").fetchone()[0]]

        def next_tag() -> int:
            counter[0] += 1
            return counter[0]

        plan = plan_batch(events, cards, number_by_account, seen, next_tag, now, check, derive)
        changed = [change.card for change in plan.changes.values()]
        if not changed:
            return LedgerResult(outcomes=plan.outcomes, errors=plan.errors)

        conn.execute("UPDATE counters SET value = ? WHERE name = 'tag'", (counter[0],))
        conn.executemany(
            "UPDATE cards SET version = ?, tag = ?, data = ? WHERE number = ?",
            [(c.version, c.tag, _dumps(c.to_dict()), c.number) for c in changed],
        )
        # With the acceptance time: forget_event_ids drops the oldest first.
        conn.executemany(
            "INSERT INTO ledger_event_ids (id, accepted_at) VALUES (?, ?)",
            [(event_id, now) for change in plan.changes.values() for event_id in change.event_ids],
        )
        conn.executemany(_OUTBOX_ADD, [_entry_row(entry, now) for card in changed for entry in fanout(card)])
        return LedgerResult(outcomes=plan.outcomes, changed=changed, errors=plan.errors)

    # -- PassKit registrations -----------------------------------------------------------------
    async def register_device(
        self,
        device_id: str,
        pass_type_id: str,
        serial: str,
        push_token: str,
        now: float,
        *,
        client: str = DEFAULT_CLIENT,
        push_service_url: str | None = None,
        max_devices: int | None = None,
        program: str = "",
        tier: str = "",
    ) -> bool:
        registration = Registration(device_id, pass_type_id, serial, push_token, now, client, push_service_url)
        return await self._durable_write(self._register_device, registration, max_devices, program, tier)

    @staticmethod
    def _register_device(
        conn: sqlite3.Connection, registration: Registration, max_devices: int | None, program: str, tier: str
    ) -> bool:
        device_id, pass_type_id, serial = registration.device_id, registration.pass_type_id, registration.serial
        fields = (registration.push_token, registration.updated_at, registration.client, registration.push_service_url)
        # program and tier only on insert: the remove fact counts what the install fact counted.
        inserted = conn.execute(
            "INSERT INTO registrations"
            " (device_id, pass_type_id, serial, push_token, updated_at, client, push_service_url, program, tier)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (device_id, pass_type_id, serial, *fields, program, tier),
        ).rowcount
        if inserted:
            now = registration.updated_at
            _count_facts(conn, FACT_INSTALLS, [(program, registration.client, tier, "install")], now)
            if max_devices is not None:
                # The new one is kept whatever the clocks say; the rest by most recent update.
                # (The OFFSET walks this serial's registrations only, at most max_devices + 1.)
                evicted = conn.execute(
                    "DELETE FROM registrations WHERE serial = ? AND (device_id, pass_type_id) IN ("
                    " SELECT device_id, pass_type_id FROM registrations WHERE serial = ?"
                    " ORDER BY (device_id = ? AND pass_type_id = ?) DESC, updated_at DESC, device_id DESC"
                    " LIMIT -1 OFFSET ?) RETURNING program, client, tier",
                    (serial, serial, device_id, pass_type_id, max(max_devices, 1)),
                ).fetchall()
                _count_removals(conn, evicted, now)
            return True
        # updated_at moves even when the token is the same: it is the last time the device
        # vouched for the token (see remove_registration_if_stale).
        conn.execute(
            "UPDATE registrations SET push_token = ?, updated_at = ?, client = ?, push_service_url = ?"
            " WHERE device_id = ? AND pass_type_id = ? AND serial = ?",
            (*fields, device_id, pass_type_id, serial),
        )
        return False

    async def unregister_device(self, device_id: str, pass_type_id: str, serial: str, now: float | None = None) -> bool:
        at = time.time() if now is None else now
        key = (device_id, pass_type_id, serial)

        def unregister(conn: sqlite3.Connection) -> bool:
            removed = conn.execute(
                "DELETE FROM registrations WHERE device_id = ? AND pass_type_id = ? AND serial = ?"
                " RETURNING program, client, tier",
                key,
            ).fetchall()
            # A device that registers again must be sent the pass again, whatever it was sent before.
            conn.execute("DELETE FROM pushed_tags WHERE device_id = ? AND pass_type_id = ? AND serial = ?", key)
            _count_removals(conn, removed, at)
            return bool(removed)

        return await self._write(unregister)

    async def get_registrations(self, serial: str) -> list[Registration]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT device_id, pass_type_id, serial, push_token, updated_at, client, push_service_url"
                " FROM registrations"
                " WHERE serial = ? ORDER BY device_id, pass_type_id",
                (serial,),
            ).fetchall()
        )
        return [Registration(*row) for row in rows]

    async def get_registration(self, device_id: str, pass_type_id: str, serial: str) -> Registration | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT device_id, pass_type_id, serial, push_token, updated_at, client, push_service_url"
                " FROM registrations"
                " WHERE device_id = ? AND pass_type_id = ? AND serial = ?",
                (device_id, pass_type_id, serial),
            ).fetchone()
        )
        return Registration(*row) if row is not None else None

    async def count_registrations(self, serial: str) -> int:
        return await self._read(
            lambda conn: conn.execute("SELECT COUNT(*) FROM registrations WHERE serial = ?", (serial,)).fetchone()[0]
        )

    async def count_registrations_by_client(self, serial: str) -> dict[str, int]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT client, COUNT(*) FROM registrations WHERE serial = ? GROUP BY client", (serial,)
            ).fetchall()
        )
        return {client: count for client, count in rows}

    async def remove_registration_if_stale(
        self, device_id: str, pass_type_id: str, serial: str, push_token: str, before: float
    ) -> bool:
        # The port gives no `now` here: the remove fact is counted on this clock's day.
        now = time.time()

        def remove(conn: sqlite3.Connection) -> bool:
            removed = conn.execute(
                "DELETE FROM registrations WHERE device_id = ? AND pass_type_id = ? AND serial = ?"
                " AND push_token = ? AND updated_at < ? RETURNING program, client, tier",
                (device_id, pass_type_id, serial, push_token, before),
            ).fetchall()
            _count_removals(conn, removed, now)
            return bool(removed)

        return await self._write(remove)

    async def serials_updated_since(
        self, device_id: str, pass_type_id: str, since_tag: int | None
    ) -> tuple[list[str], int]:
        rows = await self._read(
            lambda conn: conn.execute(
                # Cards, then vouchers (whose serials PassKit treats as cards'): each serial is one or the other.
                "SELECT c.serial, c.tag FROM registrations r JOIN cards c ON c.serial = r.serial"
                " WHERE r.device_id = ?1 AND r.pass_type_id = ?2 AND c.tag > ?3"
                " UNION ALL SELECT v.serial, v.tag FROM registrations r JOIN vouchers v ON v.serial = r.serial"
                " WHERE r.device_id = ?1 AND r.pass_type_id = ?2 AND v.tag > ?3 ORDER BY 2",
                (device_id, pass_type_id, -1 if since_tag is None else since_tag),
            ).fetchall()
        )
        return [serial for serial, _ in rows], max((tag for _, tag in rows), default=0)

    # -- device logs ---------------------------------------------------------------------------
    async def append_device_logs(self, messages: list[str], now: float, keep: int) -> None:
        def append(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO device_logs (at, message) VALUES (?, ?)", [(now, m) for m in messages])
            # Only the oldest rows are ever deleted, so the newest `keep` are the ids above max - keep:
            # a range delete on the rowid instead of walking `keep` rows (as _trim_journal).
            conn.execute("DELETE FROM device_logs WHERE id <= (SELECT MAX(id) FROM device_logs) - ?", (max(keep, 0),))

        await self._write(append)

    async def list_device_logs(self, limit: int) -> list[tuple[float, str]]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT at, message FROM device_logs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [(at, message) for at, message in rows]

    # -- companion-app tokens ------------------------------------------------------------------
    async def add_app_token(self, card_number: str, platform: str, token: str, now: float) -> None:
        # A token identifies one app install; registering it again (even for another card) moves it.
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO app_tokens (token, card, platform, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (token) DO UPDATE SET card = excluded.card, platform = excluded.platform,"
                " updated_at = excluded.updated_at",
                (token, card_number, platform, now),
            )
        )

    async def app_tokens(self, card_number: str) -> list[AppToken]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT card, platform, token, updated_at FROM app_tokens WHERE card = ? ORDER BY updated_at, token",
                (card_number,),
            ).fetchall()
        )
        return [AppToken(*row) for row in rows]

    async def delete_app_token(self, token: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM app_tokens WHERE token = ?", (token,)))

    # -- outbox --------------------------------------------------------------------------------
    async def enqueue(self, entries: Sequence[NewEntry], now: float) -> list[str]:
        def add(conn: sqlite3.Connection) -> list[str]:
            ids = []
            for entry in entries:
                row = conn.execute(_OUTBOX_ADD + " RETURNING id", _entry_row(entry, now)).fetchone()
                if row is None:  # coalesced into the entry already waiting under that key
                    row = conn.execute("SELECT id FROM outbox WHERE coalesce_key = ?", (entry.coalesce_key,)).fetchone()
                ids.append(str(row[0]))
            return ids

        return await self._durable_write(add) if entries else []

    async def claim_outbox(self, consumer: str, limit: int, lease_seconds: float, now: float) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        rows = await self._write(
            lambda conn: conn.execute(
                # Clearing coalesce_key ends coalescing: a later change must enqueue a new entry,
                # since this one may already be past the point of reading the card.
                "UPDATE outbox SET lease_owner = ?, lease_until = ?, coalesce_key = NULL"
                " WHERE id IN (SELECT id FROM outbox WHERE due_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"
                "              ORDER BY due_at, id LIMIT ?)"
                " RETURNING id, kind, payload, attempts, enqueued_at, due_at",
                (consumer, now + lease_seconds, now, now, limit),
            ).fetchall()
        )
        rows.sort(key=lambda row: (row[5], row[0]))  # RETURNING order is unspecified
        return [OutboxEntry(str(row[0]), row[1], _fields(row[2]), row[3], row[4]) for row in rows]

    async def ack_outbox(self, entry_ids: list[str]) -> None:
        # Whoever holds the lease now, a delivered entry is done: no owner check.
        if not entry_ids:
            return
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
                (_dumps([int(i) for i in entry_ids if i.isdigit()]),),
            )
        )

    async def retry_outbox(self, entry: OutboxEntry, delay_seconds: float, now: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET due_at = ?, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ?",
                (now + delay_seconds, int(entry.id)),
            )
        )

    async def dead_letter(self, entry: OutboxEntry, error: str, now: float, keep: int = DEAD_LETTERS_KEPT) -> None:
        """Moves the entry when it is still in the outbox (an entry already acknowledged or
        dead-lettered elsewhere is not recorded twice)."""

        def move(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            removed = conn.execute("DELETE FROM outbox WHERE id = ?", (int(entry.id),)).rowcount
            if not removed:
                return []
            conn.execute(
                "INSERT INTO dead_letters (entry_id, kind, payload, attempts, enqueued_at, error, failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.kind, _dumps(entry.fields), entry.attempts, entry.enqueued_at, error, now),
            )
            count = self._add_dead_letters(conn, 1)
            if count <= max(keep, 0):
                return []
            # The oldest are the lowest ids (AUTOINCREMENT): the delete walks from the first row
            # and stops after the excess, never over the kept ones.
            dropped = conn.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT ?)"
                " RETURNING id, kind",
                (count - max(keep, 0),),
            ).fetchall()
            self._add_dead_letters(conn, -len(dropped))
            return dropped

        for dropped_id, kind in sorted(await self._write(move)):
            log.warning("dead letter %s (%s) dropped: more than %d kept", dropped_id, kind, keep)

    @staticmethod
    def _add_dead_letters(conn: sqlite3.Connection, delta: int) -> int:
        """Move the dead-letter count (kept in `counters`, so counting never scans); the new count."""
        return conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'dead_letters' RETURNING value", (delta,)
        ).fetchone()[0]

    async def list_dead_letters(self, limit: int, *, before: str | None = None) -> list[DeadLetter]:
        if limit <= 0:
            return []
        args: tuple[Any, ...]
        if before is None:
            query, args = "", (limit,)
        elif before.isdigit():
            query, args = " WHERE id < ?", (int(before), limit)
        else:
            return []  # no dead letter has that id, so none is older than it
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT id, entry_id, kind, payload, attempts, enqueued_at, error, failed_at FROM dead_letters"
                + query
                + " ORDER BY id DESC LIMIT ?",
                args,
            ).fetchall()
        )
        return [
            DeadLetter(
                entry=OutboxEntry(id=row[1], kind=row[2], fields=_fields(row[3]), attempts=row[4], enqueued_at=row[5]),
                error=row[6],
                failed_at=row[7],
                id=str(row[0]),
            )
            for row in rows
        ]

    async def count_dead_letters(self) -> int:
        return await self._read(
            lambda conn: conn.execute("SELECT value FROM counters WHERE name = 'dead_letters'").fetchone()[0]
        )

    async def requeue_dead_letters(self, ids: Sequence[str] | None, now: float, limit: int = 1000) -> list[str]:
        args: tuple[Any, ...]
        if ids is None:
            if limit <= 0:
                return []
            query, args = "SELECT id FROM dead_letters ORDER BY id LIMIT ?", (limit,)
        else:
            numbers = sorted({int(i) for i in ids if isinstance(i, str) and i.isdigit()})
            if not numbers:
                return []
            query, args = "SELECT value FROM json_each(?)", (_dumps(numbers),)

        def requeue(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"DELETE FROM dead_letters WHERE id IN ({query}) RETURNING id, kind, payload", args
            ).fetchall()
            rows.sort()  # RETURNING order is unspecified; oldest first
            # New entries: attempts 0, due now, never coalesced with one waiting.
            conn.executemany(
                "INSERT INTO outbox (kind, payload, coalesce_key, due_at, attempts, enqueued_at)"
                " VALUES (?, ?, NULL, ?, 0, ?)",
                [(kind, payload, now, now) for _, kind, payload in rows],
            )
            self._add_dead_letters(conn, -len(rows))
            return [str(row[0]) for row in rows]

        # Durable: the operator is told these are back in the outbox.
        return await self._durable_write(requeue)

    async def outbox_oldest(self) -> float | None:
        # MIN over the outbox_enqueued index: one seek, not a scan of the backlog.
        return await self._read(lambda conn: conn.execute("SELECT MIN(enqueued_at) FROM outbox").fetchone()[0])

    async def outbox_size(self) -> int:
        return await self._read(lambda conn: conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    async def last_pushed_tag(self, device_id: str, pass_type_id: str, serial: str) -> int:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT tag FROM pushed_tags WHERE device_id = ? AND pass_type_id = ? AND serial = ?",
                (device_id, pass_type_id, serial),
            ).fetchone()
        )
        return row[0] if row is not None else 0

    async def mark_pushed(self, device_id: str, pass_type_id: str, serial: str, tag: int) -> None:
        await self._write(lambda conn: conn.execute(_MARK_PUSHED, (device_id, pass_type_id, serial, tag)))

    # -- batched push bookkeeping --------------------------------------------------------------
    async def pass_targets(self, keys: Sequence[PassKey]) -> dict[PassKey, PassTargets]:
        unique = list(dict.fromkeys(keys))
        return await self._read(self._pass_targets, unique) if unique else {}

    @staticmethod
    def _pass_targets(conn: sqlite3.Connection, keys: list[PassKey]) -> dict[PassKey, PassTargets]:
        # Keys as bound VALUES rows: about twice as fast as decoding a JSON list in SQL. A read
        # transaction around the chunks keeps tags, tokens and pushed tags from one snapshot.
        tags: dict[PassKey, int] = {}
        devices: dict[PassKey, list[DeviceTarget]] = {key: [] for key in keys}
        conn.execute("BEGIN")
        try:
            for start in range(0, len(keys), _TARGETS_CHUNK):
                chunk = keys[start : start + _TARGETS_CHUNK]
                rows = conn.execute(
                    f"WITH k(p, s) AS (VALUES {','.join(['(?, ?)'] * len(chunk))})"
                    # A serial that is no card's may be a voucher's: coalesce looks it up only then.
                    " SELECT k.p, k.s, coalesce(c.tag, (SELECT v.tag FROM vouchers v WHERE v.serial = k.s)),"
                    " r.device_id, r.push_token, t.tag, r.client, r.push_service_url FROM k"
                    " LEFT JOIN cards c ON c.serial = k.s"
                    " LEFT JOIN registrations r ON r.serial = k.s AND r.pass_type_id = k.p"
                    " LEFT JOIN pushed_tags t ON t.device_id = r.device_id AND t.pass_type_id = k.p"
                    "  AND t.serial = k.s",
                    [part for key in chunk for part in key],
                ).fetchall()
                for pass_type, serial, tag, device, token, pushed, client, service_url in rows:
                    key = (pass_type, serial)
                    tags[key] = tag or 0
                    if device is not None:
                        devices[key].append(DeviceTarget(device, token, pushed or 0, client, service_url))
        finally:
            conn.execute("COMMIT")
        return {key: PassTargets(tags.get(key, 0), tuple(devices[key])) for key in keys}

    async def complete_pushes(
        self, marks: Sequence[PushMark], acks: Sequence[str], journal: list[dict[str, Any]], now: float, keep: int
    ) -> None:
        if not marks and not acks and not journal:
            return

        def complete(conn: sqlite3.Connection) -> None:
            conn.executemany(_MARK_PUSHED, [(m.device_id, m.pass_type_id, m.serial, m.tag) for m in marks if m.tag > 0])
            ids = [int(entry_id) for entry_id in acks if entry_id.isdigit()]
            if ids:
                conn.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (_dumps(ids),))
            if journal:
                # One statement for the batch: SQLite splits the array, cheaper than a row of
                # Python parameters per record.
                conn.execute(
                    "INSERT INTO push_journal (at, record) SELECT ?, value FROM json_each(?)",
                    (now, _dumps_records([{"at": now, **record} for record in journal])),
                )
                self._trim_journal(conn, keep)
                _count_pushes(conn, journal, now)

        await self._write(complete)

    # -- push journal --------------------------------------------------------------------------
    async def record_push(self, record: dict[str, Any], now: float, keep: int) -> None:
        """Stores `record`, with `at` = now added unless it has one."""

        def append(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO push_journal (at, record) VALUES (?, ?)", (now, _dumps({"at": now, **record})))
            self._trim_journal(conn, keep)
            _count_pushes(conn, [record], now)

        await self._write(append)

    @staticmethod
    def _trim_journal(conn: sqlite3.Connection, keep: int) -> None:
        # Ids are handed out in order and only the oldest rows are ever deleted, so the newest
        # `keep` are exactly the ids above max - keep: a range delete on the rowid, instead of
        # walking `keep` rows (ORDER BY ... OFFSET) on every push.
        conn.execute("DELETE FROM push_journal WHERE id <= (SELECT MAX(id) FROM push_journal) - ?", (max(keep, 0),))

    async def list_pushes(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._read(
            lambda conn: conn.execute("SELECT record FROM push_journal ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        )
        return [json.loads(row[0]) for row in rows]

    # -- Google Wallet callbacks -----------------------------------------------------------------
    async def record_google_callback(
        self, nonce: str, object_id: str, event: str, at: float, *, program: str = "", tier: str = ""
    ) -> bool:
        action = {"save": "install", "del": "remove"}.get(event)

        def record(conn: sqlite3.Connection) -> bool:
            if not conn.execute(
                "INSERT INTO google_callbacks (nonce, object_id, event, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (nonce) DO NOTHING",
                (nonce, object_id, event, at),
            ).rowcount:
                return False  # a replay: counted the first time
            if action is not None:
                _count_facts(conn, FACT_INSTALLS, [(program, "google", tier, action)], at)
            return True

        # Durable: once Google hears 200 it does not send the callback again.
        return await self._durable_write(record)

    async def google_installs(self, object_id: str, limit: int = GOOGLE_EVENTS_KEPT) -> list[tuple[str, float]]:
        if limit <= 0:
            return []
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT event, at FROM google_callbacks WHERE object_id = ? ORDER BY rowid DESC LIMIT ?",
                (object_id, limit),
            ).fetchall()
        )
        return [(event, at) for event, at in rows]

    # -- Google Wallet sync bookkeeping ------------------------------------------------------------
    async def get_google_state(self, serial: str) -> GoogleState | None:
        row = await self._read(
            lambda conn: conn.execute("SELECT data FROM google_state WHERE serial = ?", (serial,)).fetchone()
        )
        return None if row is None else GoogleState.from_dict(json.loads(row[0]))

    async def put_google_state(self, serial: str, state: GoogleState) -> bool:
        data = _dumps(state.to_dict())
        return await self._write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO google_state (serial, version, data) VALUES (?, ?, ?)"
                    " ON CONFLICT (serial) DO UPDATE SET version = excluded.version, data = excluded.data"
                    " WHERE excluded.version >= google_state.version",
                    (serial, state.version, data),
                ).rowcount
                > 0
            )
        )

    # -- store locations -----------------------------------------------------------------------
    async def put_store_location(self, loc: StoreLocation) -> bool:
        return await self.put_store_locations([loc]) == 1

    async def put_store_locations(self, locs: Sequence[StoreLocation]) -> int:
        checked = check_store_locations(locs)
        # The port's location writes take no `now`: the restarted jobs are stamped with this clock.
        return await self._durable_write(self._put_store_locations, checked, time.time()) if checked else 0

    @classmethod
    def _put_store_locations(cls, conn: sqlite3.Connection, locs: list[StoreLocation], now: float) -> int:
        rows = conn.execute(
            "SELECT id, rid, program FROM store_locations WHERE id IN (SELECT value FROM json_each(?))",
            (_dumps([loc.id for loc in locs]),),
        ).fetchall()
        existing = {location_id: rid for location_id, rid, _ in rows}
        cls._geo_changed(conn, {loc.program for loc in locs} | {program for _, _, program in rows}, now)
        replaced = [loc for loc in locs if loc.id in existing]
        new = [loc for loc in locs if loc.id not in existing]
        if replaced:
            conn.executemany(
                "UPDATE store_locations SET program = ?, name = ?, lat = ?, lon = ?, address = ?, timezone = ?"
                " WHERE rid = ?",
                [
                    (loc.program, loc.name, loc.lat, loc.lon, loc.address, loc.timezone, existing[loc.id])
                    for loc in replaced
                ],
            )
            conn.executemany(
                "UPDATE store_locations_rtree SET min_lat = ?, max_lat = ?, min_lon = ?, max_lon = ? WHERE rid = ?",
                [(loc.lat, loc.lat, loc.lon, loc.lon, existing[loc.id]) for loc in replaced],
            )
        if new:
            conn.executemany(
                "INSERT INTO store_locations (id, program, name, lat, lon, address, timezone)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(loc.id, loc.program, loc.name, loc.lat, loc.lon, loc.address, loc.timezone) for loc in new],
            )
            conn.execute(
                "INSERT INTO store_locations_rtree (rid, min_lat, max_lat, min_lon, max_lon)"
                " SELECT rid, lat, lat, lon, lon FROM store_locations WHERE id IN (SELECT value FROM json_each(?))",
                (_dumps([loc.id for loc in new]),),
            )
        return len(new)

    async def delete_store_location(self, location_id: str) -> bool:
        now = time.time()

        def delete(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "DELETE FROM store_locations WHERE id = ? RETURNING rid, program", (location_id,)
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM store_locations_rtree WHERE rid = ?", (row[0],))
            self._geo_changed(conn, {row[1]}, now)
            return True

        return await self._durable_write(delete)

    async def get_store_location(self, location_id: str) -> StoreLocation | None:
        row = await self._read(
            lambda conn: conn.execute(
                f"SELECT {_LOCATION_COLUMNS} FROM store_locations l WHERE l.id = ?", (location_id,)
            ).fetchone()
        )
        return None if row is None else StoreLocation(*row)

    async def list_store_locations(self, program: str | None = None) -> list[StoreLocation]:
        args: tuple[str, ...]
        if program is None:
            query, args = f"SELECT {_LOCATION_COLUMNS} FROM store_locations l ORDER BY l.id", ()
        else:
            query, args = (
                f"SELECT {_LOCATION_COLUMNS} FROM store_locations l WHERE l.program = ? ORDER BY l.id",
                (program,),
            )
        rows = await self._read(lambda conn: conn.execute(query, args).fetchall())
        return [StoreLocation(*row) for row in rows]

    async def store_locations_near(
        self, lat: float, lon: float, radius_m: float, *, program: str | None = None, limit: int = 100
    ) -> list[tuple[StoreLocation, float]]:
        """Candidates from the R*Tree boxes (search_boxes), then haversine_m <= radius_m."""
        check_near_query(lat, lon, radius_m)
        if limit <= 0:
            return []
        boxes = search_boxes(lat, lon, radius_m)
        where = "r.max_lat >= ? AND r.min_lat <= ? AND r.max_lon >= ? AND r.min_lon <= ?"
        args: list[Any] = []
        selects = []
        for south, north, west, east in boxes:
            # CROSS JOIN keeps the R*Tree the outer loop: with a plain JOIN and a program, SQLite's
            # planner walks the program's index and probes the tree per store (100x slower).
            selects.append(
                f"SELECT {_LOCATION_COLUMNS} FROM store_locations_rtree r CROSS JOIN store_locations l ON l.rid = r.rid"
                f" WHERE {where}" + (" AND l.program = ?" if program is not None else "")
            )
            args += [south, north, west, east] + ([program] if program is not None else [])
        # One statement (UNION ALL of the boxes): one consistent snapshot.
        rows = await self._read(lambda conn: conn.execute(" UNION ALL ".join(selects), args).fetchall())
        found: dict[str, tuple[StoreLocation, float]] = {}
        for row in rows:
            distance = haversine_m(lat, lon, row[3], row[4])
            if distance <= radius_m:
                found[row[0]] = (StoreLocation(*row), distance)
        return nearest_first(found.values(), limit)

    # -- geo: generation, campaigns, jobs, card updates, alerts --------------------------------
    @staticmethod
    def _geo_changed(conn: sqlite3.Connection, programs: set[str], now: float) -> None:
        """In a geo write's transaction: advance the generation, restart the programs' jobs."""
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'geo'")
        conn.executemany(_RESTART_CAMPAIGNS_JOB, [(program, now) for program in sorted(programs)])

    @staticmethod
    def _read_geo_generation(conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT value FROM counters WHERE name = 'geo'").fetchone()[0]

    @classmethod
    def _check_geo_generation(cls, conn: sqlite3.Connection, expected: int) -> None:
        # Called inside the write transaction, before anything is written: the exception rolls
        # back nothing but the lock, and no other writer can move the generation until COMMIT.
        current = cls._read_geo_generation(conn)
        if current != expected:
            raise GeoChanged(f"geo generation is {current}, not {expected}")

    async def geo_generation(self) -> int:
        return await self._read(self._read_geo_generation)

    async def put_campaign(self, campaign: Mapping[str, Any], now: float) -> bool:
        campaign_id, program = _campaign_key(campaign)
        data = _dumps(dict(campaign))

        def put(conn: sqlite3.Connection) -> bool:
            old = conn.execute("SELECT program FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
            conn.execute(
                "INSERT INTO campaigns (id, program, data) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET program = excluded.program, data = excluded.data",
                (campaign_id, program, data),
            )
            self._geo_changed(conn, {program} | ({old[0]} if old is not None else set()), now)
            return old is None

        return await self._durable_write(put)

    async def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        row = await self._read(
            lambda conn: conn.execute("SELECT data FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        )
        return None if row is None else json.loads(row[0])

    async def list_campaigns(self, program: str | None = None) -> list[dict[str, Any]]:
        args: tuple[str, ...]
        if program is None:
            query, args = "SELECT data FROM campaigns ORDER BY id", ()
        else:
            query, args = "SELECT data FROM campaigns WHERE program = ? ORDER BY id", (program,)
        rows = await self._read(lambda conn: conn.execute(query, args).fetchall())
        return [json.loads(row[0]) for row in rows]

    async def delete_campaign(self, campaign_id: str, now: float) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            row = conn.execute("DELETE FROM campaigns WHERE id = ? RETURNING program", (campaign_id,)).fetchone()
            if row is None:
                return False
            self._geo_changed(conn, {row[0]}, now)
            return True

        return await self._durable_write(delete)

    async def restart_campaigns_job(self, program: str, now: float) -> None:
        await self._durable_write(self._geo_changed, {program}, now)

    async def add_geo_job(self, job_id: str, program: str, kind: str, payload: Mapping[str, Any], now: float) -> bool:
        return await self._durable_write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO geo_jobs (id, program, kind, payload, cursor, created_at, done)"
                    " VALUES (?, ?, ?, ?, '', ?, 0) ON CONFLICT (id) DO NOTHING",
                    (job_id, program, kind, _dumps(dict(payload)), now),
                ).rowcount
                > 0
            )
        )

    async def get_geo_job(self, job_id: str) -> GeoJob | None:
        row = await self._read(
            lambda conn: conn.execute(f"SELECT {_JOB_COLUMNS} FROM geo_jobs WHERE id = ?", (job_id,)).fetchone()
        )
        return None if row is None else _job_from_row(row)

    async def claim_geo_job(self, owner: str, lease_seconds: float, now: float) -> GeoJob | None:
        row = await self._write(
            lambda conn: conn.execute(
                "UPDATE geo_jobs SET lease_owner = ?1, lease_until = ?2 WHERE id = ("
                " SELECT id FROM geo_jobs WHERE done = 0"
                " AND (lease_owner IS NULL OR lease_until <= ?3 OR lease_owner = ?1)"
                " ORDER BY created_at, id LIMIT 1)"
                f" RETURNING {_JOB_COLUMNS}",
                (owner, now + lease_seconds, now),
            ).fetchone()
        )
        return None if row is None else _job_from_row(row)

    async def cards_page(self, program: str, after: str, limit: int) -> list[Card]:
        if limit <= 0:
            return []
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT data FROM cards WHERE program = ? AND number > ? ORDER BY number LIMIT ?",
                (program, after, limit),
            ).fetchall()
        )
        # orjson (_loads_payload): a job pages over every card of a program, decoding dominates.
        return [Card.from_dict(_loads_payload(row[0])) for row in rows]

    async def update_cards(
        self,
        updates: Sequence[CardUpdate],
        now: float,
        fanout: Fanout = no_fanout,
        *,
        geo_generation: int | None = None,
        step: JobStep | None = None,
    ) -> UpdateResult:
        if not updates and step is None:
            return UpdateResult(cards=[])
        # Durable as a ledger commit: a bumped tag lost to a power cut could be handed out again
        # for other content, and a device that saw it would miss that change.
        return await self._durable_write(self._update_cards, list(updates), now, fanout, geo_generation, step)

    def _update_cards(
        self,
        conn: sqlite3.Connection,
        updates: list[CardUpdate],
        now: float,
        fanout: Fanout,
        geo_generation: int | None,
        step: JobStep | None,
    ) -> UpdateResult:
        if geo_generation is not None:
            self._check_geo_generation(conn, geo_generation)
        state: dict[str, Card] = {}
        numbers = sorted({update.card.number for update in updates})
        if numbers:
            for (data,) in conn.execute(
                "SELECT data FROM cards WHERE number IN (SELECT value FROM json_each(?))", (_dumps(numbers),)
            ):
                card = _card_from_row(data)
                state[card.number] = card
        counter = conn.execute("SELECT value FROM counters WHERE name = 'tag'").fetchone()[0]
        results: list[Card | None] = []
        written: dict[str, Card] = {}
        entries: list[NewEntry] = []
        for update in updates:
            stored = state.get(update.card.number)
            if stored is None or stored.tag != update.expected_tag:
                results.append(None)
                continue
            # Identity and version are the store's: indexes (serial, account, program) stay true.
            card = update.card.with_changes(
                serial=stored.serial, account=stored.account, program=stored.program, version=stored.version
            )
            if update.bump:
                counter += 1
                card = card.with_changes(tag=counter, modified_at=next_modified_at(stored.modified_at, now))
                entries.extend(fanout(card))
            else:
                card = card.with_changes(tag=stored.tag, modified_at=stored.modified_at)
            # Later updates of the same card in this batch compare against this one.
            state[card.number] = written[card.number] = card
            results.append(card)
        if written:
            conn.execute("UPDATE counters SET value = ? WHERE name = 'tag'", (counter,))
            conn.executemany(
                "UPDATE cards SET tag = ?, data = ? WHERE number = ?",
                [(c.tag, _dumps(c.to_dict()), c.number) for c in written.values()],
            )
            conn.executemany(_OUTBOX_ADD, [_entry_row(entry, now) for entry in entries])
        advanced = False
        if step is not None and all(card is not None for card in results):
            advanced = (
                conn.execute(
                    "UPDATE geo_jobs SET cursor = ?, done = ? WHERE id = ? AND lease_owner = ? AND lease_until > ?",
                    (step.cursor, int(step.done), step.job_id, step.owner, now),
                ).rowcount
                > 0
            )
        return UpdateResult(cards=results, advanced=advanced)

    async def reserve_alert(
        self,
        card_number: str,
        record: AlertRecord,
        decide: Callable[[Sequence[AlertRecord]], str | None],
        keep_since: float,
    ) -> str | None:
        def reserve(conn: sqlite3.Connection) -> str | None:
            # Inside BEGIN IMMEDIATE: no other writer (thread or process) runs between the
            # read that `decide` sees and the insert.
            answer = decide(self._alert_records(conn, card_number))
            if answer is not None:
                return answer
            conn.execute(
                "INSERT INTO alerts (card, at, campaign, store) VALUES (?, ?, ?, ?)",
                (card_number, record.at, record.campaign, record.store),
            )
            conn.execute("DELETE FROM alerts WHERE card = ? AND at < ?", (card_number, keep_since))
            conn.execute(
                "DELETE FROM alerts WHERE card = ?1 AND id NOT IN ("
                " SELECT id FROM alerts WHERE card = ?1 ORDER BY at DESC, id DESC LIMIT ?2)",
                (card_number, ALERTS_KEPT),
            )
            return None

        return await self._write(reserve)

    @staticmethod
    def _alert_records(conn: sqlite3.Connection, card_number: str) -> list[AlertRecord]:
        rows = conn.execute(
            "SELECT at, campaign, store FROM alerts WHERE card = ? ORDER BY at, id", (card_number,)
        ).fetchall()
        return [AlertRecord(*row) for row in rows]

    async def alert_records(self, card_number: str) -> list[AlertRecord]:
        return await self._read(self._alert_records, card_number)

    async def list_geo_jobs(
        self, program: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[GeoJob]:
        if limit <= 0:
            return []
        where, args = [], []
        if program is not None:
            where.append("program = ?")
            args.append(program)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        query = (
            f"SELECT {_JOB_COLUMNS} FROM geo_jobs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = await self._read(lambda conn: conn.execute(query, (*args, limit)).fetchall())
        return [_job_from_row(row) for row in rows]

    # -- vouchers ------------------------------------------------------------------------------
    async def create_voucher(self, voucher: Voucher, now: float, fanout: Fanout = no_fanout) -> tuple[Voucher, bool]:
        return await self._durable_write(self._create_voucher, voucher, now, fanout)

    def _create_voucher(
        self, conn: sqlite3.Connection, voucher: Voucher, now: float, fanout: Fanout
    ) -> tuple[Voucher, bool]:
        row = conn.execute(
            "SELECT tag, data FROM vouchers WHERE kind = ? AND id = ?", (voucher.kind, voucher.id)
        ).fetchone()
        if row is not None:
            return _voucher_from_row(*row), False
        taken = conn.execute(
            "SELECT 1 FROM vouchers WHERE serial = ?1 UNION ALL SELECT 1 FROM cards WHERE serial = ?1",
            (voucher.serial,),
        ).fetchone()
        if taken is not None:
            raise StoreError("the voucher's serial is taken")
        stored = dataclasses.replace(voucher, data=dict(voucher.data), tag=self._next_tag(conn))
        conn.execute(
            "INSERT INTO vouchers (kind, id, serial, card, tag, data) VALUES (?, ?, ?, ?, ?, ?)",
            (stored.kind, stored.id, stored.serial, stored.card_number, stored.tag, _dumps(dataclasses.asdict(stored))),
        )
        conn.executemany(_OUTBOX_ADD, [_entry_row(entry, now) for entry in _voucher_fanout(fanout, stored)])
        return stored, True

    async def get_voucher(self, kind: str, voucher_id: str) -> Voucher | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT tag, data FROM vouchers WHERE kind = ? AND id = ?", (kind, voucher_id)
            ).fetchone()
        )
        return None if row is None else _voucher_from_row(*row)

    async def get_voucher_by_serial(self, serial: str) -> Voucher | None:
        row = await self._read(
            lambda conn: conn.execute("SELECT tag, data FROM vouchers WHERE serial = ?", (serial,)).fetchone()
        )
        return None if row is None else _voucher_from_row(*row)

    async def vouchers_of_card(self, card_number: str) -> list[Voucher]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT tag, data FROM vouchers WHERE card = ? ORDER BY rid", (card_number,)
            ).fetchall()
        )
        return [_voucher_from_row(*row) for row in rows]

    async def update_voucher(
        self, voucher: Voucher, expected_tag: int, now: float, fanout: Fanout = no_fanout
    ) -> Voucher | None:
        # Durable as a card update: a tag lost to a power cut could be handed out again.
        return await self._durable_write(self._update_voucher, voucher, expected_tag, now, fanout)

    def _update_voucher(
        self, conn: sqlite3.Connection, voucher: Voucher, expected_tag: int, now: float, fanout: Fanout
    ) -> Voucher | None:
        row = conn.execute(
            "SELECT rid, tag, data FROM vouchers WHERE kind = ? AND id = ?", (voucher.kind, voucher.id)
        ).fetchone()
        if row is None or row[1] != expected_tag:
            return None
        stored = _voucher_from_row(row[1], row[2])
        updated = dataclasses.replace(
            stored,
            data=dict(voucher.data),
            voided=voucher.voided,
            tag=self._next_tag(conn),
            modified_at=next_modified_at(stored.modified_at, now),
        )
        conn.execute(
            "UPDATE vouchers SET tag = ?, data = ? WHERE rid = ?",
            (updated.tag, _dumps(dataclasses.asdict(updated)), row[0]),
        )
        conn.executemany(_OUTBOX_ADD, [_entry_row(entry, now) for entry in _voucher_fanout(fanout, updated)])
        return updated

    # -- bulk import jobs ----------------------------------------------------------------------
    async def create_import_job(self, job: ImportJob, rows: Sequence[Mapping[str, Any]]) -> bool:
        chunks = [
            (job.id, start // _IMPORT_CHUNK, _dumps([dict(row) for row in rows[start : start + _IMPORT_CHUNK]]))
            for start in range(0, len(rows), _IMPORT_CHUNK)
        ]
        errors = [(job.id, _dumps(dict(error))) for error in job.errors]

        def create(conn: sqlite3.Connection) -> bool:
            inserted = conn.execute(
                f"INSERT INTO import_jobs ({_IMPORT_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (job.id, job.program, job.state, job.rows, job.done, job.created_at, job.updated_at, _dumps(job.meta)),
            ).rowcount
            if not inserted:
                return False
            conn.executemany("INSERT INTO import_rows (job, chunk, data) VALUES (?, ?, ?)", chunks)
            conn.executemany("INSERT INTO import_errors (job, data) VALUES (?, ?)", errors)
            return True

        return await self._durable_write(create)

    async def get_import_job(self, job_id: str) -> ImportJob | None:
        def read(conn: sqlite3.Connection) -> ImportJob | None:
            conn.execute("BEGIN")  # the job and its errors from one snapshot
            try:
                row = conn.execute(f"SELECT {_IMPORT_JOB_COLUMNS} FROM import_jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    return None
                errors = conn.execute("SELECT data FROM import_errors WHERE job = ? ORDER BY id", (job_id,)).fetchall()
            finally:
                conn.execute("COMMIT")
            job_id_, program, state, rows, done, created_at, updated_at, meta = row
            return ImportJob(
                job_id_,
                program,
                state,
                rows,
                done,
                created_at,
                updated_at,
                [json.loads(error) for (error,) in errors],
                json.loads(meta),
            )

        return await self._read(read)

    async def import_rows(self, job_id: str, start: int, limit: int) -> list[dict[str, Any]]:
        start = max(start, 0)
        if limit <= 0:
            return []
        end = start + limit
        chunks = await self._read(
            lambda conn: conn.execute(
                "SELECT chunk, data FROM import_rows WHERE job = ? AND chunk BETWEEN ? AND ? ORDER BY chunk",
                (job_id, start // _IMPORT_CHUNK, (end - 1) // _IMPORT_CHUNK),
            ).fetchall()
        )
        rows: list[dict[str, Any]] = []
        for chunk, data in chunks:
            base = chunk * _IMPORT_CHUNK
            part = _loads_payload(data)
            rows.extend(part[max(start - base, 0) : max(end - base, 0)])
        return rows

    async def advance_import_job(
        self,
        job_id: str,
        done: int,
        results: Sequence[tuple[str, str]],
        now: float,
        *,
        state: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        error_rows = [(job_id, _dumps(dict(error))) for error in errors]
        pairs = [(str(account), str(number)) for account, number in results]

        def advance(conn: sqlite3.Connection) -> None:
            if not conn.execute(
                "UPDATE import_jobs SET done = ?, updated_at = ?, state = coalesce(?, state) WHERE id = ?",
                (done, now, state, job_id),
            ).rowcount:
                return
            if state in ("done", "failed"):
                # A finished job is never read again: its rows only hold members' personal data.
                conn.execute("DELETE FROM import_rows WHERE job = ?", (job_id,))
            if pairs:
                seen = {
                    row[0]
                    for row in conn.execute(
                        "SELECT account FROM import_results"
                        " WHERE job = ? AND account IN (SELECT value FROM json_each(?))",
                        (job_id, _dumps(sorted({account for account, _ in pairs}))),
                    )
                }
                seq = conn.execute(
                    "SELECT coalesce(MAX(seq) + 1, 0) FROM import_results WHERE job = ?", (job_id,)
                ).fetchone()[0]
                new: list[tuple[str, int, str, str]] = []
                for account, number in pairs:
                    if account not in seen:
                        seen.add(account)
                        new.append((job_id, seq + len(new), account, number))
                conn.executemany("INSERT INTO import_results (job, seq, account, number) VALUES (?, ?, ?, ?)", new)
            conn.executemany("INSERT INTO import_errors (job, data) VALUES (?, ?)", error_rows)

        # Losing the last step to a power cut only processes its rows again (cards are per account).
        await self._write(advance)

    async def import_results(self, job_id: str, start: int, limit: int) -> list[tuple[str, str]]:
        start = max(start, 0)
        if limit <= 0:
            return []
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT account, number FROM import_results WHERE job = ? AND seq >= ? AND seq < ? ORDER BY seq",
                (job_id, start, start + limit),
            ).fetchall()
        )
        return [(account, number) for account, number in rows]

    # -- retention -----------------------------------------------------------------------------
    async def forget_event_ids(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        # Bounded: the ledger_event_ids_accepted index gives the oldest `limit` without a scan.
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM ledger_event_ids WHERE id IN ("
                    " SELECT id FROM ledger_event_ids WHERE accepted_at < ? ORDER BY accepted_at, id LIMIT ?)",
                    (before, limit),
                ).rowcount
            )
        )

    async def forget_google_callbacks(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        # Bounded: callbacks are inserted in time order (`at` is when they arrived), so the oldest are
        # the first `limit` rowids; of those, the ones received before `before` go (a later one
        # among them, from another process's clock, waits for a later sweep).
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM google_callbacks WHERE rowid IN ("
                    " SELECT rowid FROM google_callbacks ORDER BY rowid LIMIT ?) AND at < ?",
                    (limit, before),
                ).rowcount
            )
        )

    async def forget_finished_jobs(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0

        def forget(conn: sqlite3.Connection) -> int:
            # Bounded: the partial indexes of migration 10 hold only finished jobs, in (created_at, id)
            # order; the oldest `limit` of each kind are merged (ties: geo jobs first, as in Redis).
            geo = conn.execute(
                "SELECT created_at, 0, id FROM geo_jobs"
                " WHERE done = 1 AND kind <> 'campaigns' AND substr(id, 1, 10) <> 'campaigns:' AND created_at < ?"
                " ORDER BY created_at, id LIMIT ?",
                (before, limit),
            ).fetchall()
            imports = conn.execute(
                "SELECT created_at, 1, id FROM import_jobs WHERE state IN ('done', 'failed') AND created_at < ?"
                " ORDER BY created_at, id LIMIT ?",
                (before, limit),
            ).fetchall()
            jobs = sorted(geo + imports)[:limit]
            geo_ids = [(job_id,) for _, kind, job_id in jobs if kind == 0]
            import_ids = [(job_id,) for _, kind, job_id in jobs if kind == 1]
            conn.executemany("DELETE FROM geo_jobs WHERE id = ?", geo_ids)
            for table in ("import_rows", "import_results", "import_errors"):
                conn.executemany(f"DELETE FROM {table} WHERE job = ?", import_ids)
            conn.executemany("DELETE FROM import_jobs WHERE id = ?", import_ids)
            return len(jobs)

        return await self._write(forget)

    # -- report facts --------------------------------------------------------------------------
    async def add_facts(self, family: str, dims: Sequence[tuple[str, ...]], now: float) -> None:
        if dims:
            await self._write(_count_facts, family, list(dims), now)

    async def fact_counts(self, family: str, from_day: str, to_day: str) -> list[FactCount]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT day, dims, count FROM facts WHERE family = ? AND day >= ? AND day <= ? AND count <> 0",
                (family, from_day, to_day),
            ).fetchall()
        )
        # Sorted here, on the dims as tuples: the JSON text would order them differently.
        counts = [FactCount(day, tuple(json.loads(dims)), count) for day, dims, count in rows]
        return sorted(counts, key=lambda fact: (fact.day, fact.dims))

    async def forget_facts(self, before_day: str, limit: int) -> int:
        if limit <= 0:
            return 0

        def forget(conn: sqlite3.Connection) -> int:
            groups = conn.execute(
                "SELECT DISTINCT day, family FROM facts WHERE day < ? ORDER BY day, family LIMIT ?",
                (before_day, limit),
            ).fetchall()
            conn.executemany("DELETE FROM facts WHERE family = ? AND day = ?", [(f, d) for d, f in groups])
            return len(groups)

        return await self._write(forget)

    # -- privacy -------------------------------------------------------------------------------
    async def erase_member(self, card_number: str, now: float, fanout: Fanout = no_fanout) -> Erasure | None:
        # Durable: the caller is told the data is gone, and the new tag must not be handed out twice.
        return await self._durable_write(self._erase_member, card_number, now, fanout)

    def _erase_member(self, conn: sqlite3.Connection, card_number: str, now: float, fanout: Fanout) -> Erasure | None:
        row = conn.execute("SELECT data FROM cards WHERE number = ?", (card_number,)).fetchone()
        if row is None:
            return None
        card = _card_from_row(row[0])
        if card.erased_at:
            return Erasure(card, False)
        phone = _phone(card)
        erased = card.with_changes(
            member=Member(name=""),
            app_token="",
            area=None,
            erased_at=int(now),
            tag=self._next_tag(conn),
            modified_at=next_modified_at(card.modified_at, now),
        )
        conn.execute(
            "UPDATE cards SET tag = ?, data = ? WHERE number = ?", (erased.tag, _dumps(erased.to_dict()), card.number)
        )
        conn.execute("DELETE FROM consents WHERE card = ?", (card.number,))
        if phone is not None:
            # Only the entry that points here: another card of the program may hold the phone.
            conn.execute(
                "DELETE FROM phones WHERE program = ? AND phone = ? AND number = ?", (card.program, phone, card.number)
            )
        conn.execute("DELETE FROM app_tokens WHERE card = ?", (card.number,))
        conn.execute("DELETE FROM alerts WHERE card = ?", (card.number,))
        # The enrolment announcement still waiting carries the member's data; one already claimed
        # has no key any more and is on its way (push/kinds/enroll_webhook.py).
        conn.execute(
            "DELETE FROM outbox WHERE coalesce_key = ?",
            (json.dumps(["enroll_webhook", card.number], separators=(",", ":")),),
        )
        self._erase_import_rows(conn, card.account)
        conn.executemany(_OUTBOX_ADD, [_entry_row(entry, now) for entry in fanout(erased)])
        return Erasure(erased, True)

    @staticmethod
    def _erase_import_rows(conn: sqlite3.Connection, account: str) -> None:
        """Remove the personal fields from the account's rows in jobs still running (finished jobs
        have no rows: advance_import_job deleted them)."""
        chunks = conn.execute(
            "SELECT r.job, r.chunk, r.data FROM import_rows r JOIN import_jobs j ON j.id = r.job"
            " WHERE j.state NOT IN ('done', 'failed')"
            " AND EXISTS (SELECT 1 FROM json_each(r.data) WHERE json_extract(value, '$.account') = ?)",
            (account,),
        ).fetchall()
        updates = []
        for job, chunk, data in chunks:
            rows = json.loads(data)
            for row in rows:
                if isinstance(row, dict) and row.get("account") == account:
                    for key in _IMPORT_PERSONAL:
                        row.pop(key, None)
            updates.append((_dumps(rows), job, chunk))
        conn.executemany("UPDATE import_rows SET data = ? WHERE job = ? AND chunk = ?", updates)


def _voucher_fanout(fanout: Fanout, voucher: Voucher) -> Sequence[NewEntry]:
    """`fanout` of the voucher's final state: the port types Fanout over cards, and a voucher is a pass
    whose serial works as a card's (a fanout reads the serial, as push/messages.PassUpdate needs)."""
    return fanout(voucher)  # type: ignore[arg-type]
