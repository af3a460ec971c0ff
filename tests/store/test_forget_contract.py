"""Retention of Google callbacks and finished jobs, against every adapter (store/port.py
forget_google_callbacks, forget_finished_jobs): received or created before the horizon, oldest
first within the limit; a forgotten nonce is recorded again as new; a finished job goes with its
rows, results and errors, while open jobs and a program's "campaigns" job stay. Then the upgrades
that index what was stored before: Redis schema 5 -> 6 and SQLite migration 10."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from store.port import FACT_INSTALLS, FactCount, ImportJob, JobStep, Store
from store.redis import SCHEMA_VERSION, RedisStore
from store.schema.sqlite import MIGRATIONS
from store.sqlite import SqliteStore
from tests.conftest import REDIS_URL, delete_prefix
from tests.store.conftest import sqlite_at_schema

NOW = 1_700_000_000.0
OBJECT = "3388000000022141777.card-1"
OTHER = "3388000000022141777.card-2"


# -- forget_google_callbacks ----------------------------------------------------------------------


async def test_callbacks_before_the_horizon_are_forgotten_oldest_first(store: Store) -> None:
    assert await store.record_google_callback("n1", OBJECT, "save", NOW)
    assert await store.record_google_callback("n2", OTHER, "save", NOW + 1)
    assert await store.record_google_callback("n3", OBJECT, "del", NOW + 2)
    assert await store.record_google_callback("n4", OBJECT, "save", NOW + 10)  # after the horizon
    assert await store.forget_google_callbacks(NOW, 10) == 0  # received at NOW: not before it
    assert await store.forget_google_callbacks(NOW + 5, 0) == 0
    assert await store.forget_google_callbacks(NOW + 5, 2) == 2  # n1, n2
    assert await store.google_installs(OBJECT) == [("save", NOW + 10), ("del", NOW + 2)]
    assert await store.google_installs(OTHER) == []
    assert await store.forget_google_callbacks(NOW + 5, 10) == 1  # n3
    assert await store.google_installs(OBJECT) == [("save", NOW + 10)]
    assert await store.forget_google_callbacks(NOW + 5, 10) == 0
    # kept: still a replay
    assert await store.record_google_callback("n4", OBJECT, "save", NOW + 11) is False
    assert await store.google_installs(OBJECT) == [("save", NOW + 10)]


async def test_forget_google_callbacks_honours_the_limit(store: Store) -> None:
    for i in range(5):
        assert await store.record_google_callback(f"n{i}", OBJECT, "save", NOW + i)
    assert [await store.forget_google_callbacks(NOW + 100, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert await store.google_installs(OBJECT) == []


async def test_a_forgotten_nonce_is_recorded_again_as_new(store: Store) -> None:
    async def installs() -> list[FactCount]:
        return await store.fact_counts(FACT_INSTALLS, "2000-01-01", "2999-12-31")

    assert await store.record_google_callback("n1", OBJECT, "save", NOW, program="coffee", tier="gold")
    assert not await store.record_google_callback("n1", OBJECT, "save", NOW + 1, program="coffee", tier="gold")
    [fact] = await installs()
    assert (fact.dims, fact.count) == (("coffee", "google", "gold", "install"), 1)
    assert await store.forget_google_callbacks(NOW + 2, 10) == 1
    assert await store.google_installs(OBJECT) == []
    # new again: recorded and counted again (callers keep nonces longer than Google retries)
    assert await store.record_google_callback("n1", OBJECT, "save", NOW + 3, program="coffee", tier="gold")
    assert await store.google_installs(OBJECT) == [("save", NOW + 3)]
    [fact] = await installs()
    assert fact.count == 2
    assert not await store.record_google_callback("n1", OBJECT, "del", NOW + 4)
    assert await store.forget_google_callbacks(NOW + 3, 10) == 0  # recorded at NOW + 3 now


# -- forget_finished_jobs --------------------------------------------------------------------------


async def finish(store: Store, job_id: str, now: float) -> None:
    """Claim the oldest open geo job (it must be `job_id`) and mark it done."""
    owner = f"w-{job_id}"
    claimed = await store.claim_geo_job(owner, 60, now)
    assert claimed is not None and claimed.id == job_id
    assert (await store.update_cards([], now, step=JobStep(job_id, owner, "9", done=True))).advanced


def rows(n: int, tag: str) -> list[dict[str, str]]:
    return [{"account": f"{tag}-a{i}", "name": f"Member {i}"} for i in range(n)]


async def import_job(store: Store, job_id: str, created: float, state: str = "running") -> None:
    job = ImportJob(job_id, "coffee", state, 2, 0, created, created, errors=[{"row": 0, "error": "at create"}])
    assert await store.create_import_job(job, rows(2, job_id))


async def test_finished_jobs_are_forgotten_with_their_rows_results_and_errors(store: Store) -> None:
    await store.restart_campaigns_job("coffee", NOW)
    await finish(store, "campaigns:coffee", NOW)  # done, but restarted later: never forgotten
    assert await store.add_geo_job("m1", "coffee", "message", {"text": "hi"}, NOW + 1)
    await finish(store, "m1", NOW + 1)
    assert await store.add_geo_job("m-late", "coffee", "message", {"text": "later"}, NOW + 100)
    await finish(store, "m-late", NOW + 100)
    assert await store.add_geo_job("m-open", "coffee", "message", {"text": "open"}, NOW + 0.5)

    await import_job(store, "i-done", NOW + 2)
    await store.advance_import_job(
        "i-done", 2, [("i-done-a0", "n0"), ("i-done-a1", "n1")], NOW + 3, state="done", errors=[{"row": 1}]
    )
    await import_job(store, "i-failed", NOW + 3)
    await store.advance_import_job("i-failed", 1, [("i-failed-a0", "n2")], NOW + 4, state="failed")
    await import_job(store, "i-open", NOW + 0.5)
    await store.advance_import_job("i-open", 1, [("i-open-a0", "n3")], NOW + 4)
    await import_job(store, "i-late", NOW + 100, state="done")  # finished as created

    assert await store.forget_finished_jobs(NOW, 10) == 0
    assert await store.forget_finished_jobs(NOW + 50, 0) == 0
    assert await store.forget_finished_jobs(NOW + 50, 10) == 3  # m1, i-done, i-failed

    assert await store.get_geo_job("m1") is None
    assert [job.id for job in await store.list_geo_jobs()] == ["m-late", "m-open", "campaigns:coffee"]
    assert [job.id for job in await store.list_geo_jobs(kind="message")] == ["m-late", "m-open"]
    for job_id in ("i-done", "i-failed"):
        assert await store.get_import_job(job_id) is None
        assert await store.import_results(job_id, 0, 10) == []
        assert await store.import_rows(job_id, 0, 10) == []
    # kept: the open ones, with their rows, results and errors, and the done "campaigns" job
    kept = await store.get_import_job("i-open")
    assert kept is not None and kept.state == "running" and kept.errors == [{"row": 0, "error": "at create"}]
    assert await store.import_rows("i-open", 0, 10) == rows(2, "i-open")
    assert await store.import_results("i-open", 0, 10) == [("i-open-a0", "n3")]
    campaigns = await store.get_geo_job("campaigns:coffee")
    assert campaigns is not None and campaigns.done
    opened = await store.get_geo_job("m-open")
    assert opened is not None and not opened.done
    assert await store.forget_finished_jobs(NOW + 50, 10) == 0

    assert await store.forget_finished_jobs(NOW + 1000, 10) == 2  # m-late, i-late
    assert await store.get_geo_job("m-late") is None and await store.get_import_job("i-late") is None
    assert await store.get_geo_job("campaigns:coffee") is not None
    assert await store.get_import_job("i-open") is not None
    assert await store.forget_finished_jobs(NOW + 1000, 10) == 0

    # the open jobs' indexes still work: claimed oldest first, the restarted "campaigns" job first
    await store.restart_campaigns_job("coffee", NOW + 200)
    claimed = await store.claim_geo_job("w", 60, NOW + 200)
    assert claimed is not None and claimed.id == "campaigns:coffee"
    claimed = await store.claim_geo_job("w2", 60, NOW + 200)
    assert claimed is not None and claimed.id == "m-open"
    # a forgotten id is free again
    await import_job(store, "i-done", NOW + 300)
    again = await store.get_import_job("i-done")
    assert again is not None and again.state == "running" and again.done == 0
    assert await store.import_results("i-done", 0, 10) == []
    assert await store.add_geo_job("m1", "coffee", "message", {"text": "again"}, NOW + 300)

    if isinstance(store, RedisStore):  # nothing of the forgotten jobs is left behind
        keys = [key async for key in store.client.scan_iter(match=store.prefix + "*", count=500)]
        assert not [key for key in keys if key.endswith(("i-failed", "i-late", "m-late"))]
        members = {
            name: await store.client.zrange(store.prefix + name, 0, -1)
            for name in ("geojobs", "geojobs:all", "importjobs:open", "jobs:finished")
        }
        assert members == {
            "geojobs": ["campaigns:coffee", "m-open", "m1"],
            "geojobs:all": ["campaigns:coffee", "m-open", "m1"],
            "importjobs:open": ["i-open", "i-done"],
            "jobs:finished": [],
        }


async def test_forget_finished_jobs_goes_oldest_first_within_the_limit(store: Store) -> None:
    assert await store.add_geo_job("g1", "coffee", "message", {}, NOW + 1)
    await finish(store, "g1", NOW + 1)
    assert await store.add_geo_job("g2", "coffee", "message", {}, NOW + 3)
    await finish(store, "g2", NOW + 3)
    await import_job(store, "i1", NOW + 2, state="done")
    await import_job(store, "i2", NOW + 4, state="failed")

    assert await store.forget_finished_jobs(NOW + 10, 1) == 1
    assert await store.get_geo_job("g1") is None and await store.get_geo_job("g2") is not None
    assert await store.forget_finished_jobs(NOW + 10, 2) == 2  # i1, g2
    assert await store.get_import_job("i1") is None and await store.get_geo_job("g2") is None
    assert await store.get_import_job("i2") is not None
    assert await store.forget_finished_jobs(NOW + 4, 10) == 0  # i2 created at NOW + 4: not before
    assert await store.forget_finished_jobs(NOW + 10, 2) == 1
    assert await store.forget_finished_jobs(NOW + 10, 2) == 0
    assert await store.list_geo_jobs() == []


# -- upgrades ---------------------------------------------------------------------------------------

OLD_NONCES = 1_201  # more than one migration batch


async def test_redis_schema_5_indexes_nonces_and_finished_jobs(tmp_path: Path) -> None:
    prefix = f"test-migrate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        writer = RedisStore(REDIS_URL, prefix=prefix)
        await writer.open()
        try:
            assert await writer.record_google_callback("n-old", OBJECT, "save", NOW)
            await writer.restart_campaigns_job("coffee", NOW)
            await finish(writer, "campaigns:coffee", NOW)
            assert await writer.add_geo_job("m1", "coffee", "message", {}, NOW + 1)
            await finish(writer, "m1", NOW + 1)
            assert await writer.add_geo_job("m-open", "coffee", "message", {}, NOW + 1)
            await import_job(writer, "i-done", NOW + 2, state="done")
            await import_job(writer, "i-failed", NOW + 2)
            await writer.advance_import_job("i-failed", 0, [], NOW + 3, state="failed")
            await import_job(writer, "i-open", NOW + 2)
        finally:
            await writer.close()
        # back to schema 5's shapes: no index of nonces or of finished jobs
        await client.delete(prefix + "gnonces", prefix + "jobs:finished")
        for i in range(OLD_NONCES):
            await client.set(f"{prefix}gnonce:old-{i}", OTHER)
        await client.set(prefix + "schema", 5)

        started = time.time()
        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION
            assert await client.zcard(prefix + "gnonces") == OLD_NONCES + 1
            # nonces received before the upgrade count as received at it: not forgotten as from 1970
            assert await store.forget_google_callbacks(started - 60, 10_000) == 0
            assert not await store.record_google_callback("n-old", OBJECT, "save", NOW + 5)
            assert await store.forget_google_callbacks(time.time() + 1, 1000) == 1000  # bounded
            assert await store.forget_google_callbacks(time.time() + 1, 10_000) == OLD_NONCES + 1 - 1000
            assert await store.google_installs(OBJECT) == []
            assert await store.record_google_callback("n-old", OBJECT, "save", NOW + 6)  # new again
            assert await store.google_installs(OBJECT) == [("save", NOW + 6)]

            # finished jobs indexed by their created_at; open ones and the "campaigns" job are not
            assert await store.forget_finished_jobs(NOW + 1, 10) == 0
            assert await store.forget_finished_jobs(NOW + 10, 10) == 3  # m1, i-done, i-failed
            assert [job.id for job in await store.list_geo_jobs()] == ["m-open", "campaigns:coffee"]
            assert await store.get_import_job("i-open") is not None
            assert await store.get_import_job("i-done") is None and await store.get_import_job("i-failed") is None
        finally:
            await store.close()
        reopened = RedisStore(REDIS_URL, prefix=prefix)
        await reopened.open()
        try:
            assert await reopened.schema_version() == SCHEMA_VERSION
        finally:
            await reopened.close()
    finally:
        await client.aclose()
        await delete_prefix(prefix)


async def test_sqlite_migration_10_keeps_and_forgets_what_was_stored_before(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite_at_schema(path, 9)
    conn.executemany(
        "INSERT INTO geo_jobs (id, program, kind, payload, cursor, created_at, done)"
        " VALUES (?, 'coffee', ?, '{}', '9', ?, ?)",
        [
            ("campaigns:coffee", "campaigns", NOW, 1),
            ("m1", "message", NOW + 1, 1),
            ("m-open", "message", NOW + 1, 0),
        ],
    )
    conn.executemany(
        "INSERT INTO import_jobs (id, program, state, rows, done, created_at, updated_at, meta)"
        " VALUES (?, 'coffee', ?, 1, 1, ?, ?, '{}')",
        [
            ("i-done", "done", NOW + 2, NOW + 2),
            ("i-failed", "failed", NOW + 2, NOW + 2),
            ("i-open", "running", NOW, NOW),
        ],
    )
    conn.executemany(
        "INSERT INTO import_results (job, seq, account, number) VALUES (?, 0, 'a1', 'n1')",
        [("i-done",), ("i-failed",), ("i-open",)],
    )
    conn.executemany("INSERT INTO import_errors (job, data) VALUES (?, '{\"row\": 0}')", [("i-done",), ("i-open",)])
    conn.execute("INSERT INTO import_rows (job, chunk, data) VALUES ('i-open', 0, ?)", (json.dumps(rows(1, "x")),))
    conn.executemany(
        "INSERT INTO google_callbacks (nonce, object_id, event, at) VALUES (?, ?, 'save', ?)",
        [("n1", OBJECT, NOW), ("n2", OBJECT, NOW + 1)],
    )
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 10
        assert await store.forget_finished_jobs(NOW + 10, 10) == 3  # m1, i-done, i-failed
        assert [job.id for job in await store.list_geo_jobs()] == ["m-open", "campaigns:coffee"]
        assert await store.get_import_job("i-done") is None and await store.import_results("i-done", 0, 10) == []
        kept = await store.get_import_job("i-open")
        assert kept is not None and kept.errors == [{"row": 0}]
        assert await store.import_rows("i-open", 0, 10) == rows(1, "x")
        assert await store.forget_google_callbacks(NOW + 0.5, 10) == 1
        assert await store.google_installs(OBJECT) == [("save", NOW + 1)]
        assert await store.record_google_callback("n1", OBJECT, "del", NOW + 5)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"geo_jobs_finished", "import_jobs_finished"} <= indexes
    finally:
        conn.close()
