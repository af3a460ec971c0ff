"""The chaos run, shortened for CI (chaos/run.py; `make chaos` is the full size): ledger events
for cards with registered devices from concurrent clients, while the service's processes are
SIGKILLed and restarted (SQLite: the one process; Redis: 2 web + 2 workers); afterwards every
invariant holds. Each store takes about a minute on two cores."""

from __future__ import annotations

import asyncio

import pytest

from chaos.run import Config, run_chaos
from tests.conftest import REDIS_URL


@pytest.mark.parametrize(("store", "kills"), [("sqlite", 4), ("redis", 6)])
def test_chaos_short(store: str, kills: int) -> None:
    config = Config(
        store=store,
        events=1_000,
        cards=100,
        devices=300,
        clients=4,
        kills=kills,
        seed=15,
        drain_timeout=60.0,
        redis_url=REDIS_URL,
        log=lambda line: None,
    )
    report = asyncio.run(run_chaos(config))
    print(report.summary())
    failed = [c for c in report.checks if not c.ok]
    assert report.ok, "\n".join(f"{c.name}: {c.detail}" for c in failed) + "\n" + report.summary()
