"""Ledger signature, event parsing and the pure decisions."""

from __future__ import annotations

from typing import Any

import pytest

from cards.model import Card, Member
from ledger.decide import LedgerEvent, Outcome, apply_event, classify
from ledger.events import EventError, parse_event
from ledger.signature import sign, verify

TIERS = frozenset({"base", "gold", "platinum"})
SECRET = "s" * 32


def card(**kw: Any) -> Card:
    base: dict[str, Any] = dict(
        number="7790000000000005",
        program="coffee",
        account="a1",
        serial="S1",
        auth_token="t" * 20,
        member=Member("Ann"),
        version=3,
        modified_at=1000,
        tag=7,
    )
    base.update(kw)
    return Card(**base)


class TestSignature:
    def test_round_trip(self):
        body = b'{"events": []}'
        assert verify(SECRET, sign(SECRET, 1_700_000_000, body), body, 1_700_000_100) is None

    @pytest.mark.parametrize("header", [None, "", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"])
    def test_malformed_rejected(self, header):
        assert verify(SECRET, header, b"{}", 1_700_000_000) is not None

    def test_body_tampering_rejected(self):
        header = sign(SECRET, 1_700_000_000, b'{"a":1}')
        assert verify(SECRET, header, b'{"a":2}', 1_700_000_000) == "X-Wallet-Signature does not match"

    def test_wrong_secret_rejected(self):
        header = sign("other" * 8, 1_700_000_000, b"{}")
        assert verify(SECRET, header, b"{}", 1_700_000_000) is not None

    @pytest.mark.parametrize("skew", [301, -301, 10_000])
    def test_outside_window_rejected(self, skew):
        header = sign(SECRET, 1_700_000_000, b"{}")
        problem = verify(SECRET, header, b"{}", 1_700_000_000 + skew)
        assert problem is not None and "window" in problem

    def test_edge_of_window_accepted(self):
        header = sign(SECRET, 1_700_000_000, b"{}")
        assert verify(SECRET, header, b"{}", 1_700_000_300) is None

    def test_second_v1_for_rollover(self):
        good = sign(SECRET, 1_700_000_000, b"{}")
        header = "t=1700000000,v1=" + "0" * 64 + "," + good.split(",")[1]
        assert verify(SECRET, header, b"{}", 1_700_000_000) is None


class TestParseEvent:
    def test_full_event(self):
        event = parse_event(
            {
                "id": "e1",
                "card": "7790000000000005",
                "version": 2,
                "balance": 250,
                "tier": "gold",
                "pending": 10,
                "expiring": {"points": 50, "date": "2027-01-31"},
                "message": "+250",
                "occurred_at": "2026-11-23T10:00:00Z",
            },
            TIERS,
        )
        assert event == LedgerEvent(
            id="e1",
            card_number="7790000000000005",
            version=2,
            balance=250,
            tier="gold",
            pending=10,
            expiring_points=50,
            expiring_date="2027-01-31",
            message="+250",
            occurred_at="2026-11-23T10:00:00Z",
        )

    def test_account_instead_of_card(self):
        assert parse_event({"id": "e", "account": "acc-1", "version": 1, "balance": 0}, TIERS).account == "acc-1"

    @pytest.mark.parametrize(
        "raw, fragment",
        [
            ([], "object"),
            ({"card": "7790000000000005", "version": 1, "balance": 1}, "id"),
            ({"id": "e", "version": 1, "balance": 1}, "card or account"),
            ({"id": "e", "card": "123", "version": 1, "balance": 1}, "16-digit"),
            ({"id": "e", "card": "7790000000000005", "balance": 1}, "version"),
            ({"id": "e", "card": "7790000000000005", "version": 0, "balance": 1}, "version"),
            ({"id": "e", "card": "7790000000000005", "version": "2", "balance": 1}, "version"),
            ({"id": "e", "card": "7790000000000005", "version": 1}, "balance"),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": True}, "balance"),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": 1.5}, "balance"),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": 1, "tier": "diamond"}, "tier"),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": 1, "pending": -1}, "pending"),
            (
                {
                    "id": "e",
                    "card": "7790000000000005",
                    "version": 1,
                    "balance": 1,
                    "expiring": {"points": 1, "date": "31.01.2027"},
                },
                "date",
            ),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": 1, "expiring": 5}, "expiring"),
            (
                {"id": "e", "card": "7790000000000005", "version": 1, "balance": 1, "occurred_at": "yesterday"},
                "occurred_at",
            ),
            (
                {
                    "id": "e",
                    "card": "7790000000000005",
                    "version": 1,
                    "balance": 1,
                    "occurred_at": "2026-11-23T10:00:00",
                },
                "zone",
            ),
            ({"id": "e", "card": "7790000000000005", "version": 1, "balance": 1, "message": "x" * 501}, "message"),
            ({"id": "x" * 129, "card": "7790000000000005", "version": 1, "balance": 1}, "id"),
        ],
    )
    def test_invalid(self, raw, fragment):
        with pytest.raises(EventError) as info:
            parse_event(raw, TIERS)
        assert fragment in str(info.value)


class TestDecide:
    def test_classify(self):
        e = LedgerEvent(id="e", version=4, balance=1, card_number="x")
        assert classify(e, card(), seen_before=True) is Outcome.DUPLICATE
        assert classify(e, None, seen_before=False) is Outcome.UNKNOWN
        assert classify(LedgerEvent(id="e", version=3, balance=1), card(), False) is Outcome.STALE
        assert classify(e, card(), False) is Outcome.ACCEPTED

    def test_apply_keeps_omitted_fields_and_advances_time(self):
        before = card(tier="gold", pending=5, expiring_points=10, expiring_date="2027-01-01", last_message="old")
        after = apply_event(before, LedgerEvent(id="e", version=4, balance=99), tag=8, now=500.0)
        assert (after.balance, after.tier, after.pending, after.version, after.tag) == (99, "gold", 5, 4, 8)
        assert (after.expiring_points, after.expiring_date, after.last_message) == (10, "2027-01-01", "old")
        # the clock is 500 s behind the card's stamp: the stamp never goes back, and no further ahead either
        # (it asserted 1001 before issue 9 bounded how far ahead of the clock a stamp may run)
        assert after.modified_at == 1000

    def test_apply_overwrites_given_fields(self):
        event = LedgerEvent(
            id="e",
            version=4,
            balance=1,
            tier="platinum",
            pending=0,
            expiring_points=0,
            expiring_date="2027-02-01",
            message="new",
        )
        after = apply_event(card(), event, tag=9, now=5000.0)
        assert (after.tier, after.pending, after.expiring_points, after.last_message, after.modified_at) == (
            "platinum",
            0,
            0,
            "new",
            5000,
        )
