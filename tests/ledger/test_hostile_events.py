"""Hostile ledger input, below HTTP: the envelope reader, the event parser, the signature's `t`, and the
batch planner's Last-Modified step (issue 9, items 1 to 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cards.bounds import POINTS_MAX, VERSION_MAX
from cards.model import Card, Member
from ledger.batch import HUGE_NUMBER, BatchError, read_batch
from ledger.decide import LedgerEvent, Outcome
from ledger.events import EventError, parse_event
from ledger.plan import plan_batch
from ledger.signature import sign, verify

TIERS = frozenset({"base", "gold", "platinum"})
CARD = "7790000000000005"


def event(**fields: Any) -> dict[str, Any]:
    return {"id": "e-1", "card": CARD, "version": 1, "balance": 0, **fields}


def refusal(raw: Any) -> str:
    with pytest.raises(EventError) as info:
        parse_event(raw, TIERS)
    return str(info.value)


class TestEnvelope:
    def test_lone_surrogates_and_huge_numbers_stay_inside_their_event(self):
        raw = b'{"events": [{"id": "a", "message": "\\ud800"}, {"id": "b", "balance": ' + b"9" * 5000 + b"}]}"
        first, second = read_batch(raw)
        assert first["message"] == "\ud800"
        assert second["balance"] is HUGE_NUMBER

    @pytest.mark.parametrize(
        "raw, reason",
        [
            (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
            (b'{"events": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}", "nested too deeply"),
            (b'{"events": ["\xff"]}', "UTF-8"),
            (b"nope", "not valid JSON"),
            (b"[]", "events"),
            (b'{"events": 5}', "events"),
        ],
    )
    def test_what_cannot_be_read_refuses_the_post_with_a_reason(self, raw, reason):
        with pytest.raises(BatchError, match=reason):
            read_batch(raw)


class TestEventStrings:
    @pytest.mark.parametrize("field", ["message", "tier", "occurred_at", "account", "id", "unknown_extra"])
    def test_a_lone_surrogate_in_any_string_is_this_events_error(self, field):
        raw = event(**{field: "x\udc00"})
        assert "surrogate" in refusal(raw) and field in refusal(raw)

    def test_a_lone_surrogate_in_a_nested_string_is_named_too(self):
        assert refusal(event(expiring={"points": 1, "date": "2027-01-31\ud800"})).startswith("expiring.date:")

    def test_a_field_name_that_is_itself_unprintable_is_not_echoed(self):
        problem = refusal(event(**{"\u202e\ud800": "\ud800"}))
        assert problem.startswith("a field:") and problem.isascii()

    @pytest.mark.parametrize(
        "message, reason",
        [("bell\x07", "control"), ("esc\x1b[31m", "control"), ("c1\x85", "control"), ("+\u202e052", "bidirectional")],
    )
    def test_message_keeps_to_the_lock_screen_rule(self, message, reason):
        assert reason in refusal(event(message=message))

    def test_message_may_have_several_lines(self):
        assert parse_event(event(message="+250 points\nthank you"), TIERS).message == "+250 points\nthank you"

    @pytest.mark.parametrize("field, value", [("id", "e1\n"), ("card", CARD + "\n"), ("account", "acc-1\n")])
    def test_a_trailing_newline_does_not_match(self, field, value):
        raw = event(**{field: value})
        if field == "account":
            del raw["card"]
        refusal(raw)


class TestEventNumbers:
    @pytest.mark.parametrize(
        "fields, name",
        [
            ({"balance": -1}, "balance"),
            ({"balance": POINTS_MAX + 1}, "balance"),
            ({"balance": HUGE_NUMBER}, "balance"),
            ({"pending": POINTS_MAX + 1}, "pending"),
            ({"expiring": {"points": POINTS_MAX + 1, "date": "2027-01-31"}}, "expiring.points"),
            ({"expiring": {"points": -1, "date": "2027-01-31"}}, "expiring.points"),
            ({"version": 0}, "version"),
            ({"version": VERSION_MAX + 1}, "version"),
            ({"version": 2**53}, "version"),
            ({"version": 1.0}, "version"),
            ({"version": "1"}, "version"),
            ({"version": True}, "version"),
            ({"version": HUGE_NUMBER}, "version"),
        ],
    )
    def test_out_of_bounds_or_malformed_numbers_are_refused(self, fields, name):
        assert refusal(event(**fields)).startswith(name)

    def test_the_bounds_themselves_are_accepted(self):
        parsed = parse_event(
            event(
                version=VERSION_MAX,
                balance=POINTS_MAX,
                pending=POINTS_MAX,
                expiring={"points": POINTS_MAX, "date": "2027-01-31"},
            ),
            TIERS,
        )
        assert (parsed.version, parsed.balance, parsed.pending, parsed.expiring_points) == (
            VERSION_MAX,
            POINTS_MAX,
            POINTS_MAX,
            POINTS_MAX,
        )

    def test_a_huge_number_in_a_whole_post_costs_only_its_event(self):
        raw = b'{"events": [{"id": "a", "card": "%s", "version": 1, "balance": %s}]}' % (CARD.encode(), b"9" * 5000)
        [item] = read_batch(raw)
        assert "out of range" in refusal(item)


class TestSignatureTimestamp:
    SECRET = "s" * 32
    BODY = b"{}"

    @pytest.mark.parametrize("t", ["\u00b9\u2077\u2070\u2070", "1" * 5000, "\u0661\u0667", "1700000000.5", "-1"])
    def test_a_t_that_is_not_ascii_digits_is_malformed(self, t):
        digest = sign(self.SECRET, 1_700_000_000, self.BODY).partition(",v1=")[2]
        assert verify(self.SECRET, f"t={t},v1={digest}", self.BODY, 1_700_000_000) == "X-Wallet-Signature is malformed"

    def test_a_non_ascii_v1_is_a_mismatch_not_an_error(self):
        header = "t=1700000000,v1=\u00e9" + "0" * 63
        assert verify(self.SECRET, header, self.BODY, 1_700_000_000) == "X-Wallet-Signature does not match"


class TestPlanStamps:
    def card(self) -> Card:
        return Card(
            number=CARD,
            program="coffee",
            account="a1",
            serial="S1",
            auth_token="t" * 20,
            member=Member("Ann"),
            modified_at=1_000,
        )

    def test_one_modified_at_step_per_card_per_batch(self):
        events = [LedgerEvent(id=f"e{i}", version=i, balance=i, card_number=CARD) for i in range(1, 1001)]
        counter = iter(range(1, 10_000))
        plan = plan_batch(events, {CARD: self.card()}, {}, set(), lambda: next(counter), 1_000.5)
        assert [outcome for _, outcome in plan.outcomes] == [Outcome.ACCEPTED] * 1000
        final = plan.changes[CARD].card
        assert (final.version, final.balance) == (1000, 1000)
        # the old planner stepped a second per event: 2000
        assert final.modified_at == 1_001


def test_the_envelope_reader_takes_what_json_dumps_writes():
    assert read_batch(json.dumps({"events": [event(message="\ud800")]}).encode())[0]["message"] == "\ud800"
