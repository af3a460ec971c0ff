"""Upgrading a store written by the previous schema: per-device `apns_pass` entries waiting in
the outbox become one `pass_update` per pass, and nothing waiting is lost."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from cards.model import Card, Member
from ledger.decide import LedgerEvent, Outcome
from store.port import FACT_INSTALLS, CardUpdate, Consent, FactCount, ImportJob, Voucher, fact_day
from store.redis import GROUP, SCHEMA_VERSION, RedisStore
from store.schema.sqlite import MIGRATIONS
from store.sqlite import SqliteStore
from tests.conftest import REDIS_URL, delete_prefix
from tests.store.conftest import make_card, sqlite_at_schema

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
    conn = sqlite_at_schema(path, 2)
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
    conn = sqlite_at_schema(path, 6)
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
            assert await store.schema_version() == SCHEMA_VERSION
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


def _phoned(i: int, phone: str | None, program: str = "coffee", created_at: int = 1_600_000_000) -> Card:
    return make_card(i, program=program).with_changes(
        member=Member(name=f"M{i}", phone=phone), tag=i + 1, created_at=created_at
    )


async def test_sqlite_schema_7_phone_index_is_backfilled(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite_at_schema(path, 7)
    # inserted in this order: the first inserted with a phone keeps it, whatever its number
    cards = [
        _phoned(5, "+79001111111"),
        _phoned(1, "+79001111111"),
        _phoned(2, "+79002222222"),
        _phoned(3, "+79002222222", program="tea"),
        _phoned(4, None),
        _phoned(6, ""),
    ]
    conn.executemany(
        "INSERT INTO cards (number, serial, account, program, version, tag, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(c.number, c.serial, c.account, c.program, c.version, c.tag, json.dumps(c.to_dict())) for c in cards],
    )
    conn.execute("UPDATE counters SET value = 10 WHERE name = 'tag'")
    conn.executemany(
        "INSERT INTO geo_jobs (id, program, kind, payload, cursor, created_at, done) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("campaigns:coffee", "coffee", "campaigns", "{}", "", NOW, 1),
            ("m1", "coffee", "message", "{}", "", NOW + 1, 0),
        ],
    )
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 8
        assert await store.card_by_phone("coffee", "+79001111111") == cards[0]
        assert await store.card_by_phone("coffee", "+79002222222") == cards[2]
        assert await store.card_by_phone("tea", "+79002222222") == cards[3]
        assert await store.card_by_phone("coffee", "") is None
        joined, created = await store.create_card(_phoned(7, "+79001111111"), unique_phone=True)
        assert (joined, created) == (cards[0], False)
        assert [job.id for job in await store.list_geo_jobs()] == ["m1", "campaigns:coffee"]
        voucher, _ = await store.create_voucher(
            Voucher("v1", "offer", "vs1", "t", "coffee", cards[0].number, {"title": "T"}), NOW
        )
        assert voucher.tag == 11
        assert await store.register_device("dev", "pass.t", "vs1", "tok", NOW)
        assert await store.serials_updated_since("dev", "pass.t", None) == (["vs1"], 11)
        assert await store.create_import_job(ImportJob("i1", "coffee", "running", 1, 0, NOW, NOW), [{"account": "a"}])
        await store.add_consents(cards[0].number, [Consent("terms", None, True, "v1", NOW)])
        assert len(await store.consents(cards[0].number)) == 1
    finally:
        await store.close()


async def test_redis_schema_3_phone_index_and_job_history_are_backfilled() -> None:
    prefix = f"test-migrate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        writer = RedisStore(REDIS_URL, prefix=prefix)
        await writer.open()
        # the earliest created with a phone keeps it (created_at, then number), not the lowest number
        cards = [
            _phoned(1, "+79001111111", created_at=1_600_000_100),
            _phoned(2, "+79001111111", created_at=1_600_000_000),
            _phoned(3, "+79002222222"),
            _phoned(4, "+79002222222"),
            _phoned(5, "+79002222222", program="tea"),
            _phoned(6, None),
        ] + [_phoned(100 + i, f"+7903{i:07d}") for i in range(2_500)]
        try:
            for card in cards:
                await writer.create_card(card)
            await writer.add_geo_job("m1", "coffee", "message", {"t": 1}, NOW + 1)
            await writer.put_campaign({"id": "c1", "program": "coffee"}, NOW)
        finally:
            await writer.close()
        # what schema 3 had: no phone index, no history of jobs
        stale = [key async for key in client.scan_iter(match=prefix + "phones:*")]
        assert stale
        await client.delete(*stale, prefix + "geojobs:all")
        await client.set(prefix + "schema", 3)

        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION >= 4
            by_number = {c.number: c for c in cards}

            async def holder(program: str, phone: str) -> str | None:
                card = await store.card_by_phone(program, phone)
                return None if card is None else card.number

            assert await holder("coffee", "+79001111111") == cards[1].number
            assert await holder("coffee", "+79002222222") == cards[2].number
            assert await holder("tea", "+79002222222") == cards[4].number
            for i in range(0, 2_500, 499):
                number = await holder("coffee", f"+7903{i:07d}")
                assert number is not None and by_number[number].member.phone == f"+7903{i:07d}"
            joined, created = await store.create_card(_phoned(9, "+79001111111"), unique_phone=True)
            assert not created and joined.number == cards[1].number
            assert [job.id for job in await store.list_geo_jobs()] == ["m1", "campaigns:coffee"]
        finally:
            await store.close()
        reopened = RedisStore(REDIS_URL, prefix=prefix)
        await reopened.open()  # migrating again finds nothing to do
        try:
            assert await reopened.schema_version() == SCHEMA_VERSION
            assert len(await reopened.list_geo_jobs()) == 2
        finally:
            await reopened.close()
    finally:
        await client.aclose()
        await delete_prefix(prefix)


async def test_sqlite_schema_8_keeps_event_ids_registrations_and_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    conn = sqlite_at_schema(path, 8)
    card = make_card(1).with_changes(version=1, tag=1)
    conn.execute(
        "INSERT INTO cards (number, serial, account, program, version, tag, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (card.number, card.serial, card.account, card.program, card.version, card.tag, json.dumps(card.to_dict())),
    )
    conn.execute("UPDATE counters SET value = 1 WHERE name = 'tag'")
    conn.executemany("INSERT INTO ledger_event_ids (id) VALUES (?)", [("e1",), ("e2",)])
    conn.execute(
        "INSERT INTO registrations (device_id, pass_type_id, serial, push_token, updated_at, client)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ("dev", "pass.t", card.serial, "tok", NOW, "passwallet"),
    )
    conn.executemany(
        "INSERT INTO dead_letters (entry_id, kind, payload, attempts, enqueued_at, error, failed_at)"
        " VALUES (?, 'note', ?, 3, ?, 'boom', ?)",
        [(str(i), json.dumps({"n": str(i)}), NOW, NOW + i) for i in range(3)],
    )
    conn.execute(
        "INSERT INTO outbox (kind, payload, coalesce_key, due_at, attempts, enqueued_at) VALUES (?, ?, NULL, ?, 0, ?)",
        ("note", json.dumps({"n": "w"}), NOW, NOW - 5),
    )
    conn.executemany(
        "INSERT INTO import_jobs (id, program, state, rows, done, created_at, updated_at, meta)"
        " VALUES (?, 'coffee', ?, 1, 0, ?, ?, '{}')",
        [("finished", "done", NOW, NOW), ("running", "running", NOW, NOW)],
    )
    row = json.dumps([{"account": "a1", "name": "Anna"}])
    conn.executemany(
        "INSERT INTO import_rows (job, chunk, data) VALUES (?, 0, ?)", [("finished", row), ("running", row)]
    )
    conn.close()

    upgraded_at = time.time()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 9
        # the ids accepted before the upgrade are still known, and count as accepted at the upgrade
        result = await store.apply_ledger_events(
            [LedgerEvent(id="e1", version=2, balance=5, card_number=card.number)], NOW
        )
        assert dict(result.outcomes) == {"e1": Outcome.DUPLICATE}
        assert await store.forget_event_ids(upgraded_at - 3600, 100) == 0
        assert await store.forget_event_ids(time.time() + 1, 1) == 1
        assert await store.forget_event_ids(time.time() + 1, 100) == 1
        # registrations kept; made before programs and tiers were recorded: "" for both
        reg = await store.get_registration("dev", "pass.t", card.serial)
        assert reg is not None and (reg.push_token, reg.client, reg.updated_at) == ("tok", "passwallet", NOW)
        assert await store.unregister_device("dev", "pass.t", card.serial, NOW + 10) is True
        facts = await store.fact_counts(FACT_INSTALLS, "2000-01-01", "2999-12-31")
        assert facts == [FactCount(fact_day(NOW + 10), ("", "passwallet", "", "remove"), 1)]
        # dead letters counted from what was there
        assert await store.count_dead_letters() == 3
        assert [d.entry.fields["n"] for d in await store.list_dead_letters(10)] == ["2", "1", "0"]
        assert await store.outbox_oldest() == NOW - 5
        # a job finished before the upgrade lost its rows with it; a running one keeps them
        assert await store.import_rows("finished", 0, 10) == []
        assert await store.import_rows("running", 0, 10) == [{"account": "a1", "name": "Anna"}]
    finally:
        await store.close()
