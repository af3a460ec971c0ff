"""Card numbers (Luhn, prefix, randomness), serials and tokens."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from cards.numbers import (
    format_card_number,
    last4,
    luhn_check_digit,
    luhn_valid,
    new_auth_token,
    new_card_number,
    new_serial,
)

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.mark.parametrize(
    "number", ["79927398713", "4111111111111111", "5555555555554444", "378282246310005", "0000000000000000"]
)
def test_known_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize(
    "number",
    [
        "79927398710",
        "4111111111111112",
        "5555555555554440",
        "",
        "7",
        "4111-1111-1111-1111",
        "abcd",
        "４１１１",
        None,
        4111111111111111,
    ],
)
def test_known_invalid_numbers(number) -> None:
    assert not luhn_valid(number)


def test_every_single_digit_error_is_detected() -> None:
    good = new_card_number("7790")
    for pos in range(len(good)):
        for d in "0123456789":
            if d != good[pos]:
                assert not luhn_valid(good[:pos] + d + good[pos + 1 :])


def test_check_digit() -> None:
    assert luhn_check_digit("7992739871") == "3"


def test_generated_numbers_are_valid_16_digits_with_prefix() -> None:
    for prefix in ("7790", "1", "1234567"):
        for _ in range(200):
            n = new_card_number(prefix)
            assert len(n) == 16 and n.isdigit()
            assert n.startswith(prefix)
            assert luhn_valid(n)


def test_generated_numbers_are_unique_and_not_sequential() -> None:
    numbers = [new_card_number("7790") for _ in range(5000)]
    assert len(set(numbers)) == len(numbers)
    bodies = [int(n[4:15]) for n in numbers]
    # consecutive issues are far apart: no counter behind them
    close = sum(1 for a, b in pairwise(bodies) if abs(a - b) < 1000)
    assert close <= 2
    assert bodies != sorted(bodies)
    # every random digit position takes many values
    for pos in range(4, 15):
        assert len({n[pos] for n in numbers}) == 10


@pytest.mark.parametrize("prefix", ["", "12345678", "77a0", "७७"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        new_card_number(prefix)


def test_serials_and_tokens() -> None:
    serials = {new_serial() for _ in range(2000)}
    tokens = {new_auth_token() for _ in range(2000)}
    assert len(serials) == 2000 and len(tokens) == 2000
    for s in serials:
        assert len(s) >= 22 and URL_SAFE.match(s)
    for t in tokens:
        assert len(t) >= 16 and URL_SAFE.match(t)
        assert len(t) * 6 >= 128  # base64 characters carry 6 bits each


def test_last4_and_format() -> None:
    assert last4("7790123456789012") == "9012"
    assert last4(None) == "????"
    assert format_card_number("7790123456789012") == "7790 1234 5678 9012"
