"""The Redis adapter: the scale-out store shared by any number of web and worker processes.

Key layout (all under `prefix`):
  tag                      store-wide update counter (INCR; never the clock)
  card:<number>            hash: data (card JSON), version, tag
  serial:<serial>, account:<account>     -> card number
  serialtag                hash: serial -> tag of the card's last change
  ledger:accepted          zset: accepted ledger event id -> acceptance time (forget_event_ids)
  regs:<serial>            hash: registration field -> registration JSON (with program and tier
                           since schema 5; absent in older ones: "")
  devregs:<field>          set of serials a device registered for one pass type
  pending:<coalesce key>   id of the entry waiting unclaimed under that key
  outbox                   stream, consumer group "workers"; outbox:delayed zset of retries by due time;
                           an entry's fields: kind, attempts, enqueued_at, ck, and its own as f:<name>
  outbox:ages              zset: "s:<stream id>" and "d:<delayed member>" -> enqueued_at (outbox_oldest)
  deadletters              stream of dead letters (its ids are theirs), fields kind and record (JSON)
  devlogs, pushes          lists, newest first
  facts:<family>:<day>     hash: dims JSON -> count (report facts); factdays, zset (scores 0) of
                           "<day>:<family>" for each group with counts
  pushed:<serial>          hash: registration field -> last pushed tag
  apptok, cardtoks:<card>  app tokens and each card's set of them
  gnonce:<nonce>           Google Wallet callback nonce seen (value: the object id); gnonces, zset of
                           the nonces by the time they were received (forget_google_callbacks; since
                           schema 6, the older ones at the migration's time)
  ginstalls:<object id>    list of [event, at] of that object's callbacks, newest first, bounded
  gstate:<serial>          hash: version, data (GoogleState JSON): last synced to the Google object
  storeloc                 hash: store location id -> location JSON
  storegeo, storegeo:<program>     GEO sets of every location's point, and of each program's
  pcards:<program>         zset (all scores 0) of the program's card numbers, for paging in order
  geo                      the geo generation (INCR by every campaign or store location write)
  campaigns                hash: campaign id -> campaign JSON; pcampaigns:<program>, its ids
  geojob:<id>              hash: a geo job (redis_scripts._RESTART_JOB); geojobs, zset of open ones
  alerts:<card>            JSON [[at, campaign, store], ...] of the card's app alerts, oldest first
  geojobs:all              zset of every geo job id by created_at (list_geo_jobs)
  jobs:finished            zset by created_at of the finished jobs (forget_finished_jobs, since schema 6):
                           "g:<id>" geo jobs done (never "campaigns:<program>"), "i:<id>" import jobs
                           done or failed
  phones:<program>         hash: phone (E.164) -> number of the program's first card with it
  consents:<card>          list of the card's consents (JSON), oldest first
  voucher:<key>            hash: data (voucher JSON), tag; <key> is the JSON [kind, id]
  vserial:<serial>         -> voucher key; a voucher's serial is in serialtag as a card's is
  cvouchers:<card>         list of the card's voucher keys, oldest first
  importjob:<id>           hash: a bulk import job; importerrs:<id> its errors (list of JSON),
                           importrows:<id> hash chunk index -> JSON array of _IMPORT_CHUNK rows,
                           importres:<id> list of [account, number] JSON, importacc:<id> their accounts;
                           importjobs:open zset by created_at of the jobs not done or failed

A "registration field" is the JSON array [device_id, pass_type_id]: unambiguous whatever the
ids contain. Multi-key steps run as Lua scripts (redis_scripts.py) so each is atomic.

Leases: an entry read by a consumer is reclaimed (XAUTOCLAIM) once it has been idle for longer
than the claiming call's `lease_seconds`, measured by the Redis server's clock; retry due
times are compared with the `now` the callers pass.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError, WatchError

from cards.model import Card, Member, next_modified_at
from geo.boxes import search_boxes
from geo.distance import EARTH_RADIUS_M, haversine_m
from geo.locations import StoreLocation
from ledger.decide import LedgerEvent, Outcome
from ledger.plan import EventCheck, card_key, plan_batch
from store import redis_scripts as lua
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

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
GROUP = "workers"
# Compare-and-set rounds for one ledger batch before giving up; each round commits every card
# nobody else changed meanwhile, so contention on one card is what it takes to need many.
_MAX_LEDGER_ROUNDS = 100
# WATCH rounds of one reserve_alert: a round is lost only to another call that wrote the card's
# alerts, so this bounds how many concurrent alerts for one card it outlasts.
_MAX_ALERT_ROUNDS = 1000
# Card keys per step of the schema-3 backfill (SCAN COUNT and one pipeline of HGETs).
_BACKFILL_BATCH = 1000
# Rows of an import job per stored chunk: a page of import_rows reads one or two chunks.
_IMPORT_CHUNK = 500
# Compare-and-set rounds of one erase_member: a round is lost only to a write to the card, to its
# open import jobs' rows or to the set of open jobs in between.
_MAX_ERASE_ROUNDS = 100
# Dead letters named per requeue script (each one is moved atomically on its own anyway).
_REQUEUE_BATCH = 1000
# The personal data an import row may hold (service/imports.py COLUMNS), removed by erase_member.
_IMPORT_PERSONAL = ("name", "phone", "email")
# The outbox kind and coalescing key of a card's enroll webhook (push/kinds/enroll_webhook.py),
# written out: the store may not import push/.
_ENROLL_WEBHOOK = "enroll_webhook"
# Report families counted by the Lua scripts under their literal names (redis_scripts._ADD_FACT).
assert (FACT_INSTALLS, FACT_PUSHES) == ("installs", "pushes")


_dumps = compact_json

# Redis GEO keeps a point as a 52-bit geohash and measures from the centre of its cell, within
# about 0.3 m of the stored coordinates (a cell is 360/2^26 degrees of longitude, 0.6 m at the
# equator, by 170.1/2^26 of latitude, 0.28 m), with the same haversine and Earth radius as
# geo.distance. So its distances are within 0.4 m of haversine_m on the stored coordinates:
# the near query asks Redis for this much more radius, then re-ranks by haversine_m on the
# coordinates kept in the hash, so results and distances are exactly SQLite's.
GEO_TOLERANCE_M = 1.0
# Beyond half a great circle every point is inside.
_MAX_RADIUS_M = math.pi * EARTH_RADIUS_M
# Extra candidates asked of GEOSEARCH beyond `limit`, for the re-ranking at the cut.
_NEAR_SLACK = 32


def _reg_field(device_id: str, pass_type_id: str) -> str:
    return _dumps([device_id, pass_type_id])


def _entry_json(entry: NewEntry) -> list[Any]:
    return [entry.kind, entry.coalesce_key or "", [part for item in entry.fields.items() for part in item]]


def _text(reply: object) -> str:
    """A reply of the client, which is opened with decode_responses=True: redis-py types replies
    `bytes | str` whatever that setting, so this checks the invariant and narrows the type."""
    if not isinstance(reply, str):
        raise StoreError(f"expected a decoded string reply from redis, got {type(reply).__name__}")
    return reply


def _outbox_entry(entry_id: str, flat: list[str]) -> OutboxEntry:
    values = dict(zip(flat[::2], flat[1::2], strict=True))
    fields = {name[2:]: value for name, value in values.items() if name.startswith("f:")}
    return OutboxEntry(
        id=entry_id,
        kind=values["kind"],
        fields=fields,
        attempts=int(values["attempts"]),
        enqueued_at=float(values["enqueued_at"]),
    )


def _fact_text(part: object) -> str:
    # Dims are strings; a missing journal field (None) counts as "" (as the SQLite adapter does).
    return "" if part is None else str(part)


def _fact_counts(dims: Sequence[Sequence[object]]) -> str:
    """The dims as the facts scripts take them: [[dims JSON, how many], ...], repeats summed."""
    counts = collections.Counter(_dumps([_fact_text(part) for part in parts]) for parts in dims)
    return _dumps([[key, n] for key, n in counts.items()])


def _push_facts(records: Sequence[Mapping[str, Any]]) -> str:
    return _fact_counts([(record.get("channel", ""), record.get("outcome", "")) for record in records])


def _stream_id(value: object) -> tuple[int, int] | None:
    """A stream id "<ms>-<seq>" as numbers (for ordering), None when it is not one."""
    if not isinstance(value, str):
        return None
    ms, dash, seq = value.partition("-")
    if not (dash and ms.isdigit() and seq.isdigit()):
        return None
    return int(ms), int(seq)


def _dead_letter(entry_id: str, values: Mapping[bytes | str, bytes | str]) -> DeadLetter:
    row = json.loads(values["record"])
    return DeadLetter(
        entry=OutboxEntry(
            id=row["entry"]["id"],
            kind=row["entry"]["kind"],
            fields=row["entry"].get("fields") or {},
            attempts=row["entry"]["attempts"],
            enqueued_at=row["entry"]["enqueued_at"],
        ),
        error=row["error"],
        failed_at=row["failed_at"],
        id=entry_id,
    )


async def _sscan_batches(client: aioredis.Redis, key: str) -> Any:
    """The members of a set, in batches of about _BACKFILL_BATCH (SSCAN: never one huge reply)."""
    cursor: int = 0
    while True:
        cursor, members = await client.sscan(key, cursor, count=_BACKFILL_BATCH)
        if members:
            yield [_text(m) for m in members]
        if int(cursor) == 0:
            return


def _geo_lon(lon: float) -> float:
    """Longitude 180 as -180 (one meridian) for GEOADD and GEOSEARCH: Redis 7.0 files the two
    in geohash cells it does not treat as neighbours."""
    return -180.0 if lon == 180.0 else lon


def _location(data: str) -> StoreLocation:
    values = json.loads(data)
    values["lat"], values["lon"] = float(values["lat"]), float(values["lon"])
    return StoreLocation(**values)


def _phone(card: Card) -> str:
    """The phone the index keeps for the card ("" when its member has none)."""
    phone = card.member.phone
    return phone if isinstance(phone, str) else ""


def _voucher_key(kind: str, voucher_id: str) -> str:
    return _dumps([kind, voucher_id])


def _voucher(data: object, tag: object) -> Voucher:
    values = json.loads(_text(data))
    values["tag"] = int(_text(tag))
    return Voucher(**values)


def _card_from_hash(values: Mapping[bytes | str, bytes | str]) -> Card | None:
    if not values:
        return None
    data = json.loads(values["data"])
    data["version"] = int(values["version"])
    data["tag"] = int(values["tag"])
    return Card.from_dict(data)


_POOL_CONNECTIONS = 200
_POOL_WAIT_SECONDS = 30.0


class RedisStore(Store):
    """`RedisStore(url, prefix="wallet:")`; extra keyword arguments go to `redis.asyncio.from_url`."""

    def __init__(self, url: str, prefix: str = "wallet:", *, wait_replicas: int = 0, **client_options: Any) -> None:
        self.url = url
        self.prefix = prefix
        # Promised writes wait until this many replicas have them (WAIT), else StoreError.
        self.wait_replicas = wait_replicas
        # well under redis-py's socket timeout, so WAIT answers (with a count) before the read gives up
        self.wait_timeout_ms = 1000
        self._client_options = client_options
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreError("store is not open")
        return self._client

    def _key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    async def _script(self, name: str, *args: Any) -> Any:
        # EVALSHA, falling back to EVAL (and caching) when the server lost the script.
        return await self._scripts[name](args=[self.prefix, *args])

    async def _replicated(self) -> None:
        """With `wait_replicas`, a promised write is not reported done before that many
        replicas acknowledged it (what survives losing the primary)."""
        if self.wait_replicas:
            try:
                acked = int(await self.client.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms))
            except (RedisError, OSError) as exc:
                raise StoreError(f"write not confirmed by replicas ({type(exc).__name__})") from exc
            if acked < self.wait_replicas:
                raise StoreError(f"write acknowledged by {acked} of {self.wait_replicas} replicas")

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        # A blocking pool: a burst that wants more connections than the pool has waits for one (up to
        # `timeout`) instead of failing with MaxConnectionsError, which the default pool raises at
        # its limit (the worker's concurrent lookups and many requests at once reach it).
        options = {"max_connections": _POOL_CONNECTIONS, "timeout": _POOL_WAIT_SECONDS, **self._client_options}
        pool = aioredis.BlockingConnectionPool.from_url(self.url, decode_responses=True, **options)
        client = aioredis.Redis.from_pool(pool)
        try:
            for name in (
                "CREATE_CARD",
                "APPLY_LEDGER",
                "ENQUEUE",
                "CLAIM_OUTBOX",
                "REGISTER_DEVICE",
                "UNREGISTER_DEVICE",
                "RETRY_OUTBOX",
                "DEAD_LETTER",
                "REQUEUE_DEAD_LETTERS",
                "MIGRATE_DEAD_LETTERS",
                "OUTBOX_OLDEST",
                "FORGET_EVENT_IDS",
                "FORGET_GOOGLE_CALLBACKS",
                "FORGET_FINISHED_JOBS",
                "ADD_FACTS",
                "FORGET_FACTS",
                "ERASE_MEMBER",
                "REMOVE_STALE_REGISTRATION",
                "SERIALS_WITH_TAGS",
                "ADD_APP_TOKEN",
                "DELETE_APP_TOKEN",
                "APP_TOKENS",
                "MARK_PUSHED",
                "COMPLETE_PUSHES",
                "RECORD_GOOGLE_CALLBACK",
                "PUT_GOOGLE_STATE",
                "PUT_STORE_LOCATIONS",
                "DELETE_STORE_LOCATION",
                "PROGRAM_STORE_LOCATIONS",
                "STORES_NEAR",
                "PUT_CAMPAIGN",
                "DELETE_CAMPAIGN",
                "PROGRAM_CAMPAIGNS",
                "RESTART_CAMPAIGNS_JOB",
                "ADD_GEO_JOB",
                "CLAIM_GEO_JOB",
                "CARDS_PAGE",
                "UPDATE_CARDS",
                "CREATE_CARDS",
                "LIST_GEO_JOBS",
                "CREATE_VOUCHER",
                "UPDATE_VOUCHER",
                "CARD_VOUCHERS",
                "CREATE_IMPORT_JOB",
                "ADVANCE_IMPORT_JOB",
            ):
                self._scripts[name] = client.register_script(getattr(lua, name))
            await self._migrate(client)
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def _migrate(self, client: aioredis.Redis) -> None:
        await client.set(self._key("schema"), SCHEMA_VERSION, nx=True)
        stored = await client.get(self._key("schema"))
        if stored is None:  # set just above unless it was there; nothing deletes it
            raise StoreError("redis schema version is missing")
        version = int(stored)
        if version > SCHEMA_VERSION:
            raise StoreError(f"redis schema version {version} is newer than this code ({SCHEMA_VERSION})")
        try:
            # From id 0, so entries added before the group existed are delivered too.
            await client.xgroup_create(self._key("outbox"), GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        if version < 2:
            await self._migrate_to_typed_outbox(client)
            await client.set(self._key("schema"), 2)
        if version < 3:
            await self._backfill_program_cards(client)
            await client.set(self._key("schema"), 3)
        if version < 4:
            await self._backfill_phones_and_jobs(client)
            await client.set(self._key("schema"), 4)
        if version < 5:
            await self._migrate_to_retention(client)
            await client.set(self._key("schema"), 5)
        if version < 6:
            await self._index_nonces_and_finished_jobs(client)
            await client.set(self._key("schema"), 6)

    async def _index_nonces_and_finished_jobs(self, client: aioredis.Redis) -> None:
        """Schema 5 -> 6. Every Google callback nonce (gnonce:<nonce>) goes into gnonces with the
        migration time as its receipt time (kept at least the retention period from now), and every
        finished job into jobs:finished by its created_at: geo jobs done that are not a program's
        "campaigns" job as "g:<id>", import jobs done or failed as "i:<id>". ZADD NX: a rerun after a
        crash, or two processes racing, do no harm, and an entry written meanwhile by this code keeps
        its own time; processes still on schema 5 write no index entries, so upgrade every process
        together (what they record meanwhile is never forgotten)."""
        now = repr(time.time())
        start = len(self._key("gnonce:"))
        batch: list[str] = []

        async def flush() -> None:
            await client.zadd(self._key("gnonces"), {key[start:]: now for key in batch}, nx=True)
            batch.clear()

        async for key in client.scan_iter(match=self._key("gnonce:*"), count=_BACKFILL_BATCH, _type="string"):
            batch.append(_text(key))
            if len(batch) >= _BACKFILL_BATCH:
                await flush()
        if batch:
            await flush()
        finished = self._key("jobs:finished")
        for kind, fields in (("geojob:", ["kind", "done", "created_at"]), ("importjob:", ["state", "created_at"])):
            start = len(self._key(kind))
            keys = [_text(key) async for key in client.scan_iter(match=self._key(kind, "*"), count=500, _type="hash")]
            for offset in range(0, len(keys), _BACKFILL_BATCH):
                chunk = keys[offset : offset + _BACKFILL_BATCH]
                async with client.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.hmget(key, fields)
                    values = await pipe.execute()
                scores: dict[str, float] = {}
                for key, row in zip(chunk, values, strict=True):
                    job_id = key[start:]
                    if kind == "geojob:":
                        job_kind, done, created = row
                        if done == "1" and job_kind not in (None, "campaigns") and not job_id.startswith("campaigns:"):
                            scores["g:" + job_id] = float(created or 0)
                    else:
                        state, created = row
                        if state in ("done", "failed"):
                            scores["i:" + job_id] = float(created or 0)
                if scores:
                    await client.zadd(finished, scores, nx=True)

    async def _migrate_to_retention(self, client: aioredis.Redis) -> None:
        """Schema 4 -> 5. The accepted ledger ids move from the set ledger:ids into the zset
        ledger:accepted, each with the migration time as its acceptance time (they are kept at least
        the retention period from now). The dead list moves into the deadletters stream, oldest first
        (batches moved atomically: nothing lost or doubled). Every waiting outbox entry and delayed
        retry goes into outbox:ages, the open import jobs into importjobs:open, and the rows of jobs
        already done or failed are deleted (personal data, as advance_import_job now does).
        Registrations need nothing: records without program and tier read as "". ZADD NX and
        idempotent steps: a rerun after a crash, or two processes racing, do no harm; processes still
        on schema 4 write where this code no longer reads, so upgrade every process together."""
        now = repr(time.time())
        old_ids, new_ids = self._key("ledger:ids"), self._key("ledger:accepted")
        async for batch in _sscan_batches(client, old_ids):
            await client.zadd(new_ids, {event_id: now for event_id in batch}, nx=True)
        await client.delete(old_ids)
        while int(await self._script("MIGRATE_DEAD_LETTERS", str(_BACKFILL_BATCH))) > 0:
            pass
        ages = self._key("outbox:ages")
        cursor = "-"
        while True:
            rows = await client.xrange(self._key("outbox"), min=cursor, max="+", count=_BACKFILL_BATCH) or []
            found = {
                "s:" + _text(entry_id): float(values["enqueued_at"])
                for entry_id, values in rows
                if entry_id is not None and values and "enqueued_at" in values
            }
            if found:
                await client.zadd(ages, found, nx=True)
            if len(rows) < _BACKFILL_BATCH:
                break
            cursor = "(" + _text(rows[-1][0])
        delayed = [_text(m) for m in await client.zrange(self._key("outbox:delayed"), 0, -1)]
        for offset in range(0, len(delayed), _BACKFILL_BATCH):
            chunk = delayed[offset : offset + _BACKFILL_BATCH]
            await client.zadd(ages, {"d:" + m: float(json.loads(m).get("enqueued_at") or 0) for m in chunk}, nx=True)
        start = len(self._key("importjob:"))
        jobs = [_text(key) async for key in client.scan_iter(match=self._key("importjob:*"), count=500, _type="hash")]
        for offset in range(0, len(jobs), _BACKFILL_BATCH):
            chunk = jobs[offset : offset + _BACKFILL_BATCH]
            async with client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.hmget(key, ["state", "created_at"])
                states = await pipe.execute()
            async with client.pipeline(transaction=False) as pipe:
                for key, (state, created) in zip(chunk, states, strict=True):
                    job_id = key[start:]
                    if state in ("done", "failed"):
                        pipe.delete(self._key("importrows:", job_id))
                    elif state is not None:
                        pipe.zadd(self._key("importjobs:open"), {job_id: float(created or 0)}, nx=True)
                await pipe.execute()

    async def _backfill_phones_and_jobs(self, client: aioredis.Redis) -> None:
        """Schema 3 -> 4: the phone index from every card's member.phone, the first card of the
        program with the phone (by created_at, then number) keeping it; and every geo job into
        geojobs:all (list_geo_jobs). HSETNX and ZADD: idempotent, and a card indexed meanwhile by a
        process on schema 4 keeps its phone. Upgrade every process together, as for schema 3."""
        start = len(self._key("card:"))
        first: dict[tuple[str, str], tuple[int, str]] = {}
        batch: list[str] = []

        async def flush() -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "data")
                datas = await pipe.execute()
            for key, data in zip(batch, datas, strict=True):
                if data is None:
                    continue
                values = json.loads(data)
                phone = (values.get("member") or {}).get("phone")
                if isinstance(phone, str) and phone:
                    candidate = (int(values.get("created_at") or 0), key[start:])
                    index = (str(values["program"]), phone)
                    if index not in first or candidate < first[index]:
                        first[index] = candidate
            batch.clear()

        async for key in client.scan_iter(match=self._key("card:*"), count=_BACKFILL_BATCH, _type="hash"):
            batch.append(_text(key))
            if len(batch) >= _BACKFILL_BATCH:
                await flush()
        if batch:
            await flush()
        items = list(first.items())
        for offset in range(0, len(items), _BACKFILL_BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for (program, phone), (_, number) in items[offset : offset + _BACKFILL_BATCH]:
                    pipe.hsetnx(self._key("phones:", program), phone, number)
                await pipe.execute()
        start = len(self._key("geojob:"))
        jobs = [_text(key) async for key in client.scan_iter(match=self._key("geojob:*"), count=500, _type="hash")]
        for offset in range(0, len(jobs), _BACKFILL_BATCH):
            chunk = jobs[offset : offset + _BACKFILL_BATCH]
            async with client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.hget(key, "created_at")
                created = await pipe.execute()
            scores = {key[start:]: float(at) for key, at in zip(chunk, created, strict=True) if at is not None}
            if scores:
                await client.zadd(self._key("geojobs:all"), scores)

    async def _backfill_program_cards(self, client: aioredis.Redis) -> None:
        """Schema 2 -> 3: every card's number into its program's pcards zset (cards_page).
        Idempotent (ZADD), so a process that races another one through it does no harm; cards
        created meanwhile by processes still on schema 2 are missed until the next migration of
        this kind, so upgrade every process together."""
        start = len(self._key("card:"))
        batch: list[str] = []

        async def flush() -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "data")
                datas = await pipe.execute()
            by_program: dict[str, dict[str, int]] = {}
            for key, data in zip(batch, datas, strict=True):
                if data is not None:
                    program = str(json.loads(data)["program"])
                    by_program.setdefault(program, {})[key[start:]] = 0
            if by_program:
                async with client.pipeline(transaction=False) as pipe:
                    for program, numbers in by_program.items():
                        pipe.zadd(self._key("pcards:", program), numbers)
                    await pipe.execute()
            batch.clear()

        async for key in client.scan_iter(match=self._key("card:*"), count=_BACKFILL_BATCH, _type="hash"):
            batch.append(_text(key))
            if len(batch) >= _BACKFILL_BATCH:
                await flush()
        if batch:
            await flush()

    async def _migrate_to_typed_outbox(self, client: aioredis.Redis) -> None:
        """Schema 1 -> 2: per-device `apns_pass` entries become one `pass_update` per pass, and
        pushed tags move from one hash to one per serial. Run by whichever process opens the
        store first after the upgrade; a lost race only re-pushes a pass (tags dedupe devices)."""
        stream = self._key("outbox")
        async for field, tag in client.hscan_iter(self._key("pushed")):
            try:
                device, pass_type, serial = json.loads(field)
            except ValueError:
                continue
            await self._script("MARK_PUSHED", serial, _reg_field(device, pass_type), str(tag))
        await client.delete(self._key("pushed"))
        passes: set[tuple[str, str]] = set()
        for entry_id, values in await client.xrange(stream) or []:
            # an entry without id or fields is one deleted meanwhile (a shape XRANGE does not return)
            if entry_id is None or values is None or values.get("kind") != "apns_pass":
                continue
            payload = json.loads(values.get("payload") or "{}")
            passes.add((str(payload.get("pass_type_id")), str(payload.get("serial"))))
            await client.xack(stream, GROUP, entry_id)
            await client.xdel(stream, entry_id)
        for reply in await client.zrange(self._key("outbox:delayed"), 0, -1):
            member = _text(reply)  # without WITHSCORES, members only
            old = json.loads(member)
            if old.get("kind") == "apns_pass":
                payload = json.loads(old.get("payload") or "{}")
                passes.add((str(payload.get("pass_type_id")), str(payload.get("serial"))))
                await client.zrem(self._key("outbox:delayed"), member)
        # Schema 1's markers ("<entry id> <tag>" under pending:<serial><field>) are never read again.
        stale = [key async for key in client.scan_iter(match=self._key("pending:*"), count=500)]
        for start in range(0, len(stale), 500):
            await client.delete(*stale[start : start + 500])
        # The message shape of push/messages.PassUpdate, written out: the store may not import push/.
        entries = [
            NewEntry("pass_update", {"pass_type_id": p, "serial": s}, _dumps(["pass_update", p, s]))
            for p, s in sorted(passes)
        ]
        if entries:
            await self._script("ENQUEUE", repr(time.time()), _dumps([_entry_json(e) for e in entries]))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError, StoreError):
            return False

    async def schema_version(self) -> int:
        return int(await self.client.get(self._key("schema")) or 0)

    # -- cards -------------------------------------------------------------------------------
    async def create_card(self, card: Card, *, unique_phone: bool = False) -> tuple[Card, bool]:
        result = await self._script(
            "CREATE_CARD",
            card.number,
            card.serial,
            card.account,
            _dumps(card.to_dict()),
            str(card.version),
            card.program,
            _phone(card),
            "1" if unique_phone else "",
        )
        await self._replicated()
        status = result[0]
        if status == "created":
            return card.with_changes(tag=int(result[1])), True
        if status in ("exists", "phone"):
            existing = await self.get_card(result[1])
            if existing is None:  # cards are never deleted; this would be a damaged index
                raise StoreError(f"{'account' if status == 'exists' else 'phone'} index points at a missing card")
            if existing.program != card.program:
                raise CardConflict("the account already has a card in another program")
            return existing, False
        raise CardConflict("card number or serial is taken")

    async def create_cards(self, cards: Sequence[Card]) -> list[tuple[Card, bool]]:
        """One script for the batch (checks first, then writes); the cards it found by account are
        read afterwards (cards are never deleted)."""
        batch = list(cards)
        if not batch:
            return []
        items = [
            [c.number, c.serial, c.account, _dumps(c.to_dict()), str(c.version), c.program, _phone(c)] for c in batch
        ]
        reply = await self._script("CREATE_CARDS", _dumps(items))
        status = reply[0][0] if reply else ""
        if status == "conflict":
            raise CardConflict(f"card number or serial of {_text(reply[0][1])!r} is taken")
        if status == "program":
            raise CardConflict(f"account {_text(reply[0][1])!r} already has a card in another program")
        await self._replicated()
        made: dict[str, Card] = {}
        for card, (status, value) in zip(batch, reply, strict=True):
            if status == "created":
                made[card.number] = card.with_changes(tag=int(value))
        found = sorted({_text(value) for status, value in reply if status == "exists" and value not in made})
        if found:
            async with self.client.pipeline(transaction=False) as pipe:
                for number in found:
                    pipe.hgetall(self._key("card:", number))
                hashes = await pipe.execute()
            for number, values in zip(found, hashes, strict=True):
                existing = _card_from_hash(values)
                if existing is None:
                    raise StoreError("account index points at a missing card")
                made[number] = existing
        return [
            (made[card.number], True) if status == "created" else (made[_text(value)], False)
            for card, (status, value) in zip(batch, reply, strict=True)
        ]

    async def card_by_phone(self, program: str, phone: str) -> Card | None:
        number = await self.client.hget(self._key("phones:", program), phone)
        return await self.get_card(_text(number)) if number is not None else None

    async def add_consents(self, card_number: str, consents: Sequence[Consent]) -> None:
        if consents:
            await self.client.rpush(
                self._key("consents:", card_number), *[_dumps(dataclasses.asdict(c)) for c in consents]
            )
            await self._replicated()

    async def consents(self, card_number: str) -> list[Consent]:
        values = await self.client.lrange(self._key("consents:", card_number), 0, -1)
        return [Consent(**json.loads(value)) for value in values]

    async def get_card(self, number: str) -> Card | None:
        return _card_from_hash(await self.client.hgetall(self._key("card:", number)))

    async def get_card_by_serial(self, serial: str) -> Card | None:
        number = await self.client.get(self._key("serial:", serial))
        return await self.get_card(_text(number)) if number is not None else None

    async def get_card_by_account(self, account: str) -> Card | None:
        number = await self.client.get(self._key("account:", account))
        return await self.get_card(_text(number)) if number is not None else None

    # -- privacy -------------------------------------------------------------------------------
    async def erase_member(self, card_number: str, now: float, fanout: Fanout = no_fanout) -> Erasure | None:
        """Read the card and the open import jobs' rows, plan the erasure in Python, commit it with
        one script that checks nothing it planned from has moved (the card's tag, the set of open
        jobs, each edited chunk by its SHA-1) and otherwise writes nothing; then read again.
        `fanout` sees the erased card before the script assigns its tag, as in update_cards."""
        for _ in range(_MAX_ERASE_ROUNDS):
            stored = await self.get_card(card_number)
            if stored is None:
                return None
            if stored.erased_at:
                return Erasure(stored, False)
            card = stored.with_changes(
                member=Member(name=""),
                app_token="",
                area=None,
                erased_at=int(now),
                modified_at=next_modified_at(stored.modified_at, now),
            )
            open_jobs, edits = await self._erase_import_rows(stored.account)
            tag = await self._script(
                "ERASE_MEMBER",
                card.number,
                str(stored.tag),
                _dumps(card.to_dict()),
                card.serial,
                card.program,
                _phone(stored),
                repr(now),
                _dumps([_entry_json(entry) for entry in fanout(card)]),
                json.dumps([_ENROLL_WEBHOOK, card.number], separators=(",", ":")),
                _dumps(open_jobs),
                _dumps(edits),
            )
            if tag:
                await self._replicated()
                return Erasure(card.with_changes(tag=int(_text(tag))), True)
        raise StoreError("member erasure kept conflicting with concurrent writers")

    async def _erase_import_rows(self, account: str) -> tuple[list[str], list[list[str]]]:
        """The open import jobs (importjobs:open, in its order) and, for each chunk of their rows
        holding a row of `account` with personal data, [job id, chunk index, SHA-1 of the chunk as
        stored, the chunk without that data]. Reads every row of the open jobs: imports are few and
        short-lived (a finished job loses its rows), and erasures are rare."""
        open_jobs = [_text(job_id) for job_id in await self.client.zrange(self._key("importjobs:open"), 0, -1)]
        if not open_jobs:
            return open_jobs, []
        async with self.client.pipeline(transaction=False) as pipe:
            for job_id in open_jobs:
                pipe.hgetall(self._key("importrows:", job_id))
            per_job = await pipe.execute()
        edits: list[list[str]] = []
        for job_id, chunks in zip(open_jobs, per_job, strict=True):
            for index, data in chunks.items():
                rows = json.loads(data)
                changed = False
                for row in rows:
                    if isinstance(row, dict) and row.get("account") == account:
                        for name in _IMPORT_PERSONAL:
                            if name in row:
                                del row[name]
                                changed = True
                if changed:
                    sha = hashlib.sha1(_text(data).encode()).hexdigest()
                    edits.append([job_id, _text(index), sha, _dumps(rows)])
        return open_jobs, edits

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
        """Plan in Python with ledger.decide against a snapshot, commit with one script that
        checks each card's version and ids are unchanged (compare-and-set) and assigns tags;
        the events of cards that changed meanwhile are re-read and re-planned.

        With `geo_generation` the script checks it before writing anything. Each round is atomic
        on its own: when the generation moves between two rounds (cards of the batch contended
        with another writer), the cards of earlier rounds stay committed, each with content derived
        under the generation it was committed with, and GeoChanged is raised; the caller's retry
        then sees those events as duplicates."""
        if not events:
            return LedgerResult(outcomes=[])
        outcomes: list[tuple[str, Outcome] | None] = [None] * len(events)
        errors: dict[int, str] = {}
        changed: dict[str, Card] = {}
        pending = list(range(len(events)))
        for _ in range(_MAX_LEDGER_ROUNDS):
            batch = [events[i] for i in pending]
            cards, number_by_account, seen = await self._snapshot(batch, geo_generation)
            plan = plan_batch(batch, cards, number_by_account, seen, lambda: 0, now, check, derive)
            for position, (index, outcome) in enumerate(zip(pending, plan.outcomes, strict=True)):
                outcomes[index] = outcome
                errors.pop(index, None)
                if position in plan.errors:
                    errors[index] = plan.errors[position]
            if not plan.changes:
                break
            groups = [
                {
                    "n": number,
                    "s": change.card.serial,
                    "b": str(change.base_version),
                    "v": str(change.card.version),
                    "d": _dumps(change.card.to_dict()),
                    "ids": change.event_ids,
                    "e": [_entry_json(entry) for entry in fanout(change.card)],
                }
                for number, change in plan.changes.items()
            ]
            expected = "" if geo_generation is None else str(geo_generation)
            tags = await self._script("APPLY_LEDGER", repr(now), _dumps(groups), expected)
            if not isinstance(tags, list):
                raise GeoChanged(f"geo generation is no longer {geo_generation}")
            await self._replicated()
            lost: set[str] = set()
            for (number, change), tag in zip(plan.changes.items(), tags, strict=True):
                if tag:
                    changed[number] = change.card.with_changes(tag=int(tag))
                else:
                    lost.add(number)
            if not lost:
                break
            pending = [i for i, event in zip(pending, batch, strict=True) if card_key(event, number_by_account) in lost]
        else:
            raise StoreError("ledger batch kept conflicting with concurrent writers")
        return LedgerResult(
            outcomes=[o for o in outcomes if o is not None], changed=list(changed.values()), errors=errors
        )

    async def _snapshot(
        self, events: list[LedgerEvent], geo_generation: int | None = None
    ) -> tuple[dict[str, Card], dict[str, str], set[str]]:
        """The cards and already accepted ids `events` refer to (two round trips at most).
        With `geo_generation`, GeoChanged when it has already moved (the commit checks again):
        read in the same round trip, so a batch that changes nothing is refused as well."""
        client = self.client
        accounts = sorted({e.account for e in events if e.card_number is None and e.account is not None})
        number_by_account: dict[str, str] = {}
        if accounts:
            numbers_found = await client.mget([self._key("account:", a) for a in accounts])
            number_by_account = {a: _text(n) for a, n in zip(accounts, numbers_found, strict=True) if n is not None}
        numbers = sorted({e.card_number for e in events if e.card_number is not None} | set(number_by_account.values()))
        ids = sorted({e.id for e in events})
        async with client.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hgetall(self._key("card:", number))
            pipe.zmscore(self._key("ledger:accepted"), ids)
            if geo_generation is not None:
                pipe.get(self._key("geo"))
            replies = await pipe.execute()
        if geo_generation is not None:
            current = replies.pop()
            if int(current or 0) != geo_generation:
                raise GeoChanged(f"geo generation is {int(current or 0)}, not {geo_generation}")
        *card_hashes, members = replies
        cards = {}
        for number, values in zip(numbers, card_hashes, strict=True):
            card = _card_from_hash(values)
            if card is not None:
                cards[number] = card
        seen = {event_id for event_id, score in zip(ids, members, strict=True) if score is not None}
        return cards, number_by_account, seen

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
        """The script keeps an existing registration's program and tier (it splices them into the
        record) and counts the install and eviction facts in the same step."""
        field = _reg_field(device_id, pass_type_id)
        record: dict[str, Any] = {
            "device_id": device_id,
            "pass_type_id": pass_type_id,
            "push_token": push_token,
            "updated_at": now,
        }
        # Absent means the default: records written before clients were told apart read the same.
        if client != DEFAULT_CLIENT:
            record["client"] = client
        if push_service_url is not None:
            record["push_service_url"] = push_service_url
        head = _dumps(record)[:-1]  # the script appends program, tier and the closing brace
        limit = str(max(max_devices, 1)) if max_devices is not None else "0"
        added = await self._script("REGISTER_DEVICE", serial, field, head, limit, program, tier, client, fact_day(now))
        await self._replicated()
        return int(added) == 1

    async def unregister_device(self, device_id: str, pass_type_id: str, serial: str, now: float | None = None) -> bool:
        at = time.time() if now is None else now
        removed = await self._script("UNREGISTER_DEVICE", _reg_field(device_id, pass_type_id), serial, fact_day(at))
        return int(removed) == 1

    @staticmethod
    def _registration(serial: str, value: bytes | str) -> Registration:
        data = json.loads(value)
        return Registration(
            device_id=data["device_id"],
            pass_type_id=data["pass_type_id"],
            serial=serial,
            push_token=data["push_token"],
            updated_at=data["updated_at"],
            client=data.get("client", DEFAULT_CLIENT),
            push_service_url=data.get("push_service_url"),
        )

    async def get_registrations(self, serial: str) -> list[Registration]:
        values = await self.client.hgetall(self._key("regs:", serial))
        regs = [self._registration(serial, value) for value in values.values()]
        return sorted(regs, key=lambda r: (r.device_id, r.pass_type_id))

    async def get_registration(self, device_id: str, pass_type_id: str, serial: str) -> Registration | None:
        value = await self.client.hget(self._key("regs:", serial), _reg_field(device_id, pass_type_id))
        return self._registration(serial, value) if value is not None else None

    async def count_registrations(self, serial: str) -> int:
        return int(await self.client.hlen(self._key("regs:", serial)))

    async def count_registrations_by_client(self, serial: str) -> dict[str, int]:
        # A serial's registrations are bounded (max_devices_per_pass): counting them here is cheap.
        counts: dict[str, int] = {}
        for value in (await self.client.hgetall(self._key("regs:", serial))).values():
            client = json.loads(value).get("client", DEFAULT_CLIENT)
            counts[client] = counts.get(client, 0) + 1
        return counts

    async def remove_registration_if_stale(
        self, device_id: str, pass_type_id: str, serial: str, push_token: str, before: float
    ) -> bool:
        # The port gives no `now` here: the remove fact is counted on this clock's day.
        removed = await self._script(
            "REMOVE_STALE_REGISTRATION",
            _reg_field(device_id, pass_type_id),
            serial,
            push_token,
            repr(before),
            fact_day(time.time()),
        )
        return removed == 1

    async def serials_updated_since(
        self, device_id: str, pass_type_id: str, since_tag: int | None
    ) -> tuple[list[str], int]:
        rows = await self._script("SERIALS_WITH_TAGS", _reg_field(device_id, pass_type_id))
        floor = -1 if since_tag is None else since_tag
        # A serial without a tag has no card (yet); it has nothing to report.
        found = sorted((int(tag), serial) for serial, tag in rows if tag and int(tag) > floor)
        return [serial for _, serial in found], max((tag for tag, _ in found), default=0)

    # -- device logs ---------------------------------------------------------------------------
    async def append_device_logs(self, messages: list[str], now: float, keep: int) -> None:
        await self._append_bounded(self._key("devlogs"), [_dumps([now, m]) for m in messages], keep)

    async def list_device_logs(self, limit: int) -> list[tuple[float, str]]:
        rows = await self._newest(self._key("devlogs"), limit)
        return [(at, message) for at, message in rows]

    async def _append_bounded(self, key: str, values: list[str], keep: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            if values:
                pipe.lpush(key, *values)
            if keep > 0:
                pipe.ltrim(key, 0, keep - 1)
            else:
                pipe.delete(key)
            await pipe.execute()

    async def _newest(self, key: str, limit: int) -> list[Any]:
        if limit <= 0:
            return []
        return [json.loads(value) for value in await self.client.lrange(key, 0, limit - 1)]

    # -- companion-app tokens ------------------------------------------------------------------
    async def add_app_token(self, card_number: str, platform: str, token: str, now: float) -> None:
        # A token identifies one app install; registering it again (even for another card) moves it.
        value = _dumps({"card": card_number, "platform": platform, "updated_at": now})
        await self._script("ADD_APP_TOKEN", token, card_number, value)

    async def app_tokens(self, card_number: str) -> list[AppToken]:
        tokens = []
        for token, value in await self._script("APP_TOKENS", card_number):
            data = json.loads(value)
            tokens.append(
                AppToken(card_number=card_number, platform=data["platform"], token=token, updated_at=data["updated_at"])
            )
        return sorted(tokens, key=lambda t: (t.updated_at, t.token))

    async def delete_app_token(self, token: str) -> None:
        await self._script("DELETE_APP_TOKEN", token)

    # -- outbox --------------------------------------------------------------------------------
    async def enqueue(self, entries: Sequence[NewEntry], now: float) -> list[str]:
        if not entries:
            return []
        ids = list(await self._script("ENQUEUE", repr(now), _dumps([_entry_json(e) for e in entries])))
        await self._replicated()
        return ids

    async def claim_outbox(self, consumer: str, limit: int, lease_seconds: float, now: float) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        rows = await self._script(
            "CLAIM_OUTBOX", GROUP, consumer, str(limit), str(max(int(lease_seconds * 1000), 0)), repr(now)
        )
        return [_outbox_entry(entry_id, flat) for entry_id, flat in rows]

    async def ack_outbox(self, entry_ids: list[str]) -> None:
        # Whoever holds the lease now, a delivered entry is done: no owner check.
        if not entry_ids:
            return
        stream = self._key("outbox")
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(stream, GROUP, *entry_ids)
            pipe.xdel(stream, *entry_ids)
            pipe.zrem(self._key("outbox:ages"), *["s:" + entry_id for entry_id in entry_ids])
            await pipe.execute()

    async def retry_outbox(self, entry: OutboxEntry, delay_seconds: float, now: float) -> None:
        # The entry comes back under a new stream id once due; the uid keeps zset members distinct.
        member = _dumps(
            {
                "uid": uuid.uuid4().hex,
                "kind": entry.kind,
                "fields": [part for item in entry.fields.items() for part in item],
                "attempts": str(entry.attempts + 1),
                "enqueued_at": repr(entry.enqueued_at),
            }
        )
        await self._script(
            "RETRY_OUTBOX", GROUP, entry.id, member, repr(now + delay_seconds), repr(float(entry.enqueued_at))
        )

    async def dead_letter(self, entry: OutboxEntry, error: str, now: float, keep: int = DEAD_LETTERS_KEPT) -> None:
        """Moves the entry when it is still in the outbox (an entry already acknowledged or
        dead-lettered elsewhere is not recorded twice); the oldest beyond `keep` are dropped by the
        same script, which names them (id and kind) for the log."""
        record = _dumps(
            {
                "entry": {
                    "id": entry.id,
                    "kind": entry.kind,
                    "fields": entry.fields,
                    "attempts": entry.attempts,
                    "enqueued_at": entry.enqueued_at,
                },
                "error": error,
                "failed_at": now,
            }
        )
        _, dropped = await self._script("DEAD_LETTER", GROUP, entry.id, entry.kind, record, str(keep))
        for dropped_id, kind in dropped:
            log.warning("dead letter %s (%s) dropped: more than %d kept", _text(dropped_id), _text(kind), keep)

    async def list_dead_letters(self, limit: int, *, before: str | None = None) -> list[DeadLetter]:
        if limit <= 0:
            return []
        if before is None:
            top = "+"
        elif _stream_id(before) is not None:
            top = "(" + before
        else:
            return []  # no dead letter has that id, so none is older than it
        rows = await self.client.xrevrange(self._key("deadletters"), max=top, min="-", count=limit) or []
        # an entry without id or fields is one deleted meanwhile (a shape XREVRANGE does not return)
        return [_dead_letter(_text(entry_id), values) for entry_id, values in rows if entry_id is not None and values]

    async def count_dead_letters(self) -> int:
        return int(await self.client.xlen(self._key("deadletters")))

    async def requeue_dead_letters(self, ids: Sequence[str] | None, now: float, limit: int = 1000) -> list[str]:
        """Each dead letter is moved by one script (out of deadletters, into the outbox); named ids
        go oldest first, in batches. `limit` bounds the oldest-first mode (ids=None) only."""
        if ids is None:
            if limit <= 0:
                return []
            moved = await self._script("REQUEUE_DEAD_LETTERS", repr(now), "", str(limit))
        else:
            # Unknown ids are skipped: ones that are not stream ids would be an error to XRANGE.
            named = sorted({i for i in ids if _stream_id(i) is not None}, key=lambda i: _stream_id(i) or (0, 0))
            moved = []
            for start in range(0, len(named), _REQUEUE_BATCH):
                chunk = named[start : start + _REQUEUE_BATCH]
                moved.extend(await self._script("REQUEUE_DEAD_LETTERS", repr(now), _dumps(chunk), "0"))
        # Durable: the operator is told these are back in the outbox.
        await self._replicated()
        return [_text(i) for i in moved]

    async def outbox_oldest(self) -> float | None:
        oldest = await self._script("OUTBOX_OLDEST")
        return None if oldest is None else float(_text(oldest))

    async def outbox_size(self) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xlen(self._key("outbox"))
            pipe.zcard(self._key("outbox:delayed"))
            in_stream, delayed = await pipe.execute()
        return int(in_stream) + int(delayed)

    async def last_pushed_tag(self, device_id: str, pass_type_id: str, serial: str) -> int:
        value = await self.client.hget(self._key("pushed:", serial), _reg_field(device_id, pass_type_id))
        return int(value) if value is not None else 0

    async def mark_pushed(self, device_id: str, pass_type_id: str, serial: str, tag: int) -> None:
        # Kept at the maximum: a slow worker finishing an older push must not move it back.
        await self._script("MARK_PUSHED", serial, _reg_field(device_id, pass_type_id), str(tag))

    # -- batched push bookkeeping --------------------------------------------------------------
    async def pass_targets(self, keys: Sequence[PassKey]) -> dict[PassKey, PassTargets]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        # MULTI: tags, registrations and pushed tags read at one point in time, in one round trip.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(self._key("serialtag"), [serial for _, serial in unique])
            for _, serial in unique:
                pipe.hgetall(self._key("regs:", serial))
                pipe.hgetall(self._key("pushed:", serial))
            tags, *per_serial = await pipe.execute()
        found: dict[PassKey, PassTargets] = {}
        for index, (pass_type, serial) in enumerate(unique):
            regs, pushed = per_serial[2 * index], per_serial[2 * index + 1]
            devices = []
            for field, value in regs.items():
                data = json.loads(value)
                if data["pass_type_id"] == pass_type:
                    devices.append(
                        DeviceTarget(
                            data["device_id"],
                            data["push_token"],
                            int(pushed.get(field) or 0),
                            data.get("client", DEFAULT_CLIENT),
                            data.get("push_service_url"),
                        )
                    )
            devices.sort(key=lambda d: d.device_id)
            found[(pass_type, serial)] = PassTargets(int(tags[index] or 0), tuple(devices))
        return found

    async def complete_pushes(
        self, marks: Sequence[PushMark], acks: Sequence[str], journal: list[dict[str, Any]], now: float, keep: int
    ) -> None:
        if not marks and not acks and not journal:
            return
        flat_marks = [[m.serial, _reg_field(m.device_id, m.pass_type_id), str(m.tag)] for m in marks if m.tag > 0]
        await self._script(
            "COMPLETE_PUSHES",
            GROUP,
            str(keep),
            _dumps(flat_marks),
            _dumps(list(acks)),
            _dumps([_dumps({"at": now, **record}) for record in journal]),
            fact_day(now),
            _push_facts(journal),
        )

    # -- push journal --------------------------------------------------------------------------
    async def record_push(self, record: dict[str, Any], now: float, keep: int) -> None:
        """Stores `record`, with `at` = now added unless it has one, and counts its push fact in
        the same step."""
        await self._script(
            "COMPLETE_PUSHES",
            GROUP,
            str(keep),
            "[]",
            "[]",
            _dumps([_dumps({"at": now, **record})]),
            fact_day(now),
            _push_facts([record]),
        )

    async def list_pushes(self, limit: int) -> list[dict[str, Any]]:
        return await self._newest(self._key("pushes"), limit)

    # -- Google Wallet callbacks -----------------------------------------------------------------
    async def record_google_callback(
        self, nonce: str, object_id: str, event: str, at: float, *, program: str = "", tier: str = ""
    ) -> bool:
        action = {"save": "install", "del": "remove"}.get(event)
        dims = _dumps([program, "google", tier, action]) if action else ""
        added = await self._script(
            "RECORD_GOOGLE_CALLBACK",
            nonce,
            object_id,
            _dumps([event, at]),
            str(GOOGLE_EVENTS_KEPT),
            fact_day(at),
            dims,
            repr(float(at)),
        )
        # Promised: once Google hears 200 it does not send the callback again.
        await self._replicated()
        return int(added) == 1

    async def google_installs(self, object_id: str, limit: int = GOOGLE_EVENTS_KEPT) -> list[tuple[str, float]]:
        rows = await self._newest(self._key("ginstalls:", object_id), limit)
        return [(event, float(at)) for event, at in rows]

    # -- retention -------------------------------------------------------------------------------
    async def forget_event_ids(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        return int(await self._script("FORGET_EVENT_IDS", repr(float(before)), str(limit)))

    async def forget_google_callbacks(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        # Bounded: the oldest `limit` of gnonces, each with its marker and its object's oldest record.
        return int(await self._script("FORGET_GOOGLE_CALLBACKS", repr(float(before)), str(limit)))

    async def forget_finished_jobs(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        # Bounded: jobs:finished holds only finished jobs; each goes with its keys in one script.
        return int(await self._script("FORGET_FINISHED_JOBS", repr(float(before)), str(limit)))

    # -- report facts ----------------------------------------------------------------------------
    async def add_facts(self, family: str, dims: Sequence[tuple[str, ...]], now: float) -> None:
        if dims:
            await self._script("ADD_FACTS", fact_day(now), family, _fact_counts(dims))

    async def fact_counts(self, family: str, from_day: str, to_day: str) -> list[FactCount]:
        if from_day > to_day:
            return []
        # Members "<day>:<family>": every one of to_day is below "<to_day>;" (";" follows ":").
        groups = await self.client.zrangebylex(self._key("factdays"), "[" + from_day, "(" + to_day + ";")
        days = [member[:10] for member in map(_text, groups) if member[10:11] == ":" and member[11:] == family]
        if not days:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self._key("facts:", family, ":", day))
            per_day = await pipe.execute()
        counts: dict[tuple[str, tuple[str, ...]], int] = {}
        for day, values in zip(days, per_day, strict=True):
            for dims, count in values.items():
                # Summed by value: a dims tuple may be written by Python and by cjson (remove facts),
                # whose escapes can differ for the same strings.
                key = (day, tuple(str(part) for part in json.loads(dims) or ()))
                counts[key] = counts.get(key, 0) + int(count)
        return [FactCount(day, dims, count) for (day, dims), count in sorted(counts.items()) if count]

    async def forget_facts(self, before_day: str, limit: int) -> int:
        if limit <= 0:
            return 0
        return int(await self._script("FORGET_FACTS", before_day, str(limit)))

    # -- Google Wallet sync bookkeeping ------------------------------------------------------------
    async def get_google_state(self, serial: str) -> GoogleState | None:
        data = await self.client.hget(self._key("gstate:", serial), "data")
        return None if data is None else GoogleState.from_dict(json.loads(_text(data)))

    async def put_google_state(self, serial: str, state: GoogleState) -> bool:
        written = await self._script("PUT_GOOGLE_STATE", serial, str(state.version), _dumps(state.to_dict()))
        return int(written) == 1

    # -- store locations -----------------------------------------------------------------------
    async def put_store_location(self, loc: StoreLocation) -> bool:
        return await self.put_store_locations([loc]) == 1

    async def put_store_locations(self, locs: Sequence[StoreLocation]) -> int:
        checked = check_store_locations(locs)
        if not checked:
            return 0
        items = []
        for loc in checked:
            stored = dataclasses.replace(loc, lat=float(loc.lat), lon=float(loc.lon))
            items.append(
                [loc.id, loc.program, repr(_geo_lon(stored.lon)), repr(stored.lat), _dumps(dataclasses.asdict(stored))]
            )
        # The port's location writes take no `now`: the restarted jobs are stamped with this clock.
        new = int(await self._script("PUT_STORE_LOCATIONS", _dumps(items), repr(time.time())))
        await self._replicated()
        return new

    async def delete_store_location(self, location_id: str) -> bool:
        removed = int(await self._script("DELETE_STORE_LOCATION", location_id, repr(time.time())))
        await self._replicated()
        return removed == 1

    async def get_store_location(self, location_id: str) -> StoreLocation | None:
        data = await self.client.hget(self._key("storeloc"), location_id)
        return None if data is None else _location(_text(data))

    async def list_store_locations(self, program: str | None = None) -> list[StoreLocation]:
        if program is None:
            values = list((await self.client.hgetall(self._key("storeloc"))).values())
        else:
            values = [v for v in await self._script("PROGRAM_STORE_LOCATIONS", program) if v is not None]
        return sorted((_location(_text(v)) for v in values), key=lambda loc: loc.id)

    async def store_locations_near(
        self, lat: float, lon: float, radius_m: float, *, program: str | None = None, limit: int = 100
    ) -> list[tuple[StoreLocation, float]]:
        """GEOSEARCH (nearest first by Redis' distance, GEO_TOLERANCE_M more radius), then
        haversine_m on the stored coordinates. A store Redis did not return is at least its
        last distance away by Redis, so at least that minus GEO_TOLERANCE_M exactly: when the
        cut could hide one (it would not be past the radius or the limit's last), ask again
        for more."""
        check_near_query(lat, lon, radius_m)
        if limit <= 0:
            return []
        boxes = search_boxes(lat, lon, radius_m)
        if len(boxes) > 1 or boxes[0][3] - boxes[0][2] >= 360.0:
            # Across the antimeridian or around a pole Redis 7.0's GEOSEARCH misses points
            # (its geohash neighbours do not wrap): measure the program's stores in Python.
            return nearest_first(
                (
                    (loc, distance)
                    for loc in await self.list_store_locations(program)
                    if (distance := haversine_m(lat, lon, loc.lat, loc.lon)) <= radius_m
                ),
                limit,
            )
        suffix = "" if program is None else ":" + program
        search_radius = repr(float(min(radius_m, _MAX_RADIUS_M) + GEO_TOLERANCE_M))
        count = limit + _NEAR_SLACK
        while True:
            hits = await self._script(
                "STORES_NEAR", suffix, repr(_geo_lon(float(lon))), repr(float(lat)), search_radius, str(count)
            )
            found = []
            for _, _, data in hits:
                if data:
                    loc = _location(_text(data))
                    distance = haversine_m(lat, lon, loc.lat, loc.lon)
                    if distance <= radius_m:
                        found.append((loc, distance))
            result = nearest_first(found, limit)
            if len(hits) < count:  # everything within the search radius
                return result
            floor = float(hits[-1][1]) - GEO_TOLERANCE_M  # no store left out is nearer than this
            if floor > radius_m or (len(result) == limit and result[-1][1] < floor):
                return result
            count *= 4

    # -- geo: generation, campaigns, jobs, card updates, alerts --------------------------------
    async def geo_generation(self) -> int:
        return int(await self.client.get(self._key("geo")) or 0)

    async def put_campaign(self, campaign: Mapping[str, Any], now: float) -> bool:
        campaign_id, program = _campaign_key(campaign)
        new = int(await self._script("PUT_CAMPAIGN", campaign_id, program, _dumps(dict(campaign)), repr(now)))
        await self._replicated()
        return new == 1

    async def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        data = await self.client.hget(self._key("campaigns"), campaign_id)
        return None if data is None else json.loads(_text(data))

    async def list_campaigns(self, program: str | None = None) -> list[dict[str, Any]]:
        if program is None:
            values = list((await self.client.hgetall(self._key("campaigns"))).values())
        else:
            values = [v for v in await self._script("PROGRAM_CAMPAIGNS", program) if v is not None]
        return sorted((json.loads(_text(v)) for v in values), key=lambda c: str(c["id"]))

    async def delete_campaign(self, campaign_id: str, now: float) -> bool:
        removed = int(await self._script("DELETE_CAMPAIGN", campaign_id, repr(now)))
        await self._replicated()
        return removed == 1

    async def restart_campaigns_job(self, program: str, now: float) -> None:
        await self._script("RESTART_CAMPAIGNS_JOB", program, repr(now))
        await self._replicated()

    async def add_geo_job(self, job_id: str, program: str, kind: str, payload: Mapping[str, Any], now: float) -> bool:
        added = int(await self._script("ADD_GEO_JOB", job_id, program, kind, _dumps(dict(payload)), repr(now)))
        await self._replicated()
        return added == 1

    async def get_geo_job(self, job_id: str) -> GeoJob | None:
        values = await self.client.hmget(
            self._key("geojob:", job_id), ["program", "kind", "payload", "cursor", "created_at", "done"]
        )
        return None if values[0] is None else _geo_job(job_id, values)

    async def claim_geo_job(self, owner: str, lease_seconds: float, now: float) -> GeoJob | None:
        row = await self._script("CLAIM_GEO_JOB", owner, repr(float(now + lease_seconds)), repr(float(now)))
        return None if not row else _geo_job(_text(row[0]), row[1:])

    async def cards_page(self, program: str, after: str, limit: int) -> list[Card]:
        if limit <= 0:
            return []
        flat = await self._script("CARDS_PAGE", program, after, str(limit))
        cards = []
        for index in range(0, len(flat), 3):
            data = _loads_card(flat[index])
            data["version"] = int(flat[index + 1])
            data["tag"] = int(flat[index + 2])
            cards.append(Card.from_dict(data))
        return cards

    async def update_cards(
        self,
        updates: Sequence[CardUpdate],
        now: float,
        fanout: Fanout = no_fanout,
        *,
        geo_generation: int | None = None,
        step: JobStep | None = None,
    ) -> UpdateResult:
        """One read of the cards (for version, modified_at and the tag precheck), one script that
        compares each card's tag and commits. A card whose tag matches in the script is the one
        read: every write that changes version or modified_at also moves the tag. `fanout` sees
        the card before the script assigns its tag (the tag it had), as in apply_ledger_events."""
        if not updates and step is None:
            return UpdateResult(cards=[])
        numbers = sorted({update.card.number for update in updates})
        async with self.client.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hgetall(self._key("card:", number))
            if geo_generation is not None:
                pipe.get(self._key("geo"))
            replies = await pipe.execute()
        if geo_generation is not None:
            current = int(replies.pop() or 0)
            if current != geo_generation:
                raise GeoChanged(f"geo generation is {current}, not {geo_generation}")
        state: dict[str, Card] = {}
        for number, values in zip(numbers, replies, strict=True):
            card = _card_from_hash(values)
            if card is not None:
                state[number] = card
        planned: list[Card | None] = []
        items: list[dict[str, Any]] = []
        for update in updates:
            stored = state.get(update.card.number)
            # Tags only grow, so a tag that differs now can never match again: no need to ask.
            if stored is None or stored.tag != update.expected_tag:
                planned.append(None)
                continue
            # Identity and version are the store's: indexes (serial, account, program) stay true.
            card = update.card.with_changes(
                serial=stored.serial,
                account=stored.account,
                program=stored.program,
                version=stored.version,
                tag=stored.tag,
                modified_at=next_modified_at(stored.modified_at, now) if update.bump else stored.modified_at,
            )
            items.append(
                {
                    "n": card.number,
                    "s": card.serial,
                    "t": str(update.expected_tag),
                    "b": 1 if update.bump else 0,
                    "d": _dumps(card.to_dict()),
                    "e": [_entry_json(entry) for entry in fanout(card)] if update.bump else [],
                }
            )
            planned.append(card)
            # A second update of the card in this batch expects the tag this one leaves; a bump's
            # is only known in the script, which compares it there (here: -1, no match).
            state[card.number] = card.with_changes(tag=-1) if update.bump else card
        # A step goes to the script only while every update may still be written (it checks the rest).
        step_json = ""
        if step is not None and all(card is not None for card in planned):
            step_json = _dumps({"j": step.job_id, "o": step.owner, "c": step.cursor, "f": int(step.done)})
        if not items and not step_json:
            return UpdateResult(cards=planned)
        reply = await self._script(
            "UPDATE_CARDS",
            repr(now),
            _dumps(items) if items else "[]",
            "" if geo_generation is None else str(geo_generation),
            step_json,
        )
        if not isinstance(reply, list):
            raise GeoChanged(f"geo generation is no longer {geo_generation}")
        await self._replicated()
        advanced, tags = reply
        sent = iter(tags)
        cards: list[Card | None] = []
        for card in planned:
            tag = _text(next(sent)) if card is not None else ""
            cards.append(card.with_changes(tag=int(tag)) if card is not None and tag else None)
        return UpdateResult(cards=cards, advanced=int(advanced) == 1)

    async def reserve_alert(
        self,
        card_number: str,
        record: AlertRecord,
        decide: Callable[[Sequence[AlertRecord]], str | None],
        keep_since: float,
    ) -> str | None:
        """WATCH the card's alerts, `decide` in Python, write in MULTI: a write by another call
        in between fails EXEC, and the round starts again on the new history."""
        key = self._key("alerts:", card_number)
        for _ in range(_MAX_ALERT_ROUNDS):
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    records = _alerts(await pipe.get(key))
                    answer = decide(records)
                    if answer is not None:
                        await pipe.unwatch()
                        return answer
                    # Stable: records of the same `at` stay in the order they were added.
                    kept = sorted([*records, record], key=lambda r: r.at)
                    kept = [r for r in kept if r.at >= keep_since][-ALERTS_KEPT:]
                    pipe.multi()
                    if kept:
                        pipe.set(key, _dumps([[r.at, r.campaign, r.store] for r in kept]))
                    else:
                        pipe.delete(key)
                    await pipe.execute()
                    return None
                except WatchError:
                    continue
        raise StoreError("alert reservation kept conflicting with concurrent writers")

    async def alert_records(self, card_number: str) -> list[AlertRecord]:
        return _alerts(await self.client.get(self._key("alerts:", card_number)))

    async def list_geo_jobs(
        self, program: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[GeoJob]:
        if limit <= 0:
            return []
        rows = await self._script(
            "LIST_GEO_JOBS",
            "" if program is None else "1",
            program or "",
            "" if kind is None else "1",
            kind or "",
            str(limit),
        )
        return [_geo_job(_text(row[0]), row[1:]) for row in rows]

    # -- vouchers ------------------------------------------------------------------------------
    async def create_voucher(self, voucher: Voucher, now: float, fanout: Fanout = no_fanout) -> tuple[Voucher, bool]:
        """`fanout` sees the voucher before the script assigns its tag (as in apply_ledger_events)."""
        entries = [_entry_json(entry) for entry in _voucher_fanout(fanout, voucher)]
        reply = await self._script(
            "CREATE_VOUCHER",
            _voucher_key(voucher.kind, voucher.id),
            voucher.serial,
            voucher.card_number or "",
            _dumps(dataclasses.asdict(voucher)),
            repr(now),
            _dumps(entries),
        )
        status = reply[0]
        if status == "exists":
            return _voucher(reply[1], reply[2]), False
        if status != "created":
            raise StoreError("the voucher's serial is taken")
        await self._replicated()
        return dataclasses.replace(voucher, data=dict(voucher.data), tag=int(reply[1])), True

    async def get_voucher(self, kind: str, voucher_id: str) -> Voucher | None:
        data, tag = await self.client.hmget(self._key("voucher:", _voucher_key(kind, voucher_id)), ["data", "tag"])
        return None if data is None else _voucher(data, tag)

    async def get_voucher_by_serial(self, serial: str) -> Voucher | None:
        key = await self.client.get(self._key("vserial:", serial))
        if key is None:
            return None
        data, tag = await self.client.hmget(self._key("voucher:", _text(key)), ["data", "tag"])
        return None if data is None else _voucher(data, tag)

    async def vouchers_of_card(self, card_number: str) -> list[Voucher]:
        return [_voucher(data, tag) for data, tag in await self._script("CARD_VOUCHERS", card_number)]

    async def update_voucher(
        self, voucher: Voucher, expected_tag: int, now: float, fanout: Fanout = no_fanout
    ) -> Voucher | None:
        """Read it (for modified_at and the identity), then one script that compares the tag and
        commits; a voucher whose tag matches there is the one read (every write moves the tag)."""
        stored = await self.get_voucher(voucher.kind, voucher.id)
        if stored is None or stored.tag != expected_tag:
            return None
        updated = dataclasses.replace(
            stored,
            data=dict(voucher.data),
            voided=voucher.voided,
            modified_at=next_modified_at(stored.modified_at, now),
        )
        tag = await self._script(
            "UPDATE_VOUCHER",
            _voucher_key(stored.kind, stored.id),
            stored.serial,
            str(expected_tag),
            _dumps(dataclasses.asdict(updated)),
            repr(now),
            _dumps([_entry_json(entry) for entry in _voucher_fanout(fanout, updated)]),
        )
        if not tag:
            return None
        await self._replicated()
        return dataclasses.replace(updated, tag=int(_text(tag)))

    # -- bulk import jobs ----------------------------------------------------------------------
    async def create_import_job(self, job: ImportJob, rows: Sequence[Mapping[str, Any]]) -> bool:
        chunks = [
            _dumps([dict(row) for row in rows[start : start + _IMPORT_CHUNK]])
            for start in range(0, len(rows), _IMPORT_CHUNK)
        ]
        created = await self._script(
            "CREATE_IMPORT_JOB",
            job.id,
            job.program,
            job.state,
            str(job.rows),
            str(job.done),
            repr(float(job.created_at)),
            repr(float(job.updated_at)),
            _dumps(job.meta),
            _dumps([_dumps(dict(error)) for error in job.errors]),
            *chunks,
        )
        await self._replicated()
        return int(created) == 1

    async def get_import_job(self, job_id: str) -> ImportJob | None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key("importjob:", job_id))
            pipe.lrange(self._key("importerrs:", job_id), 0, -1)
            values, errors = await pipe.execute()
        if not values:
            return None
        return ImportJob(
            id=job_id,
            program=values["program"],
            state=values["state"],
            rows=int(values["rows"]),
            done=int(values["done"]),
            created_at=float(values["created_at"]),
            updated_at=float(values["updated_at"]),
            errors=[json.loads(error) for error in errors],
            meta=json.loads(values["meta"]),
        )

    async def import_rows(self, job_id: str, start: int, limit: int) -> list[dict[str, Any]]:
        start = max(start, 0)
        if limit <= 0:
            return []
        end = start + limit
        indexes = list(range(start // _IMPORT_CHUNK, (end - 1) // _IMPORT_CHUNK + 1))
        chunks = await self.client.hmget(self._key("importrows:", job_id), [str(i) for i in indexes])
        rows: list[dict[str, Any]] = []
        for index, data in zip(indexes, chunks, strict=True):
            if data is None:
                break
            base = index * _IMPORT_CHUNK
            rows.extend(_loads_card(_text(data))[max(start - base, 0) : max(end - base, 0)])
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
        await self._script(
            "ADVANCE_IMPORT_JOB",
            job_id,
            str(done),
            repr(float(now)),
            state or "",
            _dumps([[account, _dumps([account, number])] for account, number in results]),
            _dumps([_dumps(dict(error)) for error in errors]),
        )

    async def import_results(self, job_id: str, start: int, limit: int) -> list[tuple[str, str]]:
        start = max(start, 0)
        if limit <= 0:
            return []
        values = await self.client.lrange(self._key("importres:", job_id), start, start + limit - 1)
        return [(account, number) for account, number in (json.loads(value) for value in values)]


def _loads_card(data: str) -> Any:
    # A job pages over every card of a program: orjson decodes several times faster; json for
    # what it refuses (integers beyond 64 bits, NaN), so every stored card still reads back.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _campaign_key(campaign: Mapping[str, Any]) -> tuple[str, str]:
    campaign_id, program = campaign.get("id"), campaign.get("program")
    if not isinstance(campaign_id, str) or not campaign_id or not isinstance(program, str) or not program:
        raise StoreError("a campaign needs a non-empty string id and program")
    return campaign_id, program


def _geo_job(job_id: str, values: Sequence[Any]) -> GeoJob:
    program, kind, payload, cursor, created_at, done = (_text(v) for v in values)
    return GeoJob(job_id, program, kind, json.loads(payload), cursor, float(created_at), done == "1")


def _alerts(data: object) -> list[AlertRecord]:
    if data is None:
        return []
    return [AlertRecord(float(at), str(campaign), str(store)) for at, campaign, store in json.loads(_text(data))]


def _voucher_fanout(fanout: Fanout, voucher: Voucher) -> Sequence[NewEntry]:
    """`fanout` of the voucher's state: the port types Fanout over cards, and a voucher is a pass
    whose serial works as a card's (a fanout reads the serial, as push/messages.PassUpdate needs)."""
    return fanout(voucher)  # type: ignore[arg-type]
