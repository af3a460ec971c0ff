"""The pure input rules of issue 9: whole numbers from text (cards/bounds.py), texts that reach a lock
screen (cards/text.py), and the modification stamps behind Last-Modified (cards/model.py)."""

from __future__ import annotations

import random

import pytest

from cards.bounds import decimal
from cards.model import (
    MODIFIED_AHEAD_MAX,
    VALIDATOR_AHEAD_MAX,
    last_modified,
    next_modified_at,
    unchanged_since,
)
from cards.text import BIDI_MESSAGE, CONTROL_MESSAGE, SURROGATE_MESSAGE, text_problem


class TestDecimal:
    @pytest.mark.parametrize("text, value", [("0", 0), ("42", 42), ("007", 7), (b"123", 123), ("9" * 12, 10**12 - 1)])
    def test_ascii_digits_within_the_cap(self, text, value):
        assert decimal(text, 12) == value

    @pytest.mark.parametrize(
        "text",
        [
            None,
            "",
            b"",
            "²",  # superscript two: str.isdigit() is True, int() refuses it
            "1²",
            "٣",  # Arabic-Indic three: isdigit() True and int() reads it as 3
            "１２",  # fullwidth digits
            "9" * 13,  # over the cap
            "9" * 5000,  # int() refuses more than 4300 digits
            b"9" * 5000,
            "-1",
            "+1",
            " 1",
            "1\n",
            "1.0",
            "0x10",
            "1_000",
        ],
    )
    def test_anything_else_is_none(self, text):
        assert decimal(text, 12) is None


class TestLockScreenText:
    @pytest.mark.parametrize(
        "value",
        ["Anna", "Анна Петрова", "+250 points ☕", "名前", "שרה\u200f", "\u200eLTR mark", "a\u061cb", "tab-free"],
    )
    def test_ordinary_texts_pass(self, value):
        assert text_problem(value) is None

    @pytest.mark.parametrize("char", ["\x00", "\x07", "\t", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029"])
    def test_control_characters_are_refused(self, char):
        assert text_problem(f"a{char}b") == CONTROL_MESSAGE
        assert text_problem(f"a{char}b", multiline=True) == CONTROL_MESSAGE

    def test_a_newline_only_where_a_field_is_multi_line(self):
        assert text_problem("line 1\nline 2") == CONTROL_MESSAGE
        assert text_problem("line 1\nline 2", multiline=True) is None

    @pytest.mark.parametrize("code", [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    def test_bidirectional_overrides_and_isolates_are_refused(self, code):
        assert text_problem(f"price {chr(code)}001 ", multiline=True) == BIDI_MESSAGE

    @pytest.mark.parametrize("char", ["\ud800", "\udbff", "\udc00", "\udfff"])
    def test_lone_surrogates_are_refused(self, char):
        assert text_problem(f"a{char}", multiline=True) == SURROGATE_MESSAGE


class TestModificationStamps:
    def test_never_more_than_a_few_seconds_ahead_however_many_changes(self):
        stamp, now = 1_000, 1_000.5
        for _ in range(1_000):
            stamp = next_modified_at(stamp, now)
        # the old rule (one second per change) put it 1 000 s ahead
        assert stamp == int(now) + MODIFIED_AHEAD_MAX

    def test_steps_past_the_previous_stamp_until_the_cap_and_never_goes_back(self):
        assert next_modified_at(1_000, 1_000.2) == 1_001
        assert next_modified_at(1_000, 5_000.0) == 5_000
        assert next_modified_at(1_003, 1_000.9) == 1_003
        assert next_modified_at(2_000, 1_000.0) == 2_000  # the clock stepped back: kept, not moved back

    def test_last_modified_is_never_ahead_of_the_serving_clock_by_more_than_a_second(self):
        assert last_modified(1_000, 1_000.5) == 1_000
        assert last_modified(1_001, 1_000.5) == 1_001
        assert last_modified(1_003, 1_000.5) == 1_000 + VALIDATOR_AHEAD_MAX

    def test_no_304_while_the_stamp_is_further_ahead_than_could_be_handed_out(self):
        assert unchanged_since(1_000, 1_000, 1_000.5)
        assert not unchanged_since(1_000, 999, 1_000.5)
        assert not unchanged_since(1_003, 1_003, 1_000.5)  # a far-future Last-Modified from before these rules
        assert unchanged_since(1_003, 1_003, 1_002.0)

    @pytest.mark.parametrize("seed", range(20))
    def test_if_modified_since_never_hides_a_change(self, seed):
        """A model run: bursts of changes (several per second, from writers whose clocks differ by up to
        0.9 s), and devices that fetch and re-check at random moments. A 304 is only ever given to a
        device holding the current version, and no stamp runs more than MODIFIED_AHEAD_MAX ahead."""
        rng = random.Random(seed)
        # one clock per process (on Redis, one per host), all within 0.9 s of each other
        skews = [0.0, 0.45, -0.45 * rng.random()]
        now = 1_700_000_000.0
        version, stamp = 0, int(now)
        devices: dict[int, tuple[int, int]] = {}  # device -> (version held, Last-Modified it got)
        for _ in range(3_000):
            now += rng.choice([0.0, 0.001, 0.05, 0.3, 0.9, 2.5])
            clock = now + rng.choice(skews)
            if rng.random() < 0.5:
                for _ in range(rng.choice([1, 1, 2, 5, 50])):
                    version += 1
                    stamp = next_modified_at(stamp, clock)
                    # ahead of the fastest clock by MODIFIED_AHEAD_MAX at most (the slower ones keep it)
                    assert stamp <= int(now + max(skews)) + MODIFIED_AHEAD_MAX
            device = rng.randrange(5)
            held = devices.get(device)
            if held is not None and unchanged_since(stamp, held[1], clock):
                assert held[0] == version, "a 304 hid a change"
            else:
                devices[device] = (version, last_modified(stamp, clock))
