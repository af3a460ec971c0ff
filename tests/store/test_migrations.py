"""Upgrading a store written by the previous schema: per-device `apns_pass` entries waiting in
the outbox become one `pass_update` per pass, and nothing waiting is lost."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from store.port import CardUpdate
from store.redis import GROUP, SCHEMA_VERSION, RedisStore
from store.schema.sqlite import MIGRATIONS
from store.sqlite import SqliteStore
from tests.conftest import REDIS_URL, delete_prefix

from .conftest import make_card

NOW = 1_700_000_000.0


def _apns_pass(device: str, serial: str, tag: int) -> str:
    return json.dumps({"device_id": device, "pass_type_id": "pass.t", "serial": serial, "tag": tag})


async def test_sqlite_schema_1_outbox_becomes_one_pass_update_per_pass(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    rows = [
        ("apns_pass", _apns_pass("d1", "s1", 5), json.dumps(["d1", "pass.t", "s1"])),
        ("apns_pass", _apns_pass("d2", "s1", 5), json.dumps(["d2", "pass.t", "s1"])),
        ("apns_pass", _apns_pass("d1", "s2", 7), json.dumps(["d1", "pass.t", "s2"])),
        ("apns_pass", _apns_pass("d3", "s2", 6), None),  # claimed before the upgrade
        (
            "fcm_alert",
            json.dumps({"token": "tok", "card": "4000", "title": "T", "body": "B", "data": {"k": "v"}}),
            None,
        ),
    ]
    conn.executemany(
        "INSERT INTO outbox (kind, payload, coalesce_key, due_at, attempts, enqueued_at) VALUES (?, ?, ?, ?, 0, ?)",
        [(k, p, c, NOW, NOW) for k, p, c in rows],
    )
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        entries = await store.claim_outbox("w", 100, 30, NOW)
        assert sorted((e.kind, tuple(sorted(e.fields.items()))) for e in entries) == sorted(
            [
                ("pass_update", (("pass_type_id", "pass.t"), ("serial", "s1"))),
                ("pass_update", (("pass_type_id", "pass.t"), ("serial", "s2"))),
                ("pass_update", (("pass_type_id", "pass.t"), ("serial", "s2"))),  # the claimed one, kept apart
                (
                    "app_alert",
                    (
                        ("body", "B"),
                        ("card_number", "4000"),
                        ("data", '{"k":"v"}'),
                        ("platform", "android"),
                        ("title", "T"),
                        ("token", "tok"),
                    ),
                ),
            ]
        )
    finally:
        await store.close()


async def test_redis_schema_1_outbox_and_pushed_tags_are_converted() -> None:
    prefix = f"test-migrate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.set(prefix + "schema", 1)
        await client.xgroup_create(prefix + "outbox", GROUP, id="0", mkstream=True)
        for device, serial in [("d1", "s1"), ("d2", "s1"), ("d1", "s2")]:
            await client.xadd(
                prefix + "outbox",
                {
                    "kind": "apns_pass",
                    "payload": _apns_pass(device, serial, 3),
                    "attempts": "0",
                    "enqueued_at": repr(NOW),
                },
            )
        await client.zadd(
            prefix + "outbox:delayed",
            {
                json.dumps(
                    {
                        "uid": "u1",
                        "kind": "apns_pass",
                        "payload": _apns_pass("d4", "s3", 2),
                        "attempts": "1",
                        "enqueued_at": repr(NOW),
                    }
                ): NOW + 60
            },
        )
        await client.hset(prefix + "pushed", json.dumps(["d1", "pass.t", "s1"]), "3")
        await client.set(prefix + 'pending:"s1"' + json.dumps(["d1", "pass.t"]), "1-0 3")

        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION
            assert await store.last_pushed_tag("d1", "pass.t", "s1") == 3
            entries = await store.claim_outbox("w", 100, 30, NOW)
            assert sorted(e.fields["serial"] for e in entries) == ["s1", "s2", "s3"]
            assert {e.kind for e in entries} == {"pass_update"}
            assert await store.outbox_size() == 3
            assert not await client.exists(prefix + 'pending:"s1"' + json.dumps(["d1", "pass.t"]))
        finally:
            await store.close()
        reopened = RedisStore(REDIS_URL, prefix=prefix)
        await reopened.open()  # migrating again finds nothing to do
        try:
            assert await reopened.outbox_size() == 3
        finally:
            await reopened.close()
    finally:
        await client.aclose()
        await delete_prefix(prefix)


async def test_sqlite_schema_2_registrations_are_kept_as_apple(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO registrations (device_id, pass_type_id, serial, push_token, updated_at) VALUES (?, ?, ?, ?, ?)",
        ("dev", "pass.t", "s1", "ab" * 32, NOW),
    )
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        reg = await store.get_registration("dev", "pass.t", "s1")
        assert reg is not None
        assert (reg.push_token, reg.updated_at, reg.client, reg.push_service_url) == ("ab" * 32, NOW, "apple", None)
        assert await store.count_registrations_by_client("s1") == {"apple": 1}
    finally:
        await store.close()


async def test_redis_registrations_written_before_clients_read_as_apple() -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    await store.open()
    try:
        old = json.dumps({"device_id": "dev", "pass_type_id": "pass.t", "push_token": "ab" * 32, "updated_at": NOW})
        await store.client.hset(f"{prefix}regs:s1", json.dumps(["dev", "pass.t"], separators=(",", ":")), old)
        reg = await store.get_registration("dev", "pass.t", "s1")
        assert reg is not None
        assert (reg.client, reg.push_service_url) == ("apple", None)
        assert await store.count_registrations_by_client("s1") == {"apple": 1}
    finally:
        await store.close()
        await delete_prefix(prefix)


async def test_sqlite_schema_6_cards_page_and_geo_after_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:6]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 6")
    cards = [make_card(i, program="coffee" if i % 2 else "tea").with_changes(tag=i + 1) for i in range(30)]
    conn.executemany(
        "INSERT INTO cards (number, serial, account, program, version, tag, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(c.number, c.serial, c.account, c.program, c.version, c.tag, json.dumps(c.to_dict())) for c in cards],
    )
    conn.execute("UPDATE counters SET value = 30 WHERE name = 'tag'")
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        coffee = sorted(c.number for c in cards if c.program == "coffee")
        page = await store.cards_page("coffee", "", 10)
        assert [c.number for c in page] == coffee[:10]
        assert [c.number for c in await store.cards_page("coffee", page[-1].number, 100)] == coffee[10:]
        assert page[0] == next(c for c in cards if c.number == coffee[0])
        assert await store.geo_generation() == 0
        assert await store.put_campaign({"id": "c1", "program": "coffee"}, NOW) is True
        assert await store.geo_generation() == 1
        (stored,) = (await store.update_cards([CardUpdate(page[0].tag, page[0])], NOW)).cards
        assert stored is not None and stored.tag == 31
    finally:
        await store.close()


async def test_redis_schema_2_cards_are_paged_after_upgrade() -> None:
    prefix = f"test-migrate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        writer = RedisStore(REDIS_URL, prefix=prefix)
        await writer.open()
        try:
            cards = [make_card(i, program="coffee" if i % 2 else "tea") for i in range(2_100)]
            for card in cards:
                await writer.create_card(card)
        finally:
            await writer.close()
        # what schema 2 had: the cards, no per-program index
        stale = [key async for key in client.scan_iter(match=prefix + "pcards:*")]
        assert stale
        await client.delete(*stale)
        await client.set(prefix + "schema", 2)

        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION == 3
            for program in ("coffee", "tea"):
                expected = sorted(c.number for c in cards if c.program == program)
                seen: list[str] = []
                after = ""
                while page := await store.cards_page(program, after, 333):
                    seen += [c.number for c in page]
                    after = page[-1].number
                assert seen == expected
        finally:
            await store.close()
    finally:
        await client.aclose()
        await delete_prefix(prefix)
