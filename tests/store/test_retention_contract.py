"""Retention and bounds, against every adapter: accepted ledger event ids forgotten oldest first,
dead letters bounded, paged, counted and requeued, the outbox's oldest entry, the device log
bound, and an import job's rows deleted when it finishes."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ledger.decide import LedgerEvent, Outcome
from store.port import ImportJob, OutboxEntry, Store

from .conftest import make_card, note

NOW = 1_700_000_000.0  # in the past: entries due at NOW are claimable with the real clock
DAY = 86_400.0


def event(event_id: str, version: int, card: str) -> LedgerEvent:
    return LedgerEvent(id=event_id, version=version, balance=version * 10, card_number=card)


async def outcome(store: Store, e: LedgerEvent, now: float) -> Outcome:
    result = await store.apply_ledger_events([e], now)
    return dict(result.outcomes)[e.id]


# -- forget_event_ids ----------------------------------------------------------------------------


async def test_a_forgotten_event_id_is_accepted_again_and_a_recent_one_stays_a_duplicate(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    assert await outcome(store, event("e-old", 1, card.number), NOW) is Outcome.ACCEPTED
    assert await outcome(store, event("e-new", 2, card.number), NOW + 10 * DAY) is Outcome.ACCEPTED
    assert await store.forget_event_ids(NOW, 100) == 0  # accepted at NOW: not before it
    assert await store.forget_event_ids(NOW + DAY, 100) == 1
    assert await store.forget_event_ids(NOW + DAY, 100) == 0
    assert await outcome(store, event("e-new", 9, card.number), NOW + 11 * DAY) is Outcome.DUPLICATE
    # forgotten: judged as new again (here newer than the card, so it applies)
    assert await outcome(store, event("e-old", 3, card.number), NOW + 11 * DAY) is Outcome.ACCEPTED
    stored = await store.get_card(card.number)
    assert stored is not None and (stored.version, stored.balance) == (3, 30)
    # accepted again now: remembered from this acceptance on
    assert await store.forget_event_ids(NOW + 10 * DAY + 1, 100) == 1  # e-new only
    assert await outcome(store, event("e-old", 4, card.number), NOW + 12 * DAY) is Outcome.DUPLICATE


async def test_forget_event_ids_goes_oldest_first_within_the_limit(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    for i in range(5):  # e0 accepted first; each its own batch and time
        assert await outcome(store, event(f"e{i}", i + 1, card.number), NOW + i) is Outcome.ACCEPTED
    assert await store.forget_event_ids(NOW + 100, 2) == 2
    # a forgotten id with an old version is no longer a duplicate: just stale
    assert await outcome(store, event("e0", 1, card.number), NOW + 10) is Outcome.STALE
    assert await outcome(store, event("e1", 2, card.number), NOW + 10) is Outcome.STALE
    assert await outcome(store, event("e2", 3, card.number), NOW + 10) is Outcome.DUPLICATE
    assert await store.forget_event_ids(NOW + 100, 0) == 0
    assert await store.forget_event_ids(NOW + 100, 10) == 3
    assert await outcome(store, event("e4", 5, card.number), NOW + 10) is Outcome.STALE


# -- dead letters --------------------------------------------------------------------------------


async def dead(store: Store, count: int, *, keep: int = 100, start: int = 0) -> list[OutboxEntry]:
    """`count` entries enqueued, claimed and dead-lettered in order, each failing a second later."""
    ids = await store.enqueue([note(start + i) for i in range(count)], NOW)
    claimed = await store.claim_outbox("w", count, 30, time.time())
    assert sorted(e.id for e in claimed) == sorted(ids)
    by_id = {e.id: e for e in claimed}
    entries = [by_id[i] for i in ids]
    for i, entry in enumerate(entries):
        await store.dead_letter(entry, f"error {start + i}", NOW + start + i, keep=keep)
    return entries


async def test_dead_letters_are_bounded_to_the_newest(store: Store) -> None:
    assert await store.count_dead_letters() == 0
    assert await store.list_dead_letters(10) == []
    entries = await dead(store, 5, keep=3)
    assert await store.count_dead_letters() == 3
    letters = await store.list_dead_letters(10)
    assert [d.entry.fields["n"] for d in letters] == ["4", "3", "2"]  # newest first
    assert [d.entry.id for d in letters] == [entries[4].id, entries[3].id, entries[2].id]
    assert [(d.error, d.failed_at, d.entry.kind) for d in letters] == [
        ("error 4", NOW + 4, "note"),
        ("error 3", NOW + 3, "note"),
        ("error 2", NOW + 2, "note"),
    ]
    assert all(isinstance(d.id, str) and d.id for d in letters) and len({d.id for d in letters}) == 3
    assert await store.outbox_size() == 0
    # a larger bound keeps what is there and drops nothing more
    await dead(store, 2, keep=10, start=5)
    assert await store.count_dead_letters() == 5
    assert [d.entry.fields["n"] for d in await store.list_dead_letters(10)] == ["6", "5", "4", "3", "2"]


async def test_each_dropped_dead_letter_is_logged_with_its_kind_and_id_only(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await dead(store, 1)
    kept = await store.list_dead_letters(10)
    with caplog.at_level(logging.WARNING):
        await dead(store, 2, keep=1, start=1)
    dropped = [r for r in caplog.records if r.levelno == logging.WARNING and "note" in r.getMessage()]
    assert len(dropped) == 2
    assert kept[0].id in dropped[0].getMessage()
    assert not any("error " in r.getMessage() for r in caplog.records)  # nor the error, nor the fields
    assert [d.entry.fields["n"] for d in await store.list_dead_letters(10)] == ["2"]


async def test_dead_letters_are_paged_newest_first(store: Store) -> None:
    await dead(store, 5)
    first = await store.list_dead_letters(2)
    assert [d.entry.fields["n"] for d in first] == ["4", "3"]
    second = await store.list_dead_letters(2, before=first[-1].id)
    assert [d.entry.fields["n"] for d in second] == ["2", "1"]
    third = await store.list_dead_letters(2, before=second[-1].id)
    assert [d.entry.fields["n"] for d in third] == ["0"]
    assert await store.list_dead_letters(2, before=third[-1].id) == []
    assert await store.list_dead_letters(0) == []
    assert [d.entry.fields["n"] for d in await store.list_dead_letters(10, before=first[0].id)] == ["3", "2", "1", "0"]


async def test_requeue_named_dead_letters_moves_them_back_into_the_outbox(store: Store) -> None:
    await dead(store, 3)
    letters = await store.list_dead_letters(10)  # n 2, 1, 0
    by_n = {d.entry.fields["n"]: d for d in letters}
    moved = await store.requeue_dead_letters([by_n["2"].id, "no-such-id", by_n["0"].id], NOW + 100)
    assert moved == [by_n["0"].id, by_n["2"].id]  # oldest first, the unknown id skipped
    assert await store.count_dead_letters() == 1
    assert [d.id for d in await store.list_dead_letters(10)] == [by_n["1"].id]  # not in both places
    assert await store.outbox_size() == 2
    claimed = await store.claim_outbox("w2", 10, 30, time.time())
    assert sorted((e.kind, e.fields["n"], e.attempts) for e in claimed) == [("note", "0", 0), ("note", "2", 0)]
    # moving the same ones again moves nothing
    assert await store.requeue_dead_letters([by_n["2"].id, by_n["0"].id], NOW + 101) == []
    assert await store.requeue_dead_letters([], NOW + 101) == []
    assert await store.outbox_size() == 2
    await store.ack_outbox([e.id for e in claimed])
    assert await store.outbox_size() == 0


async def test_requeue_all_moves_the_oldest_up_to_the_limit(store: Store) -> None:
    await dead(store, 5)
    oldest_first = [d.id for d in reversed(await store.list_dead_letters(10))]
    assert await store.requeue_dead_letters(None, NOW + 100, limit=2) == oldest_first[:2]
    assert await store.count_dead_letters() == 3
    assert await store.requeue_dead_letters(None, NOW + 100, limit=0) == []
    assert await store.requeue_dead_letters(None, NOW + 100) == oldest_first[2:]
    assert await store.count_dead_letters() == 0 and await store.list_dead_letters(10) == []
    claimed = await store.claim_outbox("w2", 10, 30, time.time())
    assert sorted(e.fields["n"] for e in claimed) == ["0", "1", "2", "3", "4"]
    assert {e.attempts for e in claimed} == {0}


async def test_a_requeued_entry_that_fails_again_is_a_dead_letter_again(store: Store) -> None:
    await dead(store, 1)
    [letter] = await store.list_dead_letters(10)
    assert await store.requeue_dead_letters([letter.id], NOW + 100) == [letter.id]
    [entry] = await store.claim_outbox("w2", 10, 30, time.time())
    assert (entry.kind, entry.fields) == ("note", {"n": "0"})
    await store.dead_letter(entry, "again", NOW + 200)
    [again] = await store.list_dead_letters(10)
    assert again.id != letter.id and again.error == "again" and again.entry.fields == {"n": "0"}
    assert await store.count_dead_letters() == 1 and await store.outbox_size() == 0


# -- outbox_oldest -------------------------------------------------------------------------------


async def test_outbox_oldest_is_the_oldest_entry_not_acknowledged_or_dead_lettered(store: Store) -> None:
    assert await store.outbox_oldest() is None
    [a] = await store.enqueue([note(1)], NOW)
    [b] = await store.enqueue([note(2)], NOW + 10)
    [c] = await store.enqueue([note(3)], NOW + 20)
    assert await store.outbox_oldest() == NOW
    claimed = {e.id: e for e in await store.claim_outbox("w", 10, 30, time.time())}
    assert await store.outbox_oldest() == NOW  # leased, still there
    await store.ack_outbox([a])
    assert await store.outbox_oldest() == NOW + 10
    await store.dead_letter(claimed[b], "boom", NOW + 30)
    assert await store.outbox_oldest() == NOW + 20
    await store.retry_outbox(claimed[c], 0.2, time.time())  # waiting for its retry: still there
    assert await store.outbox_oldest() == NOW + 20
    await asyncio.sleep(0.3)
    [again] = await store.claim_outbox("w", 10, 30, time.time())
    assert again.fields == {"n": "3"} and await store.outbox_oldest() == NOW + 20
    await store.ack_outbox([again.id])
    assert await store.outbox_oldest() is None


# -- device logs ---------------------------------------------------------------------------------


async def test_device_logs_stay_bounded_over_many_appends(store: Store) -> None:
    for i in range(20):
        await store.append_device_logs([f"m{i}a", f"m{i}b"], NOW + i, keep=5)
    assert [m for _, m in await store.list_device_logs(100)] == ["m19b", "m19a", "m18b", "m18a", "m17b"]
    await store.append_device_logs([f"x{i}" for i in range(12)], NOW + 30, keep=5)  # more than kept at once
    assert [m for _, m in await store.list_device_logs(100)] == ["x11", "x10", "x9", "x8", "x7"]
    await store.append_device_logs(["y"], NOW + 31, keep=2)  # a smaller bound applies at once
    assert await store.list_device_logs(100) == [(NOW + 31, "y"), (NOW + 30, "x11")]


# -- import rows ---------------------------------------------------------------------------------


def _job(job_id: str, rows: int) -> ImportJob:
    return ImportJob(job_id, "coffee", "running", rows, 0, NOW, NOW)


def _rows(count: int) -> list[dict[str, object]]:
    return [{"line": i + 2, "account": f"acct-{i}", "name": f"Member {i}", "phone": None} for i in range(count)]


async def test_a_finished_import_job_keeps_its_results_and_errors_but_not_its_rows(store: Store) -> None:
    assert await store.create_import_job(_job("done-job", 3), _rows(3))
    assert await store.create_import_job(_job("failed-job", 2), _rows(2))
    assert await store.create_import_job(_job("running-job", 2), _rows(2))
    await store.advance_import_job("done-job", 2, [("acct-0", "4000"), ("acct-1", "4001")], NOW + 1)
    assert len(await store.import_rows("done-job", 0, 10)) == 3  # not finished yet: rows kept
    await store.advance_import_job("done-job", 3, [("acct-2", "4002")], NOW + 2, state="done", errors=[{"e": 1}])
    await store.advance_import_job("failed-job", 0, [], NOW + 2, state="failed", errors=[{"e": 2}])
    await store.advance_import_job("running-job", 1, [("acct-0", "4100")], NOW + 2, state="running")
    assert await store.import_rows("done-job", 0, 10) == []
    assert await store.import_rows("failed-job", 0, 10) == []
    assert await store.import_rows("running-job", 0, 10) == _rows(2)
    assert await store.import_results("done-job", 0, 10) == [("acct-0", "4000"), ("acct-1", "4001"), ("acct-2", "4002")]
    done_job, failed_job = await store.get_import_job("done-job"), await store.get_import_job("failed-job")
    assert done_job is not None and (done_job.state, done_job.done, done_job.errors) == ("done", 3, [{"e": 1}])
    assert failed_job is not None and (failed_job.state, failed_job.errors) == ("failed", [{"e": 2}])


async def test_a_large_finished_import_job_drops_every_row(store: Store) -> None:
    rows = _rows(1_234)
    assert await store.create_import_job(_job("big", len(rows)), rows)
    assert await store.import_rows("big", 1_000, 500) == rows[1_000:]
    await store.advance_import_job("big", len(rows), [], NOW + 1, state="done")
    for start in (0, 499, 500, 1_000, 1_233):
        assert await store.import_rows("big", start, 1_000) == []
