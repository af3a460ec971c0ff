"""The bulk import's pure half (service/imports.py parse_csv, job ids, progress) and its runner on both
stores in-process: a batch redone after a crash, an account with a card in another program."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from passes.programs import Program, load_programs
from service import imports
from service.imports import (
    ImportRunner,
    card_for,
    job_id_for,
    new_job,
    parse_csv,
    progress,
)
from store.port import ImportJob, Store
from tests.store.conftest import make_card

ROOT = Path(__file__).resolve().parents[2]
HEADER = "account,name,phone,email,balance,tier,locale\n"


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return load_programs(ROOT / "pass_templates")


@pytest.fixture(scope="module")
def coffee(programs: dict[str, Program]) -> Program:
    return programs["coffee"]


def test_good_rows_are_normalized(coffee: Program):
    raw = (
        "\ufeffAccount;Name;Phone;Email;Balance;Tier;Locale\n"
        "A-1;Анна Петрова;8 (900) 123-45-67;anna@example.ru;15000;;\n"
        "A-2; Ivan ;+44 20 7946 0958;;;platinum;en\n"
        ";;;;;;\n"
        "A-3;Олег;;;;;\n"
    ).encode()
    parsed = parse_csv(raw, coffee)
    assert parsed.errors == []
    first, second, third = parsed.rows
    assert first == {
        "line": 2,
        "account": "A-1",
        "name": "Анна Петрова",
        "phone": "+79001234567",
        "email": "anna@example.ru",
        "balance": 15000,
        "tier": coffee.tier_for_balance(15000).key,
        "locale": "ru",
    }
    assert second["phone"] == "+442079460958" and second["name"] == "Ivan" and second["tier"] == "platinum"
    assert second["locale"] == "en" and second["balance"] == 0
    assert third["line"] == 5 and third["phone"] is None and third["email"] is None


def test_the_optional_columns_may_be_left_out(coffee: Program):
    parsed = parse_csv(b"name,account\nAnna,A-1\n", coffee)
    assert parsed.errors == [] and parsed.rows[0]["account"] == "A-1"


def test_every_bad_cell_is_reported_with_line_column_and_reason(coffee: Program):
    raw = (
        HEADER
        + "A-1,Anna,12,anna@example.ru,1,,\n"  # 2: phone
        + "A-2,Anna,,not-an-email,1,,\n"  # 3: e-mail
        + "A-3,Anna,,,-5,,\n"  # 4: negative balance
        + "A-4,Anna,,,1000000000001,,\n"  # 5: above POINTS_MAX
        + "A-5,Anna,,,1.5,,\n"  # 6: not whole
        + "A-6,Anna,,,,diamond,\n"  # 7: tier
        + "A-7,Anna,,,,,de\n"  # 8: locale
        + "A-1,Anna,,,,,\n"  # 9: account twice
        + "A-9,,,,,,\n"  # 10: no name
        + ",Anna,,,,,\n"  # 11: no account
        + "bad account!,Anna,,,,,\n"  # 12: account pattern
        + "A-12,Anna\u202eevil,,,,,\n"  # 13: bidi override in the name
        + "A-13,Anna,,\n"  # 14: too few values
        + "A-14,"
        + "x" * 101
        + ",,,,,\n"  # 15: name too long
    ).encode()
    parsed = parse_csv(raw, coffee)
    found = {(e["line"], e["column"]) for e in parsed.errors}
    assert found == {
        (2, "phone"),
        (3, "email"),
        (4, "balance"),
        (5, "balance"),
        (6, "balance"),
        (7, "tier"),
        (8, "locale"),
        (9, "account"),
        (10, "name"),
        (11, "account"),
        (12, "account"),
        (13, "name"),
        (14, None),
        (15, "name"),
    }
    reasons = {(e["line"], e["column"]): e["reason"] for e in parsed.errors}
    assert "first on line 2" in reasons[(9, "account")]
    assert reasons[(10, "name")] == "required"
    assert "diamond" not in reasons[(7, "tier")] and "base" in reasons[(7, "tier")]
    # personal data is never echoed back
    assert not any("anna" in e["reason"].lower() or "not-an-email" in e["reason"] for e in parsed.errors)


@pytest.mark.parametrize(
    "raw, line, column, reason",
    [
        (b"", 1, None, "no header row"),
        (b"account,name\n", 1, None, "no rows after the header"),
        (b"account,phone\nA,B\n", 1, "name", "missing column"),
        (b"account,name,age\nA,B,3\n", 1, "age", "unknown column"),
        (b"account,name,name\nA,B,C\n", 1, None, "a column twice"),
        (b"account,name\nA,\xff\n", 0, None, "not UTF-8"),
        (b'account,name\nA,"B\n', 2, None, "malformed CSV"),
    ],
)
def test_whole_file_problems(coffee: Program, raw: bytes, line: int, column: str | None, reason: str):
    [error] = parse_csv(raw, coffee).errors
    assert (error["line"], error["column"]) == (line, column) and error["reason"].startswith(reason), error


def test_too_many_rows_and_too_many_bytes(coffee: Program):
    raw = (HEADER + "".join(f"A-{i},N,,,,,\n" for i in range(6))).encode()
    [error] = parse_csv(raw, coffee, max_rows=5).errors
    assert error == {"line": 7, "column": None, "reason": "more than 5 rows"}
    [error] = parse_csv(raw, coffee, max_bytes=len(raw) - 1).errors
    assert error["line"] == 0 and "over" in error["reason"]
    assert parse_csv(raw, coffee, max_rows=6, max_bytes=len(raw)).errors == []


def test_the_phone_region_is_the_programs(coffee: Program):
    german = dataclasses.replace(coffee, extra={**coffee.extra, "region": "DE"})
    raw = b"account,name,phone\nA,B,030 123456\n"
    assert parse_csv(raw, german).rows[0]["phone"] == "+4930123456"
    assert parse_csv(raw, coffee).errors[0]["column"] == "phone"


def test_the_field_rules_are_post_v1_cards_rules():
    from web import validation

    assert imports.ACCOUNT_RE.pattern == validation.ACCOUNT_RE.pattern
    assert imports.EMAIL_RE.pattern == validation.EMAIL_RE.pattern


def test_the_same_upload_is_the_same_job():
    assert job_id_for("coffee", 0, b"x") == job_id_for("coffee", 0, b"x")
    assert len({job_id_for("coffee", 0, b"x"), job_id_for("coffee", 5, b"x"), job_id_for("coffee", 0, b"y")}) == 3


def test_progress_rate_and_eta():
    job = ImportJob("j", "coffee", "running", rows=1000, done=250, created_at=100.0, updated_at=110.0)
    shown = progress(job, 111.0)
    assert shown["rate"] == 25.0 and shown["eta_s"] == 30.0
    assert progress(dataclasses.replace(job, done=0), 111.0)["eta_s"] is None
    assert progress(dataclasses.replace(job, state="done", done=1000), 111.0)["eta_s"] == 0.0


# -- the runner on both stores -----------------------------------------------------------------


async def stored_job(store: Store, coffee: Program, rows: int, bonus: int = 0) -> str:
    raw = (HEADER + "".join(f"acc-{i},Member {i},+7900{i:07d},m{i}@example.ru,{i},,\n" for i in range(rows))).encode()
    parsed = parse_csv(raw, coffee)
    assert parsed.errors == []
    job_id = job_id_for("coffee", bonus, raw)
    assert await store.create_import_job(new_job(job_id, "coffee", rows, bonus, time.time(), "test"), parsed.rows)
    return job_id


async def test_a_batch_redone_after_a_crash_creates_nothing_twice(store: Store, programs: dict[str, Program]):
    coffee = programs["coffee"]
    job_id = await stored_job(store, coffee, 25)
    runner = ImportRunner(store, programs, batch_size=10)
    # a crash after the second batch's cards were committed, before its progress was
    rows = await store.import_rows(job_id, 0, 20)
    first = await store.create_cards([card_for(r, coffee, time.time()) for r in rows[:10]])
    await store.advance_import_job(job_id, 10, [(c.account, c.number) for c, _ in first], time.time(), state="running")
    await store.create_cards([card_for(r, coffee, time.time()) for r in rows[10:20]])
    job = await runner.run_job(job_id, here=True)
    assert job is not None and job.state == "done" and job.done == 25
    assert runner.stats.created == 5 and runner.stats.existing == 10
    results = await store.import_results(job_id, 0, 100)
    assert [account for account, _ in results] == [f"acc-{i}" for i in range(25)]
    for account, number in results:
        card = await store.get_card_by_account(account)
        assert card is not None and card.number == number and card.member.phone and card.member.phone.startswith("+7")


async def test_an_account_with_a_card_in_another_program_fails_the_job_before_any_card(
    store: Store, programs: dict[str, Program]
):
    coffee = programs["coffee"]
    job_id = await stored_job(store, coffee, 5)
    await store.create_card(make_card(1, program="tea", account="acc-3"))
    runner = ImportRunner(store, programs)
    job = await runner.run_job(job_id, here=True)
    assert job is not None and job.state == "failed" and job.done == 0
    assert job.errors == [
        {"line": 5, "column": "account", "reason": "this account already has a card in another program"}
    ]
    assert await store.get_card_by_account("acc-0") is None


async def test_a_job_another_runner_holds_is_left_alone_until_its_lease_ends(
    store: Store, programs: dict[str, Program]
):
    job_id = await stored_job(store, programs["coffee"], 3)
    now = [time.time()]
    runner = ImportRunner(store, programs, lease_seconds=10, clock=lambda: now[0])
    job = await runner.run_job(job_id)
    assert job is not None and job.state == "validating" and not runner.abandoned(job)
    now[0] += 11
    assert runner.abandoned(job)
    job = await runner.run_job(job_id)
    assert job is not None and job.state == "done"
