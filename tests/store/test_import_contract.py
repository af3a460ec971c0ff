"""Bulk import jobs in the storage port, one contract for both adapters: a job stored with its rows
(pages across chunk boundaries), its progress, results in row order (one per account) and errors,
and a run killed mid-way finished by the next one through create_cards."""

from __future__ import annotations

import time

from store.port import ImportJob, Store
from tests.conftest import StoreFactory

from .conftest import make_card

NOW = 1_700_000_000.0


def job(job_id: str = "imp1", rows: int = 0, **changes: object) -> ImportJob:
    made = ImportJob(
        id=job_id,
        program="coffee",
        state="running",
        rows=rows,
        done=0,
        created_at=NOW,
        updated_at=NOW,
        meta={"file": "members.csv", "by": "console"},
    )
    return ImportJob(**{**made.__dict__, **changes})


def rows(n: int) -> list[dict[str, object]]:
    return [
        {"account": f"acct-{i}", "name": f"Member {i}", "phone": f"+7900{i:07d}", "balance": i, "extra": {"i": [i]}}
        for i in range(n)
    ]


async def test_create_and_get_an_import_job(store: Store) -> None:
    assert await store.get_import_job("imp1") is None
    made = job(rows=3, errors=[{"row": 7, "error": "bad phone"}], state="validating")
    assert await store.create_import_job(made, rows(3))
    assert await store.get_import_job("imp1") == made
    # the id exists: nothing changes
    assert not await store.create_import_job(job(rows=1, state="done"), rows(1)[::-1] + [{"x": 1}])
    assert await store.get_import_job("imp1") == made
    assert await store.import_rows("imp1", 0, 10) == rows(3)


async def test_import_rows_pages_cross_chunks(store: Store) -> None:
    data = rows(2_345)
    assert await store.create_import_job(job(rows=len(data)), data)
    for start, limit in [(0, 500), (0, 1), (499, 2), (500, 500), (999, 1000), (1_234, 333), (2_300, 100)]:
        assert await store.import_rows("imp1", start, limit) == data[start : start + limit], (start, limit)
    assert await store.import_rows("imp1", 2_345, 10) == []
    assert await store.import_rows("imp1", 5_000, 10) == []
    assert await store.import_rows("imp1", 0, 0) == []
    assert await store.import_rows("nope", 0, 10) == []
    paged: list[dict[str, object]] = []
    while page := await store.import_rows("imp1", len(paged), 777):
        paged += page
    assert paged == data


async def test_an_empty_job(store: Store) -> None:
    assert await store.create_import_job(job(), [])
    assert await store.import_rows("imp1", 0, 100) == []
    assert await store.import_results("imp1", 0, 100) == []


async def test_advance_records_progress_results_and_errors(store: Store) -> None:
    assert await store.create_import_job(job(rows=6, errors=[{"row": 0, "error": "e0"}]), rows(6))
    await store.advance_import_job("imp1", 2, [("acct-0", "4000"), ("acct-1", "4001")], NOW + 1)
    stored = await store.get_import_job("imp1")
    assert stored is not None
    assert (stored.done, stored.state, stored.updated_at, stored.created_at) == (2, "running", NOW + 1, NOW)
    await store.advance_import_job(
        "imp1",
        5,
        [("acct-2", "4002"), ("acct-0", "4000"), ("acct-3", "4003"), ("acct-3", "4003"), ("acct-4", "4009")],
        NOW + 2,
        errors=[{"row": 4, "error": "e4"}, {"row": 5, "error": "e5"}],
    )
    await store.advance_import_job("imp1", 6, [("acct-5", "4005")], NOW + 3, state="done")
    stored = await store.get_import_job("imp1")
    assert stored is not None
    assert (stored.done, stored.state, stored.updated_at) == (6, "done", NOW + 3)
    assert stored.errors == [{"row": 0, "error": "e0"}, {"row": 4, "error": "e4"}, {"row": 5, "error": "e5"}]
    assert stored.meta == {"file": "members.csv", "by": "console"}
    expected = [
        ("acct-0", "4000"),
        ("acct-1", "4001"),
        ("acct-2", "4002"),
        ("acct-3", "4003"),
        ("acct-4", "4009"),
        ("acct-5", "4005"),
    ]
    assert await store.import_results("imp1", 0, 100) == expected
    assert await store.import_results("imp1", 2, 3) == expected[2:5]
    assert await store.import_results("imp1", 6, 3) == []
    assert await store.import_results("imp1", 0, 0) == []


async def test_advance_a_state_change_only(store: Store) -> None:
    assert await store.create_import_job(job(rows=2), rows(2))
    await store.advance_import_job("imp1", 0, [], NOW + 5, state="failed", errors=[{"error": "worker died"}])
    stored = await store.get_import_job("imp1")
    assert stored is not None
    assert (stored.done, stored.state, stored.updated_at, stored.errors) == (
        0,
        "failed",
        NOW + 5,
        [{"error": "worker died"}],
    )


async def test_advance_an_unknown_job_writes_nothing(store: Store) -> None:
    await store.advance_import_job("nope", 3, [("a", "1")], NOW, state="done", errors=[{"e": 1}])
    assert await store.get_import_job("nope") is None
    assert await store.import_results("nope", 0, 10) == []


async def test_jobs_are_apart(store: Store) -> None:
    assert await store.create_import_job(job("a", rows=2), rows(2))
    assert await store.create_import_job(job("b", rows=1, program="tea"), rows(1))
    await store.advance_import_job("a", 1, [("acct-0", "4000")], NOW)
    await store.advance_import_job("b", 1, [("acct-0", "5000")], NOW)
    assert await store.import_results("a", 0, 10) == [("acct-0", "4000")]
    assert await store.import_results("b", 0, 10) == [("acct-0", "5000")]
    assert await store.import_rows("b", 0, 10) == rows(1)


async def test_a_run_killed_mid_way_is_finished_by_the_next(store_factory: StoreFactory) -> None:
    data = rows(1_200)
    cards = [make_card(i, account=str(row["account"])) for i, row in enumerate(data)]

    async def run(store: Store, stop_after: int | None = None) -> None:
        current = await store.get_import_job("imp1")
        assert current is not None
        done = current.done
        batches = 0
        while done < current.rows:
            page = await store.import_rows("imp1", done, 250)
            made = await store.create_cards(cards[done : done + len(page)])
            if stop_after is not None and batches == stop_after:
                return  # killed after its cards were made, before the job advanced
            done += len(page)
            await store.advance_import_job(
                "imp1",
                done,
                [(card.account, card.number) for card, _ in made],
                time.time(),
                state="done" if done == current.rows else None,
            )
            batches += 1

    first = store_factory()
    await first.open()
    assert await first.create_import_job(job(rows=len(data)), data)
    await run(first, stop_after=2)
    await first.close()
    second = store_factory()
    await second.open()
    await run(second)
    finished = await second.get_import_job("imp1")
    assert finished is not None and (finished.done, finished.state) == (1_200, "done")
    results = await second.import_results("imp1", 0, 5_000)
    assert results == [(card.account, card.number) for card in cards]
    assert len(await second.cards_page("coffee", "", 5_000)) == 1_200


async def test_a_large_job_round_trips(store: Store) -> None:
    data = rows(20_000)
    started = time.perf_counter()
    assert await store.create_import_job(job(rows=len(data)), data)
    assert await store.import_rows("imp1", 19_990, 1_000) == data[19_990:]
    page = await store.import_rows("imp1", 10_250, 1_000)
    assert page == data[10_250:11_250]
    await store.advance_import_job("imp1", 20_000, [(str(r["account"]), str(i)) for i, r in enumerate(data)], NOW)
    assert len(await store.import_results("imp1", 0, 30_000)) == 20_000
    assert time.perf_counter() - started < 20
