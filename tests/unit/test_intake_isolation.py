"""One event the store cannot take costs that event, never the batch (service/ledger.py), on both stores."""

from __future__ import annotations

from typing import Any

from cards.model import Card
from ledger.decide import LedgerEvent
from ledger.plan import EventCheck
from passes.programs import load_programs
from service.ledger import UNSTORABLE_MESSAGE, LedgerIntake
from store.port import Fanout, LedgerResult, Store
from tests.store.conftest import make_card
from tests.web.conftest import ROOT

NOW = 1_700_000_000.0


class Refusing:
    """The store, except that it fails to encode any batch holding the event `poison` (as SQLite and
    Redis fail on a string UTF-8 refuses), and it counts its commits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.commits = 0

    async def apply_ledger_events(
        self, events: list[LedgerEvent], now: float, fanout: Fanout, check: EventCheck | None = None, **geo: Any
    ) -> LedgerResult:
        if any(e.id == "poison" for e in events):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        self.commits += 1
        return await self.store.apply_ledger_events(events, now, fanout, check, **geo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def raw(ident: str, card: Card, version: int, balance: int) -> dict[str, Any]:
    return {"id": ident, "card": card.number, "version": version, "balance": balance}


async def test_the_event_the_store_refuses_is_invalid_and_the_rest_is_applied(store: Store) -> None:
    first, _ = await store.create_card(make_card(1))
    second, _ = await store.create_card(make_card(2))
    refusing = Refusing(store)
    intake = LedgerIntake(refusing, load_programs(ROOT / "pass_templates"), "pass.t")  # type: ignore[arg-type]
    items = [raw(f"a{i}", first, i, i * 10) for i in range(1, 8)]
    items.insert(3, raw("poison", second, 1, 1))
    items.append(raw("b1", second, 2, 20))
    items.append(raw("a3", first, 3, 30))  # a duplicate within the batch stays a duplicate

    answer = await intake.intake(items, NOW)

    assert answer["invalid"] == [{"id": "poison", "error": UNSTORABLE_MESSAGE}]
    assert answer["accepted"] == [*(f"a{i}" for i in range(1, 8)), "b1"]
    assert answer["duplicate"] == ["a3"]
    stored_first, stored_second = await store.get_card(first.number), await store.get_card(second.number)
    assert stored_first is not None and (stored_first.version, stored_first.balance) == (7, 70)
    assert stored_second is not None and (stored_second.version, stored_second.balance) == (2, 20)
    # split in halves down to the one event, not retried event by event
    assert refusing.commits <= 2 * 4


async def test_a_batch_the_store_takes_is_one_commit(store: Store) -> None:
    card, _ = await store.create_card(make_card(1))
    refusing = Refusing(store)
    intake = LedgerIntake(refusing, load_programs(ROOT / "pass_templates"), "pass.t")  # type: ignore[arg-type]
    answer = await intake.intake([raw(f"e{i}", card, i, i) for i in range(1, 50)], NOW)
    assert len(answer["accepted"]) == 49 and answer["invalid"] == []
    assert refusing.commits == 1
