"""Redis schema 4 -> 5: accepted ledger ids get acceptance times (the migration's), registrations
written without program and tier read as "", the dead list becomes the dead-letter stream in its
order, waiting outbox work is indexed for outbox_oldest, and import jobs are indexed (open ones)
or lose their rows (finished ones)."""

from __future__ import annotations

import json
import time
import uuid

import redis.asyncio as aioredis

from ledger.decide import LedgerEvent, Outcome
from store.port import FACT_INSTALLS, ImportJob, OutboxEntry, fact_day
from store.redis import SCHEMA_VERSION, RedisStore
from tests.conftest import REDIS_URL, delete_prefix

from .conftest import make_card, note

NOW = 1_700_000_000.0
IDS = 2_500  # more than one SSCAN batch
DEAD = 1_201  # more than one migration batch


def _old_dead_letter(n: int) -> str:
    """A dead letter as schema 4 pushed it onto the `dead` list."""
    entry = {"id": f"{n}-0", "kind": "note", "fields": {"n": str(n)}, "attempts": 3, "enqueued_at": NOW + n}
    return json.dumps({"entry": entry, "error": f"boom {n}", "failed_at": NOW + n + 0.5})


def _old_registration(device: str, updated_at: float, client: str | None = None) -> str:
    record: dict[str, object] = {
        "device_id": device,
        "pass_type_id": "pass.t",
        "push_token": "tok",
        "updated_at": updated_at,
    }
    if client is not None:
        record["client"] = client
    return json.dumps(record, separators=(",", ":"))


async def _write_schema_4(client: aioredis.Redis, prefix: str) -> tuple[str, str]:
    """A store as schema 4 left it; returns (card number, serial)."""
    writer = RedisStore(REDIS_URL, prefix=prefix)
    await writer.open()
    try:
        card, _ = await writer.create_card(make_card(1))
        result = await writer.apply_ledger_events(
            [LedgerEvent(id="e-kept", version=1, balance=10, card_number=card.number)], NOW
        )
        assert dict(result.outcomes) == {"e-kept": Outcome.ACCEPTED}
        await writer.enqueue([note(1)], NOW + 30)
        [claimed] = await writer.claim_outbox("w", 1, 30, time.time())
        await writer.retry_outbox(claimed, 3600, time.time())  # a delayed retry, enqueued at NOW + 30
        await writer.enqueue([note(2)], NOW + 40)
        rows = [{"account": card.account, "name": "Anna", "phone": "+79001234567", "email": "a@example.com"}]
        assert await writer.create_import_job(ImportJob("open", "coffee", "running", 1, 0, NOW, NOW), rows)
        assert await writer.create_import_job(ImportJob("finished", "coffee", "running", 1, 0, NOW, NOW), rows)
    finally:
        await writer.close()
    # back to schema 4's shapes: a set of ids, no indexes, the dead list, registrations without program
    await client.delete(
        prefix + "ledger:accepted", prefix + "outbox:ages", prefix + "importjobs:open", prefix + "deadletters"
    )
    await client.sadd(prefix + "ledger:ids", "e-kept", *[f"e-{i}" for i in range(IDS)])
    await client.hset(prefix + "importjob:finished", "state", "done")
    for n in range(DEAD):
        await client.lpush(prefix + "dead", _old_dead_letter(n))  # newest first, as schema 4 kept it
    regs = prefix + "regs:" + card.serial
    await client.hset(
        regs, json.dumps(["dev-a", "pass.t"], separators=(",", ":")), _old_registration("dev-a", NOW + 0.1)
    )
    await client.hset(
        regs,
        json.dumps(["dev-b", "pass.t"], separators=(",", ":")),
        _old_registration("dev-b", NOW + 0.2, "passwallet"),
    )
    for device in ("dev-a", "dev-b"):
        await client.sadd(prefix + "devregs:" + json.dumps([device, "pass.t"], separators=(",", ":")), card.serial)
    await client.set(prefix + "schema", 4)
    return card.number, card.serial


async def test_redis_schema_4_keeps_event_ids_registrations_and_dead_letters() -> None:
    prefix = f"test-migrate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        number, serial = await _write_schema_4(client, prefix)
        started = time.time()
        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION
            assert not await client.exists(prefix + "ledger:ids", prefix + "dead")

            # event ids: still duplicates, accepted "at the migration" (not forgotten as if from 1970)
            again = await store.apply_ledger_events(
                [LedgerEvent(id="e-kept", version=2, balance=20, card_number=number)], NOW + 1
            )
            assert dict(again.outcomes) == {"e-kept": Outcome.DUPLICATE}
            assert await store.forget_event_ids(started - 60, 10_000) == 0
            assert await store.forget_event_ids(time.time() + 1, 1000) == 1000  # bounded
            assert await store.forget_event_ids(time.time() + 1, 10_000) == IDS + 1 - 1000
            fresh = await store.apply_ledger_events(
                [LedgerEvent(id="e-kept", version=2, balance=20, card_number=number)], NOW + 2
            )
            assert dict(fresh.outcomes) == {"e-kept": Outcome.ACCEPTED}

            # registrations: read as before; program and tier "" (kept so when the device registers again)
            regs = await store.get_registrations(serial)
            assert [(r.device_id, r.client, r.updated_at) for r in regs] == [
                ("dev-a", "apple", NOW + 0.1),
                ("dev-b", "passwallet", NOW + 0.2),
            ]
            assert not await store.register_device(
                "dev-a", "pass.t", serial, "tok2", NOW + 5, program="coffee", tier="gold"
            )
            assert (await store.get_registration("dev-a", "pass.t", serial)).push_token == "tok2"  # type: ignore[union-attr]
            assert await store.unregister_device("dev-a", "pass.t", serial, NOW + 6)
            assert await store.unregister_device("dev-b", "pass.t", serial, NOW + 6)
            day = fact_day(NOW + 6)
            assert {(f.dims, f.count) for f in await store.fact_counts(FACT_INSTALLS, day, day)} == {
                (("", "apple", "", "remove"), 1),
                (("", "passwallet", "", "remove"), 1),
            }

            # dead letters: all of them, newest first, each with an id; requeue takes the oldest
            assert await store.count_dead_letters() == DEAD
            newest = await store.list_dead_letters(2)
            assert [(d.entry.fields, d.error, d.failed_at) for d in newest] == [
                ({"n": str(DEAD - 1)}, f"boom {DEAD - 1}", NOW + DEAD - 1 + 0.5),
                ({"n": str(DEAD - 2)}, f"boom {DEAD - 2}", NOW + DEAD - 2 + 0.5),
            ]
            assert newest[0].entry == OutboxEntry(f"{DEAD - 1}-0", "note", {"n": str(DEAD - 1)}, 3, NOW + DEAD - 1)
            older = await store.list_dead_letters(1, before=newest[1].id)
            assert older[0].entry.fields == {"n": str(DEAD - 3)}
            every = await store.list_dead_letters(DEAD + 10)
            assert [d.entry.fields["n"] for d in every] == [str(n) for n in reversed(range(DEAD))]
            assert len({d.id for d in every}) == DEAD

            # the waiting work is indexed: the delayed retry (enqueued at NOW + 30) is the oldest
            assert await store.outbox_oldest() == NOW + 30
            moved = await store.requeue_dead_letters(None, NOW + 100, limit=2)
            assert moved == [every[-1].id, every[-2].id]
            assert await store.count_dead_letters() == DEAD - 2

            # import jobs: the finished one lost its rows, the open one is erased in
            assert await store.import_rows("finished", 0, 10) == []
            erasure = await store.erase_member(number, NOW + 200)
            assert erasure is not None and erasure.erased
            assert await store.import_rows("open", 0, 10) == [{"account": make_card(1).account}]
        finally:
            await store.close()
        reopened = RedisStore(REDIS_URL, prefix=prefix)
        await reopened.open()  # migrating again finds nothing to do
        try:
            assert await reopened.schema_version() == SCHEMA_VERSION
            assert await reopened.count_dead_letters() == DEAD - 2
            assert await reopened.forget_event_ids(time.time() + 1, 10) == 1  # only the id accepted again
        finally:
            await reopened.close()
    finally:
        await client.aclose()
        await delete_prefix(prefix)


async def test_redis_dims_encoded_by_lua_and_by_python_count_as_one() -> None:
    """Remove and install facts of registrations are encoded by cjson in the scripts, which escapes
    "/" (and Python does not): fact_counts sums what is one dims tuple whichever wrote it."""
    prefix = f"test-facts:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    await store.open()
    try:
        program = "caf\u00e9/1"
        assert await store.register_device("d1", "pass.t", "s1", "tok", NOW, program=program, tier="gold")
        await store.add_facts(FACT_INSTALLS, [(program, "apple", "gold", "install")], NOW)
        assert await store.unregister_device("d1", "pass.t", "s1", NOW)
        day = fact_day(NOW)
        assert [(f.dims, f.count) for f in await store.fact_counts(FACT_INSTALLS, day, day)] == [
            ((program, "apple", "gold", "install"), 2),
            ((program, "apple", "gold", "remove"), 1),
        ]
    finally:
        await store.close()
        await delete_prefix(prefix)
