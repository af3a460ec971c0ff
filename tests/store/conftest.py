"""Helpers of the contract tests; the per-adapter `store` fixtures are in tests/conftest.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cards.model import Card, Member
from push.messages import PassUpdate, entry
from store.port import NewEntry
from store.schema.sqlite import MIGRATIONS
from tests.pii_guard import sensitive_card


def make_card(i: int, *, program: str = "coffee", account: str | None = None, **changes: object) -> Card:
    card = Card(
        number=f"40000000000{i:05d}",
        program=program,
        account=account if account is not None else f"acct-{i}",
        serial=f"serial-{i}",
        auth_token=f"token-{i}",
        member=Member(name=f"Member {i}", phone="+70000000000", email=f"m{i}@example.com"),
        created_at=1_600_000_000,
        modified_at=1_600_000_000,
    )
    return sensitive_card(card.with_changes(**changes))


def note(n: int, kind: str = "note", key: str | None = None) -> NewEntry:
    """A stand-in entry: the store keeps fields it never interprets."""
    return NewEntry(kind=kind, fields={"n": str(n)}, coalesce_key=key)


def pass_fanout(card: Card) -> list[NewEntry]:
    """What ledger intake enqueues per changed card (service/ledger.py): its pass update."""
    return [entry(PassUpdate("pass.t", card.serial))]


def sqlite_at_schema(path: Path, version: int) -> sqlite3.Connection:
    """A database as schema `version` wrote it (its migrations applied, none after), for upgrade tests."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:version]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn
